"""SQLite store: keys and values in one table of a database file.

This is also the worked example of a storage backend: a Store subclass implements
``get``, ``set``, ``delete`` and ``list_prefix`` (and, for speed, the batch methods),
and a factory registered under a name makes it available as ``storage="sqlite"``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from exzarr.storage._locks import LocalLocks, file_lock
from exzarr.storage.base import Store, check_key, check_keys, is_valid_key, storage_error

_SCHEMA = "CREATE TABLE IF NOT EXISTS zarr (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
# SQLite limits the number of host parameters per statement; batch below it.
_BATCH = 500


# SQLite's messages for a file that is not this store's database (not a transient state
# such as "database is locked", which stays an sqlite3 error).
_NOT_OURS = ("file is not a database", "no such table: zarr", "unable to open database file",
             "database disk image is malformed")


# The first bytes of every SQLite database file.
_MAGIC = b"SQLite format 3\0"
# SQLite's primary result codes that are the storage's failures, with their errno.
_ERRNO = {13: errno.ENOSPC, 10: errno.EIO, 3: errno.EACCES, 8: None, 14: None, 11: None}


def _header(path: str) -> bytes:
    """The first 100 bytes of the regular file at ``path`` (b"" for anything else)."""
    try:
        # O_NONBLOCK: a FIFO at the path must not block the open (it is no database).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return b""
    try:
        return os.pread(fd, 100, 0) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(fd)


def _is_sqlite_file(path: str) -> bool:
    return _header(path)[:16] == _MAGIC


def _check_regular(store: SQLiteStore) -> None:
    """Refuse a FIFO, socket or device at the database path before SQLite opens it (a
    FIFO would block the open, the others fail as a disk error)."""
    try:
        mode = os.stat(store.path).st_mode
    except OSError:
        return  # nothing there yet (or not ours to see): SQLite says what it finds
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a folder: _not_ours says so
        raise storage_error(errno.EINVAL, "it is not a regular file (a FIFO, socket or "
                            "device): remove it, or pass the path of a database file",
                            f"opening {store!r}", store.path)


def _not_ours(store: SQLiteStore, exc: sqlite3.DatabaseError) -> Exception:
    from exzarr.errors import InvalidMetadataError

    what = ("a directory, not a database file" if os.path.isdir(store.path)
            else "not an exzarr/zarr-python SQLite store")
    return InvalidMetadataError(f"{store.path} is {what} ({exc}); open it with the backend "
                                "of its format, or pass a new path")


def _storage_failure(store: SQLiteStore, exc: sqlite3.DatabaseError, doing: str) -> Exception:
    """SQLite's failure as a StorageError keeping its message, with the errno it means."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    err = _ERRNO.get(primary) if primary is not None else None
    if primary == 8:  # SQLITE_READONLY: a read-only file system, or permissions
        folder = os.path.dirname(store.path) or "."
        err = errno.EROFS if _read_only_mount(folder) else errno.EACCES
    if err is None and "full" in str(exc):
        err = errno.ENOSPC
    return storage_error(err, f"{exc} (SQLite)", f"{doing} in {store!r}", store.path)


def _read_only_mount(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _serialized(fn):
    """One call at a time for ":memory:" (one connection shared by every thread), and
    the failures reported as what they are: a file that is not such a database, or the
    storage failing (a StorageError keeping SQLite's message)."""
    import functools

    doing = fn.__name__.strip("_").replace("_", " ")

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            if not self._memory:
                return fn(self, *args, **kwargs)
            with self._mem_lock:
                return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if os.path.exists(self.path) and any(m in str(exc) for m in _NOT_OURS) and not (
                    "unable to open" in str(exc) and _is_sqlite_file(self.path)):
                raise _not_ours(self, exc) from None
            raise _storage_failure(self, exc, doing) from exc
    return wrapper


class SQLiteStore(Store):
    """Keys and values in the table ``zarr(key TEXT PRIMARY KEY, value BLOB)``.

    The database runs in WAL mode: many readers (threads or processes) and one writer
    at a time; a writer waits up to ``timeout`` seconds for the lock. Each thread
    uses its own connection.

    Parameters
    ----------
    path : str or os.PathLike
        The database file (created when writable), or ``":memory:"``.
    read_only : bool
        Open the database read-only.
    timeout : float
        Seconds to wait for a lock.
    """

    backend = "sqlite"
    _shared: sqlite3.Connection | None = None  # the one connection of ":memory:"

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False,
                 timeout: float = 30.0) -> None:
        super().__init__(read_only=read_only)
        path = os.fspath(path)
        self.path = path if path == ":memory:" else os.path.abspath(path)
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._memory = self.path == ":memory:"
        self._mem_lock = threading.RLock()
        self._mem_keys = LocalLocks()
        self._ready = False
        # A database on read-only media is read as such: only writes fail (EROFS).
        self._ro_media = (not self._memory and not read_only and os.path.exists(self.path)
                          and _read_only_mount(os.path.dirname(self.path) or "."))
        if self._memory or (not read_only and not self._ro_media and os.path.exists(self.path)):
            self._init_schema()

    @_serialized
    def _init_schema(self) -> None:
        conn = self._conn()
        if not self.read_only:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        conn.commit()
        self._ready = True

    def _reader(self) -> sqlite3.Connection | None:
        """A connection for reading, or None while the database does not exist."""
        if not self._ready and not os.path.exists(self.path):
            return None
        return self._conn()

    def _conn(self) -> sqlite3.Connection:
        if self._memory:  # one in-memory database: one connection shared by all threads
            conn = self._shared
            if conn is None and self._ready:
                raise ValueError("this in-memory SQLiteStore was closed and its data is gone; "
                                 "create a new one (or use a database file to keep data)")
            if conn is None:
                conn = self._shared = sqlite3.connect(
                    ":memory:", check_same_thread=False, isolation_level=None)
                with self._lock:
                    self._all.append(conn)
            return conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            _check_regular(self)
            if self.read_only or self._ro_media:
                from urllib.request import pathname2url  # 90 ms to import: only here

                path = pathname2url(os.path.abspath(self.path))
                uri = f"file:{path}?mode=ro"
                if self._immutable():
                    uri += "&immutable=1"
                else:
                    self._check_wal_readable()
                conn = sqlite3.connect(uri, uri=True, timeout=self.timeout,
                                       check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _immutable(self) -> bool:
        """Whether a read-only database is opened immutable: only on a read-only mount
        (nobody can write it) without a -wal or -shm file (whose commits immutable
        would skip). A folder that is merely not writable by this user may still be
        written by its owner: ``mode=ro`` then, which sees the owner's writes."""
        if os.path.exists(self.path + "-wal") or os.path.exists(self.path + "-shm"):
            return False
        return _read_only_mount(os.path.dirname(self.path) or ".")

    def _check_wal_readable(self) -> None:
        """Refuse, saying what to do, a WAL database that ``mode=ro`` cannot read: its
        folder is not writable by this user and its -shm file is not there (SQLite
        readers of a WAL database must make one)."""
        folder = os.path.dirname(self.path) or "."
        if os.access(folder, os.W_OK) or os.path.exists(self.path + "-shm"):
            return
        if _header(self.path)[18:20] == b"\x02\x02":  # file format versions 2: WAL
            raise storage_error(
                errno.EACCES, "the database is in WAL mode and its folder is not writable "
                "by you, and SQLite readers of a WAL database must make its -shm file "
                "there; have its owner run PRAGMA journal_mode=DELETE on it (readable in "
                "place then), make the folder writable, or copy the database",
                f"reading {self!r}", self.path)

    def _sync(self, conn: sqlite3.Connection) -> None:
        """Commits durable (synchronous=FULL) while exzarr.config's fsync is on, else
        NORMAL (a WAL database stays whole after a power loss, the last commits may be
        lost); read per write call."""
        if self._memory:
            return
        from exzarr import config

        level = "FULL" if config.get("fsync") else "NORMAL"
        if getattr(self._local, "sync", None) != level:
            conn.execute(f"PRAGMA synchronous={level}")
            self._local.sync = level

    @_serialized
    def get(self, key: str) -> bytes | None:
        check_key(key)
        conn = self._reader()
        if conn is None:
            return None
        row = conn.execute("SELECT value FROM zarr WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @_serialized
    def get_many(self, keys: Iterable[str]) -> list[bytes | None]:
        keys = check_keys(list(keys))
        found: dict[str, bytes] = {}
        conn = self._reader()
        if conn is None:
            return [None] * len(keys)
        for i in range(0, len(keys), _BATCH):
            part = keys[i:i + _BATCH]
            marks = ",".join("?" * len(part))
            found.update(conn.execute(f"SELECT key, value FROM zarr WHERE key IN ({marks})", part))
        return [found.get(k) for k in keys]

    def _writer(self) -> sqlite3.Connection:
        self._check_writable()
        if self._ro_media:
            raise storage_error(errno.EROFS, "the database is on a read-only file system",
                                f"writing to {self!r}", self.path)
        if not self._ready:
            self._init_schema()
        return self._conn()

    def set(self, key: str, value: bytes) -> None:
        self.set_many([(key, value)])

    @_serialized
    def set_many(self, items: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        self._check_writable()
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        if not pairs:
            return
        check_keys([k for k, _ in pairs])
        conn = self._writer()
        self._sync(conn)
        with conn:  # one transaction
            conn.executemany("INSERT OR REPLACE INTO zarr (key, value) VALUES (?, ?)",
                             [(k, bytes(v)) for k, v in pairs])

    def delete(self, key: str) -> None:
        self.delete_many([key])

    @_serialized
    def delete_many(self, keys: Iterable[str]) -> None:
        self._check_writable()
        keys = check_keys(list(keys))
        conn = self._reader()
        if conn is None:
            return
        self._sync(conn)
        with conn:
            conn.executemany("DELETE FROM zarr WHERE key = ?", [(k,) for k in keys])

    @_serialized
    def contains(self, key: str) -> bool:
        check_key(key)
        conn = self._reader()
        return conn is not None and conn.execute(
            "SELECT 1 FROM zarr WHERE key = ?", (key,)).fetchone() is not None

    @_serialized
    def getsize(self, key: str) -> int:
        check_key(key)
        conn = self._reader()
        if conn is None:
            return 0
        row = conn.execute("SELECT length(value) FROM zarr WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    @_serialized
    def list_prefix(self, prefix: str) -> Iterator[str]:
        conn = self._reader()
        if conn is None:
            return iter([])
        # A range scan on the primary key: prefix <= key < prefix + U+10FFFF.
        rows = conn.execute(
            "SELECT key FROM zarr WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"))
        return iter([r[0] for r in rows if is_valid_key(r[0])])  # a hostile row is no key

    def exists(self) -> bool:
        return self.path == ":memory:" or os.path.isfile(self.path)

    def process_lock(self, key: str, *,
                     shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """A lock on ``key`` (exclusive, or shared: see :meth:`Store.process_lock`) seen
        by every process and Store object using this database file: a lock on one byte
        of the hidden file ``.exzarr.lock`` beside the database, chosen by the
        database's real path and the key. For ``":memory:"``, a readers-writer lock of
        this store (no other process sees its data).

        Not a database transaction: a lock held across a transaction of the same
        process would make its own writes wait for it. Released when the block ends or
        the process dies. Needs a writable store.
        """
        self._check_writable()
        check_key(key)
        if self._memory:  # one process sees this database: a lock of this store suffices
            return self._mem_keys.hold(key, shared=shared)
        real = os.path.realpath(self.path)
        return file_lock(os.path.dirname(real), f"{real}\n{key}", f"{key!r} of {self!r}",
                         shared=shared)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()
        self._shared = None

    def __getstate__(self) -> dict[str, Any]:
        if self._memory:
            raise TypeError("an in-memory SQLiteStore cannot be pickled: its data lives in "
                            "this process's connection; use a database file")
        return {"path": self.path, "read_only": self.read_only, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], read_only=state["read_only"],  # type: ignore[misc]
                      timeout=state["timeout"])

    def __repr__(self) -> str:
        mode = ", read-only" if self.read_only else ""
        return f"<SQLiteStore {self.path!r}{mode}>"


def open_sqlite_store(path: Any = None, read_only: bool = False, **options: Any) -> SQLiteStore:
    if path is None:
        from exzarr.errors import InvalidArgumentError

        raise InvalidArgumentError("storage='sqlite' needs path=...: the database file")
    return SQLiteStore(path, read_only=read_only, **options)
