"""The ``exzarr`` command line.

``exzarr info PATH`` prints a summary of the Zarr v2 array at ``PATH`` (shape, dtype,
chunks, order, codecs, stored bytes, compression ratio, initialised chunks). When
``PATH`` is a Zarr group, it prints the summary of every array below it, each under
its path inside the group.

Exit status: 0 on success, 2 when ``PATH`` is missing or is not Zarr (and for usage
errors, as argparse does), 1 when the data cannot be read (corrupt metadata, I/O).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import exzarr
from exzarr.errors import (ExZarrError, MetadataNotFoundError,
                           PathNotFoundError)

__all__ = ["find_arrays", "main"]

PROG = "exzarr"
ZARRAY = ".zarray"
ZGROUP = ".zgroup"

#: Exit status when the path is missing or not Zarr (argparse uses 2 for usage errors).
EXIT_USAGE = 2
#: Exit status when the data exists but cannot be read.
EXIT_FAILURE = 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect Zarr v2 arrays and groups.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {exzarr.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    info = sub.add_parser(
        "info",
        help="print a summary of an array, or of every array in a group",
        description="Print the shape, dtype, chunks, order, codecs, stored bytes, "
                    "compression ratio and initialised chunks of the Zarr v2 array at "
                    "PATH; for a group, of every array below it.",
    )
    info.add_argument("path", metavar="PATH", help="directory of a Zarr v2 array or group")
    info.set_defaults(func=_cmd_info)
    return parser


def find_arrays(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield the directories of the arrays below ``root``, depth first, sorted by name.

    Parameters
    ----------
    root : str or os.PathLike
        A directory, normally a Zarr group (it holds ``.zgroup``).

    Yields
    ------
    pathlib.Path
        Each directory below ``root`` that holds a ``.zarray``. The walk does not
        descend into arrays (their subdirectories are chunks) nor into hidden
        directories.
    """
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        path = Path(entry.path)
        if (path / ZARRAY).is_file():
            yield path
        else:
            yield from find_arrays(path)


def _heading(text: str) -> str:
    return f"{text}\n{'-' * len(text)}"


def _print_array_info(path: str | os.PathLike[str], out: TextIO) -> None:
    print(str(exzarr.open(path, mode="r").info), file=out)


def _cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.path)
    if path.is_file():
        raise PathNotFoundError(
            f"{args.path} is a file; a Zarr v2 array or group is a directory "
            f"(holding {ZARRAY} or {ZGROUP})")
    if path.is_dir() and not (path / ZARRAY).is_file():
        if not (path / ZGROUP).is_file():
            raise MetadataNotFoundError(
                f"{args.path} is not a Zarr array or group: it holds no {ZARRAY} or {ZGROUP}")
        # Read through the group API first: every .zgroup, .zattrs and .zmetadata below
        # is checked, so a malformed one is reported rather than skipped.
        exzarr.open_group(path, mode="r").members(max_depth=None)
        arrays = list(find_arrays(path))
        noun = "array" if len(arrays) == 1 else "arrays"
        print(f"{args.path}: Zarr group, {len(arrays)} {noun}", file=out)
        for sub in arrays:
            print(file=out)
            print(_heading(sub.relative_to(path).as_posix()), file=out)
            _print_array_info(sub, out)
        return 0
    _print_array_info(path, out)  # exzarr.open reports a missing path
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``exzarr`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        The exit status: 0 on success, 2 when the path is missing or not Zarr,
        1 when it cannot be read. Usage errors and ``--version`` exit through
        ``SystemExit``, as argparse does.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        status = int(args.func(args, sys.stdout))
        sys.stdout.flush()  # here, so a closed pipe is handled below
        return status
    except (PathNotFoundError, MetadataNotFoundError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `exzarr info DIR | head`
        _silence_stdout()
        return EXIT_FAILURE
    except (ExZarrError, OSError) as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - a command line prints one line, never a traceback
        _error(f"{type(exc).__name__}: {exc} (unexpected: please report it to exzarr's issue "
               "tracker with the command)")
        return EXIT_FAILURE


def _error(message: str) -> None:
    """Print ``message`` to stderr as one line, prefixed with the program's name."""
    line = " ".join(message.split())
    if len(line) > 2000:  # a message quoting a huge value stays readable
        line = line[:1996] + " ..."
    print(f"{PROG}: error: {line}", file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
