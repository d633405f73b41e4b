"""Hierarchy reader/writer run under the zarr-python 2.18 interpreter (not exzarr's).

    python group_zarr2_worker.py write JOBS.json RESULTS.json
    python group_zarr2_worker.py read  JOBS.json RESULTS.json

One call handles a whole batch of hierarchies (one subprocess per direction).

write: each job is {"id", "store": "directory" | "zip", "path", "nodes": [...],
       "rewrite": [...], "consolidate": bool}. ``nodes`` are created in order with
       zarr-python 2.18: {"path", "kind": "group", "attrs"} or {"path", "kind": "array",
       "shape", "chunks", "dtype", "fill_value", "attrs", "npy", "dimension_separator"?}.
       ``rewrite`` entries ({"path", "npy"?, "attrs"?}) then overwrite an array's values
       and/or attributes (in a zip archive that leaves duplicate members, as zarr-python
       2.18 does). ``consolidate`` finally runs zarr.consolidate_metadata. The result
       lists the archive's member names (zip) or the .zmetadata keys.

read:  each job is {"id", "store", "path", "consolidated": bool, "outdir"}. The
       hierarchy is opened (zarr.open_consolidated when ``consolidated``) and described:
       {"nodes": {path: {"kind", "attrs", ...array fields, "npy"}}, "store_type"}.
       Array values are saved as .npy files in ``outdir``.

RESULTS.json maps job ids to {"ok": true, ...} or {"ok": false, "error": traceback},
and "_meta" to the versions in use. One failing job never stops the batch.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings

import numcodecs
import numpy as np
import zarr


def fill_to_json(value):
    """A fill value in a comparable JSON form (NaN/Infinity as strings)."""
    if value is None:
        return None
    if isinstance(value, (bytes, np.bytes_)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, (str, np.str_)):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("i8"))
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def open_store(job, mode):
    if job["store"] == "zip":
        return zarr.ZipStore(job["path"], mode=mode)
    if job["store"] == "directory":
        return zarr.DirectoryStore(job["path"])
    raise ValueError(f"unknown store {job['store']!r}")


def write(job):
    store = open_store(job, "w")
    try:
        root = zarr.group(store=store, overwrite=True)
        for node in job["nodes"]:
            path = node["path"]
            if node["kind"] == "group":
                g = root.require_group(path) if path else root
                if node.get("attrs"):
                    g.attrs.update(node["attrs"])
                continue
            data = np.load(node["npy"], allow_pickle=False)
            kw = {}
            if node.get("dimension_separator"):
                kw["dimension_separator"] = node["dimension_separator"]
            z = zarr.create(shape=tuple(node["shape"]), chunks=tuple(node["chunks"]),
                            dtype=node["dtype"], fill_value=node.get("fill_value"),
                            order=node.get("order", "C"), store=store, path=path, **kw)
            z[...] = data
            if node.get("attrs"):
                z.attrs.update(node["attrs"])
        with warnings.catch_warnings():  # zipfile: "Duplicate name" on rewritten keys
            warnings.simplefilter("ignore", UserWarning)
            for rw in job.get("rewrite", []):
                node = root[rw["path"]]
                if "npy" in rw:
                    node[...] = np.load(rw["npy"], allow_pickle=False)
                if "attrs" in rw:
                    node.attrs.put(rw["attrs"])
            if job.get("consolidate"):
                zarr.consolidate_metadata(store)
        out = {}
        if job["store"] == "zip":
            out["members"] = store.zf.namelist()
        if job.get("consolidate"):
            out["zmetadata_keys"] = sorted(json.loads(store[".zmetadata"])["metadata"])
        return out
    finally:
        store.close()


def describe(root, outdir, job_id):
    nodes = {}
    counter = [0]

    def walk(g, path):
        nodes[path] = {"kind": "group", "attrs": g.attrs.asdict()}
        for name, a in g.arrays():
            apath = f"{path}/{name}" if path else name
            counter[0] += 1
            npy = os.path.join(outdir, f"{job_id}-{counter[0]}.npy")
            if a.fill_value is None:  # zarr 2 would leave unwritten cells uninitialised
                values = a.get_basic_selection(Ellipsis, out=np.zeros(a.shape, dtype=a.dtype))
            else:
                values = a[...]
            np.save(npy, np.asarray(values), allow_pickle=False)
            nodes[apath] = {
                "kind": "array", "attrs": a.attrs.asdict(), "shape": list(a.shape),
                "chunks": list(a.chunks), "dtype": a.dtype.str, "order": a.order,
                "fill_value": fill_to_json(a.fill_value), "npy": npy,
            }
        for name, sub in g.groups():
            walk(sub, f"{path}/{name}" if path else name)

    walk(root, "")
    return nodes


def read(job):
    store = open_store(job, "r")
    try:
        if job["consolidated"]:
            root = zarr.open_consolidated(store, mode="r")
        else:
            root = zarr.open_group(store, mode="r")
        return {"nodes": describe(root, job["outdir"], job["id"]),
                "store_type": type(root.store).__name__}
    finally:
        store.close()


def main(argv):
    from zarr2_batch import run_batch

    meta = {"zarr": zarr.__version__, "numcodecs": numcodecs.__version__,
            "numpy": np.__version__, "python": sys.version}
    return run_batch(argv, {"read": read, "write": write}, meta, lambda job: job["id"])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
