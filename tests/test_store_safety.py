"""Stores under hostile keys, crashes, full and read-only disks, and across processes
(issue 15: cleanup, durability, errors, hostile stores, read-only media, locks)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import exzarr
from exzarr.errors import (ExZarrError, InvalidKeyError, LockNotSupportedError, StorageError)
from exzarr.storage import DirectoryStore, MemoryStore, SQLiteStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _store(kind: str, tmp_path) -> exzarr.storage.Store:
    if kind == "directory":
        return DirectoryStore(tmp_path / "d")
    return SQLiteStore(tmp_path / "s.db")


# -- point 2: the cross-process lock -------------------------------------------------------

_COUNTER = """
import sys
from exzarr.storage import DirectoryStore, SQLiteStore
kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = DirectoryStore(path) if kind == "directory" else SQLiteStore(path)
for _ in range(n):
    with store.process_lock("g/counter"):
        value = int(store.get("g/counter") or b"0")
        store.set("g/counter", str(value + 1).encode())
"""


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_process_lock_serialises_two_processes(kind, tmp_path):
    path = str(tmp_path / ("d" if kind == "directory" else "s.db"))
    procs = [subprocess.Popen([sys.executable, "-c", _COUNTER, kind, path, "200"],
                              env=dict(os.environ, PYTHONPATH=ROOT)) for _ in range(2)]
    assert [p.wait(300) for p in procs] == [0, 0]
    store = DirectoryStore(path) if kind == "directory" else SQLiteStore(path)
    assert store.get("g/counter") == b"400"
    if kind == "directory":  # the lock file is not data: no listing shows it
        assert store.list_prefix("") and ".exzarr.lock" not in "".join(store.list_prefix(""))
        assert store.list_dir("g") == ["counter"]


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_process_lock_serialises_threads_and_store_objects(kind, tmp_path):
    stores = [_store(kind, tmp_path) for _ in range(3)]
    stores[0].set("counter", b"0")

    def work(store) -> None:
        for _ in range(100):
            with store.process_lock("counter"):
                value = int(store.get("counter"))
                store.set("counter", str(value + 1).encode())

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].get("counter") == b"300"


def test_process_lock_is_per_key(tmp_path):
    store = DirectoryStore(tmp_path)
    with store.process_lock("a/0.0"):
        # Another key of the same folder is free while the first is held.
        code = """
        import sys
        from exzarr.storage import DirectoryStore
        with DirectoryStore(sys.argv[1]).process_lock("a/0.1"):
            print("got it")
        """
        assert _run(code, str(tmp_path), timeout=60).stdout == "got it\n"


def test_process_lock_is_released_when_the_holder_dies(tmp_path):
    store = DirectoryStore(tmp_path)
    code = """
    import os, sys
    from exzarr.storage import DirectoryStore
    with DirectoryStore(sys.argv[1]).process_lock("k"):
        os._exit(0)
    """
    assert _run(code, str(tmp_path)).returncode == 0
    with store.process_lock("k"):
        pass


def test_stores_that_cannot_lock_say_so():
    with pytest.raises(LockNotSupportedError, match="directory and SQLite"):
        with MemoryStore().process_lock("k"):
            pass


def test_process_lock_refuses_bad_keys(tmp_path):
    with pytest.raises(InvalidKeyError):
        DirectoryStore(tmp_path).process_lock("../k")
    with pytest.raises(InvalidKeyError):
        SQLiteStore(tmp_path / "s.db").process_lock("/k")
