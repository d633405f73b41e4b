"""save() never destroys what it is not replacing; create() refuses what cannot work;
every error derives from the builtin an ``except`` clause would name."""

from __future__ import annotations

import os

import numpy as np
import pytest

import exzarr
from exzarr.errors import (ContainsArrayError, ContainsGroupError, InvalidArgumentError,
                           InvalidFilterConfigError, InvalidMetadataError, MetadataNotFoundError)


def _array_at(path, values, chunks=2):
    a = exzarr.create(shape=(len(values),), chunks=(chunks,), dtype="i4", storage="filesystem",
                      path=str(path), attrs={"name": os.path.basename(path)})
    a[...] = values
    return a


def test_saving_into_the_arrays_own_parent_is_refused_and_loses_nothing(tmp_path):
    parent = tmp_path / "par"
    child = _array_at(parent / "child", [1, 2, 3, 4])
    (parent / "unrelated.txt").write_text("keep me")
    with pytest.raises(ContainsArrayError, match="lies inside that path"):
        exzarr.save(child, path=str(parent))
    assert (parent / "unrelated.txt").read_text() == "keep me"
    np.testing.assert_array_equal(exzarr.load(path=str(parent / "child")), [1, 2, 3, 4])
    # The same through a Store object for the parent and a path inside it.
    from exzarr.storage.directory import DirectoryStore

    store = DirectoryStore(str(parent))
    with pytest.raises(ContainsArrayError):
        exzarr.save(child, path="", storage=store)
    np.testing.assert_array_equal(exzarr.load(path=str(parent / "child")), [1, 2, 3, 4])


def test_saving_over_an_array_replaces_only_that_array(tmp_path):
    target = tmp_path / "t"
    _array_at(target, list(range(10)), chunks=3)  # chunks 0..3
    (target / "notes.md").write_text("mine")
    inner = _array_at(target / "nested", [5, 6])
    src = exzarr.create(shape=(3,), chunks=(3,), dtype="f8", attrs={"v": 2})
    src[...] = [0.5, 1.5, 2.5]
    exzarr.save(src, path=str(target))
    b = exzarr.open(path=str(target), mode="r")
    np.testing.assert_array_equal(b[...], [0.5, 1.5, 2.5])
    assert dict(b.attrs) == {"v": 2}
    assert sorted(os.listdir(target)) == [".zarray", ".zattrs", "0", "nested", "notes.md"]
    np.testing.assert_array_equal(exzarr.load(path=str(target / "nested")), inner[...])
    # A NumPy array replaces it the same way.
    exzarr.save(np.arange(4, dtype="u2"), path=str(target))
    np.testing.assert_array_equal(exzarr.load(path=str(target)), np.arange(4, dtype="u2"))
    assert "notes.md" in os.listdir(target) and "nested" in os.listdir(target)


def test_save_refuses_groups_and_files_it_would_overwrite(tmp_path):
    a = exzarr.create(shape=(4,), chunks=(2,), dtype="i4")
    a[...] = [1, 2, 3, 4]
    g = exzarr.open_group(str(tmp_path / "g"), mode="w")
    g.create_array("x", shape=(1,), chunks=(1,), dtype="u1")[...] = [9]
    with pytest.raises(ContainsGroupError, match="is a Zarr group"):
        exzarr.save(a, path=str(tmp_path / "g"))
    with pytest.raises(ContainsGroupError):
        exzarr.save(np.zeros(3), path=str(tmp_path / "g"))
    assert exzarr.open(str(tmp_path / "g" / "x"))[0] == 9
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "1").write_text("not a chunk")
    with pytest.raises(ContainsArrayError, match="would be overwritten"):
        exzarr.save(a, path=str(stray))
    assert (stray / "1").read_text() == "not a chunk"
    (stray / "1").unlink()
    (stray / "README").write_text("beside it")
    exzarr.save(a, path=str(stray))
    np.testing.assert_array_equal(exzarr.load(path=str(stray)), [1, 2, 3, 4])
    assert (stray / "README").read_text() == "beside it"


def test_save_into_a_path_inside_the_array_and_onto_itself(tmp_path):
    a = _array_at(tmp_path / "a", [1, 2, 3, 4])
    exzarr.save(a, path=str(tmp_path / "a" / "copy"))
    np.testing.assert_array_equal(exzarr.load(path=str(tmp_path / "a" / "copy")), [1, 2, 3, 4])
    np.testing.assert_array_equal(exzarr.load(path=str(tmp_path / "a")), [1, 2, 3, 4])
    exzarr.save(a, path=str(tmp_path / "a"))
    np.testing.assert_array_equal(exzarr.load(path=str(tmp_path / "a")), [1, 2, 3, 4])


def test_save_copies_arrays_bigger_than_one_batch(tmp_path, monkeypatch):
    import exzarr.api

    monkeypatch.setattr(exzarr.api, "_COPY_BATCH", 3)
    a = exzarr.create(shape=(20, 9), chunks=(3, 2), dtype="i8", dimension_separator="/")
    data = np.arange(180).reshape(20, 9)
    a[...] = data
    exzarr.save(a, path=str(tmp_path / "s"))
    b = exzarr.open(str(tmp_path / "s"), mode="r")
    np.testing.assert_array_equal(b[...], data)
    assert b.nchunks_initialized == a.nchunks_initialized == 35


@pytest.mark.parametrize("dtype, filters, what", [
    ("int32", [("delta", {"dtype": "int64"})], "does not match the int32"),
    ("int32", [("quantize", {"digits": 2, "dtype": "float64"})], "does not match"),
    ("float32", [("fixedscaleoffset", {"offset": 0, "scale": 1, "dtype": "int32"})], "does not match"),
    ("float64", [("shuffle", {"elementsize": 3})], "whole number"),
    ("float64", [("fixedscaleoffset", {"offset": 0, "scale": 10, "dtype": "f8", "astype": "u1"}),
                 ("delta", {"dtype": "int16"})], "does not match the uint8"),
])
def test_create_refuses_filters_that_do_not_fit(dtype, filters, what, tmp_path):
    with pytest.raises(InvalidFilterConfigError, match=what) as info:
        exzarr.create(shape=(10,), chunks=(5,), dtype=dtype, filters=filters,
                      storage="filesystem", path=str(tmp_path / "f"))
    assert info.value.filter_id == filters[-1][0]
    assert not (tmp_path / "f").exists() or not os.listdir(tmp_path / "f")


@pytest.mark.parametrize("dtype, filters", [
    ("uint32", [("delta", {"dtype": "int32"})]),
    ("float64", [("shuffle", {"elementsize": 8})]),
    ("float64", [("fixedscaleoffset", {"offset": 0, "scale": 10, "dtype": "f8", "astype": "u1"}),
                 ("delta", {"dtype": "u1"})]),
])
def test_create_takes_filters_that_fit(dtype, filters):
    a = exzarr.create(shape=(10,), chunks=(5,), dtype=dtype, filters=filters)
    a[...] = np.arange(10)
    np.testing.assert_array_equal(a[...], np.arange(10))


def test_arrays_with_mismatched_filters_from_other_tools_still_open(tmp_path):
    import zarr
    from numcodecs import Delta

    z = zarr.create_array(str(tmp_path / "z"), shape=(8,), chunks=(4,), dtype="<i4",
                          filters=[Delta(dtype="<i8")], compressors=None, zarr_format=2)
    z[...] = np.arange(8, dtype="<i4")
    np.testing.assert_array_equal(exzarr.open(str(tmp_path / "z"), mode="r")[...], np.arange(8))


@pytest.mark.parametrize("call, builtin", [
    (lambda p: exzarr.create(shape=(3,), chunks=(1,), dtype="no-such-type"), ValueError),
    (lambda p: exzarr.create(shape=(3,), chunks=(1,), order="X"), ValueError),
    (lambda p: exzarr.create(shape=(3,), chunks=(1,), dimension_separator=":"), ValueError),
    (lambda p: exzarr.create(shape=(3,), chunks=(1,), dtype="i4", fill_value="abc"), ValueError),
    (lambda p: exzarr.create(shape=(3,), chunks=(1,), storage="no-such-backend"), ValueError),
    (lambda p: exzarr.create(shape=(3,), chunks=(1,), storage="filesystem"), ValueError),
    (lambda p: exzarr.open(str(p), mode="w"), ValueError),
    (lambda p: exzarr.open_group(str(p), mode="x"), ValueError),
])
def test_argument_errors_are_value_errors(call, builtin, tmp_path):
    with pytest.raises(InvalidArgumentError) as info:
        call(tmp_path)
    assert isinstance(info.value, builtin) and info.value.code == "invalid_argument"


def test_bad_stored_metadata_names_where_it_is(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / ".zarray").write_text('{"zarr_format": 2, "shape": [')
    with pytest.raises(InvalidMetadataError, match="not valid JSON") as info:
        exzarr.open(str(bad))
    assert isinstance(info.value, ValueError) and str(bad) in str(info.value)
    (bad / ".zarray").write_text('{"zarr_format": 2, "shape": [3], "dtype": "<i4"}')
    with pytest.raises(InvalidMetadataError, match="'chunks'"):
        exzarr.open(str(bad))
    notzip = tmp_path / "x.zip"
    notzip.write_bytes(b"not a zip archive at all")
    with pytest.raises(InvalidMetadataError, match="is not a zip archive"):
        exzarr.open(str(notzip), storage="zip")
    assert notzip.read_bytes() == b"not a zip archive at all"


def test_a_missing_group_is_a_file_not_found_error():
    from exzarr.group import Group
    from exzarr.storage.memory import MemoryStore

    with pytest.raises(MetadataNotFoundError) as info:
        Group(MemoryStore(), "nowhere")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("dtype, empty", [("|S4", b""), ("<U3", "")])
def test_string_arrays_fill_with_empty_strings_by_default(dtype, empty, tmp_path):
    import zarr

    a = exzarr.create(shape=(3,), chunks=(2,), dtype=dtype, storage="filesystem",
                      path=str(tmp_path / "s"))
    assert a[0] == empty and a.fill_value == empty
    a[1] = "ab" if dtype[1] == "U" else b"ab"
    reopened = exzarr.open(str(tmp_path / "s"), mode="r")
    assert list(reopened[...]) == list(a[...]) == [empty, a[1], empty]
    z = zarr.open_array(str(tmp_path / "s"), mode="r")
    assert list(z[...]) == [empty, a[1], empty]


def test_filter_tuples_take_atoms_in_their_options():
    a = exzarr.create(shape=(6,), chunks=(3,), dtype=":int64", filters=[(":delta", {"dtype": ":int64"})])
    a[...] = [1, 3, 6, 10, 15, 21]
    assert a.filters[0].get_config()["dtype"] == "<i8"
    np.testing.assert_array_equal(a[...], [1, 3, 6, 10, 15, 21])


def _aliases(tmp_path):
    """Pairs of (array, save target) naming the same array through another Store."""
    from exzarr.storage.directory import DirectoryStore
    from exzarr.storage.memory import MemoryStore
    from exzarr.storage.sqlite import SQLiteStore

    d = tmp_path / "d"
    _array_at(d, [1, 2, 3, 4])
    yield exzarr.open(f"file://{d}"), dict(path=str(d))
    real = tmp_path / "real"
    _array_at(real / "a", [1, 2, 3, 4])
    (tmp_path / "link").symlink_to(real)
    yield exzarr.open(str(tmp_path / "link" / "a")), dict(path=str(real / "a"))
    g = exzarr.open_group(str(tmp_path / "g"), mode="w")
    g.create_array("a", shape=(4,), chunks=(2,), dtype="i4")[...] = [1, 2, 3, 4]
    g.consolidate()
    yield exzarr.open_group(str(tmp_path / "g"), mode="r+", consolidated=True)["a"], \
        dict(path="a", storage=DirectoryStore(str(tmp_path / "g")))
    shared: dict = {}
    a = exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage=MemoryStore(shared))
    a[...] = [1, 2, 3, 4]
    yield a, dict(path="", storage=MemoryStore(shared))
    db = str(tmp_path / "x.sqlite")
    s1 = SQLiteStore(db)
    a = exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage=s1, path="a")
    a[...] = [1, 2, 3, 4]
    s1.close()
    yield exzarr.open(storage=SQLiteStore(db), path="a"), dict(path="a", storage=SQLiteStore(db))


def test_saving_an_array_onto_itself_through_another_store_keeps_it(tmp_path):
    for a, where in _aliases(tmp_path):
        exzarr.save(a, **where)
        store = where.get("storage")
        again = (exzarr.open(storage=store, path=where["path"], mode="r") if store is not None
                 else exzarr.open(where["path"], mode="r"))
        np.testing.assert_array_equal(again[...], [1, 2, 3, 4], err_msg=repr(where))


def test_replacing_nested_chunks_with_flat_ones(tmp_path):
    t = tmp_path / "t"
    old = exzarr.create(shape=(4, 4), chunks=(2, 2), dtype="i4", dimension_separator="/",
                        storage="filesystem", path=str(t))
    old[...] = np.arange(16).reshape(4, 4)
    new = exzarr.create(shape=(6,), chunks=(2,), dtype="i4")
    new[...] = [9, 8, 7, 6, 5, 4]
    exzarr.save(new, path=str(t))  # keys 0, 1, 2 where directories 0/ and 1/ were
    np.testing.assert_array_equal(exzarr.load(str(t)), [9, 8, 7, 6, 5, 4])
    assert sorted(os.listdir(t)) == [".zarray", "0", "1", "2"]


def test_replacing_keeps_arrays_nested_under_numeric_names(tmp_path):
    t = tmp_path / "t"
    exzarr.create(shape=(20, 4), chunks=(2, 2), dtype="i4", dimension_separator="/",
                  storage="filesystem", path=str(t))[...] = 1
    _array_at(t / "5", [4, 3, 2, 1])  # a nested array whose name looks like a chunk row
    exzarr.save(np.arange(3, dtype="i1"), path=str(t))
    np.testing.assert_array_equal(exzarr.load(str(t / "5")), [4, 3, 2, 1])
    np.testing.assert_array_equal(exzarr.load(str(t)), [0, 1, 2])


def test_chunks_outside_the_old_grid_are_not_the_old_arrays(tmp_path):
    t = tmp_path / "t"
    exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage="filesystem", path=str(t))[...] = 1
    (t / "7").write_text("not a chunk of a 2-chunk array")
    exzarr.save(np.arange(2, dtype="i1"), path=str(t))
    assert (t / "7").read_text() == "not a chunk of a 2-chunk array"
    longer = exzarr.create(shape=(16,), chunks=(2,), dtype="i1")  # its chunk 7 is taken
    longer[...] = np.arange(16)
    with pytest.raises(ContainsArrayError, match="'7'"):
        exzarr.save(longer, path=str(t))
    assert (t / "7").read_text() == "not a chunk of a 2-chunk array"
    np.testing.assert_array_equal(exzarr.load(str(t)), [0, 1])


def test_saving_a_numpy_array_refuses_to_overwrite_files(tmp_path):
    t = tmp_path / "t"
    t.mkdir()
    (t / "0").write_text("mine")
    with pytest.raises(ContainsArrayError, match="would be overwritten"):
        exzarr.save(np.arange(5), path=str(t))
    assert (t / "0").read_text() == "mine"


def test_a_file_that_is_not_a_zip_is_still_a_bad_zip_file(tmp_path):
    import zipfile

    p = tmp_path / "x.zip"
    p.write_bytes(b"plain text")
    with pytest.raises(zipfile.BadZipFile):
        exzarr.open(str(p), storage="zip")


@pytest.mark.parametrize("dtype, filters", [
    ("float32", [("delta", {"dtype": "<i4"})]),  # integer delta over float bits: exact
    ("float16", [("delta", {"dtype": "<u2"})]),
    ("M8[s]", [("delta", {"dtype": "<i8"})]),
    (">f8", [("fixedscaleoffset", {"offset": 0, "scale": 10, "dtype": ">f8", "astype": ">i4"})]),
    ("float64", [("astype", {"encode_dtype": "<f4", "decode_dtype": "<f8"})]),
])
def test_create_takes_bitwise_and_matching_value_filters(dtype, filters):
    a = exzarr.create(shape=(6,), chunks=(3,), dtype=dtype, filters=filters)
    values = np.arange(6).astype(dtype)
    a[...] = values
    np.testing.assert_array_equal(a[...], values)


@pytest.mark.parametrize("dtype, filters", [
    (">f8", [("fixedscaleoffset", {"offset": 0, "scale": 10, "dtype": "<f8", "astype": "<i4"})]),
    ("int32", [("delta", {"dtype": "<f4"})]),
    ("float64", [("astype", {"encode_dtype": "<f4", "decode_dtype": "<i8"})]),
])
def test_create_refuses_value_filters_of_another_dtype(dtype, filters):
    with pytest.raises(InvalidFilterConfigError, match="does not match"):
        exzarr.create(shape=(6,), chunks=(3,), dtype=dtype, filters=filters)


def test_files_of_another_kind_are_named_as_such(tmp_path):
    import sqlite3
    import zipfile

    text = tmp_path / "plain.txt"
    text.write_text("not a database")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(InvalidMetadataError, match="not an exzarr/zarr-python SQLite store"):
        exzarr.open(str(text), storage="sqlite")
    with pytest.raises(InvalidMetadataError, match="a directory, not a database file"):
        exzarr.open(str(folder), storage="sqlite")
    with pytest.raises(InvalidMetadataError, match="it is a folder: open a directory store"):
        exzarr.open(str(folder), storage="zip")
    notzip = tmp_path / "x.zip"
    notzip.write_text("text")
    with pytest.raises(zipfile.BadZipFile):
        exzarr.open(str(notzip), storage="zip")
    locked = sqlite3.DatabaseError("database is locked")  # a transient state stays as it is
    from exzarr.storage.sqlite import _NOT_OURS

    assert not any(m in str(locked) for m in _NOT_OURS)


def test_attributes_must_be_an_object_and_their_repr_never_fails():
    a = exzarr.create(shape=(2,), chunks=(2,))
    a.store.set(".zattrs", b"[1, 2]")
    a.attrs.refresh()
    with pytest.raises(InvalidMetadataError, match="not an object"):
        a.attrs["x"]
    assert "unreadable" in repr(a.attrs)
    a.store.set(".zattrs", b"{broken")
    a.attrs.refresh()
    assert "not valid JSON" in repr(a.attrs)
