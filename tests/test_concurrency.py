"""Reads, writes and settings from several threads at once."""

from __future__ import annotations

import threading

import numpy as np

import exzarr
from exzarr.cache import ChunkCache
from exzarr.storage.memory import MemoryStore


def test_cache_refuses_bytes_fetched_before_an_invalidation():
    c = ChunkCache(1 << 20)
    early = c.epoch()
    c.invalidate(["k"])
    c.put("k", b"old", early)
    assert c.get("k") is None
    late = c.epoch()
    c.put("k", b"new", late)
    assert c.get("k") == b"new"
    c.put("other", b"x", early)  # not invalidated since: kept
    assert c.get("other") == b"x"


def test_cache_forgetting_invalidated_keys_stays_safe(monkeypatch):
    import exzarr.cache

    monkeypatch.setattr(exzarr.cache, "_MAX_DIRTY", 4)
    c = ChunkCache(1 << 20)
    early = c.epoch()
    c.invalidate(["a", "b", "c"])
    c.invalidate(["d", "e"])  # past the limit: the keys are forgotten, the floor rises
    for key in "abcdez":
        c.put(key, b"old", early)
        assert c.get(key) is None
    c.put("a", b"new", c.epoch())
    assert c.get("a") == b"new"


class _SlowReads(MemoryStore):
    """Holds a reader between fetching chunks and returning them, when asked to."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.fetched = threading.Event()
        self.release = threading.Event()

    def get_many(self, keys):
        values = super().get_many(keys)
        if self.hold and any(k[0].isdigit() for k in keys):
            self.hold = False
            self.fetched.set()
            self.release.wait(10)
        return values


def test_a_read_racing_a_write_does_not_cache_the_old_chunks():
    store = _SlowReads()
    a = exzarr.create(shape=(8,), chunks=(4,), dtype="i4", storage=store, cache_bytes=1 << 20)
    a[:] = 1
    store.hold = True
    seen = []
    reader = threading.Thread(target=lambda: seen.append(a[:]))
    reader.start()
    assert store.fetched.wait(10)  # the reader has the old bytes, not yet cached
    a[:] = 2
    store.release.set()
    reader.join(10)
    np.testing.assert_array_equal(seen[0], 1)
    np.testing.assert_array_equal(a[:], 2)  # the old bytes did not come back


def test_changing_threads_while_others_read():
    import time

    a = exzarr.create(shape=(400, 400), chunks=(50, 50), dtype="f8")
    a[:] = 3
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert (a[:] == 3).all()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for k in range(400):
        time.sleep(0.001)
        exzarr.config.set(threads=2 + k % 2)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:1]
