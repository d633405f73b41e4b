"""Stores under hostile keys, crashes, full and read-only disks, and across processes
(issue 15: cleanup, durability, errors, hostile stores, read-only media, locks)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import exzarr
from exzarr.errors import (ExZarrError, InvalidKeyError, LockNotSupportedError, StorageError)
from exzarr.storage import DirectoryStore, MemoryStore, SQLiteStore
from tests.mounts import remount_ro, tmpfs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _store(kind: str, tmp_path) -> exzarr.storage.Store:
    if kind == "directory":
        return DirectoryStore(tmp_path / "d")
    return SQLiteStore(tmp_path / "s.db")


_RO_READER = """
import sys
from exzarr.storage import SQLiteStore
from exzarr.errors import StorageError
store = SQLiteStore(sys.argv[1], read_only=True)
print(store.get("k"), flush=True)
sys.stdin.readline()  # the owner writes meanwhile
print(store.get("k"), flush=True)
try:
    print(SQLiteStore(sys.argv[2], read_only=True).get("k"), flush=True)
except StorageError as exc:
    print("refused", exc.errno, "journal_mode=DELETE" in str(exc), flush=True)
"""


@pytest.mark.skipif(not __import__("shutil").which("setpriv"), reason="needs setpriv (util-linux)")
def test_sqlite_in_a_folder_not_writable_by_this_user_is_read_as_changing(tmp_path):
    """Only a read-only mount makes a database immutable: in a folder that is merely not
    writable by this user, its owner may still write it, and a reader sees the writes
    (immutable=1 would read stale pages, or a torn file) (F13)."""
    import sqlite3

    folder = tmp_path / "ro"
    folder.mkdir()
    for name, mode in (("rollback.db", "DELETE"), ("wal.db", "WAL")):
        conn = sqlite3.connect(folder / name)  # zarr-python's SQLiteStore: no WAL
        conn.execute(f"PRAGMA journal_mode={mode}")
        conn.execute("CREATE TABLE zarr (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        with conn:
            conn.execute("INSERT INTO zarr VALUES ('k', x'01')")
        conn.close()
    os.chmod(folder, 0o555)
    try:
        # Without the capabilities that let root write anywhere: the folder's bits apply.
        reader = subprocess.Popen(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--",
             sys.executable, "-c", _RO_READER, str(folder / "rollback.db"),
             str(folder / "wal.db")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=ROOT))
        first = reader.stdout.readline()
        if first == "" and "setpriv" in reader.stderr.read():
            pytest.skip("setpriv refused here")
        assert first == "b'\\x01'\n"
        conn = sqlite3.connect(folder / "rollback.db")  # the owner writes
        with conn:
            conn.execute("UPDATE zarr SET value = x'02' WHERE key = 'k'")
        conn.close()
        out, err = reader.communicate("go\n", timeout=120)
    finally:
        os.chmod(folder, 0o755)
    assert reader.returncode == 0, err
    # A WAL database there cannot be read safely (SQLite needs its -shm file): refused
    # with what to do, EACCES.
    assert out.split("\n") == ["b'\\x02'", "refused 13 True", ""], err


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


def test_stores_that_cannot_lock_say_so(tmp_path):
    from exzarr.storage.zip import ZipStore

    with pytest.raises(LockNotSupportedError, match="directory and SQLite"):
        with ZipStore(tmp_path / "a.zip", mode="a").process_lock("k"):
            pass


def test_a_memory_store_locks_within_its_process():
    """Only this process sees a memory store: its lock is an in-process one, and it
    excludes threads."""
    store = MemoryStore()
    store.set("n", b"0")

    def bump() -> None:
        for _ in range(200):
            with store.process_lock("n"):
                value = int(store.get("n"))
                store.set("n", str(value + 1).encode())

    threads = [threading.Thread(target=bump) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch inside the read-modify-write
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert store.get("n") == b"800"


def test_process_lock_refuses_bad_keys(tmp_path):
    with pytest.raises(InvalidKeyError):
        DirectoryStore(tmp_path).process_lock("../k")
    with pytest.raises(InvalidKeyError):
        SQLiteStore(tmp_path / "s.db").process_lock("/k")


# -- point 4: leftovers of killed writers -----------------------------------------------------

_WRITER = """
import sys
import numpy as np
import exzarr
a = exzarr.open(sys.argv[1], mode="r+")
i = 0
print("ready", flush=True)
while True:  # replaces existing chunks: temporary names are used
    i += 1
    a[:] = np.full(a.shape, i % 100, dtype=a.dtype)
"""


def _temps(root) -> list[str]:
    return sorted(n for _, _, files in os.walk(root) for n in files if n.startswith(".tmp-"))


def test_a_later_writer_removes_what_killed_writers_left(tmp_path):
    import signal
    import time

    from exzarr.storage._leftovers import host_id

    path = tmp_path / "a"
    a = exzarr.create(shape=(64 * 1024,), chunks=(1024,), dtype="u2", storage="filesystem",
                      path=str(path), compressor=None)
    a[:] = 7
    env = dict(os.environ, PYTHONPATH=ROOT, EXZARR_THREADS="2")
    for _ in range(3):
        writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env,
                                    stdout=subprocess.PIPE, text=True) for _ in range(3)]
        for w in writers:
            assert w.stdout.readline() == "ready\n"
        time.sleep(0.3)
        for w in writers:
            w.send_signal(signal.SIGKILL)
            w.wait()
    # Leftovers of each kind: of a dead process of this host, of another host (one old,
    # one recent), and of a live writer (this process).
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = host_id()
    planted = {
        f".tmp-{me}-{dead.pid}-1-0-0a0b0c0d-3.partial": True,
        ".tmp-0badc0de-123-1-0-0a0b0c0d-1.partial": False,
        ".tmp-0badc0de-124-1-0-0a0b0c0d-1.partial": True,
        f".tmp-{me}-{os.getpid()}-1-0-0a0b0c0d-2.partial": False,
    }
    for name in planted:
        (path / name).write_bytes(b"x" * 10)
    old = time.time() - 2 * 3600
    os.utime(path / ".tmp-0badc0de-124-1-0-0a0b0c0d-1.partial", (old, old))
    assert len(_temps(path)) >= len(planted)
    code = """
    import sys, numpy as np, exzarr
    a = exzarr.open(sys.argv[1], mode="r+")
    a[5:10] = 3
    """
    run = _run(code, str(path))
    assert run.returncode == 0, run.stderr
    assert _temps(path) == sorted(n for n, removable in planted.items() if not removable)
    values = exzarr.open(str(path))[:]
    assert values[5] == 3 and np.all(values[:5] == values[0])  # each chunk whole


def test_remove_leftovers_on_request(tmp_path):
    store = DirectoryStore(tmp_path)
    store.set("g/a/0", b"1")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from exzarr.storage._leftovers import host_id

    name = f".tmp-{host_id()}-{dead.pid}-1-0-00000000.partial"
    (tmp_path / "g" / "a" / name).write_bytes(b"x")
    assert store.remove_leftovers("g/") == 1
    assert _temps(tmp_path) == []
    assert store.get("g/a/0") == b"1"


def _leave_dead_writers_temp(folder) -> str:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from exzarr.storage._leftovers import host_id

    name = f".tmp-{host_id()}-{dead.pid}-1-0-00000000.partial"
    (folder / name).write_bytes(b"x")
    return name


@pytest.mark.parametrize("how", ["create", "open_group", "create_group"])
def test_overwriting_removes_leftovers(tmp_path, how):
    """Replacing an array or group (overwrite=True, mode="w") clears its temporary files
    too: no listing shows them, so deleting the listed keys alone would keep them."""
    root = tmp_path / "d"
    g = exzarr.open_group(path=str(root), mode="w")
    a = g.create_array("a", shape=(4,), chunks=(2,), dtype="i4", compressor=None)
    a[:] = 1
    _leave_dead_writers_temp(root / "a")
    if how == "create":
        exzarr.create(shape=(4,), chunks=(2,), storage="filesystem", path=str(root / "a"),
                      overwrite=True)
    elif how == "open_group":
        exzarr.open_group(path=str(root), mode="w")
    else:
        g.create_group("a", overwrite=True)
    assert _temps(root) == []


# -- point 5: durability on request ----------------------------------------------------------

_SYNCED = """
import sys
import numpy as np
import exzarr
exzarr.config.set(fsync=sys.argv[2] == "on")
a = exzarr.create(shape=(8, 1000), chunks=(1, 1000), dtype="f8", storage="filesystem",
                  path=sys.argv[1])
a[:] = np.arange(8000.0).reshape(8, 1000)
a[:] = 1.5  # replacements too
a.attrs["x"] = 1
"""


@pytest.mark.skipif(not __import__("shutil").which("strace"),
                    reason="needs strace (make test installs it)")
@pytest.mark.parametrize("setting", ["on", "off"])
def test_fsync_setting_syncs_files_and_folders(tmp_path, setting):
    log = tmp_path / "strace.log"
    run = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(log), "-e", "trace=fsync,fdatasync,openat",
         sys.executable, "-c", _SYNCED, str(tmp_path / "a"), setting],
        env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines()
    syncs = [c for c in calls if "fsync(" in c or "fdatasync(" in c]
    folders = [c for c in calls if "O_DIRECTORY" in c and str(tmp_path / "a") in c]
    if setting == "off":
        assert syncs == []
    else:
        # 16 chunk files, .zarray, .zattrs (and .zgroup-free root), then their folders.
        assert len(syncs) >= 16 + 2 + 1, syncs
        assert folders, "no folder was opened to be synced"
    np.testing.assert_array_equal(exzarr.open(str(tmp_path / "a"))[:], 1.5)


_NESTED = """
import sys
import numpy as np
import exzarr
from exzarr.storage import DirectoryStore
exzarr.config.set(fsync=True)
a = exzarr.create(shape=(64, 64), chunks=(8, 8), dtype="i4", storage="filesystem",
                  path=sys.argv[1] + "/g/a", dimension_separator="/")
a[:] = 1  # the core writes the chunks, into folders made for them
DirectoryStore(sys.argv[1]).set_many({"h/x/y/k": b"1", "h/x/z/k": b"2"})  # Python writes
"""


@pytest.mark.skipif(not __import__("shutil").which("strace"),
                    reason="needs strace (make test installs it)")
def test_fsync_makes_new_folders_durable(tmp_path):
    """With fsync on, every folder a write creates is synced into its parent (a folder's
    entry is its parent's, and a new chunk is lost with its folder's entry)."""
    import re

    log = tmp_path / "strace.log"
    root = str(tmp_path / "s")
    run = subprocess.run(
        ["strace", "-f", "-y", "-qq", "-o", str(log), "-e", "trace=fsync,mkdir,mkdirat",
         sys.executable, "-c", _NESTED, root],
        env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    made: list[str] = []
    pending: set[str] = set()  # folders made and not yet synced into their parent
    for line in log.read_text().splitlines():
        m = re.search(r'mkdir(?:at\(AT_FDCWD, |\()"([^"]+)".*= 0$', line)
        if m:
            made.append(m.group(1))
            pending.add(m.group(1))
        m = re.search(r"fsync\(\d+<([^>]+)>\) += 0", line)
        if m:
            pending -= {f for f in pending if os.path.dirname(f) == m.group(1)}
    assert {root, root + "/g/a/0", root + "/h/x/z"} <= set(made), made
    assert pending == set(), f"folders made and never synced into their parent: {pending}"
    np.testing.assert_array_equal(exzarr.open(root + "/g/a")[:], 1)


def test_sqlite_full_sync_when_fsync_is_on(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    store.set("a", b"1")
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with exzarr.config.set(fsync=True):
        store.set("a", b"2")
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.set("a", b"3")
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 1
    assert store.get("a") == b"3"


# -- mounts for full and read-only disks ------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs at tmp_path/m, unmounted afterwards (skips where mounting is refused)."""
    with tmpfs(tmp_path / "m", "1m") as mnt:
        yield mnt


# -- point 3: I/O failures as StorageError ----------------------------------------------------

@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_a_full_disk_raises_storage_error_and_keeps_what_was_committed(small_tmpfs, kind):
    path = str(small_tmpfs / ("a" if kind == "directory" else "a.db"))
    store = DirectoryStore(path) if kind == "directory" else SQLiteStore(path)
    a = exzarr.create(shape=(64 * 1024,), chunks=(8 * 1024,), dtype="u1", storage=store,
                      path="a", compressor=None)
    a[:] = 5
    committed = a[:].copy()
    big = exzarr.create(shape=(4 << 20,), chunks=(64 * 1024,), dtype="u1", storage=store,
                        path="big", compressor=None)
    with pytest.raises(StorageError) as info:
        big[:] = 9
    assert info.value.errno == __import__("errno").ENOSPC, info.value
    assert isinstance(info.value, OSError) and isinstance(info.value, ExZarrError)
    with pytest.raises(StorageError) as info:  # a small write fails likewise, and no less
        for i in range(64):
            a.store.set(f"x/{i}", b"y" * 100_000)
    assert info.value.errno == __import__("errno").ENOSPC
    if kind == "sqlite":
        assert "full" in str(info.value)  # SQLite's own message is kept
    store.close()
    reopened = DirectoryStore(path) if kind == "directory" else SQLiteStore(path)
    np.testing.assert_array_equal(exzarr.open(storage=reopened, path="a")[:], committed)


@pytest.mark.skipif(not __import__("shutil").which("setpriv"), reason="needs setpriv (util-linux)")
def test_core_io_failure_names_the_key_and_keeps_errno(tmp_path):
    # A folder the writer may read but not change. Root ignores permissions: the writer
    # runs without the capabilities that let it (setpriv), so the owner's bits apply.
    a = exzarr.create(shape=(8,), chunks=(4,), dtype="i4", storage="filesystem",
                      path=str(tmp_path / "a"))
    a[:] = 1
    code = """
    import errno, sys
    import exzarr
    from exzarr.errors import StorageError
    a = exzarr.open(sys.argv[1], mode="r+")
    print(a[:].tolist())
    for what, call in [("core", lambda: a.__setitem__(slice(None), 2)),
                       ("set", lambda: a.store.set("k", b"v")),
                       ("delete", lambda: a.store.delete("0"))]:
        try:
            call()
            print(what, "wrote")
        except StorageError as exc:
            print(what, errno.errorcode[exc.errno], "'0'" in str(exc) or "'k'" in str(exc))
    """
    os.chmod(tmp_path / "a", 0o555)
    try:
        run = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--",
             sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "a")],
            env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(tmp_path / "a", 0o755)
    if run.returncode != 0 and "setpriv" in run.stderr:
        pytest.skip(f"setpriv refused here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n") == ["[1, 1, 1, 1, 1, 1, 1, 1]", "core EACCES True",
                                      "set EACCES True", "delete EACCES True", ""]
    np.testing.assert_array_equal(exzarr.open(str(tmp_path / "a"))[:], 1)


# -- point 9: hostile keys and files ----------------------------------------------------------

BAD_KEYS = ["../x", "a/../../x", "/abs", "a//b", "a/./b", ".", "..", "", "a/", "a\0b", "a/.."]


def _stores(tmp_path):
    stores = [DirectoryStore(tmp_path / "d"), SQLiteStore(tmp_path / "s.db"), MemoryStore()]
    try:
        from exzarr.storage.fsspec import FsspecStore

        stores.append(FsspecStore(f"memory://h2-{os.getpid()}-{id(tmp_path)}"))
    except Exception:  # fsspec not installed: the others are still checked
        pass
    return stores


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_store_refuses_bad_keys(tmp_path, key):
    for store in _stores(tmp_path):
        for call in (lambda: store.set(key, b"v"), lambda: store.get(key),
                     lambda: store.delete(key), lambda: store.set_many([(key, b"v")]),
                     lambda: store.get_many(["ok", key]), lambda: store.contains(key)):
            with pytest.raises(InvalidKeyError) as info:
                call()
            assert isinstance(info.value, KeyError) and info.value.key == key, store
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("storage", ["filesystem", "sqlite", "memory"])
def test_create_refuses_a_path_that_climbs_out(tmp_path, storage):
    store = {"filesystem": lambda: DirectoryStore(tmp_path / "d"),
             "sqlite": lambda: SQLiteStore(tmp_path / "s.db"), "memory": MemoryStore}[storage]()
    for path in ("../x", "a/../../x", "a//x", "a/./x"):
        with pytest.raises(InvalidKeyError):
            exzarr.create(shape=(4,), chunks=(2,), storage=store, path=path)
    assert not (tmp_path / "x").exists()


def test_listings_skip_keys_no_store_may_hold(tmp_path):
    import sqlite3

    s = SQLiteStore(tmp_path / "s.db")
    s.set("g/.zgroup", b"{}")
    conn = sqlite3.connect(tmp_path / "s.db")
    with conn:
        conn.executemany("INSERT INTO zarr VALUES (?, ?)",
                         [("/g/.zarray", b"{}"), ("g//x", b"1"), ("g/../y", b"2"), ("g/a\0", b"3")])
    conn.close()
    assert list(s.list_prefix("")) == ["g/.zgroup"]
    assert s.list_dir("") == ["g"] and s.list_dir("g") == [".zgroup"]
    m = MemoryStore({"/a/.zarray": b"{}", "a/.zarray": b"{}", "a//0": b"", "../b": b""})
    assert list(m.list_prefix("")) == ["a/.zarray"]
    assert m.list_dir("") == ["a"]


def test_a_fifo_in_place_of_a_chunk_is_refused_without_blocking(tmp_path):
    # In a subprocess: on today's code the read blocks forever (the timeout catches it).
    code = """
    import os, sys
    import exzarr
    from exzarr.errors import StorageError
    a = exzarr.create(shape=(8,), chunks=(4,), dtype="i4", storage="filesystem",
                      path=sys.argv[1], compressor=None)
    a[:] = 1
    os.remove(os.path.join(sys.argv[1], "0"))
    os.mkfifo(os.path.join(sys.argv[1], "0"))
    for what, call in [("core read", lambda: a[:]), ("partial read", lambda: a[1:3]),
                       ("partial write", lambda: a.__setitem__(slice(1, 2), 5)),
                       ("store get", lambda: a.store.get("0"))]:
        try:
            call()
            print(what, "read a FIFO")
        except StorageError as exc:
            assert "not a regular file" in str(exc) and "'0'" in str(exc), exc
            print(what, "refused")
    b = exzarr.create(shape=(8,), chunks=(4,), dtype="i4", storage="filesystem",
                      path=sys.argv[1] + "z", compressor={"id": "zstd", "level": 1})
    b[:] = 1
    os.remove(os.path.join(sys.argv[1] + "z", "1"))
    os.mkfifo(os.path.join(sys.argv[1] + "z", "1"))
    try:
        b[:]
    except StorageError as exc:
        print("compressed refused")
    """
    try:
        run = _run(code, str(tmp_path / "a"), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("reading a FIFO chunk blocked")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n") == ["core read refused", "partial read refused",
                                      "partial write refused", "store get refused",
                                      "compressed refused", ""]


@pytest.mark.parametrize("what", ["fifo", "socket", "device"])
def test_a_fifo_socket_or_device_at_the_sqlite_path_is_refused_without_blocking(tmp_path,
                                                                               what):
    # In a subprocess: on today's code opening a FIFO read-only blocks forever (the
    # timeout catches it) and a writable one fails as "disk I/O error".
    code = """
    import errno, os, socket, sys
    from exzarr.storage import SQLiteStore
    from exzarr.errors import StorageError
    path, what = sys.argv[1], sys.argv[2]
    if what == "fifo":
        os.mkfifo(path)
    elif what == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
    else:
        os.symlink("/dev/null", path)
    for read_only in (True, False):
        try:
            SQLiteStore(path, read_only=read_only).get("a")
        except StorageError as exc:
            assert exc.errno == errno.EINVAL and "not a regular file" in str(exc), exc
            print("refused", flush=True)
    """
    run = _run(code, str(tmp_path / "s.db"), what, timeout=60)
    assert run.stdout == "refused\nrefused\n", run.stderr


def test_a_symlinked_store_root_and_chunk_still_read(tmp_path):
    a = exzarr.create(shape=(8,), chunks=(4,), dtype="i4", storage="filesystem",
                      path=str(tmp_path / "real"), compressor=None)
    a[:] = np.arange(8)
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.rename(tmp_path / "real" / "1", tmp_path / "chunk1")
    os.symlink(tmp_path / "chunk1", tmp_path / "real" / "1")
    np.testing.assert_array_equal(exzarr.open(str(tmp_path / "link"))[:], np.arange(8))


# -- point 10: read-only media ----------------------------------------------------------------

def test_stores_on_a_read_only_mount(small_tmpfs):
    d = exzarr.create(shape=(16,), chunks=(4,), dtype="i4", storage="filesystem",
                      path=str(small_tmpfs / "d"))
    d[:] = np.arange(16)
    s = exzarr.create(shape=(16,), chunks=(4,), dtype="i4", storage="sqlite",
                      path=str(small_tmpfs / "s.db"))
    s[:] = np.arange(16)
    s.store.close()
    assert sorted(os.listdir(small_tmpfs)) == ["d", "s.db"]  # no -wal, -shm: closed
    remount_ro(small_tmpfs)
    np.testing.assert_array_equal(exzarr.open(str(small_tmpfs / "d"), mode="r")[:], np.arange(16))
    np.testing.assert_array_equal(
        exzarr.open(str(small_tmpfs / "s.db"), mode="r", storage="sqlite")[:], np.arange(16))
    np.testing.assert_array_equal(
        exzarr.open(str(small_tmpfs / "s.db"), storage="sqlite")[:], np.arange(16))
    rw = exzarr.open(str(small_tmpfs / "d"), mode="r+")
    with pytest.raises((StorageError, exzarr.errors.ReadOnlyError)) as info:
        rw[:] = 1
    assert getattr(info.value, "errno", None) in (__import__("errno").EROFS, None)
    with pytest.raises(StorageError) as info:
        DirectoryStore(small_tmpfs / "d").set("k", b"v")
    assert info.value.errno == __import__("errno").EROFS
    np.testing.assert_array_equal(exzarr.open(str(small_tmpfs / "d"), mode="r")[:], np.arange(16))


def test_zarr_python_reads_a_store_holding_lock_files(tmp_path):
    zarr = pytest.importorskip("zarr")
    g = exzarr.open_group(str(tmp_path / "g"), mode="w")
    a = g.create_array("a", shape=(8, 8), chunks=(4, 4), dtype="i4")
    a[:] = np.arange(64).reshape(8, 8)
    store = DirectoryStore(tmp_path / "g")
    for key in (".zgroup", "a/.zarray", "a/0.0", "a/1.1"):
        with store.process_lock(key):
            pass
    assert (tmp_path / "g" / "a" / ".exzarr.lock").exists()
    z = zarr.open_group(str(tmp_path / "g"), mode="r", zarr_format=2)
    assert [name for name, _ in z.members()] == ["a"]
    np.testing.assert_array_equal(z["a"][:], np.arange(64).reshape(8, 8))
    assert z["a"].nchunks_initialized == 4
    assert sorted(store.list_dir("a")) == [".zarray", "0.0", "0.1", "1.0", "1.1"]
    assert list(exzarr.open_group(str(tmp_path / "g"), mode="r").array_keys()) == ["a"]


def test_listings_never_leave_the_root(tmp_path):
    (tmp_path / "outside").write_bytes(b"secret")
    store = DirectoryStore(tmp_path / "d")
    store.set("a/0", b"1")
    for prefix in ("../", "a/../../", "./"):
        with pytest.raises(InvalidKeyError):
            list(store.list_prefix(prefix))
        with pytest.raises(InvalidKeyError):
            store.list_dir(prefix)
    assert list(store.list_prefix("a/")) == ["a/0"] and store.list_dir("/a/") == ["0"]


def test_a_move_onto_a_folder_holding_only_lock_files(tmp_path):
    store = DirectoryStore(tmp_path)
    store.set("a/0", b"1")
    with store.process_lock("b/0"):  # leaves b/.exzarr.lock, no data
        pass
    store.move_prefix("a/", "b/")
    assert store.get("b/0") == b"1" and list(store.list_prefix("")) == ["b/0"]


def test_a_move_keeps_a_held_lock_of_the_target(tmp_path):
    """Unlinking a lock file someone holds would split the lock: the holder keeps the
    old file, the next locker makes a new one and both hold "the" lock (F12)."""
    store = DirectoryStore(tmp_path)
    store.set("a/0", b"1")
    store.set("a/sub/1", b"2")
    lock_file = tmp_path / "b" / ".exzarr.lock"
    with store.process_lock("b/0"):  # a holder of a lock in the target, while it moves
        inode = lock_file.stat().st_ino
        store.move_prefix("a/", "b/")
        assert lock_file.stat().st_ino == inode  # the same lock file: never unlinked
        assert not _free_now(store, "b/0")  # the lock is still held, for everyone
    assert store.get("b/0") == b"1" and store.get("b/sub/1") == b"2"
    assert sorted(store.list_prefix("")) == ["b/0", "b/sub/1"]
    with store.process_lock("b/0"):
        pass


def test_a_move_removes_only_leftover_temporary_files_of_the_target(tmp_path):
    """A temporary file in the target is removed only when it is a leftover (its writer
    is dead); a live writer's makes the move fail, the temporary file kept (F12)."""
    from exzarr.storage._leftovers import temp_tag

    store = DirectoryStore(tmp_path)
    store.set("a/0", b"1")
    os.makedirs(tmp_path / "b")
    live = tmp_path / "b" / f".tmp-{temp_tag(iter([0]))}.partial"  # this process's
    live.write_bytes(b"being written")
    with pytest.raises(FileExistsError):
        store.move_prefix("a/", "b/")
    assert live.exists() and store.get("a/0") == b"1"
    live.unlink()
    dead = _leave_dead_writers_temp(tmp_path / "b")
    store.move_prefix("a/", "b/")
    assert not (tmp_path / "b" / dead).exists() and store.get("b/0") == b"1"


# -- shared process locks (readers-writer) ------------------------------------------------

_HOLDER = """
import sys
from exzarr.storage import DirectoryStore, SQLiteStore
kind, path, mode, mark = sys.argv[1:5]
store = DirectoryStore(path) if kind == "directory" else SQLiteStore(path)
with store.process_lock("a/.zarray", shared=mode == "shared"):
    if mode == "shared":
        print("held", flush=True)
        sys.stdin.readline()  # holds until told
        store.set(mark, b"1")
    else:  # what the exclusive holder sees once it has the lock
        print(sorted(k for k in store.list_prefix("") if k.startswith("done")), flush=True)
"""


def _lock_waiters(lock_file: str) -> int:
    """How many lock requests wait on ``lock_file`` (Linux: ``/proc/locks`` "->" rows)."""
    ino = os.stat(lock_file).st_ino
    with open("/proc/locks") as f:
        return sum(1 for line in f if "->" in line and f":{ino} " in line)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/locks")
@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_shared_process_locks_are_held_together_and_exclude_an_exclusive_one(kind, tmp_path):
    import time

    path = str(tmp_path / ("d" if kind == "directory" else "s.db"))
    store = DirectoryStore(path) if kind == "directory" else SQLiteStore(path)
    store.set("x", b"")  # the database exists
    env = dict(os.environ, PYTHONPATH=ROOT)

    def start(mode: str, mark: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", _HOLDER, kind, path, mode, mark],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=env)

    readers = [start("shared", f"done{i}") for i in range(2)]
    try:
        # Both hold the lock at once (each would wait forever for the other otherwise).
        assert [r.stdout.readline() for r in readers] == ["held\n", "held\n"]
        lock_file = (os.path.join(path, "a", ".exzarr.lock") if kind == "directory"
                     else os.path.join(str(tmp_path), ".exzarr.lock"))
        writer = start("exclusive", "")
        while _lock_waiters(lock_file) == 0:  # the exclusive holder is waiting
            assert writer.poll() is None, writer.stdout.read()
            time.sleep(0.01)
        readers[0].communicate("go\n", timeout=60)
        while _lock_waiters(lock_file) == 0:  # still waiting, for the second reader
            assert writer.poll() is None, writer.stdout.read()
            time.sleep(0.01)
        readers[1].communicate("go\n", timeout=60)
        out, _ = writer.communicate(timeout=60)
        assert out == "['done0', 'done1']\n"  # it got the lock after both released
    finally:
        for p in [*readers]:
            p.kill()


@pytest.mark.parametrize("make", [MemoryStore, lambda: SQLiteStore(":memory:")],
                         ids=["memory", "sqlite-memory"])
def test_in_process_locks_are_readers_writer_locks(make):
    """Stores only this process sees lock in-process: shared holders together, an
    exclusive one alone (a readers-writer lock)."""
    store = make()
    first, second = threading.Event(), threading.Event()
    release = threading.Event()
    seen: list[str] = []

    def reader(held: threading.Event, name: str) -> None:
        with store.process_lock("k", shared=True):
            held.set()
            release.wait()
            seen.append(name)

    def writer() -> None:
        with store.process_lock("k"):
            seen.append("writer")

    threads = [threading.Thread(target=reader, args=(first, "r1")),
               threading.Thread(target=reader, args=(second, "r2"))]
    for t in threads:
        t.start()
    assert first.wait(60) and second.wait(60)  # both hold it at once
    w = threading.Thread(target=writer)
    w.start()
    locks = store._locks if isinstance(store, MemoryStore) else store._mem_keys
    while locks._slots["k"].users < 3:  # the writer waits (it has not got the lock)
        w.join(0.01)
    assert seen == []
    release.set()
    for t in (*threads, w):
        t.join(60)
    assert seen[-1] == "writer" and sorted(seen[:2]) == ["r1", "r2"]
    with store.process_lock("k"):  # forgotten and free again
        pass


# -- process locks and fork (F6) ----------------------------------------------------------

def _free_now(store: DirectoryStore, key: str, flock: bool = False) -> bool:
    """Whether ``key``'s process lock is free at this moment: a non-blocking attempt
    on a file description of its own (what another process would find)."""
    import errno
    import fcntl
    import struct

    from exzarr.storage import _locks

    folder, _, name = os.path.join(store.root, key).rpartition("/")
    path = os.path.join(folder, _locks.LOCK_NAME)
    if flock:
        path += f".{_locks._slot(name):016x}"
    fd = os.open(path, os.O_RDWR)
    try:
        if flock:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(
                _locks._FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _locks._slot(name), 1, 0))
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    finally:
        os.close(fd)  # (releases the probe's own lock)


def _fork_holding(store: DirectoryStore, key: str, shared: bool, flock: bool) -> tuple[int, int]:
    """Fork while holding ``key``'s lock; the child lives until its pipe is closed.
    The child's pid and the pipe's write end."""
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    with store.process_lock(key, shared=shared):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
            pid = os.fork()
        if pid == 0:  # a worker that never touches the store, outliving the hold
            os.close(w)
            os.write(ready_w, b"r")  # it runs: its fork handlers have run
            os.read(r, 1)
            os._exit(0)
        os.close(r)
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"r"
        os.close(ready_r)
        assert not _free_now(store, key, flock)
    return pid, w


@pytest.mark.skipif(not hasattr(os, "fork") or not sys.platform.startswith("linux"),
                    reason="fork and OFD locks")
@pytest.mark.parametrize("how", ["ofd", "flock"])
@pytest.mark.parametrize("shared", [False, True], ids=["exclusive", "shared"])
def test_a_forked_child_does_not_keep_its_parents_process_lock(tmp_path, monkeypatch, how,
                                                               shared):
    from exzarr.storage import _locks

    if how == "flock":  # the fallback of kernels without OFD locks
        monkeypatch.setattr(_locks, "_ofd_lock", lambda *a: False)
    store = DirectoryStore(tmp_path / how)
    pid, w = _fork_holding(store, "arr/0.0", shared, how == "flock")
    try:
        # The parent released; the child still runs: the lock is free for others.
        assert _free_now(store, "arr/0.0", flock=how == "flock")
    finally:
        os.close(w)
        os.waitpid(pid, 0)


@pytest.mark.skipif(not hasattr(os, "fork") or not sys.platform.startswith("linux"),
                    reason="fork and OFD locks")
def test_a_forked_child_closing_its_copy_leaves_the_parents_lock_held(tmp_path):
    store = DirectoryStore(tmp_path)
    with store.process_lock("arr/0.0"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            os._exit(0)  # closes whatever the child had
        assert os.waitpid(pid, 0)[1] == 0
        assert not _free_now(store, "arr/0.0")  # still the parent's
        with store.process_lock("arr/0.1"):  # and the parent's lock fds still work
            pass
    assert _free_now(store, "arr/0.0")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_can_take_and_release_process_locks(tmp_path):
    """The child closed its copies at fork; leaving the inherited block must not close
    an fd number the child has reused since (its own lock's)."""
    store = DirectoryStore(tmp_path)
    code = """
    import os, sys
    from exzarr.storage import DirectoryStore
    s = DirectoryStore(sys.argv[1])
    with s.process_lock("k"):
        pid = os.fork()
        if pid == 0:
            held = s.process_lock("j")
            held.__enter__()  # likely the fd number the parent's lock had in the child
    if pid == 0:
        with s.process_lock("k"):  # free: the parent left its block
            pass
        held.__exit__(None, None, None)
        with s.process_lock("j"):
            pass
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    print("ok")
    """
    run = _run(code, str(tmp_path))
    assert run.stdout == "ok\n", run.stderr


def test_a_move_refuses_before_moving_when_target_lock_files_are_in_the_way(tmp_path):
    store = DirectoryStore(tmp_path)
    store.set("a/0", b"1")
    store.set("a/z/1", b"2")
    with store.process_lock("b/0/k"):  # b/0/.exzarr.lock where a/0, a file, would go
        pass
    with pytest.raises(FileExistsError, match="lock files"):
        store.move_prefix("a/", "b/")
    assert sorted(store.list_prefix("")) == ["a/0", "a/z/1"]  # nothing moved
    assert (tmp_path / "b" / "0" / ".exzarr.lock").exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_folder_lock_is_not_kept_by_a_forked_child(tmp_path):
    """The flock on a folder (zip commits) is fork-safe as process locks are."""
    import fcntl

    from exzarr.storage._locks import folder_lock

    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    with folder_lock(str(tmp_path)) as locked:
        assert locked
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            os.close(w)
            os.write(ready_w, b"r")
            os.read(r, 1)
            os._exit(0)
        os.close(r)
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"r"
    probe = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free, the child still running
    finally:
        os.close(probe)
        os.close(w)
        os.waitpid(pid, 0)


def test_lock_files_are_removed_only_when_free_and_never_split_a_lock(tmp_path, monkeypatch):
    from exzarr.storage import _locks

    store = DirectoryStore(tmp_path)
    lock_file = tmp_path / "a" / ".exzarr.lock"
    with store.process_lock("a/0"):
        assert not _locks.remove_lock_files(str(tmp_path / "a"))  # held: kept
        assert lock_file.exists()
    assert _locks.remove_lock_files(str(tmp_path / "a")) and not lock_file.exists()
    # A locker that opened the file before it was removed, and got its lock after:
    # it locks the file at the path instead, which everyone else opens.
    real = _locks._ofd_lock
    removed = []

    def remove_first(fd, start, shared):
        if not removed:
            removed.append(_locks.remove_lock_files(str(tmp_path / "a")))
        return real(fd, start, shared)

    monkeypatch.setattr(_locks, "_ofd_lock", remove_first)
    with store.process_lock("a/0"):
        assert removed == [True] and lock_file.exists()
        assert not _free_now(store, "a/0")
