"""Writers that share chunks or metadata: threads, handles and processes lose nothing.

Partial-chunk writes read a chunk, change part of it and write it back; two of them at
once on one chunk must not undo each other. Metadata changes (append, resize,
attributes) re-read what they change under a lock. Writes from a handle whose array
was resized by another one never leave chunks past the stored end.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

import exzarr
from exzarr.array import Array
from exzarr.errors import LockNotSupportedError
from exzarr.storage.base import Store
from exzarr.storage.directory import DirectoryStore
from exzarr.storage.memory import MemoryStore

SHAPE = (32, 32)
CHUNKS = (4, 4)  # 64 chunks; each holds rows of all four writers


class SlowMemoryStore(MemoryStore):
    """A memory store that pauses after fetching chunks, so a read-modify-write that is
    not serialised is overtaken by another one (the result does not depend on timing
    when writes are serialised: nothing here is asserted about time)."""

    def get_many(self, keys):
        values = super().get_many(keys)
        if any(not k.rsplit("/", 1)[-1].startswith(".") for k in keys):
            time.sleep(0.002)
        return values

    def get(self, key):
        value = super().get(key)
        if not key.rsplit("/", 1)[-1].startswith("."):
            time.sleep(0.002)
        return value


def _store(kind, tmp_path):
    if kind == "memory":
        return SlowMemoryStore()
    return DirectoryStore(str(tmp_path / "a"))


def _quarter_writer(kind):
    """A function writing quarter ``k`` (the rows ``k::4``) with ``value``, through
    the selection kind named ``kind``."""
    rows = [np.arange(k, SHAPE[0], 4) for k in range(4)]

    def write(a, k, value):
        if kind == "oindex":
            a.oindex[rows[k], :] = value
        elif kind == "vindex":
            rr, cc = np.meshgrid(rows[k], np.arange(SHAPE[1]), indexing="ij")
            a.vindex[rr.ravel(), cc.ravel()] = value
        elif kind == "mask":
            mask = np.zeros(SHAPE, dtype=bool)
            mask[rows[k], :] = True
            a.vindex[mask] = value
        elif kind == "slices":
            a[k::4, :] = value
        elif kind == "slices-1d":  # one element per chunk row, strided slices
            a[k::4, k] = value
        else:
            raise AssertionError(kind)

    return write


def _run_threads(fn, n):
    barrier = threading.Barrier(n)
    errors = []

    def run(k):
        try:
            barrier.wait()
            fn(k)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("store_kind", ["memory", "directory"])
@pytest.mark.parametrize("kind", ["oindex", "vindex", "mask", "slices"])
def test_threads_writing_quarters_of_shared_chunks_lose_nothing(kind, store_kind, tmp_path):
    store = _store(store_kind, tmp_path)
    exzarr.create(shape=SHAPE, chunks=CHUNKS, dtype="i4", fill_value=0, storage=store)
    write = _quarter_writer(kind)
    for round_ in range(3):
        # A handle per thread, as separate parts of a program would have.
        arrays = [Array(store) for _ in range(4)]
        _run_threads(lambda k: write(arrays[k], k, 10 * round_ + k + 1), 4)
        got = Array(store)[...]
        want = np.repeat((10 * round_ + np.arange(1, 5))[None, :], SHAPE[0] // 4, 0).reshape(-1)
        lost = int((got != want[:, None]).any(axis=1).sum())
        assert lost == 0, f"round {round_}: {lost} of {SHAPE[0]} rows lost an update"


def test_threads_writing_object_chunks_lose_nothing():
    store = SlowMemoryStore()
    exzarr.create(shape=(16, 8), chunks=(4, 4), dtype=str, storage=store)
    arrays = [Array(store) for _ in range(4)]
    _run_threads(lambda k: arrays[k].__setitem__((slice(k, None, 4), slice(None)), f"w{k}"), 4)
    got = Array(store)[...]
    want = np.array([f"w{i % 4}" for i in range(16)], dtype=object)
    np.testing.assert_array_equal(got, np.repeat(want[:, None], 8, 1))


def test_an_append_and_a_write_into_its_edge_chunk_lose_nothing():
    store = SlowMemoryStore()
    exzarr.create(shape=(1,), chunks=(8,), dtype="i4", fill_value=0, storage=store)
    for round_ in range(5):
        a, b = Array(store), Array(store)
        n = a.shape[0]
        # b writes the element before the end while a appends into the same chunk.
        _run_threads(lambda k: a.append(np.full(3, round_ + 1)) if k == 0
                     else b.__setitem__(n - 1, 100 + round_), 2)
    got = Array(store)[...]
    expected = [0]
    for round_ in range(5):
        expected[-1] = 100 + round_
        expected += [round_ + 1] * 3
    np.testing.assert_array_equal(got, expected)


def test_every_chunk_write_takes_the_chunk_locks_whole_or_partial(monkeypatch):
    from exzarr import locks

    taken = []
    real = locks.chunk_locks

    def spy(ident, keys, *args, **kwargs):
        taken.append(sorted(keys))
        return real(ident, keys, *args, **kwargs)

    monkeypatch.setattr(locks, "chunk_locks", spy)
    a = exzarr.create(shape=(8, 8), chunks=(4, 4), dtype="i4")
    a[...] = 1                 # four whole chunks
    a[4:8, 0:4] = 2            # one whole chunk
    a.blocks[1, 1] = 3         # one whole chunk
    a[0:2, 0:8] = 4            # parts of two chunks
    assert taken == [["0.0", "0.1", "1.0", "1.1"], ["1.0"], ["1.1"], ["0.0", "0.1"]]


# -- metadata: append, resize, attributes from several handles ----------------------

def test_appends_from_two_handles_are_both_kept():
    store = MemoryStore()
    exzarr.create(shape=(0,), chunks=(2,), dtype="i4", storage=store)
    a, b = Array(store), Array(store)
    a.append(np.full(3, 1))
    assert b.append(np.full(2, 2)) == (5,)
    np.testing.assert_array_equal(Array(store)[...], [1, 1, 1, 2, 2])
    assert a.shape == (3,)  # a handle learns of the other's change at its next change
    a.append([3])
    np.testing.assert_array_equal(Array(store)[...], [1, 1, 1, 2, 2, 3])


def test_appends_from_threads_with_their_own_handles_are_all_kept(tmp_path):
    store = DirectoryStore(str(tmp_path / "a"))
    exzarr.create(shape=(0, 3), chunks=(4, 3), dtype="i4", storage=store)

    def appender(k):
        a = Array(store)
        for _ in range(6):
            a.append(np.full((3, 3), k + 1))

    _run_threads(appender, 4)
    got = Array(store)[...]
    assert got.shape == (72, 3)
    blocks = got.reshape(24, 3, 3)
    # Every append is there, whole, in one piece.
    assert (blocks == blocks[:, :1, :1]).all()
    assert sorted(np.bincount(blocks[:, 0, 0])[1:].tolist()) == [6, 6, 6, 6]


def test_attributes_set_through_two_handles_are_both_kept():
    store = MemoryStore()
    exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage=store)
    a, b = Array(store), Array(store)
    assert dict(a.attrs) == {} and dict(b.attrs) == {}  # both have read them
    a.attrs["one"] = 1
    b.attrs["two"] = 2
    b.attrs.update(three=3)
    assert Array(store).attrs.asdict() == {"one": 1, "two": 2, "three": 3}


def test_group_attributes_set_through_two_handles_are_both_kept(tmp_path):
    """Group attributes re-read their document under its lock, as an array's do: two
    handles' changes are both kept, from threads too."""
    root = str(tmp_path / "g")
    exzarr.open_group(path=root, mode="w")
    a, b = exzarr.open_group(path=root), exzarr.open_group(path=root)
    assert dict(a.attrs) == {} and dict(b.attrs) == {}
    a.attrs["one"] = 1
    b.attrs["two"] = 2
    handles = [exzarr.open_group(path=root) for _ in range(4)]

    def put(i: int) -> None:
        for j in range(25):
            handles[i].attrs[f"t{i}-{j}"] = j

    threads = [threading.Thread(target=put, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = exzarr.open_group(path=root).attrs.asdict()
    assert stored.pop("one") == 1 and stored.pop("two") == 2
    assert stored == {f"t{i}-{j}": j for i in range(4) for j in range(25)}


def _chunk_keys(store):
    return sorted(k for k in store.list_prefix("") if not k.rsplit("/", 1)[-1].startswith("."))


@pytest.mark.parametrize("store_kind", ["memory", "directory"])
def test_a_handle_opened_before_a_shrink_writes_no_orphan_chunks(store_kind, tmp_path):
    store = MemoryStore() if store_kind == "memory" else DirectoryStore(str(tmp_path / "a"))
    exzarr.create(shape=(10,), chunks=(2,), dtype="i4", fill_value=-1, storage=store)
    stale, other = Array(store), Array(store)
    stale[...] = np.arange(10)
    other.resize(4)
    assert _chunk_keys(store) == ["0", "1"]
    # The write is checked against the stored shape: past its end, as NumPy refuses.
    with pytest.raises(IndexError):
        stale[8] = 5
    with pytest.raises(ValueError):
        stale[...] = np.arange(10)  # ten values for four elements
    stale[6:9] = 5                  # an empty selection of the new shape, as NumPy
    stale.oindex[[1, 3]] = 7
    with pytest.raises(IndexError):
        stale.vindex[[9]] = 7
    assert stale.shape == (4,)
    assert _chunk_keys(store) == ["0", "1"]
    other.resize(10)
    np.testing.assert_array_equal(Array(store)[...], [0, 7, 2, 7] + [-1] * 6)


@pytest.mark.parametrize("dtype, fill, values", [
    ("i4", -1, np.arange(1, 11)),
    ("f8", np.nan, np.arange(1.0, 11.0)),
    (str, "", np.array([str(i) for i in range(1, 11)], dtype=object)),
])
def test_shrink_then_grow_reads_the_fill_value(dtype, fill, values):
    a = exzarr.create(shape=(10,), chunks=(4,), dtype=dtype, fill_value=fill)
    a[...] = values
    a.resize(6)
    assert _chunk_keys(a.store) == ["0", "1"]  # chunk 2 lay wholly past the end
    a.resize(10)
    want = np.array(list(values[:6]) + [fill] * 4, dtype=a.dtype)
    np.testing.assert_array_equal(a[...], want)


def test_shrink_then_grow_in_two_dimensions_reads_the_fill_value():
    a = exzarr.create(shape=(6, 6), chunks=(4, 4), dtype="i4", fill_value=0)
    a[...] = np.arange(1, 37).reshape(6, 6)
    b = Array(a.store)
    b.resize((5, 3))
    b.resize((6, 6))
    want = np.zeros((6, 6), dtype="i4")
    want[:5, :3] = np.arange(1, 37).reshape(6, 6)[:5, :3]
    np.testing.assert_array_equal(a[...], want)
    np.testing.assert_array_equal(Array(a.store)[...], want)


# -- across processes ---------------------------------------------------------------

class RecordingLockStore(MemoryStore):
    """A memory store whose process_lock records the keys it is asked for: exclusive
    ones in ``locked``, shared ones in ``shared``."""

    def __init__(self):
        super().__init__()
        self.locked = []
        self.shared = []
        self.held = self.most_held = 0

    @contextmanager
    def process_lock(self, key, *, shared=False):
        (self.shared if shared else self.locked).append(key)
        with super().process_lock(key, shared=shared):
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            try:
                yield
            finally:
                self.held -= 1


class NoLockStore(MemoryStore):
    """A store that cannot lock across processes (as zip and fsspec stores)."""

    process_lock = Store.process_lock


def test_a_store_that_cannot_lock_is_refused_at_open():
    store = NoLockStore()
    exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage=store)
    with pytest.raises(LockNotSupportedError):
        Array(store, lock=True)
    with exzarr.config.set(lock=True), pytest.raises(LockNotSupportedError):
        Array(store)
    Array(store, lock=True, read_only=True)[...]  # readers take no lock
    assert Array(store, lock=False)[...].shape == (4,)


@pytest.mark.parametrize("from_config", [False, True])
def test_process_locks_cover_partial_writes_and_metadata_changes(from_config):
    store = RecordingLockStore()
    exzarr.create(shape=(8, 8), chunks=(4, 4), dtype="i4", storage=store)
    if from_config:
        with exzarr.config.set(lock=True):
            a = Array(store)
    else:
        a = Array(store, lock=True)
    store.locked.clear()
    store.shared.clear()
    a[...] = 1
    a.blocks[0, 1] = 2
    # Whole chunks too: another process's partial writer must not write back over them.
    assert store.locked == ["0.0", "0.1", "1.0", "1.1", "0.1"]
    # Every write holds .zarray shared: no other process resizes meanwhile.
    assert store.shared == [".zarray", ".zarray"]
    store.locked.clear()
    a[0:2, 3:5] = 3
    assert sorted(store.locked) == ["0.0", "0.1"]
    store.locked.clear()
    a.oindex[[1], [0, 7]] = 4
    assert sorted(store.locked) == ["0.0", "0.1"]
    store.locked.clear()
    a.resize((9, 8))
    assert store.locked == [".zarray"]
    store.locked.clear()
    a.append(np.ones((2, 8)))  # rows 9 and 10: part of chunk row 2 (rows 8 to 11)
    assert store.locked[0] == ".zarray" and sorted(store.locked[1:]) == ["2.0", "2.1"]
    store.locked.clear()
    a.resize((10, 8))  # row 10 is cleared to the fill value
    assert store.locked[0] == ".zarray" and sorted(store.locked[1:]) == ["2.0", "2.1"]
    store.locked.clear()
    a.attrs["x"] = 1
    assert store.locked == [".zattrs"]
    assert Array(store)[0:2, 3:5].tolist() == [[3, 3], [3, 3]]


def test_with_the_lock_a_shape_changed_by_another_process_is_seen_before_writing():
    store = RecordingLockStore()
    exzarr.create(shape=(10,), chunks=(2,), dtype="i4", fill_value=-1, storage=store)
    a = Array(store, lock=True)
    a[...] = np.arange(10)
    # Another process shrinks it: only the stored document shows it.
    doc = json.loads(store.get(".zarray"))
    store.set(".zarray", json.dumps({**doc, "shape": [4]}).encode())
    store.delete_many(["2", "3", "4"])
    with pytest.raises(IndexError):
        a[8] = 5
    a[3] = 30
    assert a.shape == (4,)
    assert _chunk_keys(store) == ["0", "1"]
    np.testing.assert_array_equal(Array(store)[...], [0, 1, 2, 30])


def _open_store(kind, where):
    if kind == "sqlite":
        from exzarr.storage.sqlite import SQLiteStore

        return SQLiteStore(where)
    return DirectoryStore(where)


TALL = (256, 16)  # 64 rows of chunks: each row's write a read-modify-write of 4 chunks


def _process_writer(kind, where, part, lock, barrier):
    a = Array(_open_store(kind, where), lock=lock)
    barrier.wait(60)  # both started: their writes overlap
    # Rows k::4 of one process and the other's fall in the same chunks; every row is
    # written once, so a lost update stays lost.
    for r in range(0, TALL[0], 4):
        for k in (part, part + 2):
            a.oindex[[r + k], :] = r + k + 1
    a.store.close()


def _two_writers(kind, where, lock):
    """The rows that two processes writing alternate rows of shared chunks lost."""
    store = _open_store(kind, where)
    exzarr.create(shape=TALL, chunks=CHUNKS, dtype="i4", fill_value=0, storage=store)
    store.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_process_writer, args=(kind, where, p, lock, barrier))
             for p in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    got = Array(_open_store(kind, where))[...]
    want = 1 + np.arange(TALL[0])
    return int((got != want[:, None]).any(axis=1).sum())


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_two_processes_writing_quarters_with_the_lock_lose_nothing(kind, tmp_path):
    lost = _two_writers(kind, str(tmp_path / "a"), True)
    assert lost == 0, f"{lost} of {TALL[0]} rows lost an update"


def _process_appender(kind, where, k, barrier):
    a = Array(_open_store(kind, where), lock=True)
    barrier.wait(60)
    for _ in range(15):
        a.append(np.full((3, 4), k + 1))
        a.attrs[f"p{k}"] = a.attrs.get(f"p{k}", 0) + 1
    a.store.close()


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_appends_and_attributes_from_two_processes_with_the_lock_are_all_kept(kind, tmp_path):
    where = str(tmp_path / "a")
    store = _open_store(kind, where)
    exzarr.create(shape=(0, 4), chunks=(4, 4), dtype="i4", storage=store)
    store.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_process_appender, args=(kind, where, k, barrier))
             for k in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    a = Array(_open_store(kind, where))
    blocks = a[...].reshape(-1, 3, 4)
    assert len(blocks) == 30 and (blocks == blocks[:, :1, :1]).all()
    assert sorted(np.bincount(blocks[:, 0, 0]).tolist()) == [0, 15, 15]
    assert a.attrs.asdict() == {"p0": 15, "p1": 15}


# -- NumPy 2.5: no shape set on arrays ---------------------------------------------

class _NoShapeSetting(np.ndarray):
    """An ndarray whose shape cannot be set, as NumPy 2.5 deprecates (its views are of
    this class too)."""

    @property
    def shape(self):
        return super().shape

    @shape.setter
    def shape(self, value):
        raise AssertionError("shape set on an array (deprecated in NumPy 2.5)")


@pytest.mark.parametrize("read", [
    lambda a, out: a.get_basic_selection((3, slice(None)), out=out),
    lambda a, out: a.get_basic_selection((slice(None), 2), out=out),
    lambda a, out: a.get_orthogonal_selection(([1, 3, 5, 7, 2, 0, 4, 6], 2), out=out),
    lambda a, out: a.get_coordinate_selection((np.arange(8), np.arange(8)), out=out),
])
def test_reads_into_out_set_no_shape(read):
    a = exzarr.create(shape=(8, 8), chunks=(3, 3), dtype="i4")
    data = np.arange(64, dtype="i4").reshape(8, 8)
    a[...] = data
    out = np.zeros(8, dtype="i4").view(_NoShapeSetting)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        got = read(a, out)
        plain = np.zeros(16, dtype="i4")[::2]  # not contiguous: still written in place
        read(a, plain)
    assert got is out
    np.testing.assert_array_equal(plain, np.asarray(out))
    np.testing.assert_array_equal(np.asarray(out), read(a, None))


@pytest.mark.parametrize("kind", ["oindex", "vindex", "slices"])
def test_a_partial_write_reads_the_stored_chunk_not_its_cached_copy(kind):
    store = MemoryStore()
    exzarr.create(shape=SHAPE, chunks=CHUNKS, dtype="i4", fill_value=0, storage=store)
    Array(store)[...] = -1
    a, b = Array(store, cache_bytes=1 << 20), Array(store, cache_bytes=1 << 20)
    b[...]  # b caches every chunk, then a changes them in the store
    assert len(b.cache) == 64
    write = _quarter_writer(kind)
    write(a, 0, 1)
    write(b, 1, 2)
    got = Array(store)[...]
    assert (got[0::4] == 1).all() and (got[1::4] == 2).all()


@pytest.mark.parametrize("kind", ["slices", "oindex"])
def test_a_partial_write_of_many_chunks_holds_a_bounded_number_of_process_locks(kind):
    store = RecordingLockStore()
    exzarr.create(shape=(1200,), chunks=(2,), dtype="i4", fill_value=0, storage=store)
    a = Array(store, lock=True)
    store.locked.clear()
    if kind == "slices":
        a[::2] = 7          # part of each of 600 chunks
    else:
        a.oindex[np.arange(0, 1200, 2)] = 7
    assert sorted(store.locked) == sorted(str(i) for i in range(600))
    assert store.held == 0 and 1 <= store.most_held <= 256 + 1  # a run of chunks, .zarray
    np.testing.assert_array_equal(a[...], np.tile([7, 0], 600))


def test_a_lock_that_cannot_be_taken_releases_the_ones_taken_before_it():
    from exzarr import locks
    from exzarr.errors import StorageError

    class FailingSecond(RecordingLockStore):
        @contextmanager
        def process_lock(self, key):
            if key == "0.1":
                raise StorageError(28, "no space for the lock file", key)
            with super().process_lock(key):
                yield

    store = FailingSecond()
    ident = ("test", "/x/")
    with pytest.raises(StorageError):
        with locks.chunk_locks(ident, ["0.1", "0.0"], store):
            pass
    assert store.held == 0
    done = []

    def take():
        with locks.chunk_locks(ident, ["0.0", "0.1"]):
            done.append(True)

    t = threading.Thread(target=take)  # another thread: it would wait on a lock left held
    t.start()
    t.join(30)
    assert done == [True]


def test_the_api_passes_lock_through(tmp_path):
    """create/open/open_array take lock=; a store that cannot lock is refused before
    anything is written, and the memory store locks in-process."""
    from exzarr.storage.zip import ZipStore

    zpath = tmp_path / "a.zip"
    with pytest.raises(LockNotSupportedError):
        exzarr.create(shape=(4,), chunks=(2,), storage=ZipStore(zpath, mode="a"), lock=True)
    assert not zpath.exists() or ZipStore(zpath, mode="r").list_dir() == []
    d = str(tmp_path / "d")
    a = exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage="filesystem", path=d,
                      lock=True)
    a[1:3] = 5
    assert exzarr.open(path=d, lock=True)[...].tolist() == [0, 5, 5, 0]
    assert exzarr.open_array(d, mode="r+", lock=True)[1] == 5
    with exzarr.config.set(lock=True):
        m = exzarr.create(shape=(4,), chunks=(2,), dtype="i4")
        m[1:3] = 7
        assert m[...].tolist() == [0, 7, 7, 0]


# -- whole-chunk writes against partial ones (issue 15, F4) ---------------------------

class PausingStore(MemoryStore):
    """A memory store where the thread named ``P`` pauses after reading chunk ``0``:
    the moment a partial write has the old chunk and has not yet written it back. The
    pause ends when the thread named ``W`` has finished its write, or after a second
    (W waits for P's chunk lock when writes are serialised)."""

    def __init__(self):
        super().__init__()
        self.w_done = threading.Event()

    def get_many(self, keys):
        values = super().get_many(keys)
        if threading.current_thread().name == "P" and "0" in keys:
            self.w_done.wait(1.0)
        return values


def test_a_whole_chunk_write_racing_a_partial_write_of_that_chunk_is_kept():
    store = PausingStore()
    exzarr.create(shape=(8,), chunks=(4,), dtype="i4", fill_value=0, compressor=None,
                  storage=store)
    a, b = Array(store), Array(store)  # two handles of one array, as two parts of a program

    def whole():
        b[0:4] = [1, 1, 1, 1]
        store.w_done.set()

    p = threading.Thread(target=lambda: a.__setitem__(slice(0, 1), 7), name="P")
    w = threading.Thread(target=whole, name="W")
    p.start()
    while not p.is_alive() and not store.w_done.is_set():
        pass
    time.sleep(0.1)  # P is inside its read (not needed for the outcome, only to race)
    w.start()
    for t in (w, p):
        t.join(60)
    got = Array(store)[0:4].tolist()
    # Either order of the two writes, never the partial write undoing the whole one.
    assert got in ([1, 1, 1, 1], [7, 1, 1, 1]), got


# -- resize and append are not starved by writers (F7) --------------------------------

class SlowWriteStore(MemoryStore):
    """A memory store whose writes take a few milliseconds: writers overlap, so without
    a turn for a waiting shape change there is nearly always one inside the gate."""

    def set_many(self, items):
        items = list(items)
        if any(not k.rsplit("/", 1)[-1].startswith(".") for k, _ in items):
            time.sleep(0.005)
        return super().set_many(items)


def test_a_resize_finishes_while_three_threads_keep_writing():
    store = SlowWriteStore()
    a = exzarr.create(shape=(64, 64), chunks=(8, 8), dtype="i4", compressor=None,
                      storage=store)
    done = threading.Event()
    wrote = [0, 0, 0]

    def writer(k):
        h = Array(store)
        v = np.full((8, 8), k + 1, "i4")
        # Staggered starts: the three writes overlap, so the gate is rarely empty.
        time.sleep(0.002 * k)
        while not done.is_set():
            h[0:8, 0:8] = v
            wrote[k] += 1

    threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(3)]
    for t in threads:
        t.start()
    while min(wrote) == 0:
        time.sleep(0.01)

    def grow():
        a.resize(128, 64)
        done.set()

    g = threading.Thread(target=grow, daemon=True)
    g.start()
    g.join(60)  # a hang guard, not a measure of speed
    resized = done.is_set()
    done.set()
    for t in threads:
        t.join(60)
    assert resized, "the resize was still waiting after 60 s of writes"
    assert Array(store).shape == (128, 64)


# -- orphan chunks past the end (F3) --------------------------------------------------

@pytest.mark.parametrize("store_kind", ["memory", "directory"])
def test_chunks_past_the_stored_end_are_deleted_when_the_array_grows(store_kind, tmp_path):
    """A chunk wholly past the stored end (a stale handle of another process wrote it,
    or another tool left it) is not part of the array: growing over it reads fill."""
    store = MemoryStore() if store_kind == "memory" else DirectoryStore(str(tmp_path / "a"))
    exzarr.create(shape=(10,), chunks=(2,), dtype="i4", fill_value=0, storage=store)
    stale = Array(store)
    stale[...] = np.arange(10)
    # Another process shrinks it to 4 without the lock: only the stored document shows it.
    doc = json.loads(store.get(".zarray"))
    store.set(".zarray", json.dumps({**doc, "shape": [4]}).encode())
    store.delete_many(["2", "3", "4"])
    stale[8:10] = [88, 99]  # without the lock, this handle does not see the shrink
    assert "4" in _chunk_keys(store)
    grower = Array(store)
    assert grower.nchunks_initialized == 2  # chunk 4 is not one of the array's
    grower.resize(10)
    assert _chunk_keys(store) == ["0", "1"]
    np.testing.assert_array_equal(Array(store)[...], [0, 1, 2, 3] + [0] * 6)


def test_a_two_dimensional_orphan_past_the_end_is_deleted_on_growth():
    store = MemoryStore()
    a = exzarr.create(shape=(4, 4), chunks=(2, 2), dtype="i4", fill_value=0, storage=store)
    a[...] = 1
    store.set("5.0", store.get("0.0"))  # another tool's leftover, rows 10 and 11
    store.set("0.7", store.get("0.0"))
    a.resize(12, 16)
    assert _chunk_keys(store) == ["0.0", "0.1", "1.0", "1.1"]
    assert (a[4:, :] == 0).all() and (a[:, 4:] == 0).all()


_SHRINK = """
import sys
import exzarr
print("ready", flush=True)
exzarr.open(sys.argv[1], mode="r+", lock=True).resize(4)
"""


def _waits_on_lock_file(path):
    """Whether some process waits for a lock on the file ``path`` (Linux /proc/locks)."""
    import os

    try:
        ino = os.stat(path).st_ino
        with open("/proc/locks") as f:
            return any("->" in line and line.split()[-3].endswith(f":{ino}") for line in f)
    except (OSError, IndexError):
        return False


def test_with_the_lock_no_process_shrinks_the_array_between_a_writes_check_and_its_chunks(
        tmp_path, monkeypatch):
    """With lock=True a write holds .zarray's lock shared from its check of the stored
    shape to its last chunk; a resize in another process waits for it (issue 15 F3)."""
    import os
    import subprocess
    import sys

    where = str(tmp_path / "a")
    a = exzarr.create(shape=(10,), chunks=(2,), dtype="i4", fill_value=0,
                      storage="filesystem", path=where, lock=True)
    a[...] = np.arange(10)
    real = Array._check_meta
    procs = []

    def check_then_another_process_shrinks(self):
        real(self)  # the stored shape is 10 here
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        p = subprocess.Popen([sys.executable, "-c", _SHRINK, where], env=env,
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        # Until it has shrunk the array, or waits for the lock this write holds.
        lock_file = os.path.join(where, ".exzarr.lock")
        for _ in range(600):
            if p.poll() is not None or _waits_on_lock_file(lock_file):
                break
            time.sleep(0.05)

    monkeypatch.setattr(Array, "_check_meta", check_then_another_process_shrinks)
    a[8:10] = [88, 99]
    monkeypatch.setattr(Array, "_check_meta", real)
    assert procs[0].wait(60) == 0
    b = Array(DirectoryStore(where), lock=True)
    assert b.shape == (4,)
    # The write came first, whole, and the shrink deleted chunk 4: nothing past the end.
    assert sorted(n for n in os.listdir(where) if not n.startswith(".")) == ["0", "1"]
    b.resize(10)
    np.testing.assert_array_equal(b[...], [0, 1, 2, 3] + [0] * 6)
