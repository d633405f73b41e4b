"""An opt-in cache of decoded chunks, bounded in bytes, least recently used first out."""

from __future__ import annotations

import threading
from collections import OrderedDict


_MAX_DIRTY = 65536  # invalidated keys remembered before the floor moves up


class ChunkCache:
    """Decoded chunk bytes by store key, at most ``max_bytes`` in total.

    Thread-safe. A chunk larger than the whole budget is never cached. Writes through
    the owning array invalidate the chunks they replace once they are stored; a reader
    that fetched a chunk before that takes an :meth:`epoch` first and hands it to
    :meth:`put`, which then refuses the bytes it read, so they never come back.

    Parameters
    ----------
    max_bytes : int
        The budget in bytes.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, not {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        # Invalidation epochs: a put of bytes fetched at an older epoch than the key's
        # last invalidation is refused. Keys are forgotten wholesale past _MAX_DIRTY,
        # raising the floor every put must have started at or after.
        self._epoch = 0
        self._floor = 0
        self._dirty: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def epoch(self) -> int:
        """The moment to hand to :meth:`put` for bytes about to be fetched."""
        with self._lock:
            return self._epoch

    def put(self, key: str, value: bytes, epoch: int | None = None) -> None:
        """Cache ``value``; fetched since ``epoch`` (refused if ``key`` was invalidated
        after it, as the bytes may be older than that write)."""
        n = len(value)
        if n > self.max_bytes:
            return
        with self._lock:
            if epoch is not None and (epoch < self._floor or self._dirty.get(key, -1) >= epoch):
                return
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._data[key] = value
            self._size += n
            while self._size > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._size -= len(evicted)

    def invalidate(self, keys: list[str]) -> None:
        with self._lock:
            self._epoch += 1
            if len(self._dirty) + len(keys) > _MAX_DIRTY:
                self._dirty.clear()
                self._floor = self._epoch
            for key in keys:
                self._dirty[key] = self._epoch - 1
                old = self._data.pop(key, None)
                if old is not None:
                    self._size -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._size = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._size

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return (f"<ChunkCache {len(self._data)} chunks, {self._size}/{self.max_bytes} bytes, "
                f"{self.hits} hits, {self.misses} misses>")
