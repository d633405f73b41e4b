"""Hierarchies and attributes both ways with zarr-python 2.18 and zarr-python 3.

zarr-python 2.18 runs in its own interpreter (EXZARR_ZARR2_PYTHON): each direction is one
subprocess for the whole batch (tests/group_zarr2_worker.py), run by a module-scoped
fixture; the tests below each check one hierarchy.

The hierarchies emulate what xarray writes (``_ARRAY_DIMENSIONS`` attributes, 1-D
coordinate arrays, CF attributes with NaN/Infinity) plus deep nesting, non-ASCII names and
attributes, empty groups, consolidated metadata and zip archives with rewritten keys.
To prove that a reader really serves metadata from ``.zmetadata``, the tests overwrite one
``.zattrs`` on disk after consolidating ("tampering"): a consolidated reader must still
report the consolidated value, a plain reader the new one.
"""

from __future__ import annotations

import copy
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

import exzarr
from exzarr import errors
from exzarr.group import ConsolidatedStore
from exzarr.storage import SQLiteStore, ZipStore
from tests.interop.conftest import run_zarr2_worker

WORKER = Path(__file__).with_name("group_zarr2_worker.py")
NAN, INF = float("nan"), float("inf")
TAMPERED = {"tampered": True}

# -- the hierarchies ------------------------------------------------------------------
# Nodes in creation order; intermediate groups not listed are created implicitly.

XARRAY = [  # an xarray Dataset as xarray.to_zarr() lays it out (Zarr v2)
    {"path": "", "kind": "group", "attrs": {
        "title": "Température de surface de la mer", "Conventions": "CF-1.8",
        "institution": "Météo 🌊 Ωmega", "note_nan": NAN, "valid_range": [-INF, INF],
        "history": ["créé", "β"], "nested": {"k": [1, 2.5, None, True, {"deep": "ü"}]},
        "empty": {}, "日本語キー": "値"}},
    {"path": "x", "kind": "array", "shape": [6], "chunks": [6], "dtype": "<f8",
     "fill_value": NAN, "attrs": {"_ARRAY_DIMENSIONS": ["x"], "units": "m",
                                  "standard_name": "projection_x_coordinate"}},
    {"path": "y", "kind": "array", "shape": [4], "chunks": [4], "dtype": "<f4",
     "fill_value": NAN, "attrs": {"_ARRAY_DIMENSIONS": ["y"], "units": "m"}},
    {"path": "time", "kind": "array", "shape": [3], "chunks": [3], "dtype": "<i8",
     "fill_value": None, "attrs": {"_ARRAY_DIMENSIONS": ["time"], "units": "days since 2000-01-01",
                                   "calendar": "proleptic_gregorian"}},
    {"path": "lat", "kind": "array", "shape": [4, 6], "chunks": [4, 6], "dtype": "<f8",
     "fill_value": NAN, "attrs": {"_ARRAY_DIMENSIONS": ["y", "x"], "units": "degrees_north"}},
    {"path": "temp", "kind": "array", "shape": [3, 4, 6], "chunks": [1, 2, 4], "dtype": "<f4",
     "fill_value": NAN, "attrs": {"_ARRAY_DIMENSIONS": ["time", "y", "x"], "units": "K",
                                  "long_name": "température", "coordinates": "lat",
                                  "grid_mapping": "crs", "valid_max": INF, "scale": NAN}},
    {"path": "crs", "kind": "array", "shape": [], "chunks": [], "dtype": "<i4",
     "fill_value": 0, "attrs": {"_ARRAY_DIMENSIONS": [],
                                "grid_mapping_name": "lambert_conformal_conic"}},
    {"path": "station", "kind": "array", "shape": [2], "chunks": [2], "dtype": "|S6",
     "fill_value": None, "attrs": {"_ARRAY_DIMENSIONS": ["station"]}},
    {"path": "flag", "kind": "array", "shape": [3], "chunks": [2], "dtype": "|b1",
     "fill_value": False, "attrs": {"_ARRAY_DIMENSIONS": ["time"], "flag_meanings": "ok bad"}},
]

NESTED = [
    {"path": "", "kind": "group", "attrs": {"level": 0}},
    {"path": "a", "kind": "group", "attrs": {"level": 1, "nan": NAN}},
    {"path": "a/b/c", "kind": "group", "attrs": {"level": 3}},
    {"path": "a/b/c/deep", "kind": "array", "shape": [5, 7], "chunks": [2, 3], "dtype": "<u2",
     "fill_value": 7, "dimension_separator": "/", "attrs": {"note": "slash separator"}},
    {"path": "a/ints", "kind": "array", "shape": [3, 5], "chunks": [2, 2], "dtype": ">i4",
     "fill_value": -1, "order": "F", "attrs": {}},
    {"path": "données/température", "kind": "array", "shape": [4], "chunks": [3], "dtype": "<f8",
     "fill_value": NAN, "attrs": {"unité": "°C", "_ARRAY_DIMENSIONS": ["t"]}},
    {"path": "empty", "kind": "group", "attrs": {}},
    {"path": "only_attrs", "kind": "group", "attrs": {"ü": ["ñ", NAN, -INF], "n": None}},
    {"path": "when", "kind": "array", "shape": [4], "chunks": [2], "dtype": "<M8[s]",
     "fill_value": 0, "attrs": {"_ARRAY_DIMENSIONS": ["when"]}},
]


def make_values(node: dict, seed: int = 0) -> np.ndarray:
    shape, dt = tuple(node["shape"]), np.dtype(node["dtype"])
    n = math.prod(shape)
    base = np.arange(seed, seed + n)
    if dt.kind == "f":
        v = (base * 1.5 - 3).astype(dt)
        if n > 2:
            v[1] = np.nan
    elif dt.kind in "iu":
        v = (base % 250).astype(dt)
    elif dt.kind == "b":
        v = base % 3 == 0
    elif dt.kind == "S":
        v = np.array([f"s{i}".encode() for i in base], dtype=dt)
    elif dt.kind == "M":
        v = (base * 86400).astype("i8").view(dt)
    else:
        raise AssertionError(dt)
    return v.reshape(shape)


class Hierarchy:
    """A hierarchy spec with its data: what a writer wrote, what readers must see."""

    def __init__(self, nodes: list[dict], workdir: Path, name: str) -> None:
        self.nodes = copy.deepcopy(nodes)
        self.data: dict[str, np.ndarray] = {}
        workdir.mkdir(parents=True, exist_ok=True)
        for i, node in enumerate(self.nodes):
            if node["kind"] == "array":
                self.data[node["path"]] = make_values(node, i)
                node["npy"] = str(workdir / f"{name}-{i}.npy")
                np.save(node["npy"], self.data[node["path"]], allow_pickle=False)
        self.workdir, self.name = workdir, name
        self.rewrite: list[dict] = []

    def add_rewrite(self, path: str, *, values: np.ndarray | None = None,
                    attrs: dict | None = None) -> None:
        rw: dict = {"path": path}
        if values is not None:
            values = np.asarray(values, dtype=self.node(path)["dtype"])
            self.data[path] = values
            rw["npy"] = str(self.workdir / f"{self.name}-rw{len(self.rewrite)}.npy")
            np.save(rw["npy"], values, allow_pickle=False)
        if attrs is not None:
            rw["attrs"] = attrs
            self.node(path)["attrs"] = attrs
        self.rewrite.append(rw)

    def node(self, path: str) -> dict:
        return next(n for n in self.nodes if n["path"] == path)

    def remove(self, path: str) -> None:
        self.nodes = [n for n in self.nodes
                      if not (n["path"] == path or n["path"].startswith(path + "/"))]
        self.data = {p: v for p, v in self.data.items() if p != path and not p.startswith(path + "/")}

    def expected(self) -> dict[str, dict]:
        """Every node readers must find (implicit intermediate groups included)."""
        out: dict[str, dict] = {}
        for node in self.nodes:
            parts = node["path"].split("/") if node["path"] else []
            for i in range(len(parts)):
                out.setdefault("/".join(parts[:i]), {"kind": "group", "attrs": {}})
            desc = {"kind": node["kind"], "attrs": node.get("attrs") or {}}
            if node["kind"] == "array":
                desc.update(shape=node["shape"], chunks=node["chunks"],
                            dtype=np.dtype(node["dtype"]).str,
                            fill_value=fill_to_json(node["fill_value"]),
                            values=self.data[node["path"]])
            out[node["path"]] = desc
        return out


def fill_to_json(value):
    if value is None:
        return None
    if isinstance(value, (bytes, np.bytes_)):
        return {"bytes": bytes(value).hex()} if value else None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("i8"))
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def canon(attrs) -> str:
    return json.dumps(dict(attrs), sort_keys=True, allow_nan=True, ensure_ascii=False)


# -- writing and describing with exzarr / zarr-python 3 ---------------------------------
def exzarr_build(root: exzarr.Group, h: Hierarchy) -> None:
    for node in h.nodes:
        if node["kind"] == "group":
            g = root.require_group(node["path"]) if node["path"] else root
            if node["attrs"]:
                g.attrs.update(node["attrs"])
            continue
        a = root.create_array(
            node["path"], shape=tuple(node["shape"]), chunks=tuple(node["chunks"]),
            dtype=node["dtype"], fill_value=node["fill_value"], order=node.get("order", "C"),
            dimension_separator=node.get("dimension_separator", "."),
            attrs=node["attrs"] or None)
        a[...] = np.load(node["npy"], allow_pickle=False)


def zarr3_build(root, h: Hierarchy) -> None:
    for node in h.nodes:
        if node["kind"] == "group":
            g = root.require_group(node["path"]) if node["path"] else root
            if node["attrs"]:
                g.attrs.update(node["attrs"])
            continue
        kw = {}
        if node.get("dimension_separator") == "/":
            kw["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        a = root.create_array(node["path"], shape=tuple(node["shape"]),
                              chunks=tuple(node["chunks"]) or "auto", dtype=node["dtype"],
                              fill_value=node["fill_value"], order=node.get("order", "C"),
                              attributes=node["attrs"] or None, **kw)
        a[...] = np.load(node["npy"], allow_pickle=False)


def describe(root) -> dict[str, dict]:
    """exzarr or zarr-python 3 hierarchy -> {path: description} (values included)."""
    out: dict[str, dict] = {}

    def walk(g, path):
        out[path] = {"kind": "group", "attrs": dict(g.attrs)}
        for name, a in g.arrays():
            out[f"{path}/{name}" if path else name] = {
                "kind": "array", "attrs": dict(a.attrs), "shape": list(a.shape),
                "chunks": list(a.chunks), "dtype": np.dtype(a.dtype).str,
                "fill_value": fill_to_json(a.fill_value), "values": np.asarray(a[...])}
        for name, sub in g.groups():
            walk(sub, f"{path}/{name}" if path else name)

    walk(root, "")
    return out


def from_worker(nodes: dict) -> dict[str, dict]:
    out = {}
    for path, d in nodes.items():
        d = dict(d)
        if d["kind"] == "array":
            d["values"] = np.load(d.pop("npy"), allow_pickle=False)
            d.pop("order", None)
        out[path] = d
    return out


def assert_same(got: dict, expected: dict, *, fill: bool = True) -> None:
    assert sorted(got) == sorted(expected)
    for path, exp in expected.items():
        g = got[path]
        assert g["kind"] == exp["kind"], path
        assert canon(g["attrs"]) == canon(exp["attrs"]), path
        if exp["kind"] == "array":
            for field in ("shape", "chunks", "dtype") + (("fill_value",) if fill else ()):
                assert g[field] == exp[field], (path, field)
            np.testing.assert_array_equal(g["values"], exp["values"], err_msg=path)
            assert g["values"].dtype == exp["values"].dtype, path


def tamper(root_dir: Path, path: str) -> None:
    """Overwrite one .zattrs on disk after consolidation."""
    (root_dir / path / ".zattrs").write_text(json.dumps(TAMPERED), encoding="utf-8")


def run_worker(mode: str, jobs: list[dict], workdir: Path) -> dict:
    results = run_zarr2_worker(WORKER, mode, jobs, workdir, timeout=300)
    assert results["_meta"]["zarr"].startswith("2.18"), results["_meta"]
    return results


def result(results: dict, job_id: str) -> dict:
    res = results[job_id]
    if not res["ok"]:
        pytest.fail(f"zarr-python 2.18 failed on {job_id}:\n{res['error']}", pytrace=False)
    return res


# -- zarr-python 2.18 writes, exzarr reads ------------------------------------------------
@pytest.fixture(scope="module")
def zarr2_wrote(tmp_path_factory):
    work = tmp_path_factory.mktemp("zarr2-wrote")
    hs = {
        "z-dir-xarray": Hierarchy(XARRAY, work / "npy", "xa"),
        "z-dir-nested": Hierarchy(NESTED, work / "npy", "ne"),
        "z-dir-cons": Hierarchy(NESTED, work / "npy", "nc"),
        "z-zip": Hierarchy(NESTED, work / "npy", "zn"),
        "z-zip-cons": Hierarchy(XARRAY, work / "npy", "zx"),
    }
    hs["z-zip"].add_rewrite("a/ints", values=-make_values(hs["z-zip"].node("a/ints"), 50))
    hs["z-zip"].add_rewrite("a", attrs={"rewritten": "oui", "nan": NAN})
    hs["z-zip-cons"].add_rewrite("temp", values=make_values(hs["z-zip-cons"].node("temp"), 9),
                                 attrs={"_ARRAY_DIMENSIONS": ["time", "y", "x"], "v": 2})
    jobs = []
    for job_id, h in hs.items():
        zip_ = "zip" in job_id
        jobs.append({"id": job_id, "store": "zip" if zip_ else "directory",
                     "path": str(work / (job_id + (".zip" if zip_ else ""))),
                     "nodes": h.nodes, "rewrite": h.rewrite, "consolidate": "cons" in job_id})
    results = run_worker("write", jobs, work)
    for job in jobs:
        result(results, job["id"])
    paths = {job["id"]: Path(job["path"]) for job in jobs}
    # after consolidation: the consolidated readers must not see this
    tamper(paths["z-dir-cons"], "a")
    return hs, paths, results


@pytest.mark.parametrize("job_id", ["z-dir-xarray", "z-dir-nested"])
def test_exzarr_reads_zarr2_hierarchies(zarr2_wrote, job_id):
    hs, paths, _ = zarr2_wrote
    g = exzarr.open_group(str(paths[job_id]), mode="r")
    assert_same(describe(g), hs[job_id].expected())
    if job_id == "z-dir-xarray":  # xarray finds its dimensions and coordinates this way
        assert g["temp"].attrs["_ARRAY_DIMENSIONS"] == ["time", "y", "x"]
        assert all(g[d].ndim == 1 and g[d].attrs["_ARRAY_DIMENSIONS"] == [d]
                   for d in ("x", "y", "time"))
        # zarr-python 2.18 escapes non-ASCII in .zattrs; exzarr reads it back as text
        assert "\\u00e9" in (paths[job_id] / ".zattrs").read_text(encoding="utf-8")


def test_exzarr_reads_zarr2_consolidated_metadata(zarr2_wrote):
    hs, paths, results = zarr2_wrote
    p = str(paths["z-dir-cons"])
    assert "a/b/c/deep/.zarray" in results["z-dir-cons"]["zmetadata_keys"]
    expected = hs["z-dir-cons"].expected()
    for consolidated in (True, None):  # mode="r" uses .zmetadata when it exists
        g = exzarr.open_group(p, mode="r", consolidated=consolidated)
        assert_same(describe(g), expected)
    plain = exzarr.open_group(p, mode="r", consolidated=False)
    expected["a"]["attrs"] = TAMPERED
    assert_same(describe(plain), expected)


@pytest.mark.parametrize("job_id", ["z-zip", "z-zip-cons"])
def test_exzarr_reads_zarr2_zip_archives(zarr2_wrote, job_id):
    hs, paths, results = zarr2_wrote
    members = results[job_id]["members"]
    assert len(members) > len(set(members))  # zarr-python 2.18 left duplicate members
    g = exzarr.open_group(str(paths[job_id]), mode="r", storage="zip")
    assert_same(describe(g), hs[job_id].expected())
    if job_id == "z-zip-cons":
        assert isinstance(g.store, ConsolidatedStore)


def test_exzarr_appends_to_zarr2_zip_archive(zarr2_wrote, tmp_path):
    hs, paths, _ = zarr2_wrote
    p = tmp_path / "copy.zip"
    p.write_bytes(paths["z-zip"].read_bytes())
    g = exzarr.open_group(str(p), mode="a", storage="zip")
    g["a/ints"][0, 0] = 1234  # a key zarr-python 2.18 already wrote twice
    g.create_group("added").attrs["k"] = "v"
    g.store.close()
    with zipfile.ZipFile(p) as zf:
        assert zf.testzip() is None
    expected = hs["z-zip"].expected()
    expected["a/ints"]["values"] = expected["a/ints"]["values"].copy()
    expected["a/ints"]["values"][0, 0] = 1234
    expected["added"] = {"kind": "group", "attrs": {"k": "v"}}
    assert_same(describe(exzarr.open_group(str(p), mode="r", storage="zip")), expected)


# -- exzarr writes, zarr-python 2.18 reads ------------------------------------------------
@pytest.fixture(scope="module")
def zarr2_read(tmp_path_factory):
    work = tmp_path_factory.mktemp("zarr2-read")
    out = work / "out"
    out.mkdir()
    hs = {
        "x-dir-xarray": Hierarchy(XARRAY, work / "npy", "xa"),
        "x-dir-nested": Hierarchy(NESTED, work / "npy", "ne"),
        "x-dir-cons": Hierarchy(NESTED, work / "npy", "nc"),
        "x-zip": Hierarchy(NESTED, work / "npy", "zn"),
        "x-zip-cons": Hierarchy(XARRAY, work / "npy", "zx"),
    }
    paths = {}
    for job_id, h in hs.items():
        if "zip" in job_id:
            paths[job_id] = work / f"{job_id}.zip"
            g = exzarr.open_group(str(paths[job_id]), mode="w", storage="zip")
        else:
            paths[job_id] = work / job_id
            g = exzarr.open_group(str(paths[job_id]), mode="w")
        exzarr_build(g, h)
        if job_id == "x-zip":  # rewritten chunks and attributes, deleted members
            ints = g["a/ints"]
            new = h.data["a/ints"].copy()
            new[1:, 2:] = -7
            ints[1:, 2:] = -7
            h.data["a/ints"] = new
            g["a"].attrs.update({"rewritten": "oui"})
            h.node("a")["attrs"] = dict(h.node("a")["attrs"], rewritten="oui")
            g["a/b/c/deep"].attrs["note"] = "réécrit"
            h.node("a/b/c/deep")["attrs"] = {"note": "réécrit"}
            del g["when"]
            h.remove("when")
            del g["empty"]
            h.remove("empty")
        if job_id == "x-zip-cons":
            g["temp"][...] = make_values(h.node("temp"), 5)
            h.data["temp"] = make_values(h.node("temp"), 5)
        if "cons" in job_id:
            g.consolidate()
        g.store.close()
    tamper(paths["x-dir-cons"], "a")
    jobs = [
        {"id": "x-dir-xarray", "store": "directory", "consolidated": False},
        {"id": "x-dir-nested", "store": "directory", "consolidated": False},
        {"id": "x-dir-cons", "store": "directory", "consolidated": True},
        {"id": "x-dir-cons-plain", "of": "x-dir-cons", "store": "directory", "consolidated": False},
        {"id": "x-zip", "store": "zip", "consolidated": False},
        {"id": "x-zip-cons", "store": "zip", "consolidated": True},
    ]
    for job in jobs:
        job["path"] = str(paths[job.get("of", job["id"])])
        job["outdir"] = str(out)
    return hs, paths, run_worker("read", jobs, work)


@pytest.mark.parametrize("job_id", ["x-dir-xarray", "x-dir-nested", "x-zip"])
def test_zarr2_reads_exzarr_hierarchies(zarr2_read, job_id):
    hs, paths, results = zarr2_read
    assert_same(from_worker(result(results, job_id)["nodes"]), hs[job_id].expected())


def test_zarr2_open_consolidated_reads_exzarr_zmetadata(zarr2_read):
    hs, paths, results = zarr2_read
    res = result(results, "x-dir-cons")
    assert res["store_type"] == "ConsolidatedMetadataStore"
    expected = hs["x-dir-cons"].expected()
    assert_same(from_worker(res["nodes"]), expected)
    expected["a"]["attrs"] = TAMPERED  # a plain open sees the file on disk
    assert_same(from_worker(result(results, "x-dir-cons-plain")["nodes"]), expected)


def test_zarr2_reads_exzarr_zip_with_consolidated_metadata(zarr2_read):
    hs, paths, results = zarr2_read
    res = result(results, "x-zip-cons")
    assert res["store_type"] == "ConsolidatedMetadataStore"
    assert_same(from_worker(res["nodes"]), hs["x-zip-cons"].expected())


@pytest.mark.parametrize("job_id", ["x-zip", "x-zip-cons"])
def test_exzarr_zip_archives_have_no_duplicate_members(zarr2_read, job_id):
    hs, paths, _ = zarr2_read
    with zipfile.ZipFile(paths[job_id]) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
    assert len(names) == len(set(names))
    if job_id == "x-zip":
        assert not any(n.startswith(("when/", "empty/")) for n in names)


# -- zarr-python 3 ------------------------------------------------------------------------
def test_exzarr_reads_zarr3_consolidated_format2(tmp_path):
    h = Hierarchy(XARRAY + [n for n in NESTED if n["path"]], tmp_path / "npy", "z3")
    p = tmp_path / "z3"
    root = zarr.open_group(str(p), mode="w", zarr_format=2)
    zarr3_build(root, h)
    zarr.consolidate_metadata(str(p), zarr_format=2)
    meta = json.loads((p / ".zmetadata").read_text(encoding="utf-8"))["metadata"]
    # zarr-python 3's quirk: child .zgroup entries carry a "consolidated_metadata" member
    assert "consolidated_metadata" in meta["a/b/c/.zgroup"]
    tamper(p, "a")
    expected = h.expected()
    g = exzarr.open_group(str(p), mode="r", consolidated=True)
    assert isinstance(g.store, ConsolidatedStore)
    assert_same(describe(g), expected)
    expected["a"]["attrs"] = TAMPERED
    assert_same(describe(exzarr.open_group(str(p), mode="r", consolidated=False)), expected)


def test_zarr3_open_consolidated_reads_exzarr_zmetadata(tmp_path):
    h = Hierarchy(XARRAY + [n for n in NESTED if n["path"]], tmp_path / "npy", "x3")
    p = tmp_path / "x3"
    exzarr_build(exzarr.open_group(str(p), mode="w"), h)
    doc = exzarr.open_group(str(p), mode="a").consolidate()
    assert doc["metadata"][".zattrs"]["note_nan"] != doc["metadata"][".zattrs"]["note_nan"]  # NaN
    tamper(p, "a")
    z = zarr.open_consolidated(str(p), zarr_format=2)
    assert z.metadata.consolidated_metadata is not None
    assert_same(describe(z), h.expected())


def test_zarr3_reads_exzarr_zip_with_rewritten_keys_and_zmetadata(tmp_path):
    h = Hierarchy(NESTED, tmp_path / "npy", "zz")
    p = tmp_path / "x.zip"
    g = exzarr.open_group(str(p), mode="w", storage="zip")
    exzarr_build(g, h)
    g["a/b/c/deep"][...] = 3  # every chunk rewritten
    h.data["a/b/c/deep"] = np.full((5, 7), 3, dtype="<u2")
    g.attrs["level"] = "zéro"
    h.node("")["attrs"] = {"level": "zéro"}
    g.consolidate()
    g.store.close()
    zs = zarr.storage.ZipStore(str(p), mode="r")
    try:
        z = zarr.open_consolidated(zs, mode="r", zarr_format=2)
        assert_same(describe(z), h.expected())
    finally:
        zs.close()


# -- which is it: an array or a group? ----------------------------------------------------
def _tiny_hierarchy(g):
    g.create_group("grp/sub")
    g.create_array("grp/arr", shape=(2,), chunks=(2,), dtype="i1")
    return g


@pytest.mark.parametrize("storage", ["filesystem", "zip", "sqlite"])
def test_open_and_open_group_name_what_they_found(tmp_path, storage):
    p = str(tmp_path / {"filesystem": "d", "zip": "a.zip", "sqlite": "a.db"}[storage])
    g = _tiny_hierarchy(exzarr.open_group(p, mode="w", storage=storage))
    g.store.close()
    store = exzarr.storage.open_store(storage, p)
    try:
        for path in ("", "grp", "grp/sub"):
            with pytest.raises(errors.MetadataNotFoundError, match=r"group.*open_group\(\)"):
                exzarr.open(storage=store, path=path, mode="r")
        with pytest.raises(errors.ContainsArrayError, match=r"array.*exzarr\.open\(\)"):
            exzarr.open_group(storage=store, path="grp/arr", mode="r")
        with pytest.raises(errors.ContainsArrayError, match=r"array.*exzarr\.open\(\)"):
            exzarr.open_group(storage=store, path="grp/arr", mode="a")
        with pytest.raises(errors.ContainsArrayError, match=r"array.*exzarr\.open\(\)"):
            exzarr.Group(store, "grp/arr")
    finally:
        store.close()
    if storage != "filesystem":
        with pytest.raises(errors.MetadataNotFoundError, match=r"group.*open_group\(\)"):
            exzarr.open(p, mode="r", storage=storage)
    else:
        for sub in ("", "/grp"):
            with pytest.raises(errors.MetadataNotFoundError, match=r"group.*open_group\(\)"):
                exzarr.open(p + sub, mode="r")
        for mode in ("r", "r+", "a"):
            with pytest.raises(errors.ContainsArrayError, match=r"array.*exzarr\.open\(\)"):
                exzarr.open_group(p + "/grp/arr", mode=mode)


def test_open_names_a_group_written_by_zarr2(zarr2_wrote):
    hs, paths, _ = zarr2_wrote
    p = str(paths["z-dir-nested"])
    with pytest.raises(errors.MetadataNotFoundError, match=r"group.*open_group\(\)"):
        exzarr.open(p + "/a/b", mode="r")
    with pytest.raises(errors.ContainsArrayError, match=r"array.*exzarr\.open\(\)"):
        exzarr.open_group(p + "/a/ints", mode="r")
    with pytest.raises(errors.ContainsArrayError, match=r"array.*exzarr\.open\(\)"):
        exzarr.open_group(p + "/a/ints", mode="r", consolidated=False)


def test_sqlite_hierarchy_roundtrip(tmp_path):
    """Not a zarr-python format (its SQLiteStore uses other column names): exzarr only."""
    h = Hierarchy(NESTED, tmp_path / "npy", "sq")
    p = str(tmp_path / "h.db")
    exzarr_build(exzarr.open_group(p, mode="w", storage="sqlite"), h)
    exzarr.open_group(p, mode="a", storage="sqlite").consolidate()
    for consolidated in (False, True):
        g = exzarr.open_group(storage=SQLiteStore(p, read_only=True), mode="r",
                              consolidated=consolidated)
        assert_same(describe(g), h.expected())


def test_zip_store_reads_back_what_zipstore_wrote_in_the_same_session(tmp_path):
    h = Hierarchy(XARRAY, tmp_path / "npy", "zs")
    store = ZipStore(tmp_path / "s.zip", mode="w")
    g = exzarr.open_group(storage=store, mode="w")
    exzarr_build(g, h)
    assert_same(describe(g), h.expected())  # before close: members appended, not compacted
    store.close()
    assert_same(describe(exzarr.open_group(str(tmp_path / "s.zip"), mode="r", storage="zip")),
                h.expected())

