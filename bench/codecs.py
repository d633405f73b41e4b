"""Codec benchmark: exzarr's codec objects against numcodecs' on the same data.

Run with ``python bench/codecs.py`` (``--size-mib``, ``--repeat``). For each codec it

1. encodes and decodes realistic data (about 8 MiB each):

   - ``field``: float32 ``20 sin(x) cos(y)`` plus Gaussian noise, rounded to 2 decimals;
   - ``field64``: the same as float64 (for astype f8 -> f4);
   - ``series``: int64 cumulative sums of random steps (``walk``: smaller steps, in int16
     range, for delta with astype i2);
   - ``mask``: booleans, in runs;
   - ``strings``: an object array of short str (words, numbers, some non-ASCII);

2. checks the outputs: exzarr decodes its own bytes and numcodecs' to what numcodecs
   decodes (for lossy filters, exzarr's encoded bytes must equal numcodecs' too), and
   numcodecs decodes exzarr's bytes the same;

3. prints a markdown table of encode and decode throughput (MB/s of decoded data, 1 MB
   = 10**6 bytes, median of ``--repeat`` runs, one thread) and the ratio exzarr/numcodecs;

4. for the filters with a C path, prints the array-pipeline throughput: an in-memory
   ``exzarr.create`` array with that filter and zstd level 1, written and read whole,
   on one thread and on all cores -- the path array data really takes.

Any mismatch stops the benchmark with exit status 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numcodecs
import numcodecs.blosc
import numpy as np

import exzarr
from exzarr.codecs import get_codec

SEED = 20240611


def make_data(size_mib: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    n4 = int(size_mib * 2**20) // 4
    cols = 2048
    rows = max(1, n4 // cols)
    x = np.linspace(0, 8 * np.pi, cols, dtype=np.float32)
    y = np.linspace(0, 6 * np.pi, rows, dtype=np.float32)[:, None]
    field = np.round(20 * np.sin(x) * np.cos(y) + rng.normal(scale=0.3, size=(rows, cols)), 2).astype("<f4")
    n8 = int(size_mib * 2**20) // 8
    field64 = field.reshape(-1)[:n8].astype("<f8")
    series = np.cumsum(rng.integers(-50, 51, size=n8)).astype("<i8")
    # A slower walk whose values fit int16, for delta with astype i2 (numcodecs stores the
    # first element with enc[0] = arr[0], which raises when it does not fit).
    walk = np.cumsum(rng.integers(-3, 4, size=n8)).astype("<i8")
    mask = np.repeat(rng.random(int(size_mib * 2**20) // 16) < 0.3, 16)
    words = np.array(["alpha", "beta", "gamma", "δέλτα", "東京", "x", "", "2024-06-11", "NaN",
                      "temperature", "sensor_17"], dtype=object)
    strings = np.empty(int(size_mib * 2**20) // 12, dtype=object)
    strings[:] = [w if i % 3 else f"{w}{i}" for i, w in
                  enumerate(words[rng.integers(0, len(words), size=strings.size)])]
    return {"field": field, "field64": field64, "series": series, "walk": walk, "mask": mask,
            "strings": strings}


@dataclass
class Case:
    label: str
    config: dict[str, Any]
    data: str
    lossy: bool = False   # a lossy filter: encoded bytes must equal numcodecs'
    exact: bool = False   # deterministic encoder: bytes must equal numcodecs'
    pipeline: bool = False  # has a C path in the array pipeline


CASES = [
    Case("zlib 1", {"id": "zlib", "level": 1}, "field"),
    Case("gzip 1", {"id": "gzip", "level": 1}, "field"),
    Case("zstd 1", {"id": "zstd", "level": 1}, "field"),
    Case("zstd 3", {"id": "zstd", "level": 3}, "field"),
    Case("lz4", {"id": "lz4", "acceleration": 1}, "field"),
    Case("blosc lz4 shuffle", {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}, "field"),
    Case("blosc zstd shuffle", {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1, "blocksize": 0}, "field"),
    Case("bz2 1", {"id": "bz2", "level": 1}, "field"),
    Case("lzma (preset 6)", {"id": "lzma", "format": 1, "check": -1, "preset": None, "filters": None}, "field"),
    Case("delta i8", {"id": "delta", "dtype": "<i8", "astype": "<i8"}, "series", exact=True, pipeline=True),
    Case("delta i8->i2", {"id": "delta", "dtype": "<i8", "astype": "<i2"}, "walk", exact=True,
         pipeline=True),
    Case("shuffle 4", {"id": "shuffle", "elementsize": 4}, "field", exact=True, pipeline=True),
    Case("quantize 2 f4", {"id": "quantize", "digits": 2, "dtype": "<f4", "astype": "<f4"}, "field",
         lossy=True, pipeline=True),
    Case("fixedscaleoffset f4->i2", {"id": "fixedscaleoffset", "offset": 0, "scale": 100,
                                     "dtype": "<f4", "astype": "<i2"}, "field", lossy=True, pipeline=True),
    Case("bitround 10 f4", {"id": "bitround", "keepbits": 10}, "field", lossy=True, pipeline=True),
    Case("astype f8->f4", {"id": "astype", "encode_dtype": "<f4", "decode_dtype": "<f8"}, "field64",
         lossy=True, pipeline=True),
    Case("packbits", {"id": "packbits"}, "mask", exact=True, pipeline=True),
    Case("crc32", {"id": "crc32"}, "field", exact=True, pipeline=True),
    Case("adler32", {"id": "adler32"}, "field", exact=True, pipeline=True),
    Case("crc32c", {"id": "crc32c"}, "field", exact=True, pipeline=True),
    Case("fletcher32", {"id": "fletcher32"}, "field", exact=True, pipeline=True),
    Case("vlen-utf8", {"id": "vlen-utf8"}, "strings", exact=True),
]


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def as_bytes(x: Any) -> bytes:
    if isinstance(x, np.ndarray):
        return x.tobytes(order="A")
    return bytes(memoryview(x).cast("B"))


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and a.dtype.hasobject or isinstance(b, np.ndarray) and b.dtype.hasobject:
        return np.asarray(a).reshape(-1).tolist() == np.asarray(b).reshape(-1).tolist()
    return as_bytes(a) == as_bytes(b)


class Mismatch(Exception):
    pass


def verify(case: Case, ours: Any, theirs: Any, data: np.ndarray, enc_o: Any, enc_t: Any) -> None:
    ref = theirs.decode(enc_t)
    checks = {
        "exzarr decodes its own bytes": same(ours.decode(as_bytes(enc_o)), ref),
        "exzarr decodes numcodecs' bytes": same(ours.decode(enc_t), ref),
        "numcodecs decodes exzarr's bytes": same(theirs.decode(as_bytes(enc_o)), ref),
    }
    if case.exact or case.lossy:
        checks["encoded bytes equal numcodecs'"] = as_bytes(enc_o) == as_bytes(enc_t)
    if not case.lossy:
        checks["lossless"] = same(ref, data.reshape(-1)) if data.dtype.hasobject else as_bytes(ref) == as_bytes(data)
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise Mismatch(f"{case.label}: " + "; ".join(bad))


def data_size(case: Case, data: np.ndarray, enc: Any) -> int:
    """Bytes counted for throughput: the decoded data (for strings, their vlen payload)."""
    return len(as_bytes(enc)) if data.dtype.hasobject else data.nbytes


def bench_codecs(datasets: dict[str, np.ndarray], repeat: int) -> list[list[str]]:
    rows = []
    for case in CASES:
        data = datasets[case.data]
        ours = get_codec(dict(case.config))
        theirs = numcodecs.get_codec(dict(case.config))
        enc_o, enc_t = ours.encode(data), theirs.encode(data)
        verify(case, ours, theirs, data, enc_o, enc_t)
        size = data_size(case, data, enc_o)
        bo, bt = as_bytes(enc_o), as_bytes(enc_t)
        t_enc_o = median_time(lambda: ours.encode(data), repeat)
        t_enc_t = median_time(lambda: theirs.encode(data), repeat)
        t_dec_o = median_time(lambda: ours.decode(bo), repeat)
        t_dec_t = median_time(lambda: theirs.decode(bt), repeat)
        mb = size / 1e6
        rows.append([case.label, f"{mb / t_enc_o:,.0f}", f"{mb / t_enc_t:,.0f}", f"{t_enc_t / t_enc_o:.2f}",
                     f"{mb / t_dec_o:,.0f}", f"{mb / t_dec_t:,.0f}", f"{t_dec_t / t_dec_o:.2f}"])
        print(f"  {case.label}: done", file=sys.stderr)
    return rows


def bench_pipeline(datasets: dict[str, np.ndarray], repeat: int) -> list[list[str]]:
    rows = []
    cores = os.cpu_count() or 1
    baseline = [Case("(no filter)", {}, "field"), Case("(no filter)", {}, "series")]
    for case in baseline + [c for c in CASES if c.pipeline]:
        data = datasets[case.data]
        flat = data.reshape(-1)
        chunk = max(1, (1 << 20) // data.itemsize)  # 1 MiB chunks
        filters = [dict(case.config)] if case.config else None
        # The result a reader must see: numcodecs' decoding of each chunk's encoding.
        expected = flat.copy()
        if filters:
            nc = numcodecs.get_codec(dict(case.config))
            for i in range(0, flat.size, chunk):
                part = flat[i:i + chunk]
                if part.size < chunk:
                    part = np.concatenate([part, np.zeros(chunk - part.size, dtype=flat.dtype)])
                dec = np.frombuffer(as_bytes(nc.decode(nc.encode(part))), dtype=flat.dtype)
                expected[i:i + chunk] = dec[: min(chunk, flat.size - i)]
        out = []
        for threads in (1, cores):
            exzarr.config.set(threads=threads)
            a = exzarr.create(shape=flat.shape, chunks=(chunk,), dtype=flat.dtype, filters=filters,
                              compressor={"id": "zstd", "level": 1})
            if a._python_codecs:
                raise Mismatch(f"{case.label}: the array pipeline is not the C path")

            def write() -> None:
                a[...] = flat

            t_w = median_time(write, repeat)
            t_r = median_time(lambda: a[...], repeat)
            got = a[...]
            if as_bytes(got) != as_bytes(expected):
                raise Mismatch(f"{case.label}: the array reads back other values than numcodecs decodes")
            out += [f"{flat.nbytes / 1e6 / t_w:,.0f}", f"{flat.nbytes / 1e6 / t_r:,.0f}"]
        label = f"{case.label} ({case.data})" if not case.config else case.label
        ratio = flat.nbytes / a.nbytes_stored
        rows.append([label + " + zstd 1", *out, f"{ratio:.2f}"])
        print(f"  pipeline {label}: done", file=sys.stderr)
    exzarr.config.set(threads=None)
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=float, default=8.0, help="size of each dataset (default 8)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the median counts")
    args = parser.parse_args(argv)
    numcodecs.blosc.set_nthreads(1)
    numcodecs.blosc.use_threads = False
    exzarr.config.set(threads=1)
    datasets = make_data(args.size_mib)
    print(f"exzarr {exzarr.__version__}, numcodecs {numcodecs.__version__}, numpy {np.__version__}; "
          f"{args.size_mib:g} MiB per dataset, median of {args.repeat}, one thread\n")
    try:
        rows = bench_codecs(datasets, args.repeat)
        print(table(["codec", "exzarr enc MB/s", "numcodecs enc MB/s", "ratio", "exzarr dec MB/s",
                     "numcodecs dec MB/s", "ratio"], rows))
        print("\nratio = exzarr throughput / numcodecs throughput (> 1: exzarr faster)\n")
        cores = os.cpu_count() or 1
        prow = bench_pipeline(datasets, args.repeat)
        print("Array pipeline (in-memory exzarr array, 1 MiB chunks, filter + zstd 1), MB/s of array data:\n")
        print(table(["filter", "write 1 thread", "read 1 thread", f"write {cores} threads",
                     f"read {cores} threads", "stored ratio"], prow))
    except Mismatch as exc:
        print(f"MISMATCH: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
