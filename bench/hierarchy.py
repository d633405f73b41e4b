"""Open a 1,000-array hierarchy and read every array's metadata: exzarr vs zarr-python.

    python bench/hierarchy.py [--dir DIR] [--groups 10] [--arrays 100] [--repeat 5]

Writes (with exzarr, Zarr v2 on local disk) a root group with ``--groups`` groups of
``--arrays`` small arrays each, every array with attributes (xarray-style
``_ARRAY_DIMENSIONS`` plus a few CF attributes), and consolidates it. Then times, for
each library, opening the root and visiting every array's shape, dtype and attributes:

- plain: metadata read from the individual .zgroup/.zarray/.zattrs files (listing
  the directories);
- consolidated: metadata from the single .zmetadata document.

zarr-python 2.18 runs in its own interpreter (EXZARR_ZARR2_PYTHON, or .venv-zarr2 beside
the repository) and times itself; it is left out when that interpreter is missing.
Prints the median of ``--repeat`` runs in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

import exzarr

REPO = Path(__file__).resolve().parents[1]

# The same walk in every library: root -> groups -> arrays -> (shape, dtype, attrs).
WALK = """
def walk(root):
    n = total = 0
    for _, sub in root.groups():
        for _, a in sub.arrays():
            shape, dtype, attrs = a.shape, a.dtype, dict(a.attrs)
            n += 1
            total += attrs["index"] + len(shape) + dtype.itemsize * 0
    return n, total
"""
exec(WALK)  # defines walk() here too

ZARR2_SCRIPT = WALK + """
import json, statistics, sys, time
import zarr
path, repeat = sys.argv[1], int(sys.argv[2])
out = {"version": zarr.__version__}
for label, opener in (("plain", lambda: zarr.open_group(path, mode="r")),
                      ("consolidated", lambda: zarr.open_consolidated(path, mode="r"))):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = walk(opener())
        times.append(time.perf_counter() - t0)
    out[label] = {"median_ms": statistics.median(times) * 1e3, "result": list(result)}
print(json.dumps(out))
"""


def build(path: Path, groups: int, arrays: int) -> tuple[int, int]:
    root = exzarr.open_group(str(path), mode="w")
    root.attrs.update({"title": "hierarchy benchmark", "Conventions": "CF-1.8"})
    total = 0
    for i in range(groups):
        g = root.create_group(f"group{i:02d}", attrs={"index": i})
        for j in range(arrays):
            a = g.create_array(
                f"var{j:03d}", shape=(16,), chunks=(16,), dtype="<f4", fill_value=float("nan"),
                attrs={"_ARRAY_DIMENSIONS": ["x"], "units": "K", "index": j,
                       "long_name": f"variable {j} of group {i}", "valid_range": [0.0, 1e3]})
            a[...] = np.arange(16, dtype="<f4") + j
            total += j + 1
    root.consolidate()
    return groups * arrays, total


def time_it(fn, repeat: int) -> tuple[float, tuple[int, int]]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, result


def zarr2_python() -> Path | None:
    configured = os.environ.get("EXZARR_ZARR2_PYTHON")
    path = Path(configured) if configured else REPO / ".venv-zarr2" / "bin" / "python"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, help="where to write the hierarchy (default: a temp dir)")
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--arrays", type=int, default=100, help="arrays per group")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    tmp = None
    if args.dir is None:
        tmp = tempfile.mkdtemp(prefix="exzarr-bench-hierarchy-")
        args.dir = Path(tmp)
    path = args.dir / "hierarchy.zarr"
    if path.exists():
        shutil.rmtree(path)
    try:
        expected = build(path, args.groups, args.arrays)
        p = str(path)
        rows: list[tuple[str, float | None, float | None]] = []
        cases = {
            f"exzarr {exzarr.__version__}": (
                lambda: walk(exzarr.open_group(p, mode="r", consolidated=False)),
                lambda: walk(exzarr.open_group(p, mode="r", consolidated=True))),
            f"zarr-python {zarr.__version__}": (
                lambda: walk(zarr.open_group(p, mode="r", zarr_format=2, use_consolidated=False)),
                lambda: walk(zarr.open_group(p, mode="r", zarr_format=2, use_consolidated=True))),
        }
        for label, (plain, consolidated) in cases.items():
            t_plain, r1 = time_it(plain, args.repeat)
            t_cons, r2 = time_it(consolidated, args.repeat)
            if tuple(r1) != expected or tuple(r2) != expected:
                print(f"{label}: visited {r1} / {r2}, expected {expected}", file=sys.stderr)
                return 1
            rows.append((label, t_plain, t_cons))
        py2 = zarr2_python()
        if py2 is None:
            print("(zarr-python 2.18 left out: set EXZARR_ZARR2_PYTHON)", file=sys.stderr)
        else:
            proc = subprocess.run([str(py2), "-c", ZARR2_SCRIPT, p, str(args.repeat)],
                                  capture_output=True, text=True, check=False, timeout=600)
            if proc.returncode != 0:
                print(f"zarr-python 2.18 failed:\n{proc.stderr}", file=sys.stderr)
                return 1
            out = json.loads(proc.stdout)
            for key in ("plain", "consolidated"):
                if tuple(out[key]["result"]) != expected:
                    print(f"zarr-python 2.18 {key}: visited {out[key]['result']}", file=sys.stderr)
                    return 1
            rows.append((f"zarr-python {out['version']} (subprocess)",
                         out["plain"]["median_ms"], out["consolidated"]["median_ms"]))

        n = expected[0]
        print(f"Open a hierarchy of {args.groups} groups x {args.arrays} arrays ({n} arrays, "
              f"local disk) and read every array's shape, dtype and attrs; "
              f"median of {args.repeat}, ms")
        w = max(len(r[0]) for r in rows)
        print(f"| {'library':<{w}} | {'plain':>9} | {'consolidated':>12} |")
        print(f"|{'-' * (w + 2)}|{'-' * 10}:|{'-' * 13}:|")
        for label, t_plain, t_cons in rows:
            print(f"| {label:<{w}} | {t_plain:9.1f} | {t_cons:12.1f} |")
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
