"""Batch reader/writer run under the zarr-python 2.18 interpreter (not exzarr's).

    python zarr2_worker.py read  JOBS.json RESULTS.json
    python zarr2_worker.py write JOBS.json RESULTS.json

JOBS.json is a list of {"case": <case from cases.py>, "dir": array directory, "npy": path}.

read:  open each array exzarr wrote, save its values to "npy", and report its metadata.
write: create each array with zarr-python 2.18 and apply the case's writes, taking the
       values from "npy".

RESULTS.json maps case ids to {"ok": true, ...} or {"ok": false, "error": traceback}, and
"_meta" to the versions in use. One failing case never stops the batch.
"""

from __future__ import annotations

import json
import math
import os
import sys

import numcodecs
import numcodecs.blosc
import numpy as np
import zarr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cases import fill_python, region_slices, write_value  # noqa: E402
from zarr2_batch import run_batch  # noqa: E402


def fill_to_json(value):
    """A fill value in the .zarray JSON form (NaN/Infinity as strings)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (complex, np.complexfloating)):
        return [fill_to_json(float(value.real)), fill_to_json(float(value.imag))]
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def codec_config(codec):
    return None if codec is None else codec.get_config()


def read(job):
    case = job["case"]
    z = zarr.open_array(job["dir"], mode="r")
    if z.fill_value is None:
        # zarr-python 2 leaves never-written cells uninitialised when fill_value is None
        # (np.empty); the Zarr spec reads them as zero, so start from zeros.
        values = z.get_basic_selection(Ellipsis, out=np.zeros(z.shape, dtype=z.dtype))
    else:
        values = z[...]
    np.save(job["npy"], values, allow_pickle=False)
    # A partial read through a region crossing chunk boundaries, too.
    sel = tuple(slice(1, max(2, s - 1)) for s in z.shape)
    part = z[sel] if z.fill_value is not None else None
    if part is not None:
        np.save(job["npy"] + ".part.npy", part, allow_pickle=False)
    return {
        "dtype": z.dtype.str,
        "values_dtype": values.dtype.str,
        "shape": list(z.shape),
        "chunks": list(z.chunks),
        "order": z.order,
        "fill_value": fill_to_json(z.fill_value),
        "compressor": codec_config(z.compressor),
        "filters": [f.get_config() for f in z.filters] if z.filters else None,
        "part_sel": [[s.start, s.stop] for s in sel] if part is not None else None,
        "case_id": case["id"],
    }


def write(job):
    case = job["case"]
    data = np.load(job["npy"], allow_pickle=False)
    cfg = case["compressor"]
    filters = [numcodecs.get_codec(dict(f)) for f in case["filters"]] if case.get("filters") else None
    store = zarr.DirectoryStore(job["dir"], dimension_separator=case["sep"])
    # Like most zarr-python 2 users, say dimension_separator only when it is "/": the
    # .zarray then lacks the member, which readers must take as ".".
    sep_kw = {"dimension_separator": "/"} if case["sep"] == "/" else {}
    z = zarr.create(
        shape=tuple(case["shape"]), chunks=tuple(case["chunks"]), dtype=case["dtype"],
        compressor=numcodecs.get_codec(dict(cfg)) if cfg else None, filters=filters,
        fill_value=fill_python(case["fill"], case["dtype"]), order=case["order"],
        store=store, overwrite=True, **sep_kw,
        write_empty_chunks=case["write_empty"],
    )
    for w in case["writes"]:
        z[region_slices(w["region"])] = write_value(case, data, w)
    return {"zarray": json.loads(store[".zarray"])}


def main(argv):
    meta = {"zarr": zarr.__version__, "numcodecs": numcodecs.__version__, "numpy": np.__version__,
            "python": sys.version, "blosc_cnames": sorted(numcodecs.blosc.list_compressors())}
    return run_batch(argv, {"read": read, "write": write}, meta, lambda job: job["case"]["id"])

if __name__ == "__main__":
    sys.exit(main(sys.argv))
