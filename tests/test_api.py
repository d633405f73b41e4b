"""The public API: create/open/save/load, Array properties, errors with their codes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import exzarr
from exzarr import errors
from exzarr.storage.memory import MemoryStore


def test_create_defaults_match_the_original():
    a = exzarr.create(shape=(10, 10), chunks=(5, 5))
    assert a.dtype == np.dtype("float64")
    assert a.compressor.get_config() == {"id": "zstd", "level": 0}
    assert a.fill_value == 0
    assert a.store.backend == "memory"
    assert a.order == "C"
    np.testing.assert_array_equal(a[...], np.zeros((10, 10)))


@pytest.mark.parametrize(
    "name, expected",
    [("int8", "|i1"), ("int16", "<i2"), ("int32", "<i4"), ("int64", "<i8"),
     ("uint8", "|u1"), ("uint16", "<u2"), ("uint32", "<u4"), ("uint64", "<u8"),
     ("float32", "<f4"), ("float64", "<f8"), (":float64", "<f8"), (">i4", ">i4"),
     ("bool", "|b1"), ("complex64", "<c8"), (np.dtype(">c16"), ">c16")],
)
def test_dtype_names(name, expected):
    a = exzarr.create(shape=(4,), chunks=(2,), dtype=name)
    assert a.dtype.str == expected


def test_filesystem_roundtrip_and_metadata(tmp_path):
    path = tmp_path / "arr"
    a = exzarr.create(shape=(1000, 1000), chunks=(100, 100), dtype="float64",
                      compressor="zlib", storage="filesystem", path=str(path))
    data = np.random.default_rng(0).random((1000, 1000))
    a[...] = data
    doc = json.loads((path / ".zarray").read_text())
    assert doc == {
        "zarr_format": 2, "shape": [1000, 1000], "chunks": [100, 100], "dtype": "<f8",
        "compressor": {"id": "zlib", "level": 1}, "fill_value": 0, "order": "C",
        "filters": None, "dimension_separator": ".",
    }
    assert sorted(os.listdir(path))[:3] == [".zarray", "0.0", "0.1"]
    b = exzarr.open(path=str(path))
    np.testing.assert_array_equal(b[...], data)
    loaded = exzarr.load(path=str(path))
    assert loaded.tobytes() == data.tobytes()


def test_save_writes_metadata_and_chunks(tmp_path):
    a = exzarr.create(shape=(30, 20), chunks=(7, 6), dtype="int32", attrs={"units": "K"})
    a[3:25, 2:] = np.arange(22 * 18, dtype="int32").reshape(22, 18)
    exzarr.save(a, path=str(tmp_path / "saved"))
    b = exzarr.open(path=str(tmp_path / "saved"), mode="r")
    np.testing.assert_array_equal(b[...], a[...])
    assert b.attrs["units"] == "K"
    assert b.nchunks_initialized == a.nchunks_initialized


def test_save_numpy_array(tmp_path):
    data = np.arange(100, dtype="u2").reshape(10, 10)
    exzarr.save(data, path=str(tmp_path / "np"))
    np.testing.assert_array_equal(exzarr.load(path=str(tmp_path / "np")), data)


def test_array_properties():
    a = exzarr.create(shape=(10, 7), chunks=(4, 3), dtype=">i2", fill_value=-1)
    assert (a.ndim, a.size, a.nbytes, a.nchunks) == (2, 70, 140, 9)
    assert a.nchunks_initialized == 0
    a[0, 0] = 5
    assert a.nchunks_initialized == 1
    assert a.nbytes_stored > 0
    assert a[0, 0] == 5 and a[9, 6] == -1
    assert np.asarray(a).shape == (10, 7)
    assert len(a) == 10
    assert "shape=(10, 7)" in repr(a)
    info = str(a.info)
    for word in ("Shape", "Chunk shape", "Compressor", "No. bytes stored", "Storage ratio",
                 "Chunks initialized : 1/9"):
        assert word in info


def test_fill_value_chunks_are_not_stored_unless_asked():
    a = exzarr.create(shape=(8,), chunks=(4,), fill_value=3)
    a[:] = 3
    assert a.nchunks_initialized == 0
    a[:4] = 1
    assert a.nchunks_initialized == 1
    a[:4] = 3  # back to fill: the old chunk is deleted
    assert a.nchunks_initialized == 0
    b = exzarr.create(shape=(8,), chunks=(4,), fill_value=3, write_empty_chunks=True)
    b[:] = 3
    assert b.nchunks_initialized == 2


def test_nan_fill_value_chunks_are_not_stored():
    a = exzarr.create(shape=(8,), chunks=(4,), dtype="f4", fill_value=float("nan"))
    assert np.isnan(a[...]).all()
    a[:] = np.nan
    assert a.nchunks_initialized == 0
    a[5] = 1.0
    assert a.nchunks_initialized == 1


def test_resize_and_append():
    a = exzarr.create(shape=(10, 4), chunks=(3, 4), dtype="i4")
    a[...] = np.arange(40).reshape(10, 4)
    a.resize((4, 4))
    assert a.shape == (4, 4)
    assert a.nchunks_initialized == 2
    a.append(np.full((5, 4), 7))
    assert a.shape == (9, 4)
    expected = np.concatenate([np.arange(16).reshape(4, 4), np.full((5, 4), 7)])
    np.testing.assert_array_equal(a[...], expected)


def test_zero_dimensional_array():
    a = exzarr.create(shape=(), chunks=(), dtype="f8", fill_value=1.5)
    assert a[...] == 1.5
    a[...] = 4.0
    assert a[()] == 4.0
    assert a.store.contains("0")


@pytest.mark.parametrize(
    "kwargs, cls, code",
    [
        ({"chunks": (2,)}, errors.ShapeRequiredError, "shape_required"),
        ({"shape": (2,)}, errors.ChunksRequiredError, "chunks_required"),
        ({"shape": "ab", "chunks": (2,)}, errors.InvalidShapeError, "invalid_shape"),
        ({"shape": (-1,), "chunks": (2,)}, errors.InvalidShapeError, "invalid_shape"),
        ({"shape": (4, 4), "chunks": (2,)}, errors.InvalidChunksError, "invalid_chunks"),
        ({"shape": (4,), "chunks": (0,)}, errors.InvalidChunksError, "invalid_chunks"),
        ({"shape": (4,), "chunks": (2,), "filters": [("nonesuch", {})]},
         errors.UnknownFilterError, "unknown_filter"),
        ({"shape": (4,), "chunks": (2,), "filters": [("delta", {"dtype": "S3"})]},
         errors.InvalidFilterConfigError, "invalid_filter_config"),
        ({"shape": (4,), "chunks": (2,), "compressor": {"id": "zstd", "level": "x"}},
         errors.InvalidFilterConfigError, "invalid_filter_config"),
        ({"shape": (4,), "chunks": (2,), "compressor": "nonesuch"},
         errors.UnknownCodecError, "unknown_codec"),
    ],
)
def test_create_errors_have_the_original_codes(kwargs, cls, code):
    with pytest.raises(cls) as info:
        exzarr.create(**kwargs)
    assert info.value.code == code
    assert isinstance(info.value, (ValueError, exzarr.ExZarrError))


def test_unknown_filter_names_it_and_bad_config_names_the_reason():
    with pytest.raises(errors.UnknownFilterError) as info:
        exzarr.create(shape=(4,), chunks=(2,), filters=[("nonesuch", {})])
    assert info.value.filter_id == "nonesuch"
    with pytest.raises(errors.InvalidFilterConfigError) as info:
        exzarr.create(shape=(4,), chunks=(2,), compressor={"id": "blosc", "cname": "nope"})
    assert info.value.filter_id == "blosc" and "nope" in info.value.reason


def test_failed_create_writes_nothing(tmp_path):
    with pytest.raises(errors.UnknownFilterError):
        exzarr.create(shape=(4,), chunks=(2,), storage="filesystem", path=str(tmp_path / "x"),
                      filters=[("nonesuch", {})])
    assert not (tmp_path / "x").exists()


def test_open_errors(tmp_path):
    with pytest.raises(errors.PathNotFoundError) as info:
        exzarr.open(path=str(tmp_path / "missing"))
    assert info.value.code == "path_not_found"
    assert isinstance(info.value, FileNotFoundError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.MetadataNotFoundError) as info:
        exzarr.open(path=str(tmp_path / "empty"))
    assert info.value.code == "metadata_not_found"
    (tmp_path / "grp").mkdir()
    (tmp_path / "grp" / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(errors.MetadataNotFoundError, match="group"):
        exzarr.open(path=str(tmp_path / "grp"))


def test_existing_array_is_not_overwritten_by_accident(tmp_path):
    p = str(tmp_path / "a")
    a = exzarr.create(shape=(4,), chunks=(2,), storage="filesystem", path=p)
    a[:] = 1
    with pytest.raises(exzarr.ExZarrError, match="overwrite=True"):
        exzarr.create(shape=(4,), chunks=(2,), storage="filesystem", path=p)
    np.testing.assert_array_equal(exzarr.load(path=p), np.ones(4))
    b = exzarr.create(shape=(4,), chunks=(2,), storage="filesystem", path=p, overwrite=True)
    np.testing.assert_array_equal(b[...], np.zeros(4))


def test_read_only(tmp_path):
    p = str(tmp_path / "a")
    exzarr.create(shape=(4,), chunks=(2,), storage="filesystem", path=p)
    a = exzarr.open(path=p, mode="r")
    with pytest.raises(errors.ReadOnlyError) as info:
        a[0] = 1
    assert info.value.code == "read_only"
    with pytest.raises(errors.ReadOnlyError):
        a.attrs["x"] = 1


def test_attrs_persist(tmp_path):
    p = str(tmp_path / "a")
    a = exzarr.create(shape=(4,), chunks=(2,), storage="filesystem", path=p, attrs={"a": 1})
    a.attrs["name"] = "température"
    b = exzarr.open(path=p)
    assert dict(b.attrs) == {"a": 1, "name": "température"}


def test_bad_broadcast_is_a_value_error():
    a = exzarr.create(shape=(4, 4), chunks=(2, 2))
    with pytest.raises(ValueError, match="broadcast"):
        a[:2, :2] = np.ones((3, 3))
    np.testing.assert_array_equal(a[...], np.zeros((4, 4)))


def test_ambiguous_advanced_indexing_is_refused_clearly():
    a = exzarr.create(shape=(4, 4), chunks=(2, 2))
    with pytest.raises(IndexError, match="oindex.*vindex"):
        a[[0, 1], None]
    with pytest.raises(IndexError, match="basic indices.*oindex"):
        a.get_basic_selection([0, 1])
    for bad in (1.0, "x", {1}, np.array(1.0)):
        with pytest.raises(IndexError, match="valid basic indices"):
            a[bad, 0]
    with pytest.raises(IndexError, match="bare boolean"):
        a[True, 0]


def test_directory_writes_are_atomic_renames(tmp_path):
    p = tmp_path / "a"
    a = exzarr.create(shape=(64,), chunks=(8,), storage="filesystem", path=str(p))
    a[:] = np.arange(64)
    # No temporary files are left behind and every chunk is complete.
    assert not [n for n in os.listdir(p) if n.startswith(".tmp-")]
    assert sorted(n for n in os.listdir(p) if not n.startswith(".")) == [str(i) for i in range(8)]


@pytest.mark.parametrize("fill", [0.0, float("nan")])
@pytest.mark.parametrize("order", ["C", "F"])
def test_uncompressed_chunks_written_from_strided_rows(tmp_path, fill, order):
    # Whole chunks of an uncompressed array go to their files straight from the
    # value's rows (no gather): the files must hold exactly the chunk bytes, and a
    # chunk equal to the fill value everywhere must not be stored (or must be removed).
    p = tmp_path / "a"
    a = exzarr.create(shape=(12, 20), chunks=(4, 5), dtype=">f8", compressor=None,
                      fill_value=fill, order=order, storage="filesystem", path=str(p))
    data = np.arange(240, dtype=">f8").reshape(12, 20)
    data[4:8, 5:10] = fill  # chunk 1.1 is all fill
    a[...] = data
    for i in range(3):
        for j in range(4):
            chunk = data[4 * i:4 * i + 4, 5 * j:5 * j + 5]
            f = p / f"{i}.{j}"
            if (i, j) == (1, 1):
                assert not f.exists()
            else:
                assert f.read_bytes() == chunk.tobytes(order=order)
    a[...] = data[::-1]  # overwrite every stored chunk in place
    np.testing.assert_array_equal(exzarr.open(path=str(p))[...], data[::-1])
    a[...] = fill  # every chunk back to fill: every file removed
    assert a.nchunks_initialized == 0
    b = exzarr.create(shape=(12, 20), chunks=(4, 5), dtype=">f8", compressor=None,
                      fill_value=fill, storage="filesystem", path=str(tmp_path / "b"),
                      write_empty_chunks=True)
    b[...] = fill
    assert b.nchunks_initialized == 12


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_reading_into_out_from_a_directory(tmp_path, compressor):
    # The core reads chunk files straight into the caller's buffer: contiguous, strided
    # and reversed; repeated reads reuse it.
    a = exzarr.create(shape=(40, 30), chunks=(8, 10), dtype="<f4", compressor=compressor,
                      storage="filesystem", path=str(tmp_path / "a"))
    data = np.arange(1200, dtype="<f4").reshape(40, 30)
    a[...] = data
    b = exzarr.open(path=str(tmp_path / "a"), mode="r")
    out = np.empty((40, 30), "<f4")
    for _ in range(2):
        assert b.get_basic_selection(Ellipsis, out=out) is out
        np.testing.assert_array_equal(out, data)
    host = np.zeros((80, 31), "<f4")
    view = host[::-2, 1:]
    b.get_basic_selection(Ellipsis, out=view)
    np.testing.assert_array_equal(view, data)
    assert not host[-2::-2].any() and not host[:, 0].any()
    part = np.empty((3, 5), "<f4")
    b.get_basic_selection((slice(5, 20, 5), slice(None, None, -6)), out=part)
    np.testing.assert_array_equal(part, data[5:20:5, ::-6])


def test_a_failed_write_keeps_the_chunks_it_finished(tmp_path):
    # Small chunks are written in runs; when a later chunk fails (here a partly covered
    # chunk whose stored bytes are corrupt) the chunks already encoded are still written,
    # the failing one and those after it stay as they were.
    exzarr.config.set(threads=1)
    p = tmp_path / "a"
    a = exzarr.create(shape=(100,), chunks=(10,), dtype="i4", compressor="lz4",
                      storage="filesystem", path=str(p))
    a[:] = 1
    (p / "5").write_bytes(b"\x00" * 12)
    with pytest.raises(errors.CorruptChunkError) as info:
        a[3:55] = 2
    assert info.value.key == "5"
    assert (p / "5").read_bytes() == b"\x00" * 12
    b = exzarr.open(path=str(p))
    np.testing.assert_array_equal(b[:50], [1] * 3 + [2] * 47)
    np.testing.assert_array_equal(b[60:], [1] * 40)
    assert not [n for n in os.listdir(p) if n.startswith(".tmp-")]


def test_chunk_keys_as_long_as_the_file_system_allows(tmp_path):
    # 32 dimensions of 7-digit chunk indices make 255-character keys, NAME_MAX on
    # common file systems: the chunk files and their temporary names must both fit.
    nd = 32
    p = tmp_path / "a"
    a = exzarr.create(shape=(10**7,) * nd, chunks=(1,) * nd, dtype="i1", storage="filesystem",
                      path=str(p))
    sel = (slice(9_999_990, 9_999_999),) + (9_999_999,) * (nd - 1)
    a[sel] = np.arange(1, 10, dtype="i1")
    names = sorted(n for n in os.listdir(p) if not n.startswith("."))
    assert len(names) == 9 and all(len(n) == 255 for n in names)
    np.testing.assert_array_equal(exzarr.open(path=str(p))[sel], np.arange(1, 10))


@pytest.mark.parametrize("whole", [True, False], ids=["core-path", "store-set"])
def test_a_directory_at_a_chunk_path_is_left_alone(tmp_path, whole):
    # Replacing a chunk exchanges it with the file at its path; a directory there
    # (a stray folder, or the chunk tree of another layout) must stay where it was,
    # contents and all, and the write must fail as a plain rename would.
    p = tmp_path / "a"
    a = exzarr.create(shape=(4, 4), chunks=(2, 2), dtype="i4", compressor=None,
                      storage="filesystem", path=str(p))
    (p / "1.0").mkdir()
    (p / "1.0" / "keep").write_bytes(b"data")
    with pytest.raises(IsADirectoryError):
        if whole:
            a[...] = 7  # whole chunks: written by the core
        else:
            a.store.set("1.0", b"\x00" * 16)
    assert (p / "1.0" / "keep").read_bytes() == b"data"
    assert not [n for n in os.listdir(p) if n.startswith(".tmp-")]


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("bad", ["0.0", "3.5", "7.7"])
def test_threads_sharing_a_read_name_the_corrupt_chunk(tmp_path, threads, bad):
    # Worker threads take chunk files from one shared cursor: whichever thread meets
    # the corrupt chunk must name that chunk, not a position in its own share.
    exzarr.config.set(threads=threads)  # (the autouse fixture restores it)
    p = tmp_path / "a"
    a = exzarr.create(shape=(64, 64), chunks=(8, 8), dtype="i4", compressor="lz4",
                      storage="filesystem", path=str(p))
    data = np.arange(64 * 64, dtype="i4").reshape(64, 64)
    a[...] = data
    np.testing.assert_array_equal(exzarr.open(path=str(p))[...], data)
    (p / bad).write_bytes(b"\xff" * 40)
    with pytest.raises(errors.CorruptChunkError) as info:
        exzarr.open(path=str(p))[...]
    assert info.value.key == bad
    i = int(bad.split(".")[0])  # the rows above the corrupt chunk still read
    np.testing.assert_array_equal(exzarr.open(path=str(p))[:8 * i, :], data[:8 * i, :])


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_thread_counts_agree(threads):
    exzarr.config.set(threads=threads)
    a = exzarr.create(shape=(100, 100), chunks=(7, 9), dtype="i8")
    data = np.arange(10000).reshape(100, 100)
    a[...] = data
    np.testing.assert_array_equal(a[3:97:2, ::-3], data[3:97:2, ::-3])


class _CountingStore(MemoryStore):
    """A memory store that records how many chunks each batched call moves."""

    def __init__(self) -> None:
        super().__init__()
        self.sets: list[int] = []
        self.gets: list[int] = []
        self.fail_key: str | None = None

    def get_many(self, keys):
        keys = list(keys)
        self.gets.append(len(keys))
        return super().get_many(keys)

    def set_many(self, items):
        items = list(items)
        if any(k == self.fail_key for k, _ in items):
            raise OSError(28, "No space left on device", self.fail_key)
        self.sets.append(len(items))
        super().set_many(items)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_store_batches_stay_small_on_every_thread(threads):
    # Threads share out the chunks a few at a time: a big write never holds the encoded
    # bytes of a thread's whole share before storing them, and a read fetches a few
    # chunks at a time as well.
    exzarr.config.set(threads=threads)
    store = _CountingStore()
    a = exzarr.create(shape=(64, 64), chunks=(4, 8), dtype="i4", storage=store)
    data = np.arange(64 * 64, dtype="i4").reshape(64, 64)
    a[...] = data
    assert sum(store.sets) == 128 and max(store.sets) <= 8
    np.testing.assert_array_equal(a[...], data)
    assert sum(store.gets) == 128 and max(store.gets) <= 8


def test_small_work_stays_on_the_calling_thread(monkeypatch, tmp_path):
    exzarr.config.set(threads=2, task_bytes=256 << 10)  # the default
    pooled = []
    real = exzarr.config.run_all
    monkeypatch.setattr(exzarr.config, "run_all", lambda fn, args: pooled.append(len(args))
                        or real(fn, args))
    for storage, path in [("memory", None), ("filesystem", str(tmp_path / "a"))]:
        small = exzarr.create(shape=(100, 100), chunks=(50, 50), dtype="f8", storage=storage,
                              path=path)  # 4 chunks of 20 kB
        small[...] = 1.0
        assert small[...].sum() == 10_000 and pooled == []
        big = exzarr.create(shape=(512, 512), chunks=(256, 256), dtype="f8", storage=storage,
                            path=None if path is None else path + "-big")  # 4 of 512 KiB
        big[...] = 2.0
        assert big[...].sum() == 2 * 512 * 512 and pooled == [2, 2]
        pooled.clear()


def test_a_store_sets_its_own_batch_size():
    exzarr.config.set(threads=2)
    store = _CountingStore()
    store.batch_chunks = 3
    a = exzarr.create(shape=(10, 64), chunks=(10, 2), dtype="u1", storage=store)
    a[...] = 7
    assert sum(store.sets) == 32 and max(store.sets) == 3
    # Fewer chunks than threads times the batch: split so that every thread has some.
    store.batch_chunks = 100
    store.gets.clear()
    np.testing.assert_array_equal(a[...], 7)
    assert store.gets == [16, 16]


def test_a_failing_store_batch_fails_the_write_and_leaves_whole_chunks():
    exzarr.config.set(threads=2)
    store = _CountingStore()
    a = exzarr.create(shape=(64, 64), chunks=(4, 8), dtype="i4", storage=store)
    store.fail_key = "5.3"
    with pytest.raises(OSError, match="No space"):
        a[...] = 1
    # Each chunk is either written whole or left as it was (fill), and the failing
    # batch stored nothing.
    assert sum(store.sets) <= 120
    assert set(np.unique(a[...])) <= {0, 1}
    assert store.get("5.3") is None
    store.fail_key = None
    a[...] = 2
    assert (a[...] == 2).all()


def test_dimension_separator_slash(tmp_path):
    p = tmp_path / "a"
    a = exzarr.create(shape=(4, 4), chunks=(2, 2), storage="filesystem", path=str(p),
                      dimension_separator="/")
    a[...] = 1
    assert (p / "1" / "1").is_file()
    np.testing.assert_array_equal(exzarr.open(path=str(p))[...], np.ones((4, 4)))


def test_chunk_cache_serves_repeated_reads_and_sees_writes():
    a = exzarr.create(shape=(100, 100), chunks=(10, 10), dtype="f4", cache_bytes=1 << 20)
    data = np.random.default_rng(1).random((100, 100), dtype="f4")
    a[...] = data
    np.testing.assert_array_equal(a[5:25, 5:25], data[5:25, 5:25])
    misses = a.cache.misses
    np.testing.assert_array_equal(a[6:24, 6:24], data[6:24, 6:24])
    assert a.cache.misses == misses and a.cache.hits >= 9
    a[10:20, 10:20] = -1
    data[10:20, 10:20] = -1
    np.testing.assert_array_equal(a[5:25, 5:25], data[5:25, 5:25])


def test_chunk_cache_respects_its_byte_limit():
    a = exzarr.create(shape=(100,), chunks=(10,), dtype="f8", cache_bytes=200)
    a[...] = np.arange(100.0)
    np.testing.assert_array_equal(a[...], np.arange(100.0))
    assert a.cache.nbytes <= 200 and len(a.cache) == 2


@pytest.mark.parametrize("compressor", ["zstd", "lz4", {"id": "zstd", "level": 1, "checksum": True},
                                        "zlib", "blosc", None])
@pytest.mark.parametrize("order", ["C", "F"])
def test_window_reads_decode_only_what_they_need_and_stay_exact(compressor, order):
    rng = np.random.default_rng(5)
    data = rng.normal(size=(96, 80)).astype("f4")
    a = exzarr.create(shape=data.shape, chunks=(32, 40), dtype="f4", compressor=compressor,
                      order=order)
    a[...] = data
    for _ in range(30):
        i, j = rng.integers(0, 90), rng.integers(0, 75)
        np.testing.assert_array_equal(a[i:i + 7, j:j + 5], data[i:i + 7, j:j + 5])
        np.testing.assert_array_equal(a[i, ::-3], data[i, ::-3])


def test_zarr_style_array_and_group_api():
    g = exzarr.group()
    a = g.create_array("sub/x", shape=(7, 3), chunks=(2, 3), dtype="i4")
    a[...] = np.arange(21).reshape(7, 3)
    assert (a.name, a.basename) == ("/sub/x", "x")
    assert a == g["sub/x"] and hash(a) == hash(g["sub/x"]) and a != g["sub"]
    assert g["sub"] == exzarr.open_group(storage=g.store, path="sub") and g["sub"] != g
    rows = list(a)  # along the first axis, as NumPy and zarr-python iterate
    assert len(rows) == 7 and all(np.array_equal(r, e) for r, e in zip(rows, a[...]))
    with pytest.raises(TypeError, match="0-d"):
        list(exzarr.create(shape=(), chunks=(), dtype="i4"))
    with pytest.raises(ValueError, match="copy"):
        np.asarray(a, copy=False)
    np.testing.assert_array_equal(np.asarray(a, dtype="f8"), a[...].astype("f8"))
    with pytest.raises(AttributeError):
        a.attrs = {"lost": True}  # as in zarr-python: attributes change through attrs
    a.update_attributes({"units": "m"})
    g.update_attributes({"title": "t"})
    assert exzarr.open(storage=g.store, path="sub/x").attrs["units"] == "m"
    assert dict(exzarr.open_group(storage=g.store).attrs) == {"title": "t"}
    sub = g["sub"]
    sub.create_group("inner")
    assert (sub.array_keys(), sub.group_keys(), sub.nmembers) == (["x"], ["inner"], 2)
    assert [n for n, _ in sub.items()] == ["inner", "x"] and len(sub.values()) == 2
    assert sub.require_array("x", shape=(7, 3), dtype="i4") == a
    with pytest.raises(exzarr.errors.ContainsArrayError, match="shape"):
        sub.require_array("x", shape=(8, 3))
    made = sub.require_array("y", shape=(2,), chunks=(2,), dtype="u1")
    assert made.shape == (2,) and "y" in sub
    assert isinstance(g.info, str) and "members" in g.info
    assert repr(g.tree()) == str(g.tree()) and "└── " in repr(g.tree())


def test_a_refused_item_leaves_an_object_array_unchanged():
    s = exzarr.create(shape=(4,), chunks=(2,), dtype=str)
    s[...] = ["w", "x", "y", "z"]
    with pytest.raises(TypeError, match="str items"):
        s[...] = ["a", "b", "c", 5]
    assert list(s[...]) == ["w", "x", "y", "z"]


def test_create_from_data_as_zarr_python_create_array():
    a = exzarr.create(data=np.arange(12, dtype="i2").reshape(3, 4))
    assert (a.shape, a.dtype, a.chunks) == ((3, 4), np.dtype("i2"), (3, 4))
    np.testing.assert_array_equal(a[...], np.arange(12).reshape(3, 4))
    b = exzarr.create(data=[1, 2, 3], dtype="f4", chunks=(2,))
    assert (b.dtype, b.chunks) == (np.dtype("f4"), (2,)) and b[...].tolist() == [1, 2, 3]
    g = exzarr.group()
    g.create_array("x", data=np.ones((5, 5)))
    g["y"] = np.zeros(3, "u1")
    assert g["x"][...].sum() == 25 and g["y"].dtype == np.dtype("u1")
    assert exzarr.create(shape=(2,), chunks=(2,)).dtype == np.dtype("f8")  # the default


def test_blocks_and_islice_as_zarr_python():
    data = np.arange(70).reshape(7, 10)
    a = exzarr.create(data=data, chunks=(3, 4))
    np.testing.assert_array_equal(a.blocks[2, 0], data[6:7, 0:4])
    np.testing.assert_array_equal(a.blocks[-1, -1], data[6:, 8:])
    np.testing.assert_array_equal(a.blocks[1:3], data[3:])
    np.testing.assert_array_equal(a.blocks[..., 1], data[:, 4:8])
    a.blocks[0, 1] = -1
    assert (a[0:3, 4:8] == -1).all() and a[0, 3] == 3 and a[3, 4] == 34
    for bad in ((3, 0), (0, 0, 0), (slice(0, 2, 2),), (1.5,)):
        with pytest.raises(IndexError):
            a.blocks[bad]
    rows = list(a.islice(2, 6))
    assert len(rows) == 4 and np.array_equal(rows[0], a[2]) and np.array_equal(rows[-1], a[5])
    assert [r.tolist() for r in a.islice(-2)] == a[5:].tolist()
