"""One exzarr operation on a benchmark array, in a loop: the thing to run under a profiler.

    python bench/loop.py --workload W1 --codec zstd-1 --op read --repeat 60
    perf record -e cpu-clock -F 4000 -a -g python bench/loop.py --codec blosc-lz4-5 --op write
    python bench/loop.py --codec none --op read --out      # into one reused buffer
    python bench/loop.py --codec none --op read --no-reuse # every result in fresh pages

The array is written once into --dir (from the same generated data as ``make bench``)
and reused on later runs; writes are timed as ``make bench`` times them (worker.py's
_write_fresh: created untimed, dirty pages flushed first); the result is checked against
the data once, at the end. Prints the median MB/s of the timed repetitions and the
median user and system CPU time of one (getrusage: all threads of the process).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker  # noqa: E402
import workloads as wl  # noqa: E402

import exzarr  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="W1", choices=["W1", "W2", "W4"])
    p.add_argument("--codec", default="zstd-1")
    p.add_argument("--op", default="read", choices=["read", "write"])
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: cores)")
    p.add_argument("--out", action="store_true", help="read into one reused buffer (out=)")
    p.add_argument("--no-reuse", action="store_true",
                   help="fresh memory for every result (config reuse_bytes=0)")
    p.add_argument("--dir", default="/tmp/exzarr-loop")
    a = p.parse_args(argv)

    w = wl.WORKLOADS[a.workload]
    if a.codec not in w.codecs:
        p.error(f"{a.workload} codecs: {', '.join(w.codecs)}")
    codec = wl.codec(a.codec)
    if a.threads:
        exzarr.config.set(threads=a.threads)
    if a.no_reuse:
        exzarr.config.set(reuse_bytes=0)
    data_dir = os.path.join(a.dir, "data")
    wl.generate(data_dir)
    data = wl.load(data_dir, w.array)
    path = os.path.join(a.dir, f"{w.name}-{codec.name}")

    cpu: list[tuple[float, float]] = []  # (user, system) seconds of each timed operation

    def timed_cpu(fn):
        def run(*args):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            out = fn(*args)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu.append((r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime))
            return out
        return run

    peer = worker.ExzarrPeer()
    if not os.path.exists(os.path.join(path, ".zarray")):
        worker._write_fresh(peer, path, data, w.chunks, codec)
    peer.write = timed_cpu(peer.write)  # the call _write_fresh times
    times = []
    if a.op == "write":
        # Written as make bench writes: into the same directory, removed before each
        # write, or with thousands of files each into a new one (see worker.run_rw).
        fresh = [f"{path}-write{k}" for k in range(a.repeat)] if w.many_files else [path] * a.repeat
        try:
            times = [worker._write_fresh(peer, where, data, w.chunks, codec) for where in fresh]
            result = exzarr.open(fresh[-1], mode="r")[...]
        finally:
            for where in set(fresh) - {path}:
                shutil.rmtree(where, ignore_errors=True)
    else:
        arr = exzarr.open(path, mode="r")
        buf = np.empty(data.shape, data.dtype) if a.out else None
        read = timed_cpu(arr.get_basic_selection)
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            result = read(Ellipsis, buf)
            times.append(time.perf_counter() - t0)
    if not np.array_equal(result, data):
        print("MISMATCH: the array does not read back as the data", file=sys.stderr)
        return 1
    med = statistics.median(times)
    how = " into out" if a.out else " (fresh pages)" if a.no_reuse else ""
    print(f"{w.name} {codec.name} {a.op}{how}: "
          f"{data.nbytes / wl.MB / med:.0f} MB/s (median of {a.repeat}, {med * 1e3:.1f} ms; "
          f"CPU user {statistics.median(u for u, _ in cpu) * 1e3:.1f} ms, system "
          f"{statistics.median(k for _, k in cpu) * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
