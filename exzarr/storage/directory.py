"""Directory store: one file per key, in the Zarr v2 directory layout."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from exzarr.storage._locks import LOCK_NAME, file_lock
from exzarr.storage.base import Store, check_key

# Keys joined by newlines with one of these in them are not all plain: an empty part,
# a part starting with a dot, a leading or trailing slash, an empty key.
_NOT_PLAIN = ("//", "/.", "\n.", "/\n", "\n/", "\n\n")
# What os.fsencode does, without its per-call checks.
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _not_data(name: str) -> bool:
    """Whether a file name is one of the store's own (temporary chunk files, lock
    files), never a key."""
    return name.startswith((".tmp-", LOCK_NAME))


class DirectoryStore(Store):
    """Keys as files below a root directory.

    Every value is written to a temporary file in the target directory and renamed
    into place, so a concurrent reader sees the old value or the new one, never a
    torn file.

    Parameters
    ----------
    root : str or os.PathLike
        The directory; created on the first write.
    read_only : bool
        Refuse writes.
    """

    backend = "filesystem"

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.root = os.path.abspath(os.fspath(root))
        self._made_dirs: set[str] = set()
        self._counter = itertools.count()

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    # -- direct file access for the core (reads and writes without the GIL) ------------
    def _file_path_list(self, keys: list[str]) -> list[str]:
        """The file path of every key. Where all are plain, as a write's or read's keys
        are (no part empty or starting with a dot), they are checked at once and joined
        to the root as they are; otherwise each goes through the full check."""
        joined = "\n" + "\n".join(keys) + "\n"
        if os.sep == "/" and not any(bad in joined for bad in _NOT_PLAIN):
            root = self.root + "/"
            return [root + k for k in keys]
        return [self._path(k) for k in keys]

    def file_paths(self, keys: list[str]) -> list[bytes]:
        """Filesystem paths of ``keys``, encoded for the core."""
        enc, errors = _FS_ENCODING, _FS_ERRORS
        return [p.encode(enc, errors) for p in self._file_path_list(keys)]

    def _temp_tag(self) -> str:
        # Process, thread and call, and a random part: processes on other hosts or in
        # other containers writing into the same folder may share a pid.
        return f"{os.getpid()}-{threading.get_ident()}-{next(self._counter)}-{os.urandom(4).hex()}"

    def write_paths(self, keys: list[str]) -> tuple[list[bytes], list[bytes]]:
        """The paths of ``keys`` and a fresh temporary path beside each, encoded for the
        core, with the folders they go in made.

        The temporary name does not repeat the key's: a key may be as long as the file
        system allows (a 32-d chunk key runs to 255 characters), its temporary name must
        fit too. Built in one pass: a full-array write of 4,096 chunks spends its
        Python time here.
        """
        enc, errors, sep, tag = _FS_ENCODING, _FS_ERRORS, os.sep, self._temp_tag()
        paths = self._file_path_list(keys)
        folders = self._make_dirs(paths)
        return ([p.encode(enc, errors) for p in paths],
                [f"{f}{sep}.tmp-{tag}-{i}.partial".encode(enc, errors)
                 for i, f in enumerate(folders)])

    def forget_dirs(self) -> None:
        """Forget which chunk directories were made (they may have been removed)."""
        self._made_dirs.clear()

    def prepare_dirs(self, keys: list[str]) -> None:
        """Create the directories that ``keys`` will be written into."""
        self._make_dirs(self._file_path_list(keys))

    def _make_dirs(self, paths: list[str]) -> list[str]:
        """Make the folder of each file path not made yet; the folders, in order."""
        folders = [p.rpartition(os.sep)[0] or os.sep for p in paths]
        for folder in set(folders) - self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        return folders

    def get(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def set(self, key: str, value: bytes) -> None:
        self._check_writable()
        path = self._path(key)
        folder = os.path.dirname(path)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        # A name unique to this write: no two writers share it.
        tmp = os.path.join(folder, f".tmp-{self._temp_tag()}.partial")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileNotFoundError:  # the directory was removed behind our back
            self._made_dirs.discard(folder)
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with open(fd, "wb", buffering=0) as f:
                view = memoryview(value)
                while view:
                    view = view[f.write(view):]
            from exzarr._core import replace_file

            replace_file(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def delete(self, key: str) -> None:
        self._check_writable()
        try:
            os.unlink(self._path(key))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass  # absent (a directory is not a key: it is never removed here)

    def move_prefix(self, src: str, dst: str) -> None:
        """Move the directory of ``src`` to that of ``dst`` in one rename."""
        self._check_move(src, dst)
        old, new = self._path(src.rstrip("/")), self._path(dst.rstrip("/"))
        if os.path.isdir(new):  # empty folders left by deleted nested chunks give way
            for dirpath, _, files in os.walk(new, topdown=False):
                if files:
                    raise FileExistsError(errno.EEXIST, "the target holds files", dirpath)
                os.rmdir(dirpath)
        elif os.path.lexists(new):
            raise FileExistsError(errno.EEXIST, "a file is at the target", new)
        os.makedirs(os.path.dirname(new), exist_ok=True)
        self.forget_dirs()
        os.rename(old, new)

    def remove_empty_dirs(self, prefix: str = "") -> None:
        """Remove the empty directories below ``prefix`` (left by deleted nested chunks).

        Only for callers that know no write runs below ``prefix`` at the same time: a
        writer that has just created a chunk's directory would find it gone.
        """
        self._check_writable()
        self.forget_dirs()
        top = self._path(prefix.strip("/")) if prefix.strip("/") else self.root
        for dirpath, _, _ in os.walk(top, topdown=False):
            if dirpath != top:
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass  # not empty (or gone): left as it is

    def contains(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def getsize(self, key: str) -> int:
        try:
            return os.stat(self._path(key)).st_size
        except OSError:
            return 0

    def list_prefix(self, prefix: str) -> Iterator[str]:
        # Walk only the deepest directory the prefix names.
        head, _, _ = prefix.rpartition("/")
        start = os.path.join(self.root, *head.split("/")) if head else self.root
        if not os.path.isdir(start):
            return
        for dirpath, dirnames, filenames in os.walk(start):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            dirnames.sort()
            for name in sorted(filenames):
                if _not_data(name):
                    continue
                key = rel + name
                if key.startswith(prefix):
                    yield key

    def list_dir(self, prefix: str = "") -> list[str]:
        path = os.path.join(self.root, *prefix.strip("/").split("/")) if prefix.strip("/") else self.root
        try:
            return sorted(n for n in os.listdir(path) if not _not_data(n))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def process_lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock on ``key`` shared with every process and Store object using
        this directory: a lock on one byte of the hidden file ``.exzarr.lock`` in the
        key's folder, so stores rooted at different levels of one hierarchy share it.
        Released when the block ends or the process dies. Needs a writable store."""
        self._check_writable()
        path = self._path(key)
        folder, _, name = path.rpartition(os.sep)
        return file_lock(folder or os.sep, name, f"{key!r} of {self!r}")

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "read_only": self.read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], read_only=state["read_only"])  # type: ignore[misc]

    def __repr__(self) -> str:
        mode = ", read-only" if self.read_only else ""
        return f"<DirectoryStore {self.root!r}{mode}>"
