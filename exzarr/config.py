"""Runtime configuration and the shared worker pool.

Nothing here runs at import time: the pool is created on first use, and re-created
after a fork or when the thread count changes.
"""

from __future__ import annotations

import operator
import os
import sys
import threading
from typing import Any

_settings: dict[str, Any] = {"threads": None, "cache_bytes": 0, "task_bytes": 256 << 10,
                             "reuse_bytes": 512 << 20,  # as _lib/hugealloc.h
                             "decode_limit_bytes": 1 << 30,
                             "fsync": False, "lock": False}
# Settings that take True or False.
_FLAGS = ("fsync", "lock")
_pool: Any = None
_pool_key: tuple[int, int] | None = None
_lock = threading.Lock()


_cpu_count: int | None = None
_local = threading.local()


def thread_count() -> int:
    """Worker threads used for chunk decoding and encoding (default: CPU count, or the
    ``EXZARR_THREADS`` environment variable)."""
    global _cpu_count
    if _settings["threads"]:
        return int(_settings["threads"])
    if _cpu_count is None:
        raw = os.environ.get("EXZARR_THREADS", "").strip()
        try:
            env = int(raw) if raw else 0
        except ValueError:
            env = 0  # an unusable value is ignored, as an unset one
        _cpu_count = env if env > 0 else max(1, os.cpu_count() or 1)
    return _cpu_count


def workspace() -> Any:
    """This thread's reusable core workspace (codec contexts and scratch buffers)."""
    ws = getattr(_local, "workspace", None)
    if ws is None:
        from exzarr import _core

        ws = _local.workspace = _core.Workspace()
    return ws


def _known(name: str) -> None:
    if name not in _settings:
        raise KeyError(f"unknown exzarr setting {name!r}; known: {', '.join(_settings)}")


def _checked(name: str, value: Any) -> Any:
    from exzarr.errors import InvalidArgumentError

    _known(name)
    if name == "threads" and value is None:
        return None  # back to the default
    if name in _FLAGS:
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise InvalidArgumentError(f"{name} must be True or False, not {value!r}")
        return bool(value)
    try:
        if isinstance(value, bool):
            raise TypeError
        n = operator.index(value)  # ints, NumPy ints; not floats or strings
    except TypeError:
        n = -1
    if n < 0 or n > sys.maxsize:
        least = ("an int >= 1 (0 or None: the default)" if name == "threads"
                 else f"an int from 0 to {sys.maxsize}")
        raise InvalidArgumentError(f"{name} must be {least}, not {value!r}")
    return None if name == "threads" and n == 0 else n


class _Restore:
    """What :func:`set` returns: used in a ``with`` block, it puts the old values back.

    Settings are process-wide (as dask.config's): a value another thread set while the
    block ran is left as it is, not undone.
    """

    def __init__(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._old = old
        self._new = new

    def __enter__(self) -> _Restore:
        return self

    def __exit__(self, *exc: Any) -> None:
        with _lock:
            for name, value in self._old.items():
                if _settings[name] == self._new[name]:
                    _settings[name] = value
            if "reuse_bytes" in self._old:
                _apply()

    def __repr__(self) -> str:
        return f"<exzarr.config.set: restores {self._old!r} on exit>"


def set(options: dict[str, Any] | None = None, /, **kwargs: Any) -> _Restore:  # noqa: A001
    """Change settings: ``exzarr.config.set(threads=4, cache_bytes=2**28)``, or for a
    block only: ``with exzarr.config.set({"threads": 1}): ...`` (as dask.config.set).

    ``threads``: worker threads for chunk decoding and encoding (default: CPU count;
    None restores it).
    ``cache_bytes``: default decoded-chunk cache size of arrays opened afterwards
    (0: no cache).
    ``task_bytes``: chunk bytes each worker thread must have before a read or write
    is shared out (default 256 KiB; below that, handing work to the pool costs more
    than it saves, and the calling thread does it all). 0 shares any two chunks.
    ``reuse_bytes``: memory of freed read results of 4 MiB or more kept for later
    reads of the same size (default 512 MiB, at most 4 results; one idle for 10 s is
    unmapped at the next big allocation or free).
    A fresh result costs the kernel a zeroed page per page; reusing one saves that,
    up to a third of a fast read. Kept memory is released to the kernel under memory
    pressure but counts in RSS until then. 0 turns it off and releases what is kept.
    ``decode_limit_bytes``: the most a codec's ``decode`` without ``out`` produces
    from a zstd, zlib or gzip stream, whose decoded size is stated in the stream, if
    at all, by the data itself (default 1 GiB). Memory is taken as output arrives;
    past the limit the stream is refused with CorruptChunkError.
    ``fsync``: writes are durable before they return (chunk files and their folders,
    zip archives and SQLite databases synced to disk); default False.
    ``lock``: arrays opened afterwards also lock across processes around each chunk
    write and metadata change, holding ``.zarray`` shared while they write (file locks
    on directory stores, beside the database on SQLite); default False. Threads of one
    process are always serialised per chunk; processes that only write whole chunks
    need no lock unless another process writes parts of the same chunks.

    Raises
    ------
    KeyError
        An unknown setting (the message lists the known ones).
    InvalidArgumentError
        A value the setting does not take; nothing is changed then.
    """
    changes = {**(options or {}), **kwargs}
    checked = {name: _checked(name, value) for name, value in changes.items()}
    with _lock:
        old = {name: _settings[name] for name in checked}
        _settings.update(checked)
        if "reuse_bytes" in checked:
            _apply()
    return _Restore(old, checked)


def _apply() -> None:
    """Hand the settings the core keeps itself to it (under ``_lock``)."""
    from exzarr import _core

    _core.set_reuse_limit(_settings["reuse_bytes"])


def get(name: str) -> Any:
    """The current value of a setting."""
    _known(name)
    return _settings[name]


def pool() -> Any:
    """The worker pool (a ThreadPoolExecutor), created lazily; one per process and thread count."""
    from concurrent.futures import ThreadPoolExecutor

    global _pool, _pool_key
    key = (os.getpid(), thread_count())
    with _lock:
        if _pool is None or _pool_key != key:
            # The old pool is not shut down: another thread's run_all may still be
            # submitting to it. Its idle threads exit once it is garbage collected.
            _pool = ThreadPoolExecutor(max_workers=key[1], thread_name_prefix="exzarr")
            _pool_key = key
        return _pool


def run_all(fn: Any, args: list[Any]) -> list[Any]:
    """``fn(arg)`` for every arg, at once: the first on the calling thread, which would
    only wait otherwise, the others on the worker pool; the results, in order. (A
    thread less to wake: a 64 MiB blosc-lz4 write on two threads took 2% less time.)

    Waits for every call before raising the first failure: a call still running after
    its sibling failed would otherwise go on writing into the caller's output or
    renaming chunk files into place behind the caller's back. (So Ctrl-C during a
    batch takes effect when the batch is done, with every chunk whole.)
    """
    from concurrent.futures import wait

    if not args:
        return []
    executor = pool()  # one pool for the whole batch, whatever config does meanwhile
    futures = [executor.submit(fn, a) for a in args[1:]]
    try:
        first = fn(args[0])
    finally:
        wait(futures)
    return [first] + [f.result() for f in futures]
