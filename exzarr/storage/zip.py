"""Zip store: a whole hierarchy in one archive, readable by zarr-python's ZipStore."""

from __future__ import annotations

import os
import re
import secrets
import threading
import weakref
import zipfile
from collections.abc import Iterator
from typing import Any

from exzarr.errors import StorageError
from exzarr.storage._zipfile_archive import (
    NotAZipArchiveError,
    Snapshot,
    copy_range,
    fsync_dir,
    pwrite_all,
    read_planned,
    storage_error,
)
from exzarr.storage._zipfile_format import central_directory, from_zipinfo, record_size, stored_member
from exzarr.storage._zipfile_keys import check_key, check_keys
from exzarr.storage.base import Store

__all__ = ["NotAZipArchiveError", "ZipStore", "open_zip_store"]

# Writable stores still open, committed when the interpreter exits: __del__ runs too
# late then. Registered with atexit on the first writable store.
_unfinished: weakref.WeakSet[ZipStore] = weakref.WeakSet()
_atexit_registered = False
# Temporary archives this process is writing: a later writer removes only the others.
_live_temps: set[str] = set()


def _finish_all() -> None:
    for store in list(_unfinished):  # (emptied in a forked child: see _forget_in_child)
        try:
            store.flush()
        except Exception:  # exiting: one archive failing must not stop the others
            store._discard()


def _forget_in_child() -> None:
    """After fork, in the child: the parent's uncommitted writes are not the child's to
    commit or remove; the child only closes its copies of their descriptors."""
    for store in list(_unfinished):
        session = store._session
        store._session = None
        if session is not None and session.fd is not None:
            os.close(session.fd)
    _unfinished.clear()
    _live_temps.clear()


def _track(store: ZipStore) -> None:
    global _atexit_registered
    if not _atexit_registered:
        import atexit

        atexit.register(_finish_all)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_in_child)
        _atexit_registered = True
    _unfinished.add(store)


class _Session:
    """Writes since the last commit: a new archive beside the committed one.

    It starts as a copy of the committed archive's members (``base``), so offsets stay
    valid and the central directory is the only thing written anew at commit.
    """

    def __init__(self, base: Snapshot | None) -> None:
        self.base = base
        self.path: str | None = None
        self.fd: int | None = None
        self.end = 0  # where the next member goes
        self.touched: dict[str, bool] = {}  # keys written (True) or deleted (False) here
        self.dead = base.dead if base is not None else 0  # bytes no member points to
        # key -> the base's ZipInfo, or (Member, data offset) of a member written here
        self.entries: dict[str, Any] = dict(base.members) if base is not None else {}

    def drop(self, key: str, written: bool = False) -> None:
        self.touched[key] = written
        old = self.entries.pop(key, None)
        if isinstance(old, zipfile.ZipInfo):
            self.dead += record_size(old)
        elif old is not None:
            member, data_at = old
            self.dead += data_at - member.offset + member.size

    def close(self, remove: bool) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            _live_temps.discard(self.path)
            if remove:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
        if self.base is not None:
            self.base.close()
            self.base = None


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
    Keys with empty, ``.`` or ``..`` parts, a leading ``/``, a drive letter or a NUL
    are refused, and members of such names in other archives are not listed.

    Parameters
    ----------
    path : str or os.PathLike
        The archive; created at the first commit in a writable mode.
    mode : {"r", "a", "w"}
        Read-only, read-write (create if missing), or replace (the old archive stays
        for readers until the first commit).
    fsync : bool, optional
        Sync the archive and its folder to disk before a commit returns. None (the
        default) follows ``exzarr.config.get("fsync")`` at each commit.
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
        self.mode = mode
        self.fsync = fsync
        self._pid = os.getpid()  # a forked child never commits the parent's writes
        self._lock = threading.RLock()
        self._snap: Snapshot | None = None
        self._session: _Session | None = _Session(None) if mode == "w" else None
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
            raise storage_error(exc, "reading the", self.path) from None
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
                raise storage_error(exc, "reading the", self.path) from None
        return snap

    # -- reading ----------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Any) -> list[bytes | None]:
        keys = check_keys(keys)
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
                fd, plan = self._session_plan(session, keys)
                path = self.path
        try:
            return read_planned(fd, keys, plan, path)
        except StorageError:
            raise
        except OSError as exc:
            raise storage_error(exc, "reading the", self.path) from None
        finally:
            os.close(fd)

    def _session_plan(self, session: _Session, keys: list[str]) -> tuple[int, list[Any]]:
        base = session.base
        if session.fd is not None:
            fd = os.dup(session.fd)
        elif base is not None:  # nothing written yet: the members are where they were
            fd = os.dup(base.file.fileno())
        else:
            fd = os.open(os.devnull, os.O_RDONLY)  # (and no members at all)
        try:
            plan: list[Any] = []
            for key in keys:
                entry = session.entries.get(key)
                if entry is None:
                    plan.append(None)
                elif isinstance(entry, zipfile.ZipInfo):  # at the same offset in the copy
                    assert base is not None
                    span = base.span(fd, entry)
                    plan.append(base.zf.read(entry) if span is None else span)
                else:
                    member, data_at = entry
                    plan.append((data_at, member.size, member.crc))
            return fd, plan
        except BaseException:
            os.close(fd)
            raise

    def _entries(self) -> dict[str, Any]:
        if self._session is not None:
            return self._session.entries
        snap = self._snapshot()
        return {} if snap is None else snap.members  # type: ignore[return-value]

    def contains(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._entries()

    def getsize(self, key: str) -> int:
        check_key(key)
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
    def _begin(self) -> _Session:
        """This store's session (under the lock), started on the committed archive."""
        self._check_writable()
        if self._session is None:
            self._session = _Session(self._snapshot())
            self._snap = None  # the session owns (and closes) that snapshot now
        return self._session

    def _file(self, session: _Session) -> int:
        """The session's new archive, made on first need: the committed members copied."""
        if session.fd is not None:
            return session.fd
        folder, name = os.path.split(self.path)
        _remove_leftovers(folder, name)
        tmp = os.path.join(folder, f"{name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         0o666)
        except OSError as exc:
            raise storage_error(exc, "writing to the", self.path) from None
        session.path, session.fd = tmp, fd
        _live_temps.add(tmp)
        try:
            base = session.base
            if base is not None:
                os.fchmod(fd, base.mode)
                copy_range(base.file.fileno(), fd, base.end)
                session.end = base.end
        except OSError as exc:
            session.end = 0
            self._cut(session)
            raise storage_error(exc, "copying the", self.path) from None
        return fd

    def _cut(self, session: _Session) -> None:
        """Drop what a failed write left past the session's end (freeing its space)."""
        if session.fd is None:
            return
        try:
            os.ftruncate(session.fd, session.end)
        except OSError:
            pass

    def set(self, key: str, value: bytes) -> None:
        from exzarr._core import crc32

        check_key(key)
        data = memoryview(value)
        if not data.c_contiguous:
            data = memoryview(bytes(data))
        data = data.cast("B")
        with self._lock:
            session = self._begin()
            fd = self._file(session)
            member, header = stored_member(key, data.nbytes, crc32(data), session.end)
            try:
                at = pwrite_all(fd, header, session.end)
                end = pwrite_all(fd, data, at)
            except OSError as exc:
                self._cut(session)
                raise storage_error(exc, f"writing {key!r} to the", self.path) from None
            session.drop(key, written=True)
            session.entries[key] = (member, at)
            session.end = end

    def delete(self, key: str) -> None:
        check_key(key)
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
            return  # inherited through fork: the parent commits its writes
        session = self._session
        if session is None:
            if not rewrite or self.read_only:
                return
            snap = self._snapshot()
            if snap is None or snap.dead == 0:
                return
            session = self._begin()
        sync = self._wants_fsync()
        folder = os.path.dirname(self.path)
        if not session.entries and self._replace:
            # "w" and nothing written: no archive, as a fresh path has none
            try:
                if os.path.exists(self.path):
                    os.unlink(self.path)
                    if sync:
                        fsync_dir(folder)
            except OSError as exc:
                raise storage_error(exc, "removing the", self.path) from None
            self._end_session(remove=True)
            return
        if not (session.touched or rewrite or self._replace):
            self._end_session(remove=True)
            return
        try:
            with _FolderLock(folder):
                other = None if self._replace else _changed_since(self.path, session.base)
                if other is not None:
                    self._rewrite(session, sync, other)
                elif rewrite or session.dead * 4 > session.end:
                    self._rewrite(session, sync)
                else:
                    fd = self._file(session)
                    members = [from_zipinfo(e) if isinstance(e, zipfile.ZipInfo) else e[0]
                               for e in session.entries.values()]
                    end = pwrite_all(fd, central_directory(members, session.end), session.end)
                    os.ftruncate(fd, end)
                    if sync:
                        os.fsync(fd)
                    assert session.path is not None
                    os.replace(session.path, self.path)
        except StorageError:
            raise
        except OSError as exc:
            self._cut(session)
            raise storage_error(exc, "committing the", self.path) from None
        self._end_session(remove=False)
        if sync:
            try:
                fsync_dir(folder)
            except OSError as exc:
                raise storage_error(exc, "syncing the folder of the", self.path) from None

    def _rewrite(self, session: _Session, sync: bool, other: Snapshot | None = None) -> None:
        """Commit a new archive holding only the live members (through zipfile); with
        ``other`` (an archive another writer committed since this session began), its
        members and this session's writes and deletions over them."""
        folder, name = os.path.split(self.path)
        tmp = os.path.join(folder, f"{name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
        if other is None:
            keys = list(session.entries)
        else:
            keys = [k for k in other.members if k not in session.touched]
            keys += [k for k, written in session.touched.items() if written]
        _live_temps.add(tmp)
        try:
            with open(tmp, "xb") as f:
                if session.base is not None:
                    os.fchmod(f.fileno(), session.base.mode)
                with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED,
                                     allowZip64=True) as out:
                    for i in range(0, len(keys), 64):
                        batch = keys[i:i + 64]
                        for key, value in zip(batch, self._values(session, other, batch)):
                            info = zipfile.ZipInfo(key, date_time=(1980, 1, 1, 0, 0, 0))
                            info.compress_type = zipfile.ZIP_STORED
                            info.external_attr = 0o100644 << 16
                            out.writestr(info, value)  # type: ignore[arg-type]
                f.flush()
                if sync:
                    os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        finally:
            _live_temps.discard(tmp)
            if other is not None:
                other.close()
        session.close(remove=True)

    def _values(self, session: _Session, other: Snapshot | None, keys: list[str]) -> list[Any]:
        """The values of ``keys`` for a rewrite: this session's, or else ``other``'s."""
        mine = [k for k in keys if other is None or k in session.touched]
        fd, plan = self._session_plan(session, mine)
        try:
            got = dict(zip(mine, read_planned(fd, mine, plan, self.path)))
        finally:
            os.close(fd)
        rest = [k for k in keys if k not in got]
        if rest:
            assert other is not None
            fd, plan = other.plan(rest)
            try:
                got.update(zip(rest, read_planned(fd, rest, plan, self.path)))
            finally:
                os.close(fd)
        return [got[k] for k in keys]

    def _end_session(self, remove: bool) -> None:
        session = self._session
        self._session = None
        self._replace = False
        if session is not None:
            session.close(remove=remove)

    def _discard(self) -> None:
        """Drop the writes since the last commit (their temporary archive too)."""
        with self._lock:
            if self._pid == os.getpid():
                self._end_session(remove=True)

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


class _FolderLock:
    """An exclusive flock on the archive's folder while a commit checks the archive
    and renames over it, so that two writers' commits take turns (where the file
    system has flock; without, commits go on unlocked)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> _FolderLock:
        try:
            import fcntl

            self.fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # (releases the lock)
            self.fd = None


def _changed_since(path: str, base: Snapshot | None) -> Snapshot | None:
    """The archive at ``path`` when another writer committed it after ``base`` was
    opened (None when it is still ``base``'s)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None  # removed: this session's archive is what there is
    if base is not None and base.stamp == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
        return None
    try:
        return Snapshot(path)
    except FileNotFoundError:
        return None


def _remove_leftovers(folder: str, name: str) -> None:
    """Remove temporary archives of ``name`` whose writer is gone (killed before it
    committed): those of dead processes, and this process's own that no store holds."""
    pattern = re.compile(re.escape(name) + r"\.(\d+)\.[0-9a-f]{8}\.partial")
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        m = pattern.fullmatch(entry)
        if m is None:
            continue
        full = os.path.join(folder, entry)
        pid = int(m.group(1))
        if pid == os.getpid():
            gone = full not in _live_temps
        else:
            try:
                os.kill(pid, 0)
                gone = False
            except ProcessLookupError:
                gone = True
            except OSError:  # another user's live process
                gone = False
        if gone:
            try:
                os.unlink(full)
            except OSError:
                pass


def open_zip_store(path: Any = None, read_only: bool = False, mode: str = "a",
                   fsync: bool | None = None, **_: Any) -> ZipStore:
    if path is None:
        from exzarr.errors import InvalidArgumentError

        raise InvalidArgumentError("storage='zip' needs path=...: the archive file")
    return ZipStore(path, mode=mode, read_only=read_only, fsync=fsync)
