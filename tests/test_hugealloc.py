"""Big read results come from the core's huge-page handler (exzarr/_lib/hugealloc.h)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import exzarr
from exzarr import _core
from exzarr.array import new_array

try:  # NumPy 2
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.25/1.26
    from numpy.core.multiarray import get_handler_name

HUGE = 2 << 20


def _big_array(tmp_path, dtype="f4"):
    a = exzarr.create(storage="filesystem", path=str(tmp_path / "a"), shape=(1024, 2048),
                      chunks=(256, 512),
                      dtype=dtype, compressor={"id": "zstd", "level": 1})
    data = np.arange(a.size, dtype=dtype).reshape(a.shape)
    a[...] = data
    return a, data


def test_big_reads_are_aligned_arrays_owning_their_data(tmp_path):
    a, data = _big_array(tmp_path)
    r = a[...]
    np.testing.assert_array_equal(r, data)
    assert r.ctypes.data % HUGE == 0
    assert r.flags.owndata and r.flags.c_contiguous and r.flags.writeable
    assert get_handler_name(r) == "exzarr_huge_pages"
    # The handler was set for that one allocation only.
    assert get_handler_name() == "default_allocator"
    assert get_handler_name(np.empty(HUGE * 4, np.uint8)) == "default_allocator"


def test_small_and_object_reads_use_numpy_allocation(tmp_path):
    a, data = _big_array(tmp_path)
    small = a[:10, :10]
    np.testing.assert_array_equal(small, data[:10, :10])
    assert get_handler_name(small) == "default_allocator"
    assert get_handler_name(new_array((_core.HUGE_MIN // 8,), np.dtype(object))) == "default_allocator"
    assert get_handler_name(new_array((_core.HUGE_MIN,), np.dtype("u1"))) == "exzarr_huge_pages"


def test_numpy_hugepage_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "0")
    assert get_handler_name(new_array((_core.HUGE_MIN,), np.dtype("u1"))) == "default_allocator"


@pytest.mark.parametrize("new_len", [1, 3 << 20, 5 << 20, (64 << 20) + 7])
def test_resize_keeps_the_data(new_len):
    r = new_array((5 << 20,), np.dtype("u1"))
    r[:] = np.arange(r.size, dtype=np.uint64).astype(np.uint8)
    before = r.copy()
    r.resize((new_len,), refcheck=False)
    keep = min(new_len, before.size)
    np.testing.assert_array_equal(r[:keep], before[:keep])
    if new_len > before.size:
        assert not r[keep:].any()  # NumPy zero-fills the growth
    assert get_handler_name(r) == "exzarr_huge_pages"


def test_freed_arrays_give_their_memory_back():
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    base = rss()
    for _ in range(40):  # 40 x 64 MiB touched: 2.5 GiB if none were unmapped
        r = new_array((64 << 20,), np.dtype("u1"))
        r[::4096] = 1
        del r
    assert rss() - base < 256 << 20


def test_threads_allocate_at_once(tmp_path):
    a, data = _big_array(tmp_path)
    seen: list[bool] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(5):
                r = a[...]
                seen.append(bool(np.array_equal(r, data)) and get_handler_name(r) == "exzarr_huge_pages")
                seen.append(get_handler_name(np.empty(HUGE, np.uint8)) == "default_allocator")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(seen) == 40 and all(seen)


def test_the_handler_is_restored_when_allocation_fails():
    with pytest.raises((MemoryError, ValueError)):
        _core.empty_huge((1 << 62,), np.dtype("u1"))
    assert get_handler_name() == "default_allocator"
    with pytest.raises(TypeError):
        _core.empty_huge((4, 4), "no-such-dtype")
    assert get_handler_name() == "default_allocator"


# --------------------------------------------------------------------------- the reuse pool


@pytest.fixture
def pool_empty():
    """An empty reuse pool with the default limit, before and after the test."""
    limit = exzarr.config.get("reuse_bytes")
    with exzarr.config.set(reuse_bytes=0):
        assert _core.reuse_held() == 0
    assert exzarr.config.get("reuse_bytes") == limit
    yield limit
    with exzarr.config.set(reuse_bytes=0):
        pass


def test_a_freed_result_serves_the_next_read_of_its_size(tmp_path, pool_empty):
    a, data = _big_array(tmp_path)
    r = a[...]
    where = r.ctypes.data
    del r
    assert _core.reuse_held() == data.nbytes
    r = a[...]
    assert r.ctypes.data == where and _core.reuse_held() == 0
    np.testing.assert_array_equal(r, data)
    assert get_handler_name(r) == "exzarr_huge_pages"


def test_reused_memory_never_shows_an_earlier_result(tmp_path, pool_empty):
    """Missing chunks of a reused result read as the fill value, not the last array's data."""
    a, data = _big_array(tmp_path)
    b = exzarr.create(storage="filesystem", path=str(tmp_path / "b"), shape=a.shape,
                      chunks=a.chunks, dtype=a.dtype, fill_value=-1.5,
                      compressor={"id": "zstd", "level": 1})
    b[:256, :512] = 7.0  # one chunk of 16 stored
    r = a[...]
    where = r.ctypes.data
    del r
    got = b[...]
    assert got.ctypes.data == where
    want = np.full(a.shape, -1.5, a.dtype)
    want[:256, :512] = 7.0
    np.testing.assert_array_equal(got, want)


def test_other_sizes_and_zeroed_allocations_take_fresh_memory(pool_empty):
    r = new_array((8 << 20,), np.dtype("u1"))
    r[:] = 255
    del r
    held = _core.reuse_held()
    assert held == 8 << 20
    small = new_array((6 << 20,), np.dtype("u1"))  # more than a fifth smaller: not served
    assert _core.reuse_held() == held
    grown = new_array((9 << 20,), np.dtype("u1"))  # bigger: never served by a smaller one
    assert _core.reuse_held() == held
    del small, grown
    r = new_array((7 << 20,), np.dtype("u1"))  # within a fifth: served
    assert r.size == 7 << 20 and _core.reuse_held() == (6 << 20) + (9 << 20)


def test_the_pool_is_bounded_and_can_be_turned_off(pool_empty):
    with exzarr.config.set(reuse_bytes=20 << 20):
        arrays = [new_array((8 << 20,), np.dtype("u1")) for _ in range(6)]
        del arrays
        assert _core.reuse_held() == 16 << 20  # two of 8 MiB fit in 20 MiB
        big = new_array((32 << 20,), np.dtype("u1"))
        del big  # over the limit on its own: unmapped
        assert _core.reuse_held() == 16 << 20
    arrays = [new_array((5 << 20,), np.dtype("u1")) for _ in range(6)]
    del arrays
    assert _core.reuse_held() == 4 * (5 << 20)  # four slots: the 8 MiB ones, oldest, left
    with exzarr.config.set(reuse_bytes=0):
        assert _core.reuse_held() == 0
        r = new_array((5 << 20,), np.dtype("u1"))
        del r
        assert _core.reuse_held() == 0
    assert exzarr.config.get("reuse_bytes") == pool_empty


def test_turning_the_pool_off_gives_memory_back(pool_empty):
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    base = rss()
    arrays = [new_array((64 << 20,), np.dtype("u1")) for _ in range(4)]
    for r in arrays:
        r[::4096] = 1
    del arrays, r
    assert _core.reuse_held() == 256 << 20
    with exzarr.config.set(reuse_bytes=0):
        assert rss() - base < 64 << 20


def test_a_reuse_limit_out_of_range_changes_nothing(pool_empty):
    with pytest.raises(exzarr.InvalidArgumentError):
        exzarr.config.set(reuse_bytes=2**64)
    assert exzarr.config.get("reuse_bytes") == pool_empty
    with exzarr.config.set(threads=1):  # restoring must still work
        pass


def test_shrunk_arrays_are_not_kept(pool_empty):
    r = new_array((8 << 20,), np.dtype("u1"))
    r.resize((1 << 20,), refcheck=False)  # moved to a small mapping; the big one is kept
    assert _core.reuse_held() == 8 << 20
    del r
    assert _core.reuse_held() == 8 << 20  # the small one was not


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_uses_and_sets_the_pool(tmp_path, pool_empty):
    import os

    a, data = _big_array(tmp_path)
    r = a[...]
    where = r.ctypes.data
    del r
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by exit status
        ok = False
        try:
            got = a[...]
            ok = np.array_equal(got, data) and got.ctypes.data == where  # the parent's pool
            del got
            with exzarr.config.set(reuse_bytes=0):
                ok = ok and _core.reuse_held() == 0
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _core.reuse_held() == data.nbytes  # the parent's pool is its own


def test_shrinking_in_place_gives_the_tail_back(pool_empty):
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    r = new_array((256 << 20,), np.dtype("u1"))
    r[:] = 7
    where = r.ctypes.data
    before = rss()
    r.resize((140 << 20,), refcheck=False)  # more than half: kept in place
    assert r.ctypes.data == where and (r == 7).all()
    assert before - rss() > 100 << 20  # the 116 MiB past the end went back
    r.resize((200 << 20,), refcheck=False)  # growing within the mapping: NumPy zero-fills
    assert r.ctypes.data == where and (r[:140 << 20] == 7).all() and not r[140 << 20:].any()
