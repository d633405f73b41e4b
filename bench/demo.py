"""The exzarr demo: write a dataset, inspect it, read it with zarr-python 3, time both.

Run with ``make demo`` (or ``python bench/demo.py --dir DIR``). It

1. writes two arrays with exzarr into ``DIR`` (a Zarr v2 group):

   - ``field``: 4096 x 4096 float32, ``20 sin(x) cos(y)`` plus Gaussian noise,
     rounded to 2 decimals; chunks 512 x 512; zstd level 1;
   - ``series``: 16 Mi int64, a random walk of small steps; chunks 1 Mi;
     delta filter, zstd level 1;

2. prints ``exzarr info DIR`` (the installed console script, run as a subprocess);
3. reads both arrays back with zarr-python 3 and checks they equal the data;
4. times, for each array, exzarr and zarr-python 3 writing the same array with the
   same codecs (Zarr v2 format) and reading it all back, and prints the throughput.

Any mismatch stops the demo with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr

import exzarr

SEED = 20240611


@dataclass
class Dataset:
    """One array of the demo: its data and how both libraries store it."""

    name: str
    data: np.ndarray
    chunks: tuple[int, ...]
    compressor: dict[str, Any]
    filters: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def exzarr_write(self, path: Path) -> None:
        a = exzarr.create(shape=self.data.shape, chunks=self.chunks, dtype=self.data.dtype,
                          compressor=self.compressor, filters=self.filters or None,
                          storage="filesystem", path=path, overwrite=True)
        a[...] = self.data

    def zarr_write(self, path: Path) -> None:
        z = zarr.create_array(
            store=str(path), shape=self.data.shape, chunks=self.chunks,
            dtype=self.data.dtype, zarr_format=2, overwrite=True,
            compressors=numcodecs.get_codec(dict(self.compressor)),
            filters=[numcodecs.get_codec({"id": fid, **opts}) for fid, opts in self.filters] or None,
        )
        z[...] = self.data


def make_datasets() -> list[Dataset]:
    """The demo's two arrays, generated from a fixed seed."""
    rng = np.random.default_rng(SEED)
    n = 4096
    x = np.linspace(0.0, 6 * np.pi, n)
    field_data = 20.0 * np.sin(x)[:, None] * np.cos(x)[None, :]
    field_data += rng.normal(0.0, 0.5, size=(n, n))
    field_data = np.round(field_data, 2).astype(np.float32)

    steps = rng.integers(-8, 9, size=16 * 2**20, dtype=np.int64)
    series = np.cumsum(steps) + 1_000_000

    zstd1 = {"id": "zstd", "level": 1}
    return [
        Dataset("field", field_data, (512, 512), zstd1),
        Dataset("series", series, (2**20,), zstd1, [("delta", {"dtype": "int64"})]),
    ]


def fail(message: str) -> None:
    """Stop the demo: something did not match."""
    print(f"\nDEMO FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def check_equal(what: str, got: np.ndarray, expected: np.ndarray) -> None:
    """Fail unless ``got`` has the shape, dtype and values of ``expected``."""
    if got.shape != expected.shape or got.dtype != expected.dtype:
        fail(f"{what}: got shape {got.shape} dtype {got.dtype}, "
             f"expected {expected.shape} {expected.dtype}")
    if not np.array_equal(got, expected):
        bad = np.argwhere(got != expected)
        fail(f"{what}: {len(bad)} elements differ, first at {tuple(bad[0])}: "
             f"{got[tuple(bad[0])]!r} != {expected[tuple(bad[0])]!r}")


def median_times(ops: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """The median wall time of each operation over ``repeat`` rounds.

    One untimed round comes first (thread pools, first-touch page faults); then the
    rounds run every operation in turn, so background noise (writeback of earlier
    writes, other processes) falls on both libraries alike.
    """
    for fn in ops.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(repeat):
        for name, fn in ops.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def run_cli(root: Path) -> None:
    """Print ``exzarr info ROOT``, run through the installed console script."""
    script = Path(sys.executable).parent / "exzarr"
    if not script.exists():
        fail(f"console script {script} not found: is exzarr installed in this environment?")
    print(f"$ exzarr info {root}")
    proc = subprocess.run([str(script), "info", str(root)], capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"exzarr info exited with {proc.returncode}: {proc.stderr.strip()}")
    print(proc.stdout.rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="demo_data", type=Path,
                        help="output directory (default: demo_data)")
    parser.add_argument("--repeat", default=3, type=int,
                        help="timed runs per measurement; the median is shown (default: 3)")
    args = parser.parse_args(argv)
    root: Path = args.dir.resolve()
    repeat = max(1, args.repeat)

    print(f"exzarr {exzarr.__version__} demo: {root}  "
          f"(zarr-python {zarr.__version__}, numcodecs {numcodecs.__version__}, "
          f"{exzarr.config.thread_count()} threads)\n")

    datasets = make_datasets()
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root / "zarr_python", ignore_errors=True)  # only what this demo writes

    # 1. Write the dataset with exzarr; DIR becomes a Zarr group.
    print("Writing with exzarr")
    (root / ".zgroup").write_text(json.dumps({"zarr_format": 2}, indent=4) + "\n")
    for ds in datasets:
        t0 = time.perf_counter()
        ds.exzarr_write(root / ds.name)
        dt = time.perf_counter() - t0
        stored = exzarr.open(root / ds.name, mode="r").nbytes_stored
        print(f"  {ds.name:<7} {str(ds.data.dtype):<8} {str(ds.data.shape):<13} "
              f"{mib(ds.data.nbytes):>10} -> {mib(stored):>9}  "
              f"(ratio {ds.data.nbytes / stored:4.2f})  {dt:5.2f} s")
    print()

    # 2. Inspect it with the command line.
    run_cli(root)
    print()

    # 3. Read it back with zarr-python 3.
    print(f"Reading back with zarr-python {zarr.__version__}")
    for ds in datasets:
        z = zarr.open_array(str(root / ds.name), mode="r")
        check_equal(f"zarr-python reading exzarr's {ds.name}", np.asarray(z[...]), ds.data)
        print(f"  {ds.name:<7} identical  ({z.dtype}, shape {z.shape}, chunks {z.chunks})")
    print()

    # 4. Time both libraries.
    rows = []
    for ds in datasets:
        ex_path, zp_path = root / ds.name, root / "zarr_python" / ds.name
        zp_path.parent.mkdir(parents=True, exist_ok=True)
        times = median_times({
            "exzarr write": lambda: ds.exzarr_write(ex_path),
            "exzarr read": lambda: exzarr.open(ex_path, mode="r")[...],
            "zarr write": lambda: ds.zarr_write(zp_path),
            "zarr read": lambda: zarr.open_array(str(zp_path), mode="r")[...],
        }, repeat)
        for op in ("write", "read"):
            ex = ds.data.nbytes / times[f"exzarr {op}"] / 1e6
            zp = ds.data.nbytes / times[f"zarr {op}"] / 1e6
            rows.append((ds.name, op, ex, zp))
        # The timed writes must still hold the data, in both directions of interop.
        check_equal(f"exzarr reading its own {ds.name}",
                    exzarr.open(ex_path, mode="r")[...], ds.data)
        check_equal(f"exzarr reading zarr-python's {ds.name}",
                    exzarr.open(zp_path, mode="r")[...], ds.data)

    print(f"Throughput in MB/s (uncompressed bytes / wall time; median of {repeat} runs "
          "after a warm-up)")
    header = f"  {'array':<8}{'op':<7}{'exzarr':>9}{'zarr-python':>13}{'exzarr/zarr-python':>20}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name, op, ex, zp in rows:
        print(f"  {name:<8}{op:<7}{ex:>9.0f}{zp:>13.0f}{ex / zp:>19.2f}x")
    print("\nexzarr also read back zarr-python's copies identically "
          f"({root / 'zarr_python'}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
