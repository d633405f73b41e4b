"""Groups: hierarchy, attributes, tree, consolidated metadata; interop with zarr-python 3."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

import exzarr
from exzarr import errors
from exzarr.storage import MemoryStore


def build(g):
    g.attrs.update({"title": "sea surface", "Conventions": "CF-1.8"})
    t = g.create_array("ocean/temp", shape=(4, 6), chunks=(2, 3), dtype="f4", fill_value=np.nan,
                       attrs={"_ARRAY_DIMENSIONS": ["y", "x"], "units": "K"})
    t[...] = np.arange(24, dtype="f4").reshape(4, 6)
    g.create_group("ocean/empty")
    g.create_array("time", shape=(4,), chunks=(4,), dtype="<M8[s]")[...] = np.arange(4).astype("M8[D]")
    return g


def test_hierarchy_membership_and_tree():
    g = build(exzarr.group())
    assert list(g) == ["ocean", "time"]
    assert "ocean/temp" in g and "ocean/nope" not in g and 3 not in g
    assert isinstance(g["ocean"], exzarr.Group)
    assert isinstance(g["ocean/temp"], exzarr.Array)
    assert g["ocean"]["temp"].attrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
    assert [n for n, _ in g["ocean"].members()] == ["empty", "temp"]
    assert g.tree().splitlines() == [
        "/", "├── ocean", "│   ├── empty", "│   └── temp (4, 6) float32", "└── time (4,) datetime64[s]"]
    with pytest.raises(KeyError):
        g["missing"]
    del g["ocean/empty"]
    assert "ocean/empty" not in g


def test_attrs_are_persisted_on_change(tmp_path):
    g = exzarr.open_group(str(tmp_path / "g"), mode="w")
    g.attrs["a"] = 1
    g.attrs["b"] = [1, 2]
    del g.attrs["a"]
    assert json.loads((tmp_path / "g" / ".zattrs").read_text()) == {"b": [1, 2]}
    assert dict(exzarr.open_group(str(tmp_path / "g"), mode="r").attrs) == {"b": [1, 2]}


def test_open_modes_and_clear_errors(tmp_path):
    p = str(tmp_path / "g")
    with pytest.raises(errors.PathNotFoundError):
        exzarr.open_group(p, mode="r")
    g = exzarr.open_group(p, mode="w-")
    g.create_array("a", shape=(2,), chunks=(2,))
    with pytest.raises(exzarr.ExZarrError):
        exzarr.open_group(p, mode="w-")
    with pytest.raises(errors.ContainsArrayError, match="exzarr.open"):
        exzarr.open_group(p + "/a")
    with pytest.raises(errors.MetadataNotFoundError, match="open_group"):
        exzarr.open(path=p)
    g.create_group("sub")
    with pytest.raises(errors.ContainsGroupError):
        g.create_group("sub")
    with pytest.raises(errors.ContainsArrayError):
        g.create_group("a")
    assert exzarr.open_group(p, mode="w").keys() == []


def test_consolidated_metadata_opens_the_tree_in_one_read(tmp_path):
    store = MemoryStore()
    g = build(exzarr.open_group(storage=store, mode="w"))
    doc = g.consolidate()
    assert doc["zarr_consolidated_format"] == 1
    assert set(doc["metadata"]) >= {".zgroup", ".zattrs", "ocean/.zgroup", "ocean/temp/.zarray",
                                     "ocean/temp/.zattrs", "time/.zarray"}

    class Counting(MemoryStore):
        reads = 0

        def get(self, key):
            Counting.reads += 1
            return super().get(key)

    counting = Counting(store._data)
    c = exzarr.open_group(storage=counting, mode="r", consolidated=True)
    Counting.reads = 0
    assert c.tree() == g.tree()
    assert c["ocean/temp"].attrs["units"] == "K"
    assert Counting.reads == 0  # every metadata document came from .zmetadata
    np.testing.assert_array_equal(c["ocean/temp"][...], g["ocean/temp"][...])


def test_zarr_python_3_reads_exzarr_hierarchies(tmp_path):
    p = str(tmp_path / "g")
    g = build(exzarr.open_group(p, mode="w"))
    g.consolidate()
    z = zarr.open_group(p, mode="r", zarr_format=2)
    assert z.attrs["title"] == "sea surface"
    assert z["ocean/temp"].attrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
    np.testing.assert_array_equal(z["ocean/temp"][...], g["ocean/temp"][...])
    assert sorted(z.group_keys()) == ["ocean"]
    zc = zarr.open_consolidated(p, zarr_format=2)
    assert sorted(zc["ocean"].array_keys()) == ["temp"]


def test_exzarr_reads_zarr_python_3_hierarchies(tmp_path):
    p = str(tmp_path / "z")
    root = zarr.open_group(p, mode="w", zarr_format=2)
    root.attrs["title"] = "from zarr"
    sub = root.create_group("a/b")
    arr = sub.create_array("c", shape=(5, 5), chunks=(2, 2), dtype="i2",
                           attributes={"_ARRAY_DIMENSIONS": ["y", "x"]})
    arr[...] = np.arange(25, dtype="i2").reshape(5, 5)
    zarr.consolidate_metadata(p, zarr_format=2)
    for consolidated in (False, True):
        g = exzarr.open_group(p, mode="r", consolidated=consolidated)
        assert g.attrs["title"] == "from zarr"
        assert g["a/b/c"].attrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
        np.testing.assert_array_equal(g["a/b/c"][...], np.arange(25, dtype="i2").reshape(5, 5))
        assert "a/b" in g and list(g["a"]) == ["b"]


def test_zip_hierarchies_both_ways_with_zarr_python_3(tmp_path):
    p = str(tmp_path / "g.zip")
    g = build(exzarr.open_group(p, mode="w", storage="zip"))
    g["ocean/temp"][0, 0] = -5  # a rewritten chunk: compacted on close
    g.store.close()
    zs = zarr.storage.ZipStore(p, mode="r")
    z = zarr.open_group(zs, mode="r", zarr_format=2)
    assert z["ocean/temp"][0, 0] == -5
    zs.close()
    p2 = str(tmp_path / "z.zip")
    zs = zarr.storage.ZipStore(p2, mode="w")
    root = zarr.open_group(zs, mode="w", zarr_format=2)
    root.create_array("x", shape=(7,), chunks=(3,), dtype="u1")[...] = np.arange(7, dtype="u1")
    zs.close()
    g2 = exzarr.open_group(p2, mode="r", storage="zip")
    np.testing.assert_array_equal(g2["x"][...], np.arange(7, dtype="u1"))


def test_nested_paths_in_a_store_get_parent_groups_as_zarr_python_writes_them():
    import asyncio

    import zarr
    from zarr.storage import MemoryStore as ZarrMemoryStore

    from exzarr.storage.memory import MemoryStore

    async def zarr_keys(store):
        return sorted(k for k in [k async for k in store.list()] if not k.endswith(".zattrs"))

    ours, theirs = MemoryStore(), ZarrMemoryStore()
    exzarr.create(storage=ours, path="c/d/e", shape=(2,), chunks=(2,), dtype="u1")
    zarr.create_array(store=theirs, name="c/d/e", shape=(2,), chunks=(2,), dtype="u1",
                      zarr_format=2)
    assert sorted(ours._data) == asyncio.run(zarr_keys(theirs))
    ours, theirs = MemoryStore(), ZarrMemoryStore()
    exzarr.open_group(storage=ours, path="a/b", mode="a")
    zarr.open_group(store=theirs, path="a/b", mode="a", zarr_format=2)
    assert sorted(ours._data) == asyncio.run(zarr_keys(theirs))
    exzarr.create(storage=ours, path="a/b/arr", shape=(1,), chunks=(1,))
    with pytest.raises(exzarr.errors.ContainsArrayError, match="cannot hold members"):
        exzarr.create(storage=ours, path="a/b/arr/inner", shape=(1,), chunks=(1,))


def test_numpy_numbers_in_attributes_are_stored_as_zarr_2_stores_them(tmp_path):
    a = exzarr.create(shape=(4,), chunks=(2,), dtype="f4", storage="filesystem",
                      path=str(tmp_path / "a"))
    a[...] = [1, 2, 3, 4.5]
    a.attrs.update({"max": a[...].max(), "n": np.int64(3), "ok": np.bool_(True),
                    "range": np.array([0, 9], dtype="u2")})
    stored = json.loads((tmp_path / "a" / ".zattrs").read_text())
    assert stored == {"max": 4.5, "n": 3, "ok": True, "range": [0, 9]}
    with pytest.raises(TypeError):
        a.attrs["when"] = np.datetime64("2020-01-01")
    assert "when" not in a.attrs
