"""Writers killed with SIGKILL at random moments lose nothing they committed.

A writer process rewrites runs of whole chunks of an array in a directory, zip or
SQLite store, each chunk with content unique to (chunk, version), and logs each
chunk's version before the write ("S") and once it is committed ("C": when the write
returned; for zip, when ``flush()`` returned). It is killed after a random number of
commits plus a random delay. Then the store must open, every chunk must hold its last
committed version or a later one the writer started (never torn, never an older
version, never the fill value), and after one write by a fresh process no temporary
files of the killed writer may remain.

``make test`` kills a few writers per store; ``make fuzz`` 100 (``EXZARR_CRASH_RUNS``).
``python tests/test_crash.py report --runs 100`` prints the figures.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

CHUNK = 2048  # int64 items per chunk: 16 KiB
NCHUNKS = 32
STORES = ["directory", "zip", "sqlite"]
CRASH_RUNS = int(os.environ.get("EXZARR_CRASH_RUNS", "3"))
# Uncompressed on directories, so that a file of the right size but the wrong content
# would be read as data and caught by the pattern check, not only by a decoder.
COMPRESSORS: dict[str, Any] = {"directory": None, "zip": {"id": "zstd", "level": 1},
                               "sqlite": {"id": "lz4"}}
BACKEND = {"directory": "filesystem", "zip": "zip", "sqlite": "sqlite"}


def pattern(i: int, v: int) -> np.ndarray:
    """Chunk ``i``'s content at version ``v``: no two (chunk, version) pairs alike."""
    return v * 10**8 + i * 10**5 + np.arange(CHUNK, dtype="<i8")


def store_path(root: str, kind: str) -> str:
    return os.path.join(root, {"directory": "a.zarr", "zip": "a.zip", "sqlite": "a.sqlite"}[kind])


def create_committed(root: str, kind: str) -> str:
    """The array with every chunk at version 1, committed and closed."""
    import exzarr

    path = store_path(root, kind)
    a = exzarr.create(shape=(NCHUNKS * CHUNK,), chunks=(CHUNK,), dtype="<i8", fill_value=-1,
                      compressor=COMPRESSORS[kind], storage=BACKEND[kind], path=path)
    a[...] = np.concatenate([pattern(i, 1) for i in range(NCHUNKS)])
    close = getattr(a.store, "close", None)
    if close is not None:
        close()
    return path


# --------------------------------------------------------------------------------------
# The writer (run as a script in a child process)
# --------------------------------------------------------------------------------------

def writer(kind: str, path: str, log: str, seed: int, steps: int) -> None:
    """Rewrite random runs of chunks, logging starts and commits; ``steps`` < 0: forever."""
    import exzarr

    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(text: str) -> None:
        os.write(fd, text.encode())  # one write per line: whole lines survive a SIGKILL

    a = exzarr.open(path, storage=BACKEND[kind], mode="r+")
    rng = np.random.default_rng(seed)
    pending: list[tuple[int, int]] = []
    flush_every = int(rng.integers(1, 5))
    step = 0
    while steps < 0 or step < steps:
        v = 2 + step + seed * 100_000  # versions unique across runs of one store
        start = int(rng.integers(0, NCHUNKS))
        run = range(start, min(NCHUNKS, start + int(rng.integers(1, 5))))
        note("".join(f"S {i} {v}\n" for i in run))
        a[run.start * CHUNK:run.stop * CHUNK] = np.concatenate([pattern(i, v) for i in run])
        pending.extend((i, v) for i in run)
        step += 1
        if kind != "zip" or step % flush_every == 0:
            if kind == "zip":
                a.store.flush()
            note("".join(f"C {i} {v}\n" for i, v in pending))
            pending.clear()
    close = getattr(a.store, "close", None)
    if close is not None:
        close()
    note("".join(f"C {i} {v}\n" for i, v in pending))
    os.close(fd)


# --------------------------------------------------------------------------------------
# Kill, check, write once more, look for leftovers
# --------------------------------------------------------------------------------------

def _spawn(kind: str, path: str, log: str, seed: int, steps: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "writer", kind, path,
                             log, str(seed), str(steps)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _read_log(log: str) -> list[tuple[str, int, int]]:
    try:
        with open(log) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def allowed_versions(log: list[tuple[str, int, int]]) -> tuple[dict[int, int], dict[int, set[int]]]:
    """Each chunk's last committed version, and the versions it may hold: that one or
    any the writer started later."""
    committed = dict.fromkeys(range(NCHUNKS), 1)
    started: dict[int, list[int]] = collections.defaultdict(list)
    for what, i, v in log:
        if what == "C":
            committed[i] = max(committed[i], v)
        else:
            started[i].append(v)
    allowed = {i: {committed[i]} | {v for v in started[i] if v > committed[i]} for i in range(NCHUNKS)}
    return committed, allowed


def leftovers(kind: str, root: str) -> list[str]:
    """Temporary files a writer left: ``.tmp-*`` anywhere in a directory store; for zip
    and SQLite, files beside the store other than SQLite's own WAL and index."""
    path = store_path(root, kind)
    if kind == "directory":
        return [os.path.join(d, f) for d, _, files in os.walk(path) for f in files
                if f.startswith(".tmp-")]
    name = os.path.basename(path)
    own = {name, name + "-wal", name + "-shm", "log"}
    return sorted(f for f in os.listdir(root) if f not in own and not f.startswith("log"))


def check_store(kind: str, root: str, log: list[tuple[str, int, int]]) -> dict[str, Any]:
    """Open the store and compare every chunk with what the log allows."""
    import exzarr

    result: dict[str, Any] = {"opened": False, "torn": [], "lost": [], "error": None}
    try:
        a = exzarr.open(store_path(root, kind), storage=BACKEND[kind], mode="r")
    except Exception as exc:  # noqa: BLE001 - any failure to open is what is counted
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    result["opened"] = True
    committed, allowed = allowed_versions(log)
    try:
        for i in range(NCHUNKS):
            try:
                got = a[i * CHUNK:(i + 1) * CHUNK]
            except Exception as exc:  # noqa: BLE001
                result["torn"].append(f"chunk {i}: {type(exc).__name__}: {exc}")
                continue
            v = int(got[0]) // 10**8
            if not np.array_equal(got, pattern(i, v)):
                result["torn"].append(f"chunk {i}: not one version's content (starts {got[:3]})")
            elif v not in allowed[i]:
                result["lost"].append(f"chunk {i}: version {v}, committed {committed[i]}")
    finally:
        close = getattr(a.store, "close", None)
        if close is not None:
            close()
    return result


def crash_run(kind: str, root: str, seed: int) -> dict[str, Any]:
    """One writer killed at a random moment, then checked; a fresh writer's one write
    checked too, with the leftovers after it."""
    rng = np.random.default_rng([seed, STORES.index(kind)])
    path = create_committed(root, kind)
    log = os.path.join(root, "log")
    proc = _spawn(kind, path, log, seed, -1)
    want = int(rng.integers(1, 60))  # commits before the kill
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(1 for what, _, _ in _read_log(log) if what == "C") >= want:
                break
            time.sleep(0.002)
        time.sleep(float(rng.uniform(0, 0.03)))
    finally:
        died_early = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    stderr = proc.stderr.read().decode(errors="replace")[-2000:]
    proc.stderr.close()
    entries = _read_log(log)
    result = check_store(kind, root, entries)
    result["died_early"] = stderr if died_early else None
    result["commits"] = sum(1 for what, _, _ in entries if what == "C")
    result["leftovers_after_kill"] = leftovers(kind, root)
    if result["opened"]:
        # One more write by a fresh process (seed + 1: versions of its own).
        after = os.path.join(root, "log-after")
        fresh = _spawn(kind, path, after, seed + 1, 1)
        fresh.wait(timeout=120)
        result["fresh_writer"] = (fresh.returncode, fresh.stderr.read().decode(errors="replace")[-2000:])
        fresh.stderr.close()
        entries2 = entries + _read_log(after)
        again = check_store(kind, root, entries2)
        result["torn"] += [f"after a fresh write: {t}" for t in again["torn"]]
        result["lost"] += [f"after a fresh write: {t}" for t in again["lost"]]
        result["leftovers_after_write"] = leftovers(kind, root)
    return result


def crash_figures(kind: str, runs: int, base: str, seed0: int = 0) -> dict[str, Any]:
    """``runs`` crash runs of one store kind, summed."""
    import shutil

    fig: dict[str, Any] = {"store": kind, "runs": 0, "opened": 0, "commits": 0,
                           "runs_with_torn": 0, "torn_chunks": 0, "runs_with_lost": 0,
                           "lost_chunks": 0, "leftovers_after_kill": 0,
                           "runs_with_leftovers_after_write": 0, "leftovers_after_write": 0,
                           "fresh_writer_failures": 0, "died_early": 0, "examples": []}
    for r in range(runs):
        root = os.path.join(base, f"{kind}-{r}")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        res = crash_run(kind, root, seed0 + 2 * r)
        fig["runs"] += 1
        fig["opened"] += res["opened"]
        fig["commits"] += res["commits"]
        fig["runs_with_torn"] += bool(res["torn"])
        fig["torn_chunks"] += len(res["torn"])
        fig["runs_with_lost"] += bool(res["lost"])
        fig["lost_chunks"] += len(res["lost"])
        fig["leftovers_after_kill"] += len(res["leftovers_after_kill"])
        left = res.get("leftovers_after_write", [])
        fig["runs_with_leftovers_after_write"] += bool(left)
        fig["leftovers_after_write"] += len(left)
        fig["died_early"] += res["died_early"] is not None
        fresh = res.get("fresh_writer")
        fig["fresh_writer_failures"] += fresh is not None and fresh[0] != 0
        for problem in ([res["error"]] if res["error"] else []) + res["torn"][:2] + res["lost"][:2] \
                + left[:2] + ([f"fresh writer: {fresh[1]}"] if fresh and fresh[0] else []) \
                + ([f"writer died before the kill: {res['died_early']}"] if res["died_early"] else []):
            if len(fig["examples"]) < 6:
                fig["examples"].append(f"run {r}: {problem}")
        shutil.rmtree(root, ignore_errors=True)
    return fig


def format_figures(fig: dict[str, Any]) -> str:
    head = ", ".join(f"{k} {v}" for k, v in fig.items() if k not in ("store", "examples"))
    return "\n".join([f"{fig['store']}: {head}"] + [f"    {e}" for e in fig["examples"]])


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------

_FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def figures(tmp_path_factory):
    def get(kind: str) -> dict[str, Any]:
        if kind not in _FIGURES:
            _FIGURES[kind] = crash_figures(kind, CRASH_RUNS, str(tmp_path_factory.mktemp(f"crash-{kind}")))
        return _FIGURES[kind]
    return get


@pytest.mark.parametrize("kind", STORES)
def test_killed_writer_loses_nothing_committed(kind, figures):
    fig = figures(kind)
    assert fig["died_early"] == 0, format_figures(fig)  # each writer was killed mid-run
    assert fig["commits"] >= fig["runs"], format_figures(fig)
    assert (fig["opened"], fig["torn_chunks"], fig["lost_chunks"]) == (fig["runs"], 0, 0), \
        format_figures(fig)


@pytest.mark.parametrize("kind", STORES)
def test_a_fresh_writer_works_and_removes_what_a_killed_one_left(kind, figures):
    fig = figures(kind)
    assert fig["fresh_writer_failures"] == 0, format_figures(fig)
    assert fig["leftovers_after_write"] == 0, format_figures(fig)


def test_the_check_sees_torn_and_lost_chunks(tmp_path):
    """The checker itself: a chunk cut short, one rolled back to an older version and
    one zero-filled (raw, so it decodes) are all reported."""
    import exzarr

    path = create_committed(str(tmp_path), "directory")
    log = [("S", 3, 7), ("C", 3, 7), ("S", 4, 8), ("C", 4, 8)]
    a = exzarr.open(path, mode="r+")
    a[3 * CHUNK:4 * CHUNK] = pattern(3, 7)
    a[4 * CHUNK:5 * CHUNK] = pattern(4, 8)
    assert check_store("directory", str(tmp_path), log) == {
        "opened": True, "torn": [], "lost": [], "error": None}
    a[4 * CHUNK:5 * CHUNK] = pattern(4, 1)  # rolled back
    key = os.path.join(path, "5")
    with open(key, "r+b") as f:
        f.truncate(100)
    with open(os.path.join(path, "6"), "r+b") as f:
        f.write(bytes(CHUNK * 8))
    res = check_store("directory", str(tmp_path), log)
    assert [t.split(":")[0] for t in res["torn"]] == ["chunk 5", "chunk 6"], res
    assert [t.split(":")[0] for t in res["lost"]] == ["chunk 4"], res
    open(os.path.join(path, ".tmp-x.partial"), "wb").close()
    assert leftovers("directory", str(tmp_path)) == [os.path.join(path, ".tmp-x.partial")]


def main(argv: list[str]) -> int:
    """``writer KIND PATH LOG SEED STEPS`` (the child), or ``report [--runs N]``."""
    if argv and argv[0] == "writer":
        kind, path, log, seed, steps = argv[1:6]
        writer(kind, path, log, int(seed), int(steps))
        return 0
    import argparse
    import tempfile

    p = argparse.ArgumentParser(description="SIGKILL writers of each store, print the figures")
    p.add_argument("report")
    p.add_argument("--runs", type=int, default=int(os.environ.get("EXZARR_CRASH_RUNS", "100")))
    p.add_argument("--stores", default=",".join(STORES))
    args = p.parse_args(argv)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="exzarr-crash-") as base:
        for kind in args.stores.split(","):
            fig = crash_figures(kind, args.runs, base)
            print(format_figures(fig), flush=True)
            bad += fig["runs"] - fig["opened"] + fig["torn_chunks"] + fig["lost_chunks"] \
                + fig["leftovers_after_write"] + fig["fresh_writer_failures"] + fig["died_early"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
