"""Batch reader/writer of the codec interop cases, run under the zarr-python 2.18
interpreter (EXZARR_ZARR2_PYTHON), not exzarr's:

    python codec_zarr2_worker.py read  JOBS.json RESULTS.json
    python codec_zarr2_worker.py write JOBS.json RESULTS.json

JOBS.json is a list of {"case": <case from test_codec_arrays.py>, "dir": array directory,
"values": path}. ``values`` holds an array as save_values() writes it: ``.npy`` for fixed
size dtypes, JSON for object arrays (str items, or bytes items in base64).

read:  open each array exzarr wrote, save its values to "values", report its metadata.
write: create each array with zarr-python 2.18 (object arrays take the first filter as
       ``object_codec``, as zarr 2 stores it) and write the case's regions from "values".

RESULTS.json maps case ids to {"ok": true, ...} or {"ok": false, "error": traceback}, and
"_meta" to the versions in use. One failing case never stops the batch.

Only the standard library and NumPy at import: the tests import the helpers below.
"""

from __future__ import annotations

import base64
import json
import math
import sys

import numpy as np

OBJECT_CODECS = ("vlen-utf8", "vlen-bytes", "categorize")


# ---------------------------------------------------------------------------------------
# Helpers shared with tests/test_codec_arrays.py
# ---------------------------------------------------------------------------------------

def save_values(path: str, arr) -> None:
    """Write an array: .npy for fixed-size dtypes, JSON for object arrays."""
    arr = np.asarray(arr)
    if arr.dtype.hasobject or arr.dtype.kind == "T":
        items = []
        for v in arr.reshape(-1).tolist():
            if isinstance(v, bytes):
                items.append({"b": base64.standard_b64encode(v).decode("ascii")})
            else:
                items.append(v)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"shape": list(arr.shape), "items": items}, f)
    else:
        with open(path, "wb") as f:
            np.save(f, arr, allow_pickle=False)


def load_values(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        return np.load(path, allow_pickle=False)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    items = [base64.standard_b64decode(v["b"]) if isinstance(v, dict) else v for v in doc["items"]]
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out.reshape(doc["shape"])


def fill_python(case):
    """The case's fill value as a Python/NumPy value for a library's create()."""
    fill, dtype = case["fill"], np.dtype(case["dtype"])
    if fill is None:
        return None
    if dtype.kind in "mM":
        return np.array(int(fill), dtype="i8").view(dtype)[()]
    if dtype.kind == "S":
        return base64.standard_b64decode(fill)
    if dtype.kind == "f" and isinstance(fill, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[fill]
    return fill


def fill_to_json(value):
    """A fill value as it reads from a library, in a JSON-able form."""
    if value is None:
        return None
    if isinstance(value, np.generic) and value.dtype.kind in "mM":
        return int(value.view("i8"))
    if isinstance(value, (bytes, np.bytes_)):
        return {"b": base64.standard_b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (complex, np.complexfloating)):
        return [fill_to_json(value.real), fill_to_json(value.imag)]
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "NaN" if math.isnan(v) else ("Infinity" if v == math.inf else
                                            "-Infinity" if v == -math.inf else v)
    return str(value)


def region_slices(region):
    return tuple(slice(a, b) for a, b in region)


# ---------------------------------------------------------------------------------------
# zarr-python 2.18 side
# ---------------------------------------------------------------------------------------

def read(job):
    import zarr

    z = zarr.open_array(job["dir"], mode="r")
    values = z[...]
    save_values(job["values"], values)
    return {
        "dtype": z.dtype.str,
        "values_dtype": np.asarray(values).dtype.str,
        "shape": list(z.shape),
        "chunks": list(z.chunks),
        "order": z.order,
        "fill_value": fill_to_json(z.fill_value),
        "compressor": None if z.compressor is None else z.compressor.get_config(),
        "filters": [f.get_config() for f in z.filters] if z.filters else None,
    }


def write(job):
    import numcodecs
    import zarr

    case = job["case"]
    data = load_values(job["values"])
    filters = [numcodecs.get_codec(dict(f)) for f in case["filters"] or []]
    object_codec = None
    if np.dtype(case["dtype"]).hasobject and filters and filters[0].codec_id in ("vlen-utf8", "vlen-bytes"):
        object_codec = filters.pop(0)
    cfg = case["compressor"]
    # zarr 2 puts the fill value through the object codec: VLenBytes takes no "" (and
    # no bytes fill is JSON-serialisable there), so bytes arrays get None (read as b"").
    kwargs = {"fill_value": fill_python(case)}
    if object_codec is not None and object_codec.codec_id == "vlen-bytes":
        kwargs["fill_value"] = None
    z = zarr.create(
        shape=tuple(case["shape"]), chunks=tuple(case["chunks"]), dtype=case["dtype"],
        compressor=numcodecs.get_codec(dict(cfg)) if cfg else None, filters=filters or None,
        object_codec=object_codec, order=case["order"],
        store=zarr.DirectoryStore(job["dir"]), overwrite=True, **kwargs)
    for region in case["writes"]:
        sel = region_slices(region)
        z[sel] = data[sel]
    with open(job["dir"] + "/.zarray", encoding="utf-8") as f:
        return {"zarray": json.load(f)}


def main(argv):
    import warnings

    import numcodecs
    import zarr

    from zarr2_batch import run_batch

    warnings.simplefilter("ignore")  # object arrays without object_codec (categorize)
    meta = {"zarr": zarr.__version__, "numcodecs": numcodecs.__version__,
            "numpy": np.__version__, "python": sys.version}
    return run_batch(argv, {"read": read, "write": write}, meta, lambda job: job["case"]["id"])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
