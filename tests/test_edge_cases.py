"""Edge cases found by probing against the peers: huge chunk shapes, structured dtypes
kept through rewrites, the cache after resize, fill values out of range, append axes,
multi-member gzip chunks, vlen-array object arrays."""

from __future__ import annotations

import json
import subprocess

import numcodecs
import numpy as np
import pytest

import exzarr
from exzarr import _core
from exzarr.errors import (CorruptChunkError, InvalidArgumentError, InvalidChunksError,
                           InvalidMetadataError)
from exzarr.metadata import MAX_CHUNK_BYTES, dtype_from_json, dtype_to_json
from tests.interop.conftest import zarr2_python


def _zarray(path, **doc):
    path.mkdir(parents=True, exist_ok=True)
    base = {"zarr_format": 2, "shape": [10], "chunks": [5], "dtype": "<f8", "compressor": None,
            "fill_value": 0, "order": "C", "filters": None}
    (path / ".zarray").write_text(json.dumps({**base, **doc}))


def _zarr2(code: str) -> str:
    proc = subprocess.run([str(zarr2_python()), "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_chunks_whose_byte_size_overflows_are_refused(tmp_path):
    with pytest.raises(InvalidChunksError, match="choose smaller chunks"):
        exzarr.create(shape=(10,), chunks=(2**62,), dtype="f8", compressor=None)
    _zarray(tmp_path / "big", chunks=[2**61 + 1])
    (tmp_path / "big" / "0").write_bytes(bytes(8))
    with pytest.raises(InvalidChunksError):
        exzarr.open(str(tmp_path / "big"))
    exzarr.create(shape=(10,), chunks=(MAX_CHUNK_BYTES // 8,), dtype="f8")  # the limit itself
    # The core checks on its own too: a chunk shape whose size wraps 64 bits.
    out = np.zeros(4, "f8")
    plan = np.zeros((0, 1, 4), np.int64)
    with pytest.raises(ValueError, match="exceeds"):
        _core.decode_into(_core.Pipeline([], None), [], out, plan, (2**61 + 1,), False,
                          bytes(8), None, np.zeros(0, np.uint8), None)


STRUCTS = [
    [("a", "<i4"), ("b", ">f8")],
    [("a", [("x", "<i2"), ("y", "u1")]), ("b", "<f8", (2,))],
]


@pytest.mark.parametrize("fields", STRUCTS)
def test_structured_dtypes_survive_resize_and_save(fields, tmp_path):
    src, copy = tmp_path / "z2", tmp_path / "copy"
    _zarr2(f"""
import zarr, numpy as np
z = zarr.open_array({str(src)!r}, mode="w", shape=(5,), chunks=(2,), dtype={fields!r})
v = np.zeros(5, z.dtype); v["b"] = 1.5
z[:] = v
""")
    a = exzarr.open(str(src))
    assert a.dtype == np.dtype(fields)
    assert dtype_from_json(json.loads(json.dumps(dtype_to_json(a.dtype)))) == a.dtype
    a.resize(7)
    exzarr.save(a, path=str(copy))
    out = _zarr2(f"""
import zarr
for p in ({str(src)!r}, {str(copy)!r}):
    z = zarr.open_array(p, mode="r")
    print(z.dtype.descr == __import__("numpy").dtype({fields!r}).descr, z.shape, z[1]["b"])
""")
    assert out.split("\n")[:2] == ["True (7,) 1.5" if len(fields[1]) == 2 else "True (7,) [1.5 1.5]"] * 2


def test_the_cache_forgets_chunks_resize_deletes():
    a = exzarr.create(shape=(10,), chunks=(2,), dtype="i4", fill_value=-1, cache_bytes=1 << 20)
    a[:] = np.arange(10)
    a[:]  # fills the cache
    a.resize(4)
    a.resize(10)
    np.testing.assert_array_equal(a[:], [0, 1, 2, 3, -1, -1, -1, -1, -1, -1])


@pytest.mark.parametrize("dtype, fill", [("u1", 300), ("i1", -129), ("u1", -1), ("u8", -1)])
def test_fill_values_out_of_range(dtype, fill, tmp_path):
    p = tmp_path / "a"
    with pytest.raises(InvalidArgumentError, match="outside the range"):
        exzarr.create(shape=(4,), chunks=(2,), dtype=dtype, fill_value=fill,
                      storage="filesystem", path=str(p))
    assert not (p / ".zarray").exists()
    _zarray(p, dtype=np.dtype(dtype).str, fill_value=fill)
    with pytest.raises(InvalidMetadataError, match="outside the range"):
        exzarr.open(str(p))


def test_append_refuses_axes_the_array_does_not_have():
    b = exzarr.create(shape=(2, 2), chunks=(2, 2), dtype="i4")
    with pytest.raises(np.exceptions.AxisError):
        b.append(np.ones((2, 2)), axis=2)
    assert b.shape == (2, 2)
    assert b.append(np.ones((2, 3)), axis=-1) == (2, 5)
    with pytest.raises(ValueError, match="0-d"):
        exzarr.create(shape=(), chunks=(), dtype="i4").append(np.ones(()))


def test_gzip_chunks_of_several_members():
    g = numcodecs.GZip()
    a = exzarr.create(shape=(100,), chunks=(100,), dtype="f8", compressor="gzip")
    a.store.set("0", g.encode(np.arange(50.0)) + g.encode(np.arange(50.0, 100.0)))
    np.testing.assert_array_equal(a[:], np.arange(100.0))
    assert bytes(a.compressor.decode(a.store.get("0"))) == np.arange(100.0).tobytes()
    for bad in (g.encode(np.arange(50.0)) + b"junk", g.encode(np.arange(50.0)) * 3):
        a.store.set("0", bad)
        with pytest.raises(CorruptChunkError) as info:
            a[:]
        assert info.value.key == "0"


def test_vlen_array_object_arrays_both_ways_with_zarr2(tmp_path):
    theirs, ours = tmp_path / "z2", tmp_path / "ex"
    _zarr2(f"""
import zarr, numcodecs, numpy as np
z = zarr.open_array({str(theirs)!r}, mode="w", shape=(5,), chunks=(2,), dtype=object,
                    object_codec=numcodecs.VLenArray("<i4"))
v = np.empty(4, object)
v[0], v[1], v[2], v[3] = np.arange(3), np.array([], "i4"), np.arange(5) * 2, np.array([7])
z[:4] = v
""")
    got = exzarr.open(str(theirs), mode="r")[:]
    assert [list(x) for x in got[:4]] == [[0, 1, 2], [], [0, 2, 4, 6, 8], [7]]
    assert got[4] == 0  # zarr-python 2's fill
    b = exzarr.create(shape=(5,), chunks=(2,), dtype=object, storage="filesystem",
                      path=str(ours), filters=[("vlen-array", {"dtype": "<i4"})])
    b[:4] = got[:4]
    out = _zarr2(f"""
import zarr
print([x.tolist() if hasattr(x, "tolist") else x for x in zarr.open_array({str(ours)!r}, mode="r")[:]])
""")
    assert out.strip() == "[[0, 1, 2], [], [0, 2, 4, 6, 8], [7], 0]"
    assert exzarr.open(str(ours)).filters[0].get_config() == {"id": "vlen-array", "dtype": "<i4"}


def test_gzip_chunks_padded_with_zeros():
    g = numcodecs.GZip()
    a = exzarr.create(shape=(100,), chunks=(100,), dtype="<i4", compressor="gzip")
    one = g.encode(np.arange(100, dtype="<i4"))
    two = g.encode(np.arange(50, dtype="<i4")) + bytes(7) + g.encode(np.arange(50, 100, dtype="<i4"))
    for stored in (one + bytes(16), two, two + bytes(3)):
        assert bytes(g.decode(stored)) == np.arange(100, dtype="<i4").tobytes()  # numcodecs agrees
        a.store.set("0", stored)
        np.testing.assert_array_equal(a[:], np.arange(100))


def test_vlen_array_items_as_numcodecs_stores_them():
    from exzarr.codecs import VLenArray

    items = np.empty(4, object)
    items[:] = [0, None, np.array([1, 2]), 0.0]
    ours = VLenArray("<i4").encode(items)
    assert ours == numcodecs.VLenArray("<i4").encode(items)
    assert [list(x) for x in numcodecs.VLenArray("<i4").decode(ours)] == [[0], [], [1, 2], [0]]


def test_one_element_of_a_ragged_array_takes_an_array():
    a = exzarr.create(shape=(4,), chunks=(2,), dtype=object,
                      filters=[{"id": "vlen-array", "dtype": "<i4"}])
    a[1] = np.array([5, 6, 7])
    a[2] = [8, 9]
    got = a[:]
    assert [list(np.atleast_1d(x)) for x in got] == [[0], [5, 6, 7], [8, 9], [0]]
    s = exzarr.create(shape=(3,), chunks=(3,), dtype=str)
    s[0] = "x"
    s[1:] = "y"
    assert list(s[:]) == ["x", "y", "y"]


@pytest.mark.parametrize("dtype, given, expected", [
    ("f8", "NaN", np.nan), ("f4", "1.5", 1.5), ("f8", b"1", 1.0), ("i4", 1.5, 1),
    ("i4", "7", 7), ("?", 2, True), ("c16", "1+2j", 1 + 2j),
    ("M8[s]", 0, np.datetime64(0, "s")), ("m8[s]", 5, np.timedelta64(5, "s")),
])
def test_fill_values_are_cast_as_a_reopened_array_gives_them(dtype, given, expected, tmp_path):
    p = str(tmp_path / "a")
    a = exzarr.create(shape=(2,), chunks=(2,), dtype=dtype, fill_value=given,
                      storage="filesystem", path=p)
    again = exzarr.open(p, mode="r")
    for fill in (a.fill_value, again.fill_value):
        assert np.array(fill, dtype=dtype).tobytes() == np.array(expected, dtype=dtype).tobytes()
    assert a[...].tobytes() == again[...].tobytes() == np.full(2, expected, dtype).tobytes()


@pytest.mark.parametrize("dtype, given", [
    ("f8", 1 + 2j), ("f8", [1, 2]), ("?", [1, 2]), ("S3", [1, 2]), ("U3", [1, 2]),
    ("i4", "x"), (str, np.nan), (bytes, "text"),
])
def test_fill_values_that_do_not_fit_write_nothing(dtype, given, tmp_path):
    p = tmp_path / "a"
    with pytest.raises(InvalidArgumentError):
        exzarr.create(shape=(2,), chunks=(2,), dtype=dtype, fill_value=given,
                      storage="filesystem", path=str(p))
    assert not (p / ".zarray").exists()


def test_config_checks_values_and_restores_in_a_with_block():
    before = exzarr.config.get("threads")
    for bad in ({"threads": -3}, {"threads": "abc"}, {"task_bytes": None}, {"cache_bytes": -1},
                {"threads": 1.5}, {"cache_bytes": True}):
        with pytest.raises(InvalidArgumentError):
            exzarr.config.set(**bad)
    assert exzarr.config.get("threads") == before  # nothing changed
    with pytest.raises(KeyError, match="known: threads"):
        exzarr.config.get("nope")
    with exzarr.config.set({"threads": 1}, task_bytes=5):
        assert (exzarr.config.get("threads"), exzarr.config.get("task_bytes")) == (1, 5)
        assert exzarr.config.thread_count() == 1
    assert exzarr.config.get("threads") == before and exzarr.config.get("task_bytes") == 0


def test_fills_of_one_element_arrays_voids_and_big_endian_datetimes(tmp_path):
    a = exzarr.create(shape=(2,), chunks=(2,), dtype="f8", fill_value=np.array([1.5]))
    assert a.fill_value == 1.5
    v = exzarr.create(shape=(2,), chunks=(2,), dtype="V4", fill_value=b"ab")
    assert v[0].tobytes() == b"ab\0\0"
    for bad in (b"abcdef", 5, "ab"):
        with pytest.raises(InvalidArgumentError):
            exzarr.create(shape=(2,), chunks=(2,), dtype="V4", fill_value=bad)
    p = str(tmp_path / "dt")
    exzarr.create(shape=(2,), chunks=(2,), dtype=">M8[ns]", fill_value="2020-01-01",
                  storage="filesystem", path=p)
    assert json.loads((tmp_path / "dt" / ".zarray").read_text())["fill_value"] == \
        1577836800000000000  # the count of units, as zarr-python 2 writes it
    assert _zarr2(f"import zarr; print(zarr.open_array({p!r}, mode='r')[0])").strip() == \
        "2020-01-01T00:00:00.000000000"
    assert exzarr.open(p).fill_value == np.datetime64("2020-01-01", "ns")


def test_config_takes_numpy_ints_and_zero_threads_and_leaves_other_threads_settings():
    import threading

    exzarr.config.set(threads=np.int64(3))
    assert exzarr.config.get("threads") == 3 and type(exzarr.config.get("threads")) is int
    exzarr.config.set(threads=0)
    assert exzarr.config.get("threads") is None  # the default
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with exzarr.config.set(threads=1):
            entered.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    t.start()
    entered.wait(10)
    exzarr.config.set(threads=4)  # set while the other thread's block runs
    leave.set()
    t.join()
    assert exzarr.config.get("threads") == 4  # its exit did not undo this


def test_equal_arrays_hash_equal_and_other_storages_differ(tmp_path):
    d = exzarr.create(shape=(3,), chunks=(3,), dtype="i4", storage="filesystem",
                      path=str(tmp_path / "a"))
    again = exzarr.open(str(tmp_path / "a"))
    assert d == again and hash(d) == hash(again) and len({d, again}) == 1
    m = exzarr.create(shape=(3,), chunks=(3,), dtype="i4", path=f"memory://{tmp_path}/a")
    assert m != d and len({m, d}) == 2
    assert isinstance(d == np.zeros(3), np.ndarray)  # NumPy compares the values then


@pytest.mark.parametrize("dtype, value", [("U3", "a"), ("S2", b"z"), ("U3", "abc")])
def test_a_length_1_string_array_fills_one_element_as_numpy_does(dtype, value):
    a = exzarr.create(shape=(), chunks=(), dtype=dtype)
    a[...] = np.array([value], dtype=dtype)
    assert a[()] == value
    b = exzarr.create(shape=(4,), chunks=(2,), dtype=dtype)
    b[..., 0] = np.array([value], dtype=dtype)
    want = np.zeros(4, dtype=dtype)
    want[..., 0] = np.array([value], dtype=dtype)
    np.testing.assert_array_equal(b[...], want)
