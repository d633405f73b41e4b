"""zarr's shortcuts: exzarr.zeros/ones/full/empty/array/*_like, open_array, and the
group methods (zeros..., create_dataset, require_dataset, move, members(max_depth)).

Where zarr-python 3 has the same call, its result is the oracle: the same .zarray
fields, and each library reads what the other made.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

import exzarr
from exzarr.errors import (ChunksRequiredError, ContainsArrayError, ContainsGroupError,
                           IncompatibleArrayError, InvalidArgumentError, ReadOnlyError)
from exzarr.storage import MemoryStore, SQLiteStore, ZipStore


def _zarray(path) -> dict:
    with open(path / ".zarray") as f:
        return json.load(f)


@pytest.mark.parametrize("make, fill", [
    (lambda **kw: exzarr.zeros((30, 20), **kw), 0),
    (lambda **kw: exzarr.ones((30, 20), **kw), 1),
    (lambda **kw: exzarr.full((30, 20), 7.5, **kw), 7.5),
    (lambda **kw: exzarr.empty((30, 20), **kw), 0),
])
def test_constructors_write_no_chunks_and_read_their_fill(tmp_path, make, fill):
    a = make(chunks=(8, 8), dtype="f4", storage="filesystem", path=str(tmp_path / "a"))
    assert a.nchunks_initialized == 0
    np.testing.assert_array_equal(a[...], np.full((30, 20), fill, "f4"))
    z = zarr.open_array(str(tmp_path / "a"), mode="r")
    np.testing.assert_array_equal(z[...], np.full((30, 20), fill, "f4"))
    assert _zarray(tmp_path / "a")["fill_value"] == fill


@pytest.mark.parametrize("name, args", [("zeros", ()), ("ones", ()), ("full", (-3,))])
def test_fill_values_match_zarr_python(tmp_path, name, args):
    getattr(exzarr, name)((10, 10), *args, chunks=(5, 5), dtype="i2",
                          storage="filesystem", path=str(tmp_path / "ex"))
    getattr(zarr, name)((10, 10), *args, chunks=(5, 5), dtype="i2",
                        store=str(tmp_path / "zp"), zarr_format=2)
    ours, theirs = _zarray(tmp_path / "ex"), _zarray(tmp_path / "zp")
    assert ours["fill_value"] == theirs["fill_value"]
    assert (ours["shape"], ours["chunks"], ours["dtype"]) == (theirs["shape"], theirs["chunks"],
                                                             theirs["dtype"])
    np.testing.assert_array_equal(exzarr.open(str(tmp_path / "zp"))[...],
                                  exzarr.open(str(tmp_path / "ex"))[...])


def test_chunks_stay_required_except_for_array():
    with pytest.raises(ChunksRequiredError):
        exzarr.zeros((100, 100))
    data = np.arange(5000, dtype="i8").reshape(50, 100)
    a = exzarr.array(data)
    assert a.shape == data.shape and a.dtype == data.dtype
    np.testing.assert_array_equal(a[...], data)
    b = exzarr.array(data, chunks=(10, 10), compressor=None)
    assert b.chunks == (10, 10) and b.compressor is None
    np.testing.assert_array_equal(b[...], data)


def test_like_takes_the_layout_of_a_zarr_array():
    src = exzarr.full((40, 30), 2.5, chunks=(16, 8), dtype=">f8", order="F",
                      compressor={"id": "zlib", "level": 3},
                      filters=[{"id": "delta", "dtype": ">f8"}], dimension_separator="/")
    for fn, fill in [(exzarr.zeros_like, 0), (exzarr.ones_like, 1),
                     (lambda a: exzarr.full_like(a, -1.0), -1), (exzarr.empty_like, 2.5)]:
        b = fn(src)
        assert (b.shape, b.chunks, b.dtype, b.order, b.dimension_separator) == (
            src.shape, src.chunks, src.dtype, "F", "/")
        assert b.compressor.get_config() == src.compressor.get_config()
        assert [f.get_config() for f in b.filters] == [f.get_config() for f in src.filters]
        assert b.fill_value == fill
        np.testing.assert_array_equal(b[...], np.full(src.shape, fill, src.dtype))
    c = exzarr.zeros_like(src, chunks=(40, 30), dtype="i4", filters=None)  # keywords win
    assert c.chunks == (40, 30) and c.dtype == np.dtype("i4")


def test_like_a_numpy_array_takes_shape_and_dtype_only():
    ref = np.ones((6, 7), dtype="u2")
    with pytest.raises(ChunksRequiredError):
        exzarr.zeros_like(ref)
    a = exzarr.ones_like(ref, chunks=(3, 3))
    assert a.shape == (6, 7) and a.dtype == np.dtype("u2")
    np.testing.assert_array_equal(a[...], ref)


def test_open_array_is_open(tmp_path):
    exzarr.array(np.arange(10), storage="filesystem", path=str(tmp_path / "a"))
    a = exzarr.open_array(str(tmp_path / "a"), mode="r")
    assert a.read_only
    np.testing.assert_array_equal(a[...], np.arange(10))


# --------------------------------------------------------------------------- groups


def test_group_constructors_take_the_name_either_way(tmp_path):
    g = exzarr.open_group(str(tmp_path / "g"), mode="w")
    g.zeros("z", shape=(4, 4), chunks=(2, 2), dtype="i4")
    g.ones(name="o", shape=(4,), chunks=(2,))
    g.full("f", 9, shape=(3,), chunks=(3,), dtype="u1")
    g.empty("e", shape=(2,), chunks=(2,))
    g.array("a", np.arange(12).reshape(3, 4))
    g.create_dataset("d", data=np.eye(3), chunks=(2, 2))
    zg = zarr.open_group(str(tmp_path / "g"), mode="r")
    assert sorted(zg.array_keys()) == ["a", "d", "e", "f", "o", "z"]
    np.testing.assert_array_equal(zg["z"][...], np.zeros((4, 4), "i4"))
    np.testing.assert_array_equal(zg["o"][...], np.ones(4))
    np.testing.assert_array_equal(zg["f"][...], np.full(3, 9, "u1"))
    np.testing.assert_array_equal(zg["a"][...], np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(zg["d"][...], np.eye(3))
    with pytest.raises(ContainsArrayError):
        g.zeros("z", shape=(4, 4), chunks=(2, 2))


def test_require_dataset_checks_shape_and_dtype_as_zarr_2():
    """zarr 2's rule: the requested dtype (default float64) must cast safely to the
    existing one; a mismatch is a TypeError."""
    g = exzarr.group()
    a = g.require_dataset("x", shape=(5, 5), dtype="i4", chunks=(5, 5))
    a[...] = 3
    again = g.require_dataset("x", shape=[5, 5], dtype="i2")  # i2 casts safely to i4
    np.testing.assert_array_equal(again[...], np.full((5, 5), 3, "i4"))
    with pytest.raises(IncompatibleArrayError, match="int32"):
        g.require_dataset("x", shape=(5, 5), dtype="i2", exact=True)
    with pytest.raises(TypeError, match="cast"):
        g.require_dataset("x", shape=(5, 5), dtype="i8")
    with pytest.raises(TypeError, match="cast"):
        g.require_dataset("x", shape=(5, 5))  # float64 does not cast to int32
    with pytest.raises(IncompatibleArrayError, match=r"\(5,\)"):
        g.require_dataset("x", 5, dtype="i4")
    assert g.require_dataset("x", (5, 5), "i4", exact=True).dtype == np.dtype("i4")
    f = g.require_dataset("f", shape=(2,), chunks=(2,), dtype="f8")
    assert g.require_dataset("f", shape=(2,)) == f and g.require_dataset("f", (2,), "f4") == f
    g.create_group("sub")
    with pytest.raises(ContainsGroupError):
        g.require_dataset("sub", shape=(1,))
    with pytest.raises(IncompatibleArrayError):
        g.require_array("x", shape=(5, 6))  # zarr 3's require_array raises TypeError too


def _stores(tmp_path):
    return {
        "filesystem": lambda: exzarr.open_group(str(tmp_path / "dir"), mode="w"),
        "memory": lambda: exzarr.group(storage=MemoryStore()),
        "zip": lambda: exzarr.open_group(storage=ZipStore(str(tmp_path / "t.zip"), mode="w")),
        "sqlite": lambda: exzarr.open_group(storage=SQLiteStore(str(tmp_path / "t.db"))),
    }


@pytest.mark.parametrize("kind", ["filesystem", "memory", "zip", "sqlite"])
def test_move_takes_everything_along(tmp_path, kind):
    g = _stores(tmp_path)[kind]()
    data = np.arange(100, dtype="f8").reshape(10, 10)
    sub = g.create_group("sub", attrs={"k": 1})
    sub.array("a", data, chunks=(3, 3), attrs={"units": "m"}, dimension_separator="/")
    sub.create_group("deeper").zeros("z", shape=(2,), chunks=(1,))
    g.move("sub", "far/away/renamed")
    assert "sub" not in g and not list(g.store.list_prefix("sub/"))
    moved = g["far/away/renamed"]
    assert dict(moved.attrs) == {"k": 1}
    np.testing.assert_array_equal(moved["a"][...], data)
    assert dict(moved["a"].attrs) == {"units": "m"}
    assert moved["deeper/z"].shape == (2,)
    assert isinstance(g["far"], exzarr.Group) and isinstance(g["far/away"], exzarr.Group)
    g.move("far/away/renamed/a", "a2")  # an array, out of its group
    np.testing.assert_array_equal(g["a2"][...], data)
    assert "a" not in g["far/away/renamed"]


def test_moved_directories_open_in_zarr_python(tmp_path):
    g = exzarr.open_group(str(tmp_path / "g"), mode="w")
    g.array("a", np.arange(20).reshape(4, 5), chunks=(2, 2))
    g.move("a", "x/y")
    z = zarr.open_group(str(tmp_path / "g"), mode="r")
    np.testing.assert_array_equal(z["x/y"][...], np.arange(20).reshape(4, 5))


def test_move_refuses_what_would_lose_or_loop(tmp_path):
    g = exzarr.open_group(str(tmp_path / "g"), mode="w")
    g.zeros("a", shape=(2,), chunks=(1,))[...] = 5
    g.create_group("b")
    with pytest.raises(KeyError):
        g.move("missing", "c")
    with pytest.raises(ContainsGroupError):
        g.move("a", "b")
    g.create_group("c").zeros("x", shape=(1,), chunks=(1,))
    with pytest.raises(ContainsArrayError):
        g.move("b", "c/x")
    with pytest.raises(InvalidArgumentError):
        g.move("b", "b/inner")
    np.testing.assert_array_equal(g["a"][...], [5, 5])  # nothing was moved
    ro = exzarr.open_group(str(tmp_path / "g"), mode="r")
    with pytest.raises(ReadOnlyError):
        ro.move("a", "z")


def test_members_to_a_depth():
    g = exzarr.group()
    g.zeros("a", shape=(1,), chunks=(1,))
    s = g.create_group("s")
    s.zeros("b", shape=(1,), chunks=(1,))
    s.create_group("t").zeros("c", shape=(1,), chunks=(1,))
    assert [n for n, _ in g.members()] == ["a", "s"]
    assert [n for n, _ in g.members(max_depth=1)] == ["a", "s", "s/b", "s/t"]
    assert [n for n, _ in g.members(max_depth=None)] == ["a", "s", "s/b", "s/t", "s/t/c"]
    assert g.members(max_depth=None)[-1][1].path == "s/t/c"
    with pytest.raises(InvalidArgumentError):
        g.members(max_depth=-1)


def test_move_in_a_consolidated_group_uses_the_real_metadata(tmp_path):
    """The consolidated view may lag the store: the move takes what is stored, and the
    .zmetadata on disk follows the moved nodes."""
    root = str(tmp_path / "g")
    g = exzarr.open_group(root, mode="w")
    a = g.array("grp/old", np.arange(4), chunks=(2,), attrs={"v": 1})
    g.consolidate()
    a.resize(8)
    a[4:] = [4, 5, 6, 7]
    a.attrs["v"] = 2
    g.array("grp/new", np.ones(3), chunks=(3,))  # not in .zmetadata
    gc = exzarr.open_group(root, mode="a", consolidated=True)
    gc.move("grp", "moved")
    plain = exzarr.open_group(root, mode="r", consolidated=False)
    np.testing.assert_array_equal(plain["moved/old"][...], np.arange(8))
    assert dict(plain["moved/old"].attrs) == {"v": 2}
    np.testing.assert_array_equal(plain["moved/new"][...], np.ones(3))
    assert "grp" not in plain
    cons = exzarr.open_group(root, mode="r", consolidated=True)
    assert "moved/old" in cons and "grp" not in cons
    np.testing.assert_array_equal(cons["moved/old"][...][:4], np.arange(4))
    z = zarr.open_consolidated(root, mode="r", zarr_format=2)
    assert "moved" in z and "grp" not in z


def test_move_onto_empty_folders_left_by_a_deleted_nested_array(tmp_path):
    g = exzarr.open_group(str(tmp_path / "g"), mode="w")
    g.array("x", np.arange(4).reshape(2, 2), chunks=(1, 1), dimension_separator="/")
    del g["x"]  # leaves the folders x/0 and x/1
    g.array("a", np.arange(3), chunks=(3,))
    g.move("a", "x")
    np.testing.assert_array_equal(g["x"][...], np.arange(3))
    (tmp_path / "g" / "y" / "0").mkdir(parents=True)
    (tmp_path / "g" / "y" / "0" / "note.txt").write_text("not ours")
    with pytest.raises(ContainsArrayError):  # a file there: refused, nothing moved
        g.move("x", "y")
    np.testing.assert_array_equal(g["x"][...], np.arange(3))


def test_move_prefix_takes_prefixes_only():
    s = MemoryStore()
    s.set("a/k", b"1")
    s.set("ab/k", b"2")
    with pytest.raises(ValueError):
        s.move_prefix("a", "q")
    s.move_prefix("a/", "q/")
    assert sorted(s.list_prefix("")) == ["ab/k", "q/k"]


def test_metadata_names_are_not_member_names():
    g = exzarr.group()
    g.zeros("a", shape=(1,), chunks=(1,))
    for bad in (".zattrs", "b/.zarray", ".zmetadata", ".zgroup"):
        with pytest.raises(KeyError):
            g.move("a", bad)
        with pytest.raises(KeyError):
            g.zeros(bad, shape=(1,), chunks=(1,))
    assert list(g) == ["a"]


@pytest.mark.parametrize("mode", ["a", "w", "w-", "x"])
def test_open_array_creates_as_zarr_does(tmp_path, mode):
    where = tmp_path / "a"
    a = exzarr.open_array(str(where), mode=mode, shape=(4,), chunks=(2,), dtype="i4")
    a[...] = [1, 2, 3, 4]
    z = zarr.open_array(str(where), mode="r")
    np.testing.assert_array_equal(z[...], [1, 2, 3, 4])
    if mode == "a":  # opened, not replaced
        again = exzarr.open_array(str(where), shape=(9,), chunks=(3,))
        np.testing.assert_array_equal(again[...], [1, 2, 3, 4])
    elif mode == "w":
        again = exzarr.open_array(str(where), mode="w", shape=(2,), chunks=(2,), dtype="i4")
        np.testing.assert_array_equal(again[...], [0, 0])
    else:
        with pytest.raises(ContainsArrayError):
            exzarr.open_array(str(where), mode=mode, shape=(4,), chunks=(2,))


def test_open_array_with_a_store_and_path(tmp_path):
    store = MemoryStore()
    exzarr.open_array(store, path="x/y", mode="w", shape=(3,), chunks=(3,))[...] = 7
    assert exzarr.open_array(store, path="x/y", mode="r")[...].tolist() == [7, 7, 7]
    exzarr.open_group(str(tmp_path / "g"), mode="w")
    with pytest.raises(ContainsGroupError):
        exzarr.open_array(str(tmp_path / "g"), shape=(1,), chunks=(1,))
    with pytest.raises(exzarr.PathNotFoundError):
        exzarr.open_array(str(tmp_path / "missing"), mode="r")
    with pytest.raises(InvalidArgumentError):
        exzarr.open_array(str(tmp_path / "a"), mode="q")


def test_like_and_array_take_a_zarr_arrays_layout(tmp_path):
    z = zarr.create_array(str(tmp_path / "z"), shape=(10, 6), chunks=(5, 3), dtype="f4",
                          fill_value=2.5, order="F", zarr_format=2)
    for fn, fill in [(exzarr.zeros_like, 0), (exzarr.empty_like, 2.5),
                     (lambda a: exzarr.full_like(a, 9), 9)]:
        b = fn(z)
        assert (b.shape, b.chunks, b.dtype, b.order, b.fill_value) == ((10, 6), (5, 3),
                                                                      np.dtype("f4"), "F", fill)
    assert exzarr.array(z).chunks == (5, 3)
    assert exzarr.array(np.zeros((10, 6))).chunks == (10, 6)


def test_a_consolidated_move_under_new_groups_lists_them(tmp_path):
    root = str(tmp_path / "g")
    g = exzarr.open_group(root, mode="w")
    g.array("a", np.arange(3), chunks=(3,))
    g.consolidate()
    exzarr.open_group(root, mode="a", consolidated=True).move("a", "new/deeper/a")
    cons = exzarr.open_group(root, mode="r", consolidated=True)
    assert [n for n, _ in cons.members(max_depth=None)] == ["new", "new/deeper", "new/deeper/a"]
    z = zarr.open_group(root, mode="r", zarr_format=2, use_consolidated=True)
    np.testing.assert_array_equal(z["new/deeper/a"][...], np.arange(3))


def test_metadata_is_the_zarray_document(tmp_path):
    a = exzarr.zeros((6, 4), chunks=(3, 2), dtype="i2", storage="filesystem",
                     path=str(tmp_path / "a"))
    assert a.metadata is a.meta
    assert (a.metadata.shape, a.metadata.chunks, a.metadata.fill_value) == ((6, 4), (3, 2), 0)
    assert a.metadata.to_json() == _zarray(tmp_path / "a")


def test_a_move_through_a_plain_handle_updates_consolidated_metadata(tmp_path):
    root = str(tmp_path / "g")
    g = exzarr.open_group(root, mode="w")
    g.array("s/a", np.arange(1, 5), chunks=(2,))
    g.consolidate()
    exzarr.open_group(root, mode="a")["s"].move("a", "b")  # from a subgroup
    r = exzarr.open_group(root, mode="r")  # consolidated by default
    assert [n for n, _ in r.members(max_depth=None)] == ["s", "s/b"]
    np.testing.assert_array_equal(r["s/b"][...], np.arange(1, 5))


class _FailingStore(MemoryStore):
    def __init__(self, fail_on: str) -> None:
        super().__init__()
        self.fail_on = fail_on

    def set(self, key: str, value: bytes) -> None:
        if key == self.fail_on:
            raise OSError("disk full")
        super().set(key, value)


def test_a_move_failing_halfway_through_a_batch_leaves_nothing_behind():
    store = _FailingStore("b/0.1")
    g = exzarr.group(storage=store)
    g.array("a", np.arange(16).reshape(4, 4), chunks=(2, 2))
    with pytest.raises(OSError, match="disk full"):
        g.move("a", "b")
    assert not list(store.list_prefix("b/")) and "b" not in g
    np.testing.assert_array_equal(g["a"][...], np.arange(16).reshape(4, 4))
    store.fail_on = ""
    g.move("a", "b")  # and a retry works
    np.testing.assert_array_equal(g["b"][...], np.arange(16).reshape(4, 4))


@pytest.mark.parametrize("storage, name", [("zip", "t.zip"), ("sqlite", "t.db"),
                                           ("filesystem", "dir")])
def test_open_array_path_is_inside_the_store(tmp_path, storage, name):
    where = str(tmp_path / name)
    a = exzarr.open_array(where, storage=storage, path="grp/arr", mode="w", shape=(3,),
                          chunks=(3,), dtype="i2")
    a[...] = [1, 2, 3]
    if storage == "zip":
        a.store.close()
    again = exzarr.open_array(where, storage=storage, path="grp/arr", mode="r")
    np.testing.assert_array_equal(again[...], [1, 2, 3])


def test_open_array_without_a_store_is_in_memory():
    a = exzarr.open_array(shape=(2,), chunks=(2,), dtype="u1")
    a[...] = 5
    assert isinstance(a.store, MemoryStore) and a[...].tolist() == [5, 5]


def test_like_takes_a_zarr_2_arrays_codecs(tmp_path):
    import numcodecs

    z = zarr.create_array(str(tmp_path / "z"), shape=(10, 6), chunks=(5, 3), dtype="f4",
                          compressors=numcodecs.Zlib(level=1),
                          filters=[numcodecs.Delta(dtype="<f4")], zarr_format=2)
    b = exzarr.zeros_like(z)
    assert b.compressor.get_config() == {"id": "zlib", "level": 1}
    assert [f.get_config()["id"] for f in b.filters] == ["delta"]
    z3 = zarr.create_array(str(tmp_path / "z3"), shape=(4,), chunks=(2,), dtype="i2")
    c = exzarr.zeros_like(z3)  # a v3 array's codecs are not numcodecs': exzarr's default
    assert c.chunks == (2,) and c.compressor.get_config()["id"] == "zstd"


def test_group_array_takes_the_datas_chunks_as_exzarr_array_does(tmp_path):
    z = zarr.create_array(str(tmp_path / "z"), shape=(100, 60), chunks=(10, 7), dtype="i4",
                          zarr_format=2)
    g = exzarr.group()
    assert g.array("a", z).chunks == (10, 7)
    assert g.create_dataset("b", data=z).chunks == (10, 7)
    assert exzarr.array(z).chunks == (10, 7)


def test_members_refuses_a_depth_that_is_not_an_int():
    g = exzarr.group()
    for bad in ("x", 1.5, True, -1):
        with pytest.raises(InvalidArgumentError):
            g.members(max_depth=bad)


def test_metadata_reads_as_zarrs():
    a = exzarr.zeros((6, 4), chunks=(3, 2), dtype="i2")
    assert a.metadata.ndim == 2 and a.metadata.zarr_format == 2
    assert a.metadata.to_dict() == a.metadata.to_json()
