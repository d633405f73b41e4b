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


def _ofd_lock(fd: int, start: int, shared: bool) -> bool:
    """Take an OFD lock on byte ``start`` of ``fd`` (a read lock when ``shared``, else a
    write lock), waiting for it; False where the kernel has no OFD locks."""
    import fcntl

    cmd = getattr(fcntl, "F_OFD_SETLKW", None)
    if cmd is None or not sys.platform.startswith("linux"):
        return False
    kind = fcntl.F_RDLCK if shared else fcntl.F_WRLCK
    arg = struct.pack(_FLOCK, kind, os.SEEK_SET, start, 1, 0)
    try:
        fcntl.fcntl(fd, cmd, arg)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a kernel before 3.15
            return False
        raise
    return True


# The lock fds this process holds (or waits with): a forked child closes its copies at
# once, so that a child outliving its parent's hold does not keep the lock (an OFD or
# flock lock is the open file description's, which the child shares).
_held: set[int] = set()
_held_guard = threading.Lock()  # held across fork: no fd is opened and not yet listed
_hooked = False


def _close_in_child() -> None:
    for fd in _held:
        try:
            os.close(fd)  # the child's copy only: the parent's lock stays
        except OSError:
            pass
    _held.clear()
    _held_guard.release()


def _open_held(path: str, flags: int) -> tuple[int, int]:
    """Open ``path`` as a lock fd of this process; the fd and the pid that owns it."""
    global _hooked
    with _held_guard:
        if not _hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=_held_guard.acquire,
                                after_in_parent=_held_guard.release,
                                after_in_child=_close_in_child)
            _hooked = True
        fd = os.open(path, flags, 0o666)
        _held.add(fd)
    return fd, os.getpid()


def _close_held(fd: int, pid: int) -> None:
    """Close a lock fd from :func:`_open_held` (releasing its lock), unless this is a
    forked child, which closed its copy when it was forked (the number may be reused)."""
    if pid != os.getpid():
        return
    with _held_guard:
        _held.discard(fd)
        os.close(fd)


@contextlib.contextmanager
def file_lock(folder: str, name: str, what: str, *, shared: bool = False) -> Iterator[None]:
    """A lock on ``name`` in ``folder``, seen by every process (and thread) that locks
    the same name there: exclusive, or with ``shared`` one that any number of shared
    holders hold at once and that excludes every exclusive holder.

    Linux OFD locks on one byte of ``folder/.exzarr.lock`` per name: they belong to the
    open file description, so each acquisition opens the file itself and threads
    exclude each other too; closing releases, and a killed holder releases with its
    process. Elsewhere, ``flock`` on a lock file per name (``LOCK_SH`` when shared).
    As the kernel's, a waiting exclusive holder does not hold back new shared ones.
    A process forked meanwhile holds nothing: it closes its copies of lock fds at fork.
    """
    from exzarr.errors import StorageError

    path = os.path.join(folder, LOCK_NAME)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, pid = _open_held(path, flags)
    except OSError as exc:
        raise StorageError(exc.errno, f"cannot lock {what}: {exc.strerror} (the lock file "
                           f"{path!r} cannot be made); locking needs a writable store",
                           path) from exc
    try:
        while True:
            if _ofd_lock(fd, _slot(name), shared):
                locked = path
            else:
                import fcntl

                _close_held(fd, pid)
                fd = -1
                locked = f"{path}.{_slot(name):016x}"
                fd, pid = _open_held(locked, flags)
                fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            if _names(locked, fd):
                break
            # remove_lock_files unlinked the file before this lock was granted: the
            # lock is on a file nobody else opens now; lock the one at the path.
            _close_held(fd, pid)
            fd = -1
            fd, pid = _open_held(path, flags)
        yield
    finally:
        if fd >= 0:
            _close_held(fd, pid)  # releases the lock


def _names(path: str, fd: int) -> bool:
    """Whether ``path`` is still the file open as ``fd``."""
    try:
        at = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (at.st_ino, at.st_dev) == (held.st_ino, held.st_dev)


def remove_lock_files(folder: str) -> bool:
    """Remove the lock files of ``folder`` if nobody holds or waits for a lock in
    them; whether none is left. Each is unlinked while this call holds all of it, and
    :func:`file_lock` re-opens a lock file that was unlinked before it got its lock,
    so no two holders ever lock two files of one name."""
    import fcntl

    try:
        names = [n for n in os.listdir(folder) if n.startswith(LOCK_NAME)]
    except OSError:
        return True  # no folder: no lock files
    whole = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)  # length 0: all
    left = False
    for name in names:
        path = os.path.join(folder, name)
        try:
            fd, pid = _open_held(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue  # removed meanwhile
        try:
            if name == LOCK_NAME and hasattr(fcntl, "F_OFD_SETLK"):
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, whole)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _names(path, fd):
                os.unlink(path)
        except OSError:  # held (EAGAIN, EWOULDBLOCK), or not ours to remove
            left = True
        finally:
            _close_held(fd, pid)
    return not left


@contextlib.contextmanager
def folder_lock(folder: str) -> Iterator[bool]:
    """An exclusive ``flock`` on ``folder`` itself (no file made in it) for the block;
    yields whether it is locked (False where the file system or platform has no
    flock: the caller goes on unlocked). Fork-safe as :func:`file_lock`."""
    try:
        import fcntl

        fd, pid = _open_held(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                             | getattr(os, "O_CLOEXEC", 0))
    except (ImportError, OSError):
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:  # no flock on this file system
            locked = False
        yield locked
    finally:
        _close_held(fd, pid)


class _Slot:
    """One name's readers-writer state: how many hold it shared, whether one holds it
    exclusively, how many hold or wait (forgotten at zero)."""

    __slots__ = ("cond", "readers", "writer", "users")

    def __init__(self, guard: threading.Lock) -> None:
        self.cond = threading.Condition(guard)
        self.readers = 0
        self.writer = False
        self.users = 0


class LocalLocks:
    """Readers-writer locks by name within one process (for storage only it can see).

    Shared holders hold a name together, an exclusive holder alone. As with the
    kernel's file locks, a waiting exclusive holder does not hold back new shared ones
    (so one thread may take a name shared twice without waiting on itself).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._slots: dict[str, _Slot] = {}

    @contextlib.contextmanager
    def hold(self, name: str, *, shared: bool = False) -> Iterator[None]:
        """Hold the lock of ``name`` for the block, shared or exclusive."""
        with self._guard:
            slot = self._slots.get(name)
            if slot is None:
                slot = self._slots[name] = _Slot(self._guard)
            slot.users += 1
            try:
                if shared:
                    slot.cond.wait_for(lambda: not slot.writer)
                    slot.readers += 1
                else:
                    slot.cond.wait_for(lambda: not slot.writer and not slot.readers)
                    slot.writer = True
            except BaseException:  # interrupted while waiting: holds nothing
                self._leave(name, slot)
                raise
        try:
            yield
        finally:
            with self._guard:
                if shared:
                    slot.readers -= 1
                else:
                    slot.writer = False
                slot.cond.notify_all()
                self._leave(name, slot)

    def _leave(self, name: str, slot: _Slot) -> None:
        slot.users -= 1
        if slot.users == 0:
            del self._slots[name]
