"""Benchmark workloads shared by the orchestrator (run.py) and the workers (worker.py).

Everything here must import under every peer's environment (Python 3.11 with NumPy 1.26
for zarr-python 2.18, Python 3.12 with NumPy 2.x for the others), so it uses nothing but
NumPy and the standard library.

The data are generated once, by the orchestrator, from a fixed seed, and saved as .npy
files; every worker loads those files, so every peer writes and checks exactly the same
bytes (NumPy's transcendental functions may differ by an ulp between versions, which
rounding to 2 decimals could turn into a different value).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

SEED = 20240611
DATA_VERSION = 1  # bump when the generated data change
MB = 1_000_000  # throughput unit: 10^6 bytes of uncompressed array data per second

N = 4096  # side of the W1 / W4 arrays
W3_WINDOWS = 2000
W3_SIZE = 64

# Compressor configurations (numcodecs JSON), by the short names used in the tables.
COMPRESSORS: Dict[str, Optional[Dict[str, Any]]] = {
    "none": None,
    "zlib-1": {"id": "zlib", "level": 1},
    "zstd-1": {"id": "zstd", "level": 1},
    "lz4-1": {"id": "lz4", "acceleration": 1},
    "blosc-lz4-5": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    "blosc-zstd-3": {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1, "blocksize": 0},
}

DELTA_I8 = {"id": "delta", "dtype": "<i8", "astype": "<i8"}


@dataclass(frozen=True)
class Codec:
    """A codec chain: filters (in order), then a compressor."""

    name: str
    compressor: Optional[Dict[str, Any]]
    filters: List[Dict[str, Any]] = field(default_factory=list)


def codec(name: str) -> Codec:
    """The codec chain named ``name``: a key of COMPRESSORS, or 'delta+zstd-1'."""
    if name == "delta+zstd-1":
        return Codec(name, COMPRESSORS["zstd-1"], [DELTA_I8])
    return Codec(name, COMPRESSORS[name])


@dataclass(frozen=True)
class Workload:
    name: str
    array: str  # the data file (without .npy) in the data directory
    chunks: tuple
    codecs: tuple  # codec names
    kind: str  # "rw": whole-array write and read; "windows": W3; "memory": peak RSS of a read
    title: str
    many_files: bool = False  # thousands of chunk files: each write into a new directory


WORKLOADS: Dict[str, Workload] = {
    "W1": Workload("W1", "field", (512, 512), tuple(COMPRESSORS), "rw",
                   "float32 4096x4096 (64 MiB), 64 chunks of 512x512 (1 MiB)"),
    "W2": Workload("W2", "cumsum", (2**20,), ("delta+zstd-1",), "rw",
                   "int64 cumulative sums, 16 Mi elements, chunks of 1 Mi, delta + zstd 1"),
    "W3": Workload("W3", "field", (512, 512), ("zstd-1",), "windows",
                   f"{W3_WINDOWS} random {W3_SIZE}x{W3_SIZE} windows of W1 (zstd 1)"),
    "W4": Workload("W4", "image16", (64, 64), ("zstd-1",), "rw",
                   "uint16 4096x4096 (32 MiB), 4,096 chunks of 64x64 (8 KiB), zstd 1",
                   many_files=True),
    "MEM": Workload("MEM", "field", (512, 512), ("zstd-1",), "memory",
                    "peak RSS of a full W1 (zstd 1) read, above the baseline after open"),
}


def generate(data_dir: str) -> Dict[str, str]:
    """Write the benchmark data into ``data_dir`` (idempotent); return name -> path."""
    os.makedirs(data_dir, exist_ok=True)
    names = ("field", "cumsum", "image16", "windows")
    paths = {n: os.path.join(data_dir, n + ".npy") for n in names}
    stamp = os.path.join(data_dir, "manifest.json")
    want = {"seed": SEED, "version": DATA_VERSION}
    try:
        with open(stamp) as f:
            if json.load(f) == want and all(os.path.exists(p) for p in paths.values()):
                return paths
    except (OSError, ValueError):
        pass

    rng = np.random.default_rng(SEED)
    # W1: 20 sin(x) cos(y) + N(0, 0.5), rounded to 2 decimals, float32, 64 MiB.
    x = np.linspace(0.0, 6 * np.pi, N)
    fld = 20.0 * np.sin(x)[:, None] * np.cos(x)[None, :]
    fld += rng.normal(0.0, 0.5, size=(N, N))
    fld = np.round(fld, 2).astype(np.float32)
    # W2: cumulative sums of small random steps, int64, 16 Mi elements (128 MiB).
    steps = rng.integers(-8, 9, size=16 * 2**20, dtype=np.int64)
    cumsum = np.cumsum(steps) + 1_000_000
    # W4: the W1 field as a 16-bit "sensor image" (offset and scaled), 32 MiB.
    img = np.clip(np.round((fld.astype(np.float64) + 32.0) * 1000.0), 0, 65535).astype(np.uint16)
    # W3: top-left corners of the random windows (same for every peer).
    win = rng.integers(0, N - W3_SIZE + 1, size=(W3_WINDOWS, 2), dtype=np.int64)

    for name, arr in (("field", fld), ("cumsum", cumsum), ("image16", img), ("windows", win)):
        tmp = paths[name] + ".tmp.npy"
        np.save(tmp, np.ascontiguousarray(arr))
        os.replace(tmp, paths[name])
    with open(stamp, "w") as f:
        json.dump(want, f)
    return paths


def load(data_dir: str, name: str, mmap: bool = False) -> np.ndarray:
    return np.load(os.path.join(data_dir, name + ".npy"), mmap_mode="r" if mmap else None)
