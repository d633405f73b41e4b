"""Directory store: one file per key, in the Zarr v2 directory layout."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from exzarr.storage._leftovers import (TEMP_PREFIX, TEMP_SUFFIX, is_leftover, is_temp_name,
                                       sweep_folder, temp_tag)
from exzarr.storage._locks import LOCK_NAME, file_lock
from exzarr.storage.base import (Store, all_plain, check_key, make_folders, storage_error,
                                 sync_folder)

# O_NONBLOCK: a FIFO at a key's path must not block the open (it is refused after).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | \
    getattr(os, "O_BINARY", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | \
    getattr(os, "O_BINARY", 0)
# What os.fsencode does, without its per-call checks.
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _sync_wanted() -> bool:
    """Whether writes are to be durable before they return (read per write call)."""
    from exzarr import config

    return bool(config.get("fsync"))


def _not_data(name: str) -> bool:
    """Whether a file name is one of the store's own (temporary chunk files, lock
    files), never a key."""
    return name.startswith((TEMP_PREFIX, LOCK_NAME))


class DirectoryStore(Store):
    """Keys as files below a root directory.

    Every value is written to a temporary file in the target directory and renamed
    into place, so a concurrent reader sees the old value or the new one, never a
    torn file. The first write into a folder by a store object removes the temporary
    files killed writers left there (see :meth:`remove_leftovers`). With
    ``exzarr.config.set(fsync=True)`` files and their folders are synced before a
    write returns.

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
        self._swept: set[str] = set()  # folders whose leftovers this object removed
        self._counter = itertools.count()

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    def _folder(self, prefix: str) -> str:
        """The folder a listing prefix names (its empty parts ignored, as a prefix may
        start or end with "/"); InvalidKeyError for one that would leave the root."""
        parts = [p for p in prefix.split("/") if p]
        if parts:
            check_key("/".join(parts), what="store prefix")
        return os.path.join(self.root, *parts)

    # -- direct file access for the core (reads and writes without the GIL) ------------
    def _file_path_list(self, keys: list[str]) -> list[str]:
        """The file path of every key. Where all are plain, as a write's or read's keys
        are (no part empty or starting with a dot), they are checked at once and joined
        to the root as they are; otherwise each goes through the full check."""
        if os.sep == "/" and all_plain(keys):
            root = self.root + "/"
            return [root + k for k in keys]
        return [self._path(k) for k in keys]

    def file_paths(self, keys: list[str]) -> list[bytes]:
        """Filesystem paths of ``keys``, encoded for the core."""
        enc, errors = _FS_ENCODING, _FS_ERRORS
        return [p.encode(enc, errors) for p in self._file_path_list(keys)]

    def _temp_tag(self) -> str:
        # Host, process, thread and call, and a random part: processes on other hosts or
        # in other containers writing into the same folder may share a pid.
        return temp_tag(self._counter)

    def write_paths(self, keys: list[str]) -> tuple[list[bytes], list[bytes]]:
        """The paths of ``keys`` and a fresh temporary path beside each, encoded for the
        core, with the folders they go in made.

        The temporary name does not repeat the key's: a key may be as long as the file
        system allows (a 32-d chunk key runs to 255 characters), its temporary name must
        fit too. Built in one pass: a full-array write of 4,096 chunks spends its
        Python time here.
        """
        enc, errors, sep = _FS_ENCODING, _FS_ERRORS, os.sep
        head, tail = f"{TEMP_PREFIX}{self._temp_tag()}-", TEMP_SUFFIX
        paths = self._file_path_list(keys)
        try:
            folders = self._make_dirs(paths)
        except OSError as exc:
            raise self._error(exc, "making the folders of a write") from exc
        return ([p.encode(enc, errors) for p in paths],
                [f"{f}{sep}{head}{i}{tail}".encode(enc, errors)
                 for i, f in enumerate(folders)])

    def forget_dirs(self) -> None:
        """Forget which chunk directories were made (they may have been removed)."""
        self._made_dirs.clear()

    def prepare_dirs(self, keys: list[str]) -> None:
        """Create the directories that ``keys`` will be written into."""
        self._make_dirs(self._file_path_list(keys))

    def _make_dirs(self, paths: list[str]) -> list[str]:
        """Make the folder of each file path not made yet; the folders, in order. A
        folder new to this object is swept of leftovers once (a listing of it)."""
        folders = [p.rpartition(os.sep)[0] or os.sep for p in paths]
        new = set(folders) - self._made_dirs
        if new:
            self._new_folders(new)
        return folders

    def _new_folders(self, folders: Iterable[str]) -> None:
        """Make ``folders`` (as needed) and sweep each once; with fsync on, sync the
        parent of every folder that was missing (the folder's own entries are synced
        after the writes into it)."""
        made: list[str] = []
        for folder in folders:
            made += make_folders(folder)
            self._made_dirs.add(folder)
            self._sweep(folder)
        if made and _sync_wanted():
            for parent in sorted({os.path.dirname(f) for f in made}):
                sync_folder(parent)

    def _sweep(self, folder: str) -> None:
        if folder not in self._swept:
            self._swept.add(folder)
            sweep_folder(folder)

    def remove_leftovers(self, prefix: str = "") -> int:
        """Remove the temporary files that killed writers left below ``prefix`` (a key
        prefix ending in "/", or "" for the whole store): those of a process of this
        host that is no longer running, and any unchanged for an hour
        (``exzarr.storage._leftovers.LEFTOVER_AGE``); never a running writer's.

        Returns
        -------
        int
            How many files were removed.
        """
        self._check_writable()
        top = self._path(prefix.strip("/")) if prefix.strip("/") else self.root
        removed = 0
        for dirpath, _, filenames in os.walk(top):
            removed += sweep_folder(dirpath) if any(map(is_temp_name, filenames)) else 0
        return removed

    def _error(self, exc: OSError, doing: str, key: str | None = None) -> OSError:
        """``exc`` as a StorageError naming this store (and ``key``); a missing file or
        folder stays as it is, for the callers that handle one."""
        if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)) \
                or exc.errno is None:
            return exc
        what = f"{doing} {key!r} of {self!r}" if key is not None else f"{doing} in {self!r}"
        return storage_error(exc.errno, exc.strerror or str(exc), what,
                             exc.filename if exc.filename is not None else None)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            fd = os.open(path, _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise self._error(exc, "reading", key) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                if stat.S_ISDIR(info.st_mode):
                    return None  # a folder is not a key
                raise storage_error(errno.EINVAL, "it is not a regular file (a FIFO, socket "
                                    "or device): remove it, or put the key's file there",
                                    f"reading {key!r} of {self!r}", path)
            with open(fd, "rb", buffering=0, closefd=False) as f:
                return f.read()
        except OSError as exc:
            raise self._error(exc, "reading", key) from exc
        finally:
            os.close(fd)

    def set(self, key: str, value: bytes) -> None:
        self._check_writable()
        sync = _sync_wanted()
        folder = self._write(key, value, sync)
        if sync:
            self._sync_folders([folder])

    def set_many(self, items: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        self._check_writable()
        sync = _sync_wanted()
        pairs = items.items() if isinstance(items, Mapping) else items
        folders = {self._write(k, v, sync) for k, v in pairs}
        if sync:
            self._sync_folders(folders)

    def _write(self, key: str, value: bytes, sync: bool) -> str:
        """Write ``value`` to a temporary file and move it onto ``key``'s; its folder."""
        path = self._path(key)
        folder = os.path.dirname(path)
        try:
            if folder not in self._made_dirs:
                self._new_folders([folder])
            # A name unique to this write: no two writers share it.
            tmp = os.path.join(folder, f"{TEMP_PREFIX}{self._temp_tag()}{TEMP_SUFFIX}")
            try:
                fd = os.open(tmp, _WRITE_FLAGS, 0o666)
            except FileNotFoundError:  # the directory was removed behind our back
                self._made_dirs.discard(folder)
                self._new_folders([folder])
                fd = os.open(tmp, _WRITE_FLAGS, 0o666)
        except OSError as exc:
            raise self._error(exc, "writing", key) from exc
        try:
            with open(fd, "wb", buffering=0) as f:
                view = memoryview(value)
                while view:
                    view = view[f.write(view):]
                if sync:
                    os.fsync(fd)
            from exzarr._core import replace_file

            replace_file(tmp, path)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise self._error(exc, "writing", key) from exc
            raise
        return folder

    def _sync_folders(self, folders: Iterable[str]) -> None:
        """Sync each folder's entries (the names just written) to disk."""
        for folder in folders:
            try:
                sync_folder(folder)
            except OSError as exc:
                raise self._error(exc, "syncing the folder") from exc

    def delete(self, key: str) -> None:
        self.delete_many([key])

    def delete_many(self, keys: Iterable[str]) -> None:
        self._check_writable()
        folders = set()
        for key in keys:
            path = self._path(key)
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue  # absent (a directory is not a key: it is never removed here)
            except OSError as exc:
                raise self._error(exc, "deleting", key) from exc
            folders.add(os.path.dirname(path))
        if folders and _sync_wanted():
            self._sync_folders(folders)

    def move_prefix(self, src: str, dst: str) -> None:
        """Move the directory of ``src`` to that of ``dst``: in one rename, or, where
        folders are at the target already holding only the store's own files (lock
        files, leftovers of killed writers), entry by entry into them.

        A lock file is never removed (someone may hold it: a new one would split the
        lock); a temporary file only when it is a leftover. Data in the target, or a
        running writer's temporary file, fails the move with FileExistsError before
        anything moves.
        """
        self._check_move(src, dst)
        old, new = self._path(src.rstrip("/")), self._path(dst.rstrip("/"))
        if not os.path.isdir(old):
            raise FileNotFoundError(errno.ENOENT, "no folder to move", old)
        touched = {os.path.dirname(old), os.path.dirname(new)}
        if os.path.isdir(new) and not os.path.islink(new):
            self._clear_target(new)
            self._merge(old, new, dry=True)  # fails before anything moves
            self.forget_dirs()
            touched |= self._merge(old, new)
        elif os.path.lexists(new):
            raise FileExistsError(errno.EEXIST, "a file is at the target", new)
        else:
            touched |= {os.path.dirname(f) for f in make_folders(os.path.dirname(new))}
            self.forget_dirs()
            os.rename(old, new)
        if _sync_wanted():
            self._sync_folders(sorted(touched))

    @staticmethod
    def _clear_target(top: str) -> None:
        """Remove the leftover temporary files below ``top``; FileExistsError if
        anything else but lock files and folders is there."""
        now = time.time()
        for dirpath, dirnames, files in os.walk(top):
            for name in dirnames:
                if os.path.islink(os.path.join(dirpath, name)):
                    raise FileExistsError(errno.EEXIST, "the target holds a link",
                                          os.path.join(dirpath, name))
            for name in files:
                if name.startswith(LOCK_NAME):
                    continue  # kept: someone may hold it
                if not (is_temp_name(name) and is_leftover(dirpath, name, now)):
                    why = ("a running writer's temporary file is in the target"
                           if is_temp_name(name) else "the target holds files")
                    raise FileExistsError(errno.EEXIST, why, os.path.join(dirpath, name))
        for dirpath, _, files in os.walk(top):
            for name in files:
                if is_temp_name(name):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                    except FileNotFoundError:
                        pass  # removed by another sweeper

    @classmethod
    def _merge(cls, old: str, new: str, dry: bool = False) -> set[str]:
        """Move every entry of folder ``old`` into folder ``new`` (into its folders of
        the same name), then remove ``old`` if empty; the folders changed. A lock file
        whose name ``new`` holds already stays (both may be held). ``dry``: only raise
        FileExistsError where lock files of the target are in the way of a file."""
        touched = {old, new}
        for entry in list(os.scandir(old)):
            target = os.path.join(new, entry.name)
            is_folder = os.path.isdir(target) and not os.path.islink(target)
            if is_folder and entry.is_dir(follow_symlinks=False):
                touched |= cls._merge(entry.path, target, dry)
                continue
            if is_folder and any(files for _, _, files in os.walk(target)):
                raise FileExistsError(errno.EEXIST, "the target holds lock files where this "
                                      "moves a file: remove them when no process runs",
                                      target)
            if dry:
                continue
            if is_folder:  # empty folders of deleted nested chunks give way to a file
                for dirpath, _, _ in os.walk(target, topdown=False):
                    os.rmdir(dirpath)
            if not os.path.lexists(target):
                os.rename(entry.path, target)
            elif not entry.name.startswith(LOCK_NAME):
                raise FileExistsError(errno.EEXIST, "the target holds files", target)
        if not dry:
            try:
                os.rmdir(old)
            except OSError:
                pass  # lock files stay in it
        return touched

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
        start = self._folder(head)
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
        path = self._folder(prefix)
        try:
            return sorted(n for n in os.listdir(path) if not _not_data(n))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def process_lock(self, key: str, *,
                     shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """A lock on ``key`` (exclusive, or shared: see :meth:`Store.process_lock`) seen
        by every process and Store object using this directory: a lock on one byte of
        the hidden file ``.exzarr.lock`` in the key's folder, so stores rooted at
        different levels of one hierarchy share it. Released when the block ends or the
        process dies. Needs a writable store."""
        self._check_writable()
        path = self._path(key)
        folder, _, name = path.rpartition(os.sep)
        return file_lock(folder or os.sep, name, f"{key!r} of {self!r}", shared=shared)

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "read_only": self.read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], read_only=state["read_only"])  # type: ignore[misc]

    def __repr__(self) -> str:
        mode = ", read-only" if self.read_only else ""
        return f"<DirectoryStore {self.root!r}{mode}>"
