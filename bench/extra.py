"""Secondary workloads beside ``make bench``: exzarr, zarr-python 3 and tensorstore.

    make bench-extra                     # or: .venv/bin/python bench/extra.py
    .venv/bin/python bench/extra.py --cases zip-read,vindex --rounds 3

Cases, all on W1's float32 4096x4096 field (zstd 1, 512x512 chunks) unless said:

    memory-write, memory-read   the whole array in an in-memory store
    zip-read                    the whole array from a zip archive (written by the peer)
    oindex                      500 random rows, every column (orthogonal selection)
    vindex                      100,000 random points (coordinate selection)
    stride                      a[::3, ::5]
    group-write, group-read     200 arrays of 100x100 (4 chunks each) in one group

Each peer runs in its own process and virtual environment (the ones ``make bench``
builds), the rounds alternate the peers' order, every result is checked against NumPy,
and the table shows medians in milliseconds and exzarr's speed over the best peer's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import worker  # noqa: E402  (make bench's peers and timing)
import workloads as wl  # noqa: E402

CASES = ["memory-write", "memory-read", "zip-read", "oindex", "vindex", "stride",
         "group-write", "group-read"]
PEERS = ["exzarr", "zarr3", "tensorstore"]
LABEL = {"exzarr": "exzarr", "zarr3": "zarr-py 3", "tensorstore": "tensorstore"}
CHUNKS = (512, 512)
GROUP_ARRAYS = 200


ZSTD1 = wl.codec("zstd-1")
NotSupported = worker.NotSupported


# --------------------------------------------------------------------------- peers
# make bench's peers (worker.py: directory arrays, whole reads and writes), plus what
# these cases need: memory and zip stores, selections, groups.


class _ZarrStyle:
    """Selections on arrays indexed in place, as exzarr's and zarr-python's are."""

    def select(self, arr: Any, sel: Any) -> np.ndarray:
        return arr[sel]

    def oindex(self, arr: Any, sel: Any) -> np.ndarray:
        return arr.oindex[sel]

    def vindex(self, arr: Any, sel: Any) -> np.ndarray:
        return arr.vindex[sel]


class Exzarr(_ZarrStyle, worker.ExzarrPeer):
    def create_in(self, kind: str, path: str, data: np.ndarray) -> Any:
        """A new array in a ``"memory"`` or ``"zip"`` store."""
        return self.exzarr.create(shape=data.shape, chunks=CHUNKS, dtype=data.dtype.str,
                                  compressor=ZSTD1.compressor, overwrite=True, storage=kind,
                                  path=None if kind == "memory" else path)

    def close(self, arr: Any) -> None:
        arr.store.close()

    def open_zip(self, path: str) -> Any:
        return self.exzarr.open(path, mode="r", storage="zip")

    def group_write(self, path: str, small: np.ndarray) -> None:
        g = self.exzarr.open_group(path, mode="w")
        for i in range(GROUP_ARRAYS):
            g.create_array(f"a{i}", shape=small.shape, chunks=(50, 50), dtype=small.dtype.str,
                           compressor=ZSTD1.compressor)[...] = small

    def group_read(self, path: str) -> List[np.ndarray]:
        g = self.exzarr.open_group(path, mode="r")
        return [g[f"a{i}"][...] for i in range(GROUP_ARRAYS)]


class Zarr3(_ZarrStyle, worker.Zarr3Peer):
    _zip: Any = None

    def create_in(self, kind: str, path: str, data: np.ndarray) -> Any:
        if kind == "zip":
            self._zip = store = self.zarr.storage.ZipStore(path, mode="w")
        else:
            store = self.zarr.storage.MemoryStore()
        return self.create(store, data, CHUNKS, ZSTD1)

    def close(self, arr: Any) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def open_zip(self, path: str) -> Any:
        return self.zarr.open_array(self.zarr.storage.ZipStore(path, mode="r"), mode="r",
                                    zarr_format=2)

    def group_write(self, path: str, small: np.ndarray) -> None:
        g = self.zarr.open_group(path, mode="w", zarr_format=2)
        codec = self.numcodecs.get_codec(dict(ZSTD1.compressor))
        for i in range(GROUP_ARRAYS):
            g.create_array(f"a{i}", shape=small.shape, chunks=(50, 50), dtype=small.dtype,
                           compressors=codec)[...] = small

    def group_read(self, path: str) -> List[np.ndarray]:
        g = self.zarr.open_group(path, mode="r", zarr_format=2, use_consolidated=False)
        return [g[f"a{i}"][...] for i in range(GROUP_ARRAYS)]


class Tensorstore(worker.TensorstorePeer):
    def _spec(self, kvstore: Dict[str, Any], data: np.ndarray | None = None) -> Dict[str, Any]:
        spec: Dict[str, Any] = {"driver": "zarr", "kvstore": kvstore, "context": self.CONTEXT}
        if data is not None:
            spec["metadata"] = {"shape": list(data.shape), "chunks": list(CHUNKS),
                                "dtype": data.dtype.str, "compressor": ZSTD1.compressor,
                                "order": "C", "fill_value": 0, "filters": None}
        return spec

    def create_in(self, kind: str, path: str, data: np.ndarray) -> Any:
        if kind == "zip":
            raise NotSupported("tensorstore's zip kvstore is read-only")
        return self.ts.open(self._spec({"driver": "memory"}, data), create=True,
                            delete_existing=True).result()

    def close(self, arr: Any) -> None:
        pass

    def open_zip(self, path: str) -> Any:
        kvstore = {"driver": "zip", "base": {"driver": "file", "path": path}}
        return self.ts.open(self._spec(kvstore), open=True, read=True).result()

    def select(self, arr: Any, sel: Any) -> np.ndarray:
        return arr[sel].read().result()

    def oindex(self, arr: Any, sel: Any) -> np.ndarray:
        return arr.oindex[sel].read().result()

    def vindex(self, arr: Any, sel: Any) -> np.ndarray:
        return arr.vindex[sel].read().result()

    def group_write(self, path: str, small: np.ndarray) -> None:
        # No group object: the arrays of a group, each with its own metadata.
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, ".zgroup"), "w") as f:
            json.dump({"zarr_format": 2}, f)
        for i in range(GROUP_ARRAYS):
            self.write(self.create(f"{path}/a{i}", small, (50, 50), ZSTD1), small)

    def group_read(self, path: str) -> List[np.ndarray]:
        return [self.read(self.open(f"{path}/a{i}")) for i in range(GROUP_ARRAYS)]


ADAPTERS = {"exzarr": Exzarr, "zarr3": Zarr3, "tensorstore": Tensorstore}


# --------------------------------------------------------------------------- worker


def _timed(fn: Callable[..., Any], repeat: int, before: Callable[[], Any] | None = None) -> tuple:
    """The seconds of ``repeat`` timed calls after an untimed one, and the last result;
    ``fn`` takes what ``before`` (untimed) returns, when given."""
    runs, out = [], None
    for k in range(repeat + 1):
        args = (before(),) if before else ()
        worker._settle()
        t0 = time.perf_counter()
        out = fn(*args)
        t = time.perf_counter() - t0
        if k:
            runs.append(t)
    return runs, out


def run_case(peer_name: str, case: str, root: str, data_dir: str, repeat: int) -> Dict[str, Any]:
    peer = ADAPTERS[peer_name]()
    field = wl.load(data_dir, "field")
    rng = np.random.default_rng(7)
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, case)

    def directory_array() -> Any:
        base = os.path.join(root, "field")
        if not os.path.exists(base):
            peer.write(peer.create(base, field, CHUNKS, ZSTD1), field)
        return peer.open(base)

    if case in ("memory-write", "memory-read"):
        arr = peer.create_in("memory", path, field)
        peer.write(arr, field)
        if case == "memory-write":
            runs, _ = _timed(lambda: peer.write(arr, field), repeat)
            out = peer.read(arr)
        else:
            runs, out = _timed(lambda: peer.read(arr), repeat)
        expected = field
    elif case == "zip-read":
        zpath = path + ".zip"
        if peer_name == "tensorstore":  # cannot write zip: reads zarr-python's archive
            zpath = os.path.join(os.path.dirname(root), "zarr3", "zip-read.zip")
            if not os.path.exists(zpath):
                raise NotSupported("reads zarr-python 3's archive: run zarr3 first")
        elif not os.path.exists(zpath):
            arr = peer.create_in("zip", zpath, field)
            peer.write(arr, field)
            peer.close(arr)
        arr = peer.open_zip(zpath)
        runs, out = _timed(lambda: peer.read(arr), repeat)
        expected = field
    elif case == "oindex":
        arr = directory_array()
        rows = np.sort(rng.choice(field.shape[0], 500, replace=False))
        runs, out = _timed(lambda: peer.oindex(arr, (rows, slice(None))), repeat)
        expected = field[rows, :]
    elif case == "vindex":
        arr = directory_array()
        r = rng.integers(0, field.shape[0], 100_000)
        c = rng.integers(0, field.shape[1], 100_000)
        runs, out = _timed(lambda: peer.vindex(arr, (r, c)), repeat)
        expected = field[r, c]
    elif case == "stride":
        arr = directory_array()
        runs, out = _timed(lambda: peer.select(arr, np.s_[::3, ::5]), repeat)
        expected = field[::3, ::5]
    elif case in ("group-write", "group-read"):
        small = np.ascontiguousarray(field[:100, :100])
        if case == "group-write":
            # A new directory for every write: removing thousands of files right before
            # a timed write slows file creation on some file systems (see worker.py).
            count = iter(range(repeat + 1))
            runs, _ = _timed(lambda p: peer.group_write(p, small), repeat,
                             before=lambda: os.path.join(root, f"group-write-{next(count)}"))
            out = peer.group_read(os.path.join(root, f"group-write-{repeat}"))
        else:
            gpath = os.path.join(root, "group-read")
            if not os.path.exists(gpath):
                peer.group_write(gpath, small)
            runs, out = _timed(lambda: peer.group_read(gpath), repeat)
        out, expected = np.stack([np.asarray(o) for o in out]), np.stack([small] * GROUP_ARRAYS)
    else:
        raise ValueError(f"unknown case {case!r}")
    ok = worker._same(out, expected)
    return {"status": "ok" if ok else "error", "ms": statistics.median(runs) * 1e3,
            "runs_ms": [round(x * 1e3, 1) for x in runs],
            **({} if ok else {"reason": "the result differs from NumPy's"})}


def worker_main(a: argparse.Namespace) -> int:
    try:
        res = run_case(a.peer, a.case, a.dir, a.data, a.repeat)
    except NotSupported as e:
        res = {"status": "n/a", "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - reported to the orchestrator
        res = {"status": "error", "reason": f"{type(e).__name__}: {e}"[:300]}
    print(json.dumps(res))
    return 0


# --------------------------------------------------------------------------- orchestrator


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--scratch", default="/tmp/exzarr-bench-extra")
    p.add_argument("--worker", nargs=2, metavar=("PEER", "CASE"), help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        a.peer, a.case = a.worker
        return worker_main(a)

    import run  # the pinned peer environments of make bench

    cases = [c for c in a.cases.split(",") if c]
    peers = [x for x in a.peers.split(",") if x]
    for c in cases:
        if c not in CASES:
            p.error(f"unknown case {c!r}; cases: {', '.join(CASES)}")
    envs = run.setup_envs(peers)
    data_dir = os.path.join(a.scratch, "data")
    wl.generate(data_dir)
    for x in peers:
        shutil.rmtree(os.path.join(a.scratch, x), ignore_errors=True)
    results: Dict[tuple, List[float]] = {}
    notes: Dict[tuple, str] = {}
    started = time.perf_counter()
    for rnd in range(a.rounds):
        order = peers if rnd % 2 == 0 else peers[::-1]
        for case in cases:
            # zarr-python writes the zip archive tensorstore reads, so it goes first there.
            here = sorted(order, key=lambda x: x != "zarr3") if case == "zip-read" else order
            for peer in here:
                py = envs[peer][0]
                if py is None:
                    notes[(peer, case)] = envs[peer][1]
                    continue
                res = run.run_worker(py, ["--worker", peer, case, "--dir",
                                          os.path.join(a.scratch, peer), "--data", data_dir,
                                          "--repeat", str(a.repeat)], script=__file__)
                if res["status"] == "ok":
                    results.setdefault((peer, case), []).append(res["ms"])
                else:
                    notes[(peer, case)] = f"{res['status']}: {res.get('reason', '')}"
                print(f"  round {rnd + 1} {LABEL[peer]:<12} {case:<13} "
                      + (f"{res['ms']:.1f} ms (runs {res['runs_ms']})" if res["status"] == "ok"
                         else notes[(peer, case)]), flush=True)
    shutil.rmtree(a.scratch, ignore_errors=True)

    print(f"\n== secondary workloads (median ms of {a.rounds} rounds x {a.repeat}; lower is "
          f"better; {time.perf_counter() - started:.0f} s)")
    head = f"{'case':<14}" + "".join(f"{LABEL[x]:>13}" for x in peers) + f"{'exzarr/best':>13}"
    print(head)
    print("-" * len(head))
    for case in cases:
        cells, times = [], {}
        for x in peers:
            runs = results.get((x, case))
            if runs:
                times[x] = statistics.median(runs)
                cells.append(f"{times[x]:>13.1f}")
            else:
                cells.append(f"{'n/a':>13}")
        others = [v for k, v in times.items() if k != "exzarr"]
        ratio = (f"{min(others) / times['exzarr']:>12.2f}x" if "exzarr" in times and others
                 else f"{'':>13}")
        print(f"{case:<14}" + "".join(cells) + ratio)
    for (peer, case), why in sorted(notes.items()):
        print(f"  {LABEL[peer]} {case}: {why}")
    print("exzarr/best: the best peer's time over exzarr's (> 1: exzarr faster).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
