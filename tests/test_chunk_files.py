"""Chunk files of a directory store hold exactly their chunk's encoded bytes.

The core writes a new chunk as an unnamed file linked at its key when complete, and
an existing one through a temporary name exchanged with it; it reserves the blocks of
big chunk files before writing them (``fallocate``; see ``exzarr/_lib/fileio.h``). A
reservation larger than what is then written would leave zeros after the encoded bytes,
which numcodecs and zarr-python reject or misread. These tests write chunks on both
sides of the reservation threshold, new and over older, bigger files, and check every
file against numcodecs, and that no temporary file is left behind.
"""

from __future__ import annotations

import ast
import functools
import os
import shutil
import subprocess
import sys
import textwrap

import numcodecs
import numpy as np
import pytest

import exzarr

# Compressed sizes of a 1 MiB float32 chunk of this data: none 1 MiB, zstd about half,
# zeros-with-noise far below the 256 KiB threshold.
CODECS = {
    "none": None,
    "zstd": {"id": "zstd", "level": 1},
    "blosc": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
}


def _field(seed: int, rough: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:1024, 0:1024].astype(np.float32) / 50
    base = 20 * np.sin(x) * np.cos(y)
    noise = rng.normal(0, 0.5 if rough else 0.001, base.shape)
    return np.round(base + noise, 2).astype(np.float32)


def _check_files(arr_dir, data: np.ndarray, chunks: tuple, compressor) -> None:
    assert not [n for n in os.listdir(arr_dir) if n.startswith(".tmp-")]
    codec = numcodecs.get_codec(compressor) if compressor else None
    for i in range(data.shape[0] // chunks[0]):
        for j in range(data.shape[1] // chunks[1]):
            raw = (arr_dir / f"{i}.{j}").read_bytes()
            want = data[i * chunks[0]:(i + 1) * chunks[0], j * chunks[1]:(j + 1) * chunks[1]]
            if codec is None:
                assert raw == want.tobytes(), f"chunk {i}.{j}"
            else:
                got = np.frombuffer(codec.decode(raw), dtype=data.dtype).reshape(chunks)
                np.testing.assert_array_equal(got, want, err_msg=f"chunk {i}.{j}")
                if compressor["id"] == "blosc":  # the frame header's cbytes is the file's size
                    assert int.from_bytes(raw[12:16], "little") == len(raw), f"chunk {i}.{j}"


@pytest.mark.parametrize("name", list(CODECS))
@pytest.mark.parametrize("chunks", [(512, 512), (128, 128)], ids=["1MiB", "64KiB"])
def test_chunk_files_hold_exactly_their_encoded_bytes(tmp_path, name, chunks):
    compressor = CODECS[name]
    rough = _field(1, rough=True)
    smooth = _field(2, rough=False)
    path = tmp_path / "a.zarr"
    a = exzarr.create(shape=rough.shape, chunks=chunks, dtype="float32", compressor=compressor,
                      storage="filesystem", path=str(path))
    a[...] = rough
    _check_files(path, rough, chunks, compressor)
    # Over the old files: the smooth field compresses far better, so every new file is
    # smaller than the one it replaces.
    a[...] = smooth
    _check_files(path, smooth, chunks, compressor)
    # And from a view of a wider array: each chunk row is contiguous, the rows are not
    # (written straight from the rows without a compressor), then a fully strided one.
    wide = np.zeros((1024, 1536), dtype=np.float32)
    wide[:, 512:] = rough
    a[...] = wide[:, 512:]
    _check_files(path, rough, chunks, compressor)
    a[...] = smooth
    sparse = np.zeros((2048, 2048), dtype=np.float32)
    sparse[::2, ::2] = rough
    a[...] = sparse[::2, ::2]
    _check_files(path, rough, chunks, compressor)
    np.testing.assert_array_equal(exzarr.open(str(path), mode="r")[...], rough)


SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import exzarr
    proc = len(sys.argv) > 2 and sys.argv[2] == "proc"
    assert os.path.exists("/proc/self/fd") == proc, "the test meant /proc hidden (or not)"
    data = np.arange(64 * 64, dtype="i4").reshape(64, 64)
    a = exzarr.create(shape=(64, 64), chunks=(8, 8), dtype="i4", compressor="zstd",
                      storage="filesystem", path=sys.argv[1])
    a[...] = data          # new files
    a[...] = data[::-1]    # over them
    a[:8, :8] = 0          # removed (all fill)
    want = data[::-1].copy()
    want[:8, :8] = 0
    assert (exzarr.open(path=sys.argv[1], mode="r")[...] == want).all()
    print(sorted(os.listdir(sys.argv[1])))
""")


@functools.cache
def _can_hide_proc() -> bool:
    """Whether this process may make a mount namespace (root with CAP_SYS_ADMIN)."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


def _run_hidden_proc(tmp_path, path, wrap: str = "") -> list[str]:
    """Run SCRIPT on ``path`` with /proc hidden (an empty tmpfs over it), the command
    prefixed by ``wrap``; return the folder listing it printed."""
    script = tmp_path / "noproc.py"
    script.write_text(SCRIPT)
    run = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f'mount -t tmpfs none /proc && exec {wrap} "{sys.executable}" "{script}" "{path}"'],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return ast.literal_eval(run.stdout.strip().splitlines()[-1])


def _check_noproc_result(path, names: list[str]) -> None:  # (SCRIPT's result)
    assert ".zarray" in names and "0.0" not in names and len(names) == 64
    assert not [n for n in names if n.startswith(".tmp-")]
    want = np.arange(64 * 64, dtype="i4").reshape(64, 64)[::-1].copy()
    want[:8, :8] = 0
    np.testing.assert_array_equal(exzarr.open(path=str(path), mode="r")[...], want)


@pytest.mark.skipif(not _can_hide_proc(), reason="hiding /proc needs a mount namespace "
                    "(root with CAP_SYS_ADMIN, as CI runs)")
def test_chunk_files_without_proc(tmp_path):
    # Unnamed files are linked with AT_EMPTY_PATH, which needs no /proc: the chunks
    # must come out the same without it.
    path = tmp_path / "a"
    _check_noproc_result(path, _run_hidden_proc(tmp_path, path))


@pytest.mark.skipif(not (_can_hide_proc() and shutil.which("strace")),
                    reason="needs a mount namespace and strace (make test installs it)")
def test_chunk_files_where_unnamed_files_cannot_be_linked(tmp_path):
    # Every link refused (strace makes linkat fail with ENOENT, and /proc is hidden, so
    # the core cannot tell it from a missing /proc): each chunk written unnamed must be
    # written again under a temporary name and renamed, with nothing left behind.
    path = tmp_path / "a"
    wrap = "strace -f -qq -o /dev/null -e trace=linkat -e inject=linkat:error=ENOENT"
    _check_noproc_result(path, _run_hidden_proc(tmp_path, path, wrap))


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace (make test installs it)")
def test_chunk_files_linked_through_proc_where_empty_path_is_refused(tmp_path):
    # Older kernels refuse linkat(AT_EMPTY_PATH) to processes without
    # CAP_DAC_READ_SEARCH, with ENOENT: strace fails every first linkat of a link that
    # way, and the core must link through /proc/self/fd instead, not fall back to
    # named files.
    path, log = tmp_path / "a", tmp_path / "strace.log"
    script = tmp_path / "proc.py"
    script.write_text(SCRIPT)
    run = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(log), "-e", "trace=linkat",
         "-e", "inject=linkat:error=ENOENT:when=1+2", sys.executable, str(script), str(path),
         "proc"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    _check_noproc_result(path, ast.literal_eval(run.stdout.strip().splitlines()[-1]))
    calls = log.read_text().splitlines()
    refused = [c for c in calls if "AT_EMPTY_PATH" in c and "(INJECTED)" in c]
    through_proc = [c for c in calls if "/proc/self/fd/" in c and c.rstrip().endswith("= 0")]
    # The 64 new files (over existing ones the core writes named files and exchanges).
    assert len(refused) >= 64 and len(through_proc) >= 64, calls[:6]
