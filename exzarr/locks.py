"""Locks shared by every Array object of one storage within a process.

Three kinds, all keyed by the storage's identity (:func:`exzarr.storage.base.place`
of the array's folder) so that two Store objects of one directory share them:

- chunk locks, held around every write of a chunk: a partial-chunk write (read,
  change, write back) and a whole-chunk one alike, so neither undoes the other;
- metadata locks, held while ``.zarray`` or ``.zattrs`` is re-read and changed
  (append, resize, attributes);
- an :class:`ArrayState` per array: a count of its shape changes in this process, and
  a gate that keeps writes out while a resize deletes and clears chunks.

Chunk and metadata locks come from fixed tables of locks chosen by hash, so memory does
not grow with the number of chunks; two keys that share a lock only wait for each
other. With cross-process locking on, each also holds the store's
:meth:`~exzarr.storage.base.Store.process_lock` of its key.

Lock order (what keeps this free of deadlocks): a metadata lock before chunk locks;
chunk locks all at once, in table order, then process locks in key order; chunk locks
are only taken on the thread that called the array, never on a pool thread (a pool
thread waiting for a lock its caller's thread holds would wait forever).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

# Locks in each table: enough that unrelated chunks rarely share one, few enough to
# cost nothing (a threading.Lock is a few dozen bytes).
_STRIPES = 4096


class ArrayState:
    """What every handle of one array in this process shares.

    ``generation`` counts the array's metadata changes made here (append, resize):
    a handle that saw an older one re-reads ``.zarray`` before writing. Writes hold
    the gate shared (:meth:`enter_write`), a shape change exclusive (:meth:`changing`),
    so no write lands in a chunk while a resize deletes or clears it. A waiting shape
    change goes first: new writes wait for it, so a steady stream of writes cannot
    keep it out forever.

    A thread must never enter the gate twice (no write inside a write): with a shape
    change waiting, its second entry would wait for the change, which waits for its
    first entry to end.
    """

    __slots__ = ("generation", "_cond", "_writers", "_changing", "_waiting", "__weakref__")

    def __init__(self) -> None:
        self.generation = 0
        self._cond = threading.Condition(threading.Lock())
        self._writers = 0
        self._changing = False
        self._waiting = 0  # shape changes waiting for the writes inside to end

    def enter_write(self) -> None:
        """Wait for any shape change running or waiting to finish, then count this
        write in."""
        with self._cond:
            while self._changing or self._waiting:
                self._cond.wait()
            self._writers += 1

    def exit_write(self) -> None:
        """Count a write out (wakes a waiting shape change after the last one)."""
        with self._cond:
            self._writers -= 1
            if not self._writers:
                self._cond.notify_all()

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """Hold out every write for the block (new ones at once, waiting for those
        running to end), and count one metadata change when it ends."""
        with self._cond:
            self._waiting += 1
            try:
                while self._writers or self._changing:
                    self._cond.wait()
            except BaseException:  # (KeyboardInterrupt in wait) let held-back writes go
                self._waiting -= 1
                self._cond.notify_all()
                raise
            self._waiting -= 1
            self._changing = True
        try:
            yield
        finally:
            with self._cond:
                self._changing = False
                self.generation += 1
                self._cond.notify_all()

    def __repr__(self) -> str:
        return (f"<ArrayState generation {self.generation}, {self._writers} writes, "
                f"{self._waiting} changes waiting, "
                f"{'changing' if self._changing else 'not changing'}>")


class _Tables:
    """The process's lock tables (made again in a forked child: a lock another thread
    held at the fork would stay held there forever)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.chunks = [threading.Lock() for _ in range(_STRIPES)]
        self.meta = [threading.RLock() for _ in range(_STRIPES)]  # append holds it to resize
        self.states: weakref.WeakValueDictionary[Hashable, ArrayState] = weakref.WeakValueDictionary()
        self.guard = threading.Lock()


_tables: _Tables | None = None
_tables_guard = threading.Lock()


def _get() -> _Tables:
    global _tables
    t = _tables
    if t is None or t.pid != os.getpid():
        with _tables_guard:
            t = _tables
            if t is None or t.pid != os.getpid():
                t = _tables = _Tables()
    return t


def array_state(ident: Hashable) -> ArrayState:
    """The state every handle of the array at ``ident`` shares in this process (kept
    while one of them is alive)."""
    t = _get()
    with t.guard:
        state = t.states.get(ident)
        if state is None:
            state = t.states[ident] = ArrayState()
        return state


def chunk_locks(ident: Hashable, keys: Sequence[str],
                store: Any = None) -> contextlib.AbstractContextManager[None]:
    """Hold the locks of chunks ``keys`` of the array at ``ident`` for a ``with`` block.

    Parameters
    ----------
    ident : hashable
        The array's storage identity (the same for every Store object of its storage).
    keys : sequence of str
        Store keys of the chunks written in the block (read, changed and written back,
        or replaced whole).
    store : Store, optional
        Also hold ``store.process_lock(key)`` of each key (cross-process locking).
    """
    table = _get().chunks
    picked = sorted({hash((ident, k)) % _STRIPES for k in keys})
    return _Held([table[i] for i in picked], store, sorted(keys) if store is not None else ())


def meta_lock(ident: Hashable, key: str,
              store: Any = None) -> contextlib.AbstractContextManager[None]:
    """Hold the lock of metadata document ``key`` (``.zarray``, ``.zattrs``) of the array
    at ``ident`` for a ``with`` block; re-entrant within a thread for the in-process
    part. With ``store``, also its ``process_lock(key)`` (not re-entrant: take it once)."""
    lock = _get().meta[hash((ident, key)) % _STRIPES]
    return _Held([lock], store, (key,) if store is not None else ())


class _Held(contextlib.AbstractContextManager[None]):
    """Hold ``locks`` (in-process, in the order given), then ``store.process_lock`` of
    each of ``keys``, for a ``with`` block; a failure to take one releases the others."""

    __slots__ = ("locks", "store", "keys", "stack")

    def __init__(self, locks: list[Any], store: Any, keys: Sequence[str]) -> None:
        self.locks = locks
        self.store = store
        self.keys = keys
        self.stack: contextlib.ExitStack | None = None

    def __enter__(self) -> None:
        taken = 0
        try:
            for lock in self.locks:
                lock.acquire()
                taken += 1
            if self.keys:
                with contextlib.ExitStack() as stack:
                    for key in self.keys:
                        stack.enter_context(self.store.process_lock(key))
                    self.stack = stack.pop_all()
        except BaseException:
            for lock in reversed(self.locks[:taken]):
                lock.release()
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.stack is not None:
                self.stack.close()
                self.stack = None
        finally:
            for lock in reversed(self.locks):
                lock.release()
