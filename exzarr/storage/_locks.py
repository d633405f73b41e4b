"""Cross-process file locks for the stores that can lock (directory, SQLite)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import struct
import sys
import threading
from collections.abc import Iterator

#: Name of the hidden lock file kept in a folder of a directory store (and listed by no
#: store: it is not data).
LOCK_NAME = ".exzarr.lock"

# struct flock on Linux: l_type, l_whence (shorts), l_start, l_len (off_t), l_pid, padding.
_FLOCK = "hhxxxxqqixxxx"


def _slot(name: str) -> int:
    """Byte offset of ``name``'s lock: a stable hash (the same in every process)."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2  # below 2**62: a valid off_t


def _ofd_lock(fd: int, start: int) -> bool:
    """Take an exclusive OFD lock on byte ``start`` of ``fd``, waiting for it; False
    where the kernel has no OFD locks."""
    import fcntl

    cmd = getattr(fcntl, "F_OFD_SETLKW", None)
    if cmd is None or not sys.platform.startswith("linux"):
        return False
    arg = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, 1, 0)
    try:
        fcntl.fcntl(fd, cmd, arg)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a kernel before 3.15
            return False
        raise
    return True


@contextlib.contextmanager
def file_lock(folder: str, name: str, what: str) -> Iterator[None]:
    """An exclusive lock on ``name`` in ``folder``, shared with every process (and
    thread) that locks the same name there.

    Linux OFD locks on one byte of ``folder/.exzarr.lock`` per name: they belong to the
    open file description, so each acquisition opens the file itself and threads
    exclude each other too; closing releases, and a killed holder releases with its
    process. Elsewhere, ``flock`` on a lock file per name.
    """
    from exzarr.errors import StorageError

    path = os.path.join(folder, LOCK_NAME)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise StorageError(exc.errno, f"cannot lock {what}: {exc.strerror} (the lock file "
                           f"{path!r} cannot be made); locking needs a writable store",
                           path) from exc
    try:
        if not _ofd_lock(fd, _slot(name)):
            import fcntl

            os.close(fd)
            fd = -1
            path = f"{path}.{_slot(name):016x}"
            fd = os.open(path, flags, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock


class LocalLocks:
    """Exclusive locks by name within one process (for storage only it can see)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold the lock of ``name`` for the block; forgotten when nobody holds or waits."""
        with self._guard:
            lock, users = self._locks.get(name, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[name] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)
