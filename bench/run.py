"""exzarr benchmarks against its peers: ``make bench`` (or ``python bench/run.py``).

Peers, each in its own virtual environment so their pinned versions cannot clash:

    exzarr       this interpreter (the project's .venv)
    zarr3        zarr-python 3, its default codec pipeline       .bench-venvs/zarr3  (3.12)
    zarrs        zarr-python 3 + the zarrs Rust codec pipeline   .bench-venvs/zarrs  (3.12)
    zarr2        zarr-python 2.18                                .bench-venvs/zarr2  (3.11)
    tensorstore  tensorstore's zarr v2 driver                    .bench-venvs/tensorstore (3.12)

The environments are created, or rebuilt from scratch when bench/requirements-<peer>.txt
or the base interpreter changed, before anything is measured (idempotent: an environment
that is up to date is left alone). Interpreters: $PYTHON312 / $PYTHON311 if set, else
pyenv's builds, else python3.12 / python3.11 on PATH.

Every measurement runs in a fresh worker process (bench/worker.py) in the peer's
environment, one at a time: for each workload/codec, every peer in turn, exzarr first
(--order peer: all of one peer's jobs, then the next peer's; every other round in reverse;
W4, thousands of small files, one repetition per turn: see job_turns);
each peer writes into its own directory under --dir, on local disk, with the page cache
warm (one untimed write and one untimed read before the timed ones, dirty pages flushed
before each timed step), and every read is checked against the data. Before each W1/W2
row, the 2-core codec limit is measured too: the codec chain alone over the chunks in
memory (numcodecs or exzarr's core, whichever is faster). At the end of each round,
exzarr writes W1 none and zstd-1 again with exzarr.config.set(fsync=True) (FSYNC_REPEAT
repetitions): the cost of durable writes, against exzarr's own row. Results: a table on
stdout, the goals (MET / NOT MET), the fsync table, and bench/results/latest.json.

    python bench/run.py                  # everything: 2 rounds of 5 repetitions (medians)
    python bench/run.py --quick          # smoke test: 2 repetitions, W1 zstd/none and W4
    python bench/run.py --peers exzarr,zarrs --workloads W1,W3 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import workloads as wl  # noqa: E402

VENVS = os.path.join(ROOT, ".bench-venvs")
PEERS = ["exzarr", "zarr3", "zarrs", "zarr2", "tensorstore"]
PEER_PYTHON = {"zarr3": "3.12", "zarrs": "3.12", "tensorstore": "3.12", "zarr2": "3.11"}
LABEL = {"exzarr": "exzarr", "zarr3": "zarr-py 3", "zarrs": "zarrs", "zarr2": "zarr-py 2.18",
         "tensorstore": "tensorstore"}
WORKER_TIMEOUT = 900  # seconds for one worker process

# Goals (from the benchmark issue): exzarr against the best peer of each row.
RW_GOALS = {("W1", "write"): 1.3, ("W1", "read"): 1.3, ("W2", "write"): 1.3,
            ("W2", "read"): 1.3, ("W4", "read"): 1.2, ("W4", "write"): 1.0}
W3_GOAL_NOCACHE = 1.0  # per-window time <= best peer's
W3_GOAL_CACHE = 20.0  # >= 20x faster than the best peer
MEM_GOAL = 1.15  # peak above baseline <= 1.15 x the array size
# W1 and W2 rows: ">= 1.3x the best peer, and within 85% of the 2-core codec limit where
# the limit is below that": the target speed is min(1.3 x best peer, 0.85 x limit).
LIMIT_WORKLOADS = ("W1", "W2")
LIMIT_SHARE = 0.85
# The cost of exzarr.config.set(fsync=True): W1 writes with these codecs, exzarr only,
# at most FSYNC_REPEAT timed repetitions per round (each waits for the disk).
FSYNC_CODECS = ("none", "zstd-1")
FSYNC_REPEAT = 3
# Why a peer has no fsync row (shown as n/a with this note): zarr-python's stores and
# zarrs' filesystem store never call fsync.
FSYNC_PEER_NOTES = {
    "zarr3": "no setting that syncs written chunks to disk (their stores never fsync)",
    "zarrs": "no setting that syncs written chunks to disk (their stores never fsync)",
    "zarr2": "no setting that syncs written chunks to disk (their stores never fsync)",
    "tensorstore": "file_io_sync (on by default) syncs every chunk; turned off in the main"
                   " table so that no peer waits for the disk, and not measured here",
}


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- environments


def find_python(version: str) -> Optional[str]:
    env = os.environ.get("PYTHON" + version.replace(".", ""))
    if env:
        return env
    home = os.path.expanduser("~")
    cands = sorted(glob.glob(f"{home}/.pyenv/versions/{version}*/bin/python{version}"))
    if cands:
        return cands[-1]
    if sys.version_info[:2] == tuple(int(x) for x in version.split(".")):
        base = getattr(sys, "_base_executable", None)
        if base and os.path.exists(base):
            return base
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = os.path.join(d, f"python{version}")
        if "/shims" not in d and os.access(p, os.X_OK):
            return p
    return None


def _py_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def ensure_venv(peer: str) -> Tuple[Optional[str], str]:
    """Create or refresh the peer's environment; return (python, message) or (None, why)."""
    req = os.path.join(HERE, f"requirements-{peer}.txt")
    venv = os.path.join(VENVS, peer)
    py = os.path.join(venv, "bin", "python")
    base = find_python(PEER_PYTHON[peer])
    if base is None:
        return None, f"Python {PEER_PYTHON[peer]} not found (set PYTHON{PEER_PYTHON[peer].replace('.', '')})"
    try:
        base_version = _py_version(base)
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"{base} does not run: {e}"
    with open(req, "rb") as f:
        want = {"requirements_sha256": hashlib.sha256(f.read()).hexdigest(),
                "python": base_version}
    stamp = os.path.join(venv, ".bench-stamp.json")
    with contextlib.suppress(OSError, ValueError):
        with open(stamp) as f:
            if json.load(f) == want and os.access(py, os.X_OK):
                return py, "up to date"
    log(f"  setting up {venv} (Python {base_version}, {os.path.basename(req)}) ...")
    shutil.rmtree(venv, ignore_errors=True)  # rebuilt from scratch: exactly the pins
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    for cmd in ([base, "-m", "venv", venv],
                [py, "-m", "pip", "install", "-q", "-r", req]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            shutil.rmtree(venv, ignore_errors=True)
            return None, f"{' '.join(cmd[:4])} failed: {' | '.join(tail)}"
    with open(stamp, "w") as f:
        json.dump(want, f)
    return py, "installed"


def setup_envs(peers: List[str]) -> Dict[str, Tuple[Optional[str], str]]:
    os.makedirs(VENVS, exist_ok=True)
    out: Dict[str, Tuple[Optional[str], str]] = {}
    with open(os.path.join(VENVS, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once must not build the same venv
        for peer in peers:
            out[peer] = (sys.executable, "this interpreter") if peer == "exzarr" else ensure_venv(peer)
    return out


# --------------------------------------------------------------------------- machine


def machine_info() -> Dict[str, Any]:
    info: Dict[str, Any] = {"platform": platform.platform(), "cores": os.cpu_count()}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            info["memory_gib"] = round(kib / 2**20, 1)
    with contextlib.suppress(OSError):
        info["loadavg_start"] = list(os.getloadavg())
    return info


# --------------------------------------------------------------------------- running


def run_worker(python: str, args: List[str], script: str = "worker.py") -> Dict[str, Any]:
    """Run a worker script in a peer's interpreter; its last JSON line, or the error."""
    cmd = [python, os.path.join(HERE, script)] + args
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timed out after {WORKER_TIMEOUT} s"}
    elapsed = time.perf_counter() - t0
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                res = json.loads(line)
                res["elapsed"] = elapsed
                return res
    tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
    return {"status": "error", "reason": f"worker exited {r.returncode}: {' | '.join(tail)}",
            "elapsed": elapsed}


def _timing(runs: List[float], nbytes: int, ceiling: bool) -> Dict[str, Any]:
    sec = min(runs) if ceiling else statistics.median(runs)
    return {"seconds": sec, "mbps": nbytes / wl.MB / sec, "runs": runs}


def merge_rounds(prev: Optional[Dict[str, Any]], new: Dict[str, Any],
                 ceiling: bool = False) -> Dict[str, Any]:
    """One cell from several rounds: the median of all their runs (the fastest run for a
    codec limit, the largest peak for memory); a failed round fails the cell."""
    if prev is None or prev.get("status") != "ok":
        return prev or new
    if new.get("status") != "ok":
        return new
    out = dict(new, verified=bool(prev.get("verified") and new.get("verified")))
    for op in ("write", "read"):
        if op in new and op in prev:
            nbytes = new[op]["mbps"] * wl.MB * new[op]["seconds"]
            out[op] = dict(new[op], **_timing(prev[op]["runs"] + new[op]["runs"], nbytes, ceiling))
    if "window_us" in new:
        out["runs_us"] = prev["runs_us"] + new["runs_us"]
        out["window_us"] = statistics.median(out["runs_us"])
        pc, nc = prev.get("cache") or {}, new.get("cache") or {}
        if pc.get("status") == "ok" and nc.get("status") == "ok":
            runs = pc["runs_us"] + nc["runs_us"]
            out["cache"] = dict(nc, runs_us=runs, window_us=statistics.median(runs),
                                verified=bool(pc.get("verified") and nc.get("verified")))
    if "peak_mib" in new:
        worst = max((prev, new), key=lambda r: r["peak_mib"])
        out.update({k: worst[k] for k in ("peak_mib", "ratio") if k in worst})
    return out


def plan(quick: bool, only: Optional[List[str]]) -> List[Tuple[str, str]]:
    if quick:
        jobs = [("W1", "zstd-1"), ("W1", "none"), ("W4", "zstd-1")]
    else:
        jobs = [(w.name, c) for w in wl.WORKLOADS.values() for c in w.codecs]
    if only:
        jobs = [j for j in jobs if j[0] in only]
    return jobs


def job_turns(w: str, c: str, peers: List[str], repeat: int) -> List[Tuple[str, str, str, int]]:
    """The worker runs of one job, in order: (peer, workload, codec, repetitions).

    Usually one run per peer, of all ``repeat`` repetitions. A workload of thousands of
    files (W4) is timed one repetition per run instead, the peers taking turns (every
    other turn in reverse). Creating a file on ext4 without a journal costs what the
    file system's recent history makes it cost: each new inode is checked against recent
    deletions (``recently_deleted`` in the kernel's profile), and the same exzarr write of
    4,096 files took 91 ms in one stretch of a run and 175-720 ms in another. That state
    drifts within a run by more than the peers differ; taking turns gives every peer the
    same drift instead of handing one peer a bad stretch for all its repetitions.
    """
    if not wl.WORKLOADS[w].many_files or len(peers) < 2:
        return [(p, w, c, repeat) for p in peers]
    return [(p, w, c, 1) for k in range(repeat) for p in (peers if k % 2 == 0 else peers[::-1])]


def summary(res: Dict[str, Any]) -> str:
    if res.get("status") != "ok":
        return f"{res.get('status')}: {res.get('reason')}"
    bits = []
    if "write" in res:
        bits.append(f"write {res['write']['mbps']:.0f} MB/s, read {res['read']['mbps']:.0f} MB/s,"
                    f" ratio {res['ratio']:.2f}")
    if "window_us" in res:
        bits.append(f"{res['window_us']:.1f} us/window")
        c = res.get("cache")
        if c:
            bits.append(f"cache {c['window_us']:.1f} us/window (first pass {c['cold_pass_us']:.1f})"
                        if c["status"] == "ok"
                        else c["reason"])
    if "peak_mib" in res:
        bits.append(f"peak {res['peak_mib']:.1f} MiB above baseline")
    bits.append("verified" if res.get("verified") else "MISMATCH")
    return "; ".join(bits)


# --------------------------------------------------------------------------- report


class Table:
    """Rows of numbers per peer, with notes for the cells that are not numbers."""

    def __init__(self, peers: List[str]) -> None:
        self.peers = peers
        self.rows: List[Dict[str, Any]] = []
        self.notes: List[str] = []

    def note(self, text: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return f"[{self.notes.index(text) + 1}]"


def cell(res: Optional[Dict[str, Any]], getter, table: Table, peer: str) -> Tuple[Optional[float], str]:
    """(value, text) of one table cell; value is None when it is not a usable number."""
    if res is None:
        return None, "-"
    if res.get("status") == "n/a":
        return None, "n/a" + table.note(f"{LABEL[peer]}: {res.get('reason')}")
    if res.get("status") != "ok":
        return None, "ERR" + table.note(f"{LABEL[peer]}: {res.get('reason')}")
    try:
        v = getter(res)
    except (KeyError, TypeError):
        return None, "-"
    if v is None:
        return None, "-"
    if not res.get("verified"):
        return None, f"{v:.0f}!" + table.note("!: a read did not match the data (not ranked)")
    return v, (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def build_report(peers: List[str], results: Dict[Tuple[str, str, str], Dict[str, Any]],
                 jobs: List[Tuple[str, str]]) -> Tuple[List[str], List[Dict[str, Any]], List[Dict[str, Any]]]:
    t = Table(peers)
    rows: List[Dict[str, Any]] = []  # {label, unit, higher_better, values{peer: v}, texts}

    def add(label: str, unit: str, higher: bool, getter, key_w: str, key_c: str,
            exzarr_getter=None, extra_key=None) -> None:
        vals, texts = {}, {}
        for p in peers:
            g = exzarr_getter if (p == "exzarr" and exzarr_getter) else getter
            if p != "exzarr" and exzarr_getter:
                vals[p], texts[p] = None, ""  # exzarr-only row: peers shown in the row above
                continue
            v, s = cell(results.get((p, key_w, key_c)), g, t, p)
            vals[p], texts[p] = v, s
        rows.append({"label": label, "unit": unit, "higher_better": higher, "values": vals,
                     "texts": texts, "workload": key_w, "codec": key_c, "key": extra_key})

    for w, c in jobs:
        kind = wl.WORKLOADS[w].kind
        if kind == "rw":
            for op in ("write", "read"):
                add(f"{w} {c} {op}", "MB/s", True, lambda r, op=op: r[op]["mbps"], w, c,
                    extra_key=op)
                lim = results.get(("limit", w, c)) or {}
                if lim.get("status") == "ok" and lim.get("verified"):
                    rows[-1]["limit"] = lim[op]["mbps"]
                    rows[-1]["limit_impl"] = lim[op].get("impl")
        elif kind == "windows":
            add(f"{w} {c} window", "us", False, lambda r: r["window_us"], w, c, extra_key="nocache")

            def cache_get(r):
                cch = r.get("cache") or {}
                if cch.get("status") != "ok":
                    raise KeyError
                return cch["window_us"]
            add(f"{w} {c} window, exzarr cache", "us", False, None, w, c,
                exzarr_getter=cache_get, extra_key="cache")
        elif kind == "memory":
            add(f"{w} W1 {c} read peak", "MiB", False, lambda r: r["peak_mib"], w, c,
                extra_key="memory")

    # Best peer and exzarr's ratio (speed ratio: > 1 means exzarr is faster / smaller).
    for row in rows:
        peer_vals = {p: v for p, v in row["values"].items() if p != "exzarr" and v is not None}
        if row["key"] == "cache":  # compared with the best peer of the uncached row
            prev = next(r for r in rows if r["workload"] == row["workload"] and r["key"] == "nocache")
            peer_vals = {p: v for p, v in prev["values"].items() if p != "exzarr" and v is not None}
        best = (max if row["higher_better"] else min)(peer_vals, key=peer_vals.get) if peer_vals else None
        row["best"] = best
        ex = row["values"].get("exzarr")
        if best is None or ex is None or ex == 0:
            row["ratio"] = None
        else:
            bv = peer_vals[best]
            row["ratio"] = ex / bv if row["higher_better"] else bv / ex
        if row["key"] == "cache" and (results.get(("exzarr", row["workload"], row["codec"])) or {}).get("status") == "ok":
            cch = results[("exzarr", row["workload"], row["codec"])].get("cache") or {}
            if cch.get("status") != "ok":
                row["texts"]["exzarr"] = "n/a" + t.note("exzarr: " + cch.get("reason", "?"))

    # Text.
    lines: List[str] = []
    head = (["workload / codec / op", "unit"] + [LABEL[p] for p in peers]
            + ["best peer", "exzarr/best", "2-core limit", "exzarr/limit"])
    body = []
    for row in rows:
        lim = row.get("limit")
        ex = row["values"].get("exzarr")
        body.append([row["label"], row["unit"]] + [row["texts"][p] for p in peers]
                    + [LABEL.get(row["best"], "-") if row["best"] else "-",
                       f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-",
                       f"{lim:.0f}" if lim else "",
                       f"{ex / lim:.0%}" if lim and ex else ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def fmt(r):
        return "  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w)
                         for i, (x, w) in enumerate(zip(r, widths)))
    lines.append(fmt(head))
    lines.append("  ".join("-" * w for w in widths))
    prev_w = None
    for r, row in zip(body, rows):
        if prev_w and row["workload"] != prev_w:
            lines.append("")
        prev_w = row["workload"]
        lines.append(fmt(r))
    lines.append("")
    lines.append("MB/s = 10^6 bytes of uncompressed array data per second (median); us = microseconds"
                 " per window (median of the passes); MiB = peak RSS above the baseline.")
    lines.append("exzarr/best: exzarr's speed over the best peer's (> 1: exzarr faster); for memory,"
                 " the best peer's peak over exzarr's.")
    lines.append("2-core limit: the codec chain alone on every core over the chunks in memory (no"
                 " store, no I/O), fastest run of numcodecs or exzarr's core; memcpy for none.")
    for i, n in enumerate(t.notes, 1):
        lines.append(f"[{i}] {n}")

    # Goals.
    goals: List[Dict[str, Any]] = []
    for row in rows:
        key = (row["workload"], row["key"])
        lim, ex = row.get("limit"), row["values"].get("exzarr")
        if key in RW_GOALS:
            target, desc = RW_GOALS[key], f">= {RW_GOALS[key]:.2f}x best peer"
            if row["workload"] in LIMIT_WORKLOADS:
                desc += f" or {LIMIT_SHARE:.0%} of the limit if lower"
                best_v = row["values"].get(row["best"]) if row["best"] else None
                if lim and best_v and LIMIT_SHARE * lim < target * best_v:
                    # The codec cannot go 1.3x the best peer's speed: the limit's share is the goal.
                    target = LIMIT_SHARE * lim / best_v
        elif row["key"] == "nocache":
            target, desc = W3_GOAL_NOCACHE, "per-window time <= best peer's (>= 1.00x)"
        elif row["key"] == "cache":
            target, desc = W3_GOAL_CACHE, f">= {W3_GOAL_CACHE:.0f}x faster than the best peer"
        else:
            continue
        g = {"row": row["label"], "target": target, "ratio": row["ratio"], "best": row["best"],
             "met": row["ratio"] is not None and row["ratio"] >= target - 1e-9, "desc": desc,
             "limit": lim, "of_limit": ex / lim if (ex and lim) else None}
        if row["best"] is None and ex is not None:
            g["met"] = None  # exzarr measured, but no peer could store this: nothing to compare
        goals.append(g)
    mem = [r for r in rows if r["key"] == "memory"]
    for row in mem:
        ex = row["values"].get("exzarr")
        ratio = ex * 2**20 / (wl.N * wl.N * 4) if ex is not None else None
        goals.append({"row": row["label"], "target": MEM_GOAL, "ratio": ratio, "best": None,
                      "met": ratio is not None and ratio <= MEM_GOAL,
                      "desc": f"peak above baseline <= {MEM_GOAL:.2f}x the 64 MiB array"})
    return lines, rows, goals


def goal_lines(goals: List[Dict[str, Any]]) -> List[str]:
    out = []
    wrow = max((len(g["row"]) for g in goals), default=10)
    wdesc = max((len(g["desc"]) for g in goals), default=10)
    for g in goals:
        if g["met"] is None:
            r, verdict = "-", "NO PEER (no peer can store this)"
        else:
            r = f"{g['ratio']:.2f}x" if g["ratio"] is not None else "no result"
            verdict = "MET" if g["met"] else "NOT MET"
            if g.get("best"):
                verdict += f" (vs {LABEL[g['best']]}; needs {g['target']:.2f}x"
                if g.get("of_limit") is not None:
                    verdict += f"; {g['of_limit']:.0%} of the limit"
                verdict += ")"
        out.append(f"{g['row'].ljust(wrow)}  {g['desc'].ljust(wdesc)}  {r:>9}  {verdict}")
    met = sum(1 for g in goals if g["met"])
    judged = sum(1 for g in goals if g["met"] is not None)
    out.append(f"{met} of {judged} goals met" + (f" ({len(goals) - judged} without a peer to compare)"
                                                 if judged < len(goals) else ""))
    return out


def _fsync_note(peer: str, peers: List[str]) -> str:
    """The footnote of a peer's n/a fsync cell, shared by the peers with the same reason."""
    same = [LABEL[p] for p in peers if FSYNC_PEER_NOTES.get(p) == FSYNC_PEER_NOTES[peer]]
    return f"{', '.join(same)}: {FSYNC_PEER_NOTES[peer]}"


def fsync_report(peers: List[str], results: Dict[Tuple[str, str, str], Dict[str, Any]]
                 ) -> Tuple[List[str], List[Dict[str, Any]]]:
    """The fsync table: exzarr's W1 writes with fsync=True against its own fsync=False
    row of this run (MB/s and how many times slower); the peers' cells are n/a."""
    t = Table(peers)
    rows: List[Dict[str, Any]] = []
    body = []
    for w, c in sorted({(w, c) for p, w, c in results if p == "fsync"},
                       key=lambda k: FSYNC_CODECS.index(k[1]) if k[1] in FSYNC_CODECS else 99):
        on_v, on_s = cell(results.get(("fsync", w, c)), lambda r: r["write"]["mbps"], t, "exzarr")
        off_v, off_s = cell(results.get(("exzarr", w, c)), lambda r: r["write"]["mbps"], t, "exzarr")
        cost = off_v / on_v if (on_v and off_v) else None
        res = results.get(("fsync", w, c)) or {}
        runs = res.get("write", {}).get("runs", [])
        rows.append({"row": f"{w} {c} write, fsync", "workload": w, "codec": c,
                     "mbps_fsync": on_v, "mbps_no_fsync": off_v, "slower": cost,
                     "runs_s": runs, "verified": res.get("verified")})
        cost_s = ("-" if cost is None else f"{cost:.2f}x slower" if cost >= 1
                  else f"{1 / cost:.2f}x faster (noise: no cost measured)")
        peer_cells = [("-" if p not in FSYNC_PEER_NOTES else "n/a" + t.note(_fsync_note(p, peers)))
                      for p in peers if p != "exzarr"]
        body.append([rows[-1]["row"], "MB/s", off_s, on_s, cost_s] + peer_cells)
    if not rows:
        return [], []
    head = (["workload / codec / op", "unit", "exzarr", "exzarr fsync", "fsync cost"]
            + [LABEL[p] for p in peers if p != "exzarr"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def fmt(r):
        return "  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w)
                         for i, (x, w) in enumerate(zip(r, widths)))
    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body]
    nruns = max((len(r["runs_s"]) for r in rows), default=0)
    lines.append("")
    lines.append("exzarr: the W1 write row above (fsync=False, the default). exzarr fsync: the same"
                 " write into a directory store with")
    lines.append(f"exzarr.config.set(fsync=True) (median of {nruns} runs, at the end of each round):"
                 " every chunk file synced before it is")
    lines.append("renamed into place, then its folder. Both start with the dirty pages flushed; only"
                 " the fsync row waits for the disk.")
    lines.append("fsync cost: exzarr's fsync=False speed over its fsync=True speed.")
    for i, n in enumerate(t.notes, 1):
        lines.append(f"[{i}] {n}")
    return lines, rows


# --------------------------------------------------------------------------- main


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark exzarr against zarr-python 3, zarrs,"
                                 " zarr-python 2.18 and tensorstore.")
    ap.add_argument("--repeat", type=int, default=None, help="timed repetitions (default 5; 2 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke test: repeat 2, W1 zstd/none and W4 only")
    ap.add_argument("--dir", default="/tmp/exzarr-bench", help="scratch directory on local disk")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of " + ",".join(PEERS))
    ap.add_argument("--workloads", default=None, help="comma-separated subset of W1,W2,W3,W4,MEM")
    ap.add_argument("--order", choices=("job", "peer"), default="job",
                    help="job: for each workload/codec, every peer in turn, exzarr first (default);"
                    " peer: all jobs of one peer, then the next")
    ap.add_argument("--rounds", type=int, default=None,
                    help="passes over all jobs, peers in reverse order on every other pass;"
                    " a cell is the median of all its runs (default 2; 1 with --quick)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--output", default=os.path.join(HERE, "results", "latest.json"))
    a = ap.parse_args(argv)
    repeat = a.repeat or (2 if a.quick else 5)
    a.rounds = max(1, a.rounds or (1 if a.quick else 2))
    peers = [p.strip() for p in a.peers.split(",") if p.strip()]
    bad = [p for p in peers if p not in PEERS]
    if bad:
        ap.error(f"unknown peer(s) {bad}; known: {PEERS}")
    peers = [p for p in PEERS if p in peers]  # canonical order: exzarr first
    only = [w.strip().upper() for w in a.workloads.split(",")] if a.workloads else None
    jobs = plan(a.quick, only)
    if "MEM" in [j[0] for j in jobs] and ("W1", "zstd-1") not in jobs:
        jobs.insert(0, ("W1", "zstd-1"))  # MEM reads the W1 zstd-1 array
    t_start = time.perf_counter()

    log("== environments")
    envs = setup_envs(peers)
    for p in peers:
        py, msg = envs[p]
        log(f"  {LABEL[p]:<12} {'ok' if py else 'UNAVAILABLE'}: {msg}")

    log("== data")
    scratch = os.path.abspath(a.dir)
    data_dir = os.path.join(scratch, "data")
    # In a child process: the orchestrator stays small. This matters for the MEM
    # workload, since Linux carries a parent's peak RSS over fork + exec into the
    # child's ru_maxrss, which would hide the read's peak under the baseline.
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                    " import workloads; workloads.generate(sys.argv[2])", HERE, data_dir],
                   check=True)
    log(f"  {data_dir} (seed {wl.SEED})")

    machine = machine_info()
    versions: Dict[str, Any] = {}
    for p in peers:
        py = envs[p][0]
        if py:
            info = run_worker(py, ["--peer", p, "--info"])
            versions[p] = info.get("versions") or {"error": info.get("reason")}
            if info.get("status") != "ok":
                envs[p] = (None, f"import failed: {info.get('reason')}")
        else:
            versions[p] = {"error": envs[p][1]}
    log("== machine")
    log(f"  {machine.get('cpu', '?')}, {machine['cores']} cores, {machine.get('memory_gib', '?')} GiB,"
        f" {machine['platform']}, load {machine.get('loadavg_start', '?')}")
    for p in peers:
        v = versions[p]
        log(f"  {LABEL[p]:<12} " + ", ".join(f"{k} {val}" for k, val in v.items()))

    log(f"== measuring ({a.rounds} rounds of {repeat} repetitions, medians; jobs: "
        f"{', '.join(f'{w} {c}' for w, c in jobs)}"
        + "".join(f"; exzarr fsync W1 {c}" for c in FSYNC_CODECS if ("W1", c) in jobs and "exzarr" in peers)
        + ")")
    results: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    for p in peers:
        shutil.rmtree(os.path.join(scratch, p), ignore_errors=True)
    order: List[Tuple[str, str, str, int]] = []  # (peer, workload, codec, repetitions)
    for rnd in range(a.rounds):
        # Odd rounds run the peers in reverse: no peer is always first after a job's start.
        rp = peers if rnd % 2 == 0 else peers[::-1]
        if a.order == "job":  # per job, every peer in turn: slow drifts in load hit all alike
            part = [o for w, c in jobs for o in job_turns(w, c, rp, repeat)]
        else:
            part = [o for p in rp for w, c in jobs for o in job_turns(w, c, [p], repeat)]
        if "exzarr" in peers:  # the codec limit of each W1/W2 row, measured just before it
            for w, c in reversed([j for j in jobs if j[0] in LIMIT_WORKLOADS]):
                first = next(k for k, o in enumerate(part) if o[1:3] == (w, c))
                part.insert(first, ("limit", w, c, repeat))
            # After the round's other jobs: the main table's rows keep their order and neighbours.
            part += [("fsync", "W1", c, min(repeat, FSYNC_REPEAT))
                     for c in FSYNC_CODECS if ("W1", c) in jobs]
        order += part
    for p, w, c, n in order:
        if p == "limit":
            py = envs["exzarr"][0]
            if py:
                res = run_worker(py, ["--peer", "exzarr", "--workload", w, "--codec", c, "--limit",
                                      "--dir", os.path.join(scratch, "exzarr"), "--data", data_dir,
                                      "--repeat", str(n)])
                res = results[(p, w, c)] = merge_rounds(results.get((p, w, c)), res, ceiling=True)
                log(f"  {'2-core limit':<12} {w:<3} {c:<13} " + (
                    f"write {res['write']['mbps']:.0f} MB/s ({res['write']['impl']}), read"
                    f" {res['read']['mbps']:.0f} MB/s ({res['read']['impl']})"
                    if res.get("status") == "ok" else f"{res.get('status')}: {res.get('reason')}"))
            continue
        if p == "fsync":
            py = envs["exzarr"][0]
            if py:
                load1 = os.getloadavg()[0]
                res = run_worker(py, ["--peer", "exzarr", "--fsync", "--workload", w, "--codec", c,
                                      "--dir", os.path.join(scratch, "exzarr-fsync"),
                                      "--data", data_dir, "--repeat", str(n)])
                if res.get("status") == "ok" and res.get("fsync") is not True:
                    res = {"status": "error", "reason": "the worker did not turn fsync on"}
                res["load1_before"] = load1
                log(f"  {'exzarr fsync':<12} {w:<3} {c:<13} {summary(res)}"
                    f"  ({res.get('elapsed', 0):.1f} s, load {load1:.1f})")
                results[(p, w, c)] = merge_rounds(results.get((p, w, c)), res)
            continue
        py = envs[p][0]
        if not py:
            results[(p, w, c)] = {"status": "error", "reason": envs[p][1]}
            continue
        load1 = os.getloadavg()[0]
        res = run_worker(py, ["--peer", p, "--workload", w, "--codec", c,
                              "--dir", os.path.join(scratch, p), "--data", data_dir,
                              "--repeat", str(n)])
        res["load1_before"] = load1
        log(f"  {LABEL[p]:<12} {w:<3} {c:<13} {summary(res)}  ({res.get('elapsed', 0):.1f} s,"
            f" load {load1:.1f})")
        results[(p, w, c)] = merge_rounds(results.get((p, w, c)), res)
    if not a.keep:
        shutil.rmtree(scratch, ignore_errors=True)

    lines, rows, goals = build_report(peers, results, jobs)
    flines, frows = fsync_report(peers, results)
    log("")
    log(f"== results ({a.rounds} x {repeat} repetitions; the machine may be shared: numbers are"
        " noisy)")
    for line in lines:
        log(line)
    log("")
    log("== goals")
    for line in goal_lines(goals):
        log(line)
    if flines:
        log("")
        log("== fsync cost: exzarr.config.set(fsync=True), off by default (exzarr only; not a goal)")
        for line in flines:
            log(line)

    elapsed = time.perf_counter() - t_start
    with contextlib.suppress(OSError):
        machine["loadavg_end"] = list(os.getloadavg())
    out = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "elapsed_s": elapsed,
        "config": {"repeat": repeat, "rounds": a.rounds, "quick": a.quick, "peers": peers, "jobs": jobs, "order": a.order,
                   "dir": scratch, "seed": wl.SEED},
        "machine": machine, "versions": versions,
        "environments": {p: {"python": envs[p][0], "status": envs[p][1]} for p in peers},
        "results": [dict(peer=p, workload=w, codec=c, **{k: v for k, v in r.items()
                                                        if k not in ("peer", "workload", "codec")})
                    for (p, w, c), r in results.items()],
        "rows": [{k: v for k, v in r.items() if k != "texts"} for r in rows],
        "goals": goals,
        "fsync": frows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(out, f, indent=1)
    log("")
    log(f"saved {os.path.relpath(a.output, ROOT) if a.output.startswith(ROOT) else a.output}"
        f" ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
