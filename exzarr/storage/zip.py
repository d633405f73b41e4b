"""Zip store: a whole hierarchy in one archive, readable by zarr-python's ZipStore."""

from __future__ import annotations

import os
import threading
import weakref
import zipfile
from collections.abc import Iterator
from typing import Any

from exzarr.errors import StorageError
from exzarr.storage._zipfile_archive import (
    NotAZipArchiveError,
    Snapshot,
    check_regular,
    read_planned,
)
from exzarr.storage._zipfile_session import Session, live_temps
from exzarr.storage.base import Store, check_key, check_keys, storage_error, sync_folder

__all__ = ["NotAZipArchiveError", "ZipStore", "open_zip_store"]

# Writable stores still open, committed when the interpreter exits: __del__ runs too
# late then. Registered with atexit on the first writable store.
_unfinished: weakref.WeakSet[ZipStore] = weakref.WeakSet()
_atexit_registered = False


def _finish_all() -> None:
    for store in list(_unfinished):  # (in a forked child: the child's writes only)
        try:
            store.flush()
        except Exception:  # exiting: one archive failing must not stop the others
            store._discard()


def _failed(exc: OSError, doing: str, path: str) -> Exception:
    """``exc`` as the StorageError of ``doing`` ("reading the", "committing the"...)
    the zip archive at ``path``."""
    reason = exc.strerror or str(exc)
    if not doing.startswith("reading"):
        reason += (" (writes go to a new copy of the archive beside it, renamed over it at "
                   "each commit; the last committed archive is unchanged)")
    return storage_error(exc.errno, reason, f"{doing} zip archive", path)


def _forget_in_child() -> None:
    """After fork, in the child: the parent's uncommitted writes are not the child's to
    commit or remove (the child closes its copies of their descriptors); each store
    starts afresh on the committed archive, and commits what the child writes."""
    for store in list(_unfinished):
        store._lock = threading.RLock()  # another thread may have held it at the fork
        session, snap = store._session, store._snap
        store._session = store._snap = None
        if session is not None:
            session.forget()
        if snap is not None:
            snap.close()
        store._replace = False  # a pending mode="w" replacement is the parent's
        store._pid = os.getpid()
    live_temps.clear()


def _track(store: ZipStore) -> None:
    global _atexit_registered
    if not _atexit_registered:
        import atexit

        atexit.register(_finish_all)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_in_child)
        _atexit_registered = True
    _unfinished.add(store)


class ZipStore(Store):
    """Keys as members of a zip archive (stored, not compressed: chunks already are).

    Writes go to a new archive beside the committed one, which :meth:`flush` (or
    :meth:`close`) completes with its central directory and renames over it: a crash
    or a full disk at any moment leaves the last committed archive whole, and readers
    (other stores, other processes, zarr-python) see only committed archives. The
    cost: the first write after each commit copies the archive's members (in the
    kernel, or as shared extents where the file system has reflinks), so commit rarely
    when archives are large.

    Reading opens single members on demand: the bytes of a stored member are read with
    one ``pread`` at its offset, outside the store's lock, and checked against the
    member's CRC-32. A store sees the newest committed archive at each call; until it
    commits, a writer also sees its own writes. Overwritten or deleted members leave
    dead bytes behind, rewritten away at a commit where they make up a quarter of the
    archive (or by :meth:`compact`); the central directory never lists a key twice.
    Two writers of one archive: a commit that finds the archive committed by another
    since its own first write keeps the other's members under its own changes (per
    key, the last commit wins). Keys with empty, ``.`` or ``..`` parts, a leading
    ``/``, a drive letter or a NUL are refused, and members of such names in other
    archives are not listed.

    Parameters
    ----------
    path : str or os.PathLike
        The archive; created at the first commit in a writable mode.
    mode : {"r", "a", "w"}
        Read-only, read-write (create if missing), or replace (the old archive stays
        for readers until the first commit).
    fsync : bool, optional
        Sync the archive and its folder to disk before a commit returns. None (the
        default) follows ``exzarr.config.get("fsync")`` at each commit. Without it the
        new archive's data still reaches the disk before it is renamed over the old
        one (a power loss leaves one of the two whole, never an empty archive).

    Notes
    -----
    In a forked child the store starts afresh on the committed archive: the parent's
    uncommitted writes (and a pending ``mode="w"`` replacement) stay the parent's,
    and the child commits its own. A FIFO, socket or folder at ``path`` is refused
    (:class:`NotAZipArchiveError`) in every mode, without blocking.
    """

    backend = "zip"

    def __init__(self, path: str | os.PathLike[str], mode: str = "a", *,
                 read_only: bool = False, fsync: bool | None = None) -> None:
        if read_only:
            mode = "r"
        if mode not in ("r", "a", "w"):
            raise ValueError(f"mode must be 'r', 'a' or 'w', not {mode!r}")
        super().__init__(read_only=(mode == "r"))
        self.path = os.path.abspath(os.fspath(path))
        check_regular(self.path)  # a FIFO, socket or folder: refused now, in every mode
        self.mode = mode
        self.fsync = fsync
        self._pid = os.getpid()  # the process whose writes the session holds
        self._lock = threading.RLock()
        self._snap: Snapshot | None = None
        self._session: Session | None = Session(self.path, None) if mode == "w" else None
        self._replace = mode == "w"  # the next commit replaces the archive
        if mode != "r":
            _track(self)

    # -- the committed archive --------------------------------------------------------
    def _snapshot(self) -> Snapshot | None:
        """The newest committed archive (under the lock): reopened when the file at
        the path is not the one this store has open."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise _failed(exc, "reading the", self.path) from None
        snap = self._snap
        if snap is not None and (st is None or snap.stamp != (st.st_dev, st.st_ino, st.st_size,
                                                             st.st_mtime_ns)):
            snap.close()
            snap = self._snap = None
        if snap is None and st is not None:
            try:
                snap = self._snap = Snapshot(self.path)
            except FileNotFoundError:  # replaced between the stat and the open
                return self._snapshot()
            except OSError as exc:
                raise _failed(exc, "reading the", self.path) from None
        return snap

    # -- reading ----------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Any) -> list[bytes | None]:
        keys = check_keys(keys, portable=True)
        with self._lock:
            # Offsets and a descriptor of the very file they are in are taken under
            # the lock; the reads run outside it, in parallel across threads.
            session = self._session
            if session is None:
                snap = self._snapshot()
                if snap is None:
                    return [None] * len(keys)
                fd, plan = snap.plan(keys)
                path = snap.path
            else:
                fd, plan = session.plan(keys)
                path = self.path
        try:
            return read_planned(fd, keys, plan, path)
        except StorageError:
            raise
        except OSError as exc:
            raise _failed(exc, "reading the", self.path) from None
        finally:
            os.close(fd)

    def _entries(self) -> dict[str, Any]:
        if self._session is not None:
            return self._session.entries
        snap = self._snapshot()
        return {} if snap is None else snap.members  # type: ignore[return-value]

    def contains(self, key: str) -> bool:
        check_key(key, portable=True)
        with self._lock:
            return key in self._entries()

    def getsize(self, key: str) -> int:
        check_key(key, portable=True)
        with self._lock:
            entry = self._entries().get(key)
        if entry is None:
            return 0
        return entry.file_size if isinstance(entry, zipfile.ZipInfo) else entry[0].size

    def list_prefix(self, prefix: str) -> Iterator[str]:
        with self._lock:
            return iter(sorted(k for k in self._entries() if k.startswith(prefix)))

    def exists(self) -> bool:
        with self._lock:
            if self._session is not None:
                return bool(self._session.entries) or not self._replace
            return os.path.isfile(self.path)

    # -- writing ----------------------------------------------------------------------
    def _begin(self) -> Session:
        """This store's session (under the lock), started on the committed archive."""
        self._check_writable()
        if self._session is None:
            self._session = Session(self.path, self._snapshot())
            self._snap = None  # the session owns (and closes) that snapshot now
        return self._session

    def set(self, key: str, value: bytes) -> None:
        from exzarr._core import crc32

        check_key(key, portable=True)
        data = memoryview(value)
        if not data.c_contiguous:
            data = memoryview(bytes(data))
        data = data.cast("B")
        with self._lock:
            session = self._begin()
            try:
                session.write(key, data, crc32(data))
            except OSError as exc:
                raise _failed(exc, f"writing {key!r} to the", self.path) from None

    def delete(self, key: str) -> None:
        check_key(key, portable=True)
        with self._lock:
            if self._session is None:
                self._check_writable()
                if key not in self._entries():
                    return
            self._begin().drop(key)

    def compact(self) -> None:
        """Commit, rewriting the archive without dead bytes (overwritten or deleted
        members, folders, names that are not keys)."""
        with self._lock:
            self._commit(rewrite=True)

    def flush(self) -> None:
        """Commit: the archive on disk becomes what this store holds (synced to disk
        first when asked for), atomically. Does nothing when nothing was written."""
        with self._lock:
            self._commit(rewrite=False)

    def _wants_fsync(self) -> bool:
        if self.fsync is not None:
            return bool(self.fsync)
        from exzarr import config

        return bool(config.get("fsync"))

    def _commit(self, rewrite: bool) -> None:
        if self._pid != os.getpid():
            return  # a fork without register_at_fork: the session is the parent's
        session = self._session
        if session is None:
            if not rewrite or self.read_only:
                return
            snap = self._snapshot()
            if snap is None or snap.dead == 0:
                return
            session = self._begin()
        check_regular(self.path)  # never replace (or remove) a FIFO, socket or folder
        sync = self._wants_fsync()
        folder = os.path.dirname(self.path)
        if not session.entries and self._replace:
            # "w" and nothing written: no archive, as a fresh path has none
            try:
                if os.path.exists(self.path):
                    os.unlink(self.path)
                    if sync:
                        sync_folder(folder)
            except OSError as exc:
                raise _failed(exc, "removing the", self.path) from None
            self._end_session()
            return
        if not (session.touched or rewrite or self._replace):
            self._end_session()
            return
        try:
            session.commit(sync, rewrite, merge=not self._replace)
        except OSError as exc:
            raise _failed(exc, "committing the", self.path) from None
        self._end_session()
        if sync:
            try:
                sync_folder(folder)
            except OSError as exc:
                raise _failed(exc, "syncing the folder of the", self.path) from None

    def _end_session(self) -> None:
        session = self._session
        self._session = None
        self._replace = False
        if session is not None:
            session.close()

    def _discard(self) -> None:
        """Drop the writes since the last commit (their temporary archive too)."""
        with self._lock:
            if self._pid == os.getpid():
                self._end_session()

    def close(self) -> None:
        """Commit (see :meth:`flush`) and release the archive's descriptors; the store
        can still be used, reopening what it needs."""
        with self._lock:
            self.flush()
            if self._snap is not None:
                self._snap.close()
                self._snap = None

    def __del__(self) -> None:  # a store dropped without close() still commits its writes
        if getattr(self, "_pid", None) != os.getpid() or not hasattr(self, "_lock"):
            return  # inherited through fork: the parent commits its writes
        try:
            self.close()
        except Exception:
            self._discard()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for another process (dask, multiprocessing): the archive is committed
        # first, and the copy opens it afresh, never replacing it.
        if not self.read_only:
            self.flush()
        return {"path": self.path, "mode": "r" if self.read_only else "a", "fsync": self.fsync}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["mode"], fsync=state.get("fsync"))  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"<ZipStore {self.path!r} mode={self.mode!r}>"


def open_zip_store(path: Any = None, read_only: bool = False, mode: str = "a",
                   fsync: bool | None = None, **_: Any) -> ZipStore:
    if path is None:
        from exzarr.errors import InvalidArgumentError

        raise InvalidArgumentError("storage='zip' needs path=...: the archive file")
    return ZipStore(path, mode=mode, read_only=read_only, fsync=fsync)
