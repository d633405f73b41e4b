"""ZipStore under crashes, full disks, concurrent readers, hostile member names and
read-only media: the last committed archive is never lost.

The crash test runs ``EXZARR_CRASH_RUNS`` SIGKILLed writers (default 5; ``make fuzz``
runs 100).
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import exzarr
from exzarr import errors
from exzarr.storage import ZipStore
from tests.mounts import remount_ro, tmpfs

ROOT = Path(__file__).resolve().parent.parent
CRASH_RUNS = int(os.environ.get("EXZARR_CRASH_RUNS", "5"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# -- a deterministic history of rounds, shared by the writer subprocess and the checker --
_ROUNDS = textwrap.dedent("""
    import hashlib

    def value(r, j, size):
        head = f"{r}:{j}:".encode()
        body = hashlib.sha256(head).digest() * (size // 32 + 1)
        return head + body[:size - len(head)]

    KEYS, SIZE = 48, 32768

    def step(state, r):
        # round r rewrites a third of the keys, deletes one and adds one
        for j in range(r % 3, KEYS, 3):
            state[f"c/{j}"] = value(r, j, SIZE)
        state.pop(f"c/{(r * 7) % KEYS}", None)
        state[f"n/{r}"] = value(r, -1, SIZE // 4)

    def state_at(r):
        state = {f"c/{j}": value(0, j, SIZE) for j in range(KEYS)}
        for i in range(1, r + 1):
            step(state, i)
        return state
""")
_ns: dict = {}
exec(_ROUNDS, _ns)  # noqa: S102 -- the same code runs in the writer subprocess
state_at = _ns["state_at"]

_WRITER = _ROUNDS + textwrap.dedent("""
    import sys
    from exzarr.storage import ZipStore

    path, rounds = sys.argv[1], int(sys.argv[2])
    state = state_at(0)
    store = ZipStore(path, "a")
    print("ready", flush=True)
    for r in range(1, rounds + 1):
        old = dict(state)
        step(state, r)
        for k in sorted(state):
            if old.get(k) != state[k]:
                store.set(k, state[k])
        for k in old:
            if k not in state:
                store.delete(k)
        store.flush()
        print(r, flush=True)
    store.close()
""")


def _make_round0(path: Path) -> None:
    with ZipStore(path, "w") as s:
        for k, v in state_at(0).items():
            s.set(k, v)


def _contents(path: Path) -> dict[str, bytes]:
    s = ZipStore(path, "r")
    keys = sorted(s.list_prefix(""))
    got = dict(zip(keys, s.get_many(keys)))
    s.close()
    with zipfile.ZipFile(path) as zf:  # the reference reader agrees
        assert zf.testzip() is None
        assert {n: zf.read(n) for n in zf.namelist()} == got
    return got


@pytest.mark.parametrize("run", range(CRASH_RUNS))
def test_zip_sigkilled_writer_never_loses_committed_rounds(tmp_path, run):
    """A writer of a reopened archive killed at a random moment: the archive opens, and
    holds exactly the last round whose flush returned (or the next, when the kill came
    between the commit and the report of it); leftovers go at the next write."""
    path = tmp_path / "a.zip"
    _make_round0(path)
    rng = random.Random(1000 + run)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), "100000"],
                            stdout=subprocess.PIPE, env=_env(), text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        try:
            proc.wait(timeout=rng.uniform(0.0, 2.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
    done = [int(x) for x in out.split()]
    last = done[-1] if done else 0
    try:
        got = _contents(path)
    except Exception as exc:  # today: NotAZipArchiveError
        pytest.fail(f"killed after round {last}: the archive does not open: {exc!r}")
    allowed = [state_at(last), state_at(last + 1)]
    assert got in allowed, f"killed after round {last}: keys {sorted(got)[:5]}..."
    # A later writer removes what the killed one left behind.
    with ZipStore(path, "a") as s:
        s.set("after", b"x")
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]


_READER = textwrap.dedent("""
    import sys, time, zipfile
    from exzarr.storage import ZipStore

    path, seconds = sys.argv[1], float(sys.argv[2])
    ok = bad = 0
    long_lived = ZipStore(path, "r")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for store in (long_lived, ZipStore(path, "r")):
            try:
                keys = sorted(store.list_prefix(""))
                values = store.get_many(keys)
                rounds = {v.split(b":", 1)[0] for v in values}
                # one snapshot: every key of one round, each value whole
                if len(rounds) != 1 or any(v is None or len(v) != 4096 for v in values):
                    raise AssertionError(f"mixed or short values: {sorted(rounds)[:4]}")
                ok += 1
            except Exception as exc:
                bad += 1
                if bad < 4:
                    print("error:", repr(exc)[:200], file=sys.stderr)
    print(ok, bad)
""")

_BUSY_WRITER = textwrap.dedent("""
    import sys
    from exzarr.storage import ZipStore

    path, rounds = sys.argv[1], int(sys.argv[2])
    store = ZipStore(path, "a")
    for r in range(1, rounds + 1):
        for j in range(64):
            v = f"{r}:{j}:".encode()
            store.set(f"k/{j}", v + b"." * (4096 - len(v)))
        store.flush()
    store.close()
""")


def test_zip_readers_see_whole_commits_while_a_writer_works(tmp_path):
    path = tmp_path / "a.zip"
    with ZipStore(path, "w") as s:
        for j in range(64):
            v = f"0:{j}:".encode()
            s.set(f"k/{j}", v + b"." * (4096 - len(v)))
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(path), "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    writer = subprocess.run([sys.executable, "-c", _BUSY_WRITER, str(path), "150"],
                            env=_env(), timeout=300, capture_output=True, text=True)
    out, err = reader.communicate(timeout=300)
    assert writer.returncode == 0, writer.stderr
    ok, bad = map(int, out.split())
    assert ok > 0 and bad == 0, f"{bad} failed reads of {ok + bad}: {err}"


# -- full disks and file size limits ------------------------------------------------------
def _committed(path: Path, n: int, size: int) -> dict[str, bytes]:
    data = {f"c/{j}": os.urandom(size) for j in range(n)}
    with ZipStore(path, "w") as s:
        for k, v in data.items():
            s.set(k, v)
    return data


def test_zip_full_disk_raises_storage_error_and_keeps_the_archive(tmp_path):
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        path = mnt / "a.zip"
        data = _committed(path, 4, 64 << 10)
        s = ZipStore(path, "a")
        written = {}
        with pytest.raises(errors.StorageError) as exc:
            for j in range(100):
                v = os.urandom(64 << 10)
                s.set(f"new/{j}", v)
                written[f"new/{j}"] = v
            s.flush()
        assert exc.value.errno == errno.ENOSPC and str(path) in str(exc.value)
        assert isinstance(exc.value, OSError)
        assert _contents(path) == data  # the last commit, whole
        s.set("new/0", b"small")  # the store still works for what fits
        with pytest.raises(errors.StorageError):
            s.set("huge", b"x" * (2 << 20))
        s.close()  # the commit needs little room: the failed member was cut off
        assert _contents(path) == {**data, **written, "new/0": b"small"}
        assert sorted(os.listdir(mnt)) == ["a.zip"]


def test_zip_no_room_for_the_copy_then_room_again(tmp_path):
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        filler = mnt / "filler"
        filler.write_bytes(b"f" * (400 << 10))
        path = mnt / "a.zip"
        data = _committed(path, 6, 64 << 10)
        s = ZipStore(path, "a")
        for _ in range(2):
            with pytest.raises(errors.StorageError) as exc:
                s.set("new", b"n")
            assert exc.value.errno == errno.ENOSPC
            assert sorted(os.listdir(mnt)) == ["a.zip", "filler"]
        s.close()  # nothing was written: nothing to commit
        assert _contents(path) == data
        filler.unlink()
        s.set("new", b"n")
        s.close()
        assert _contents(path) == {**data, "new": b"n"}
        assert sorted(os.listdir(mnt)) == ["a.zip"]


def test_zip64_directory_records_parse(tmp_path):
    """Offsets and sizes past 4 GiB, written as zip64 fields (checked against zipfile,
    without writing 4 GiB)."""
    from exzarr.storage._zipfile_format import central_directory, stored_member

    small, _ = stored_member("a", 3, 0x12345678, 0)
    big, header = stored_member("b", 5 << 30, 0x9ABCDEF0, 6 << 30)
    assert b"\x01\x00\x10\x00" in header  # the local header's zip64 sizes
    cd = central_directory([small, big], 7 << 30)
    p = tmp_path / "z64.zip"
    # A sparse file: the directory sits at 7 GiB, as its end records say.
    with open(p, "wb") as f:
        f.seek(7 << 30)
        f.write(cd)
    with zipfile.ZipFile(p) as zf:
        a, b = zf.infolist()
    assert (a.filename, a.file_size, a.header_offset, a.CRC) == ("a", 3, 0, 0x12345678)
    assert (b.filename, b.file_size, b.compress_size, b.header_offset) == \
        ("b", 5 << 30, 5 << 30, 6 << 30)


_FSIZE_WRITER = textwrap.dedent("""
    import errno, os, resource, signal, sys
    from exzarr import errors
    from exzarr.storage import ZipStore

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    s = ZipStore(sys.argv[1], "a")
    try:
        for j in range(1000):
            s.set(f"new/{j}", os.urandom(65536))
        s.flush()
    except errors.StorageError as exc:
        print(exc.errno == errno.EFBIG, sys.argv[1] in str(exc))
    else:
        print("no error")
    try:
        s.close()
    except errors.StorageError:
        pass
""")


def test_zip_file_size_limit_keeps_the_archive(tmp_path):
    path = tmp_path / "a.zip"
    data = _committed(path, 8, 64 << 10)
    r = subprocess.run([sys.executable, "-c", _FSIZE_WRITER, str(path), str(2 << 20)],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.stdout.split() == ["True", "True"], (r.stdout, r.stderr)
    got = _contents(path)
    assert {k: got[k] for k in data} == data  # the committed members, byte for byte
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]


# -- read-only media ------------------------------------------------------------------------
def test_zip_on_a_read_only_mount_reads_and_refuses_writes(tmp_path):
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        path = str(mnt / "a.zip")
        a = exzarr.create(shape=(64,), chunks=(16,), dtype="i4", storage="zip", path=path)
        a[...] = np.arange(64)
        a.store.close()
        remount_ro(mnt)
        np.testing.assert_array_equal(exzarr.open(path, mode="r", storage="zip")[...], np.arange(64))
        s = ZipStore(path, "a")
        with pytest.raises(errors.StorageError) as exc:
            s.set("0", b"x")
        assert exc.value.errno == errno.EROFS and path in str(exc.value)
        s.close()
        np.testing.assert_array_equal(exzarr.open(path, mode="r", storage="zip")[...], np.arange(64))


# -- durability on request ------------------------------------------------------------------
def _synced(monkeypatch):
    """Files fsync'ed and folders synced (base.sync_folder, the core's): (dev, ino, is
    a folder) each."""
    import exzarr.storage.zip as zip_module

    calls: list[tuple[int, int, bool]] = []
    real, real_folder = os.fsync, zip_module.sync_folder

    def spy(fd):
        st = os.fstat(fd)
        calls.append((st.st_dev, st.st_ino, os.path.stat.S_ISDIR(st.st_mode)))
        return real(fd)

    def spy_folder(path):
        st = os.stat(path)
        calls.append((st.st_dev, st.st_ino, True))
        return real_folder(path)

    monkeypatch.setattr(os, "fsync", spy)
    monkeypatch.setattr(zip_module, "sync_folder", spy_folder)
    return calls


@pytest.mark.parametrize("how", ["config", "option"])
def test_zip_fsync_syncs_archive_and_folder_before_flush_returns(tmp_path, monkeypatch, how):
    calls = _synced(monkeypatch)
    path = tmp_path / "a.zip"
    with exzarr.config.set(fsync=(how == "config")):
        s = ZipStore(path, "a", fsync=True) if how == "option" else ZipStore(path, "a")
        s.set("k", b"v")
        s.flush()
        st, dst = os.stat(path), os.stat(tmp_path)
        assert (st.st_dev, st.st_ino, False) in calls
        assert (dst.st_dev, dst.st_ino, True) in calls
        calls.clear()
        s.set("k", b"w")
        s.close()
        st = os.stat(path)
        assert (st.st_dev, st.st_ino, False) in calls and (dst.st_dev, dst.st_ino, True) in calls


def test_zip_no_fsync_by_default(tmp_path, monkeypatch):
    calls = _synced(monkeypatch)
    with ZipStore(tmp_path / "a.zip", "a") as s:
        s.set("k", b"v")
    assert calls == []


# -- hostile keys and member names ----------------------------------------------------------
BAD_KEYS = ["../x", "a/../../x", "/abs", "a//b", "a/", "./a", "a/./b", "", "a\x00b", "..",
            "..\\x", "a\\..\\..\\x", "C:/x", "c:\\x"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_zip_refuses_keys_that_escape_or_collide(tmp_path, key):
    s = ZipStore(tmp_path / "a.zip", "a")
    with pytest.raises(errors.InvalidKeyError) as exc:
        s.set(key, b"x")
    assert isinstance(exc.value, KeyError)
    with pytest.raises(errors.InvalidKeyError):
        s.get(key)
    s.close()
    assert not (tmp_path / "a.zip").exists() or zipfile.ZipFile(tmp_path / "a.zip").namelist() == []


def test_zip_create_with_a_path_outside_the_archive_is_refused(tmp_path):
    p = tmp_path / "a.zip"
    with pytest.raises(errors.InvalidKeyError):
        exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage=ZipStore(p, "a"), path="../x")
    assert not p.exists() or all(".." not in n for n in zipfile.ZipFile(p).namelist())


def _hostile_archive(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok", b"the real ok")
        for name in ("../evil", "/abs", "a//b", "a/./b", "dir/", "..\\evil", "C:/evil"):
            zf.writestr(name, b"hostile")
        zf.writestr("okZzap", b"NUL-cut ok")  # renamed to "ok\0zap" below
        zf.writestr("g/okZ", b"NUL-cut g/ok")
    raw = path.read_bytes()
    for name in (b"okZzap", b"g/okZ"):
        raw = raw.replace(name, name.replace(b"Z", b"\x00"))
    path.write_bytes(raw)


def test_zip_listings_ignore_hostile_member_names(tmp_path):
    p = tmp_path / "h.zip"
    _hostile_archive(p)
    s = ZipStore(p, "r")
    assert sorted(s.list_prefix("")) == ["ok"]
    assert s.get("ok") == b"the real ok" and s.get("g/ok") is None
    assert s.list_dir("") == ["ok"]
    s.close()
    # A writer keeps them out of its listings too, and its commit is still a zip file.
    with ZipStore(p, "a") as s:
        s.set("new", b"n")
        assert sorted(s.list_prefix("")) == ["new", "ok"]
    got = ZipStore(p, "r")
    assert sorted(got.list_prefix("")) == ["new", "ok"] and got.get("ok") == b"the real ok"


# -- format details the new writer must get right -------------------------------------------
def test_zip_many_members_use_zip64_end_records(tmp_path):
    p = tmp_path / "many.zip"
    with ZipStore(p, "w") as s:
        for j in range(70_000):
            s.set(f"{j}", b"")
        s.set("last", b"L")
    with zipfile.ZipFile(p) as zf:
        assert len(zf.namelist()) == 70_001 and zf.read("last") == b"L"
    assert ZipStore(p, "r").get("last") == b"L"


def test_zip_non_ascii_keys_round_trip(tmp_path):
    p = tmp_path / "u.zip"
    with ZipStore(p, "w") as s:
        s.set("température/.zarray", b"{}")
    with zipfile.ZipFile(p) as zf:
        assert zf.namelist() == ["température/.zarray"]
    with ZipStore(p, "a") as s:
        s.set("x", b"1")
        assert s.get("température/.zarray") == b"{}"
    assert sorted(ZipStore(p, "r").list_prefix("")) == ["température/.zarray", "x"]


def test_zip_reopened_writer_sees_commits_of_another_store(tmp_path):
    p = tmp_path / "a.zip"
    reader = ZipStore(p, "r")
    assert reader.get("k") is None
    with ZipStore(p, "a") as w:
        w.set("k", b"1")
        assert reader.get("k") is None  # not committed yet
    assert reader.get("k") == b"1"
    with ZipStore(p, "a") as w:
        w.set("k", b"2")
    assert reader.get("k") == b"2"


def test_zip_mode_w_replaces_only_at_commit(tmp_path):
    p = tmp_path / "a.zip"
    with ZipStore(p, "w") as s:
        s.set("old", b"o")
    w = ZipStore(p, "w")
    assert ZipStore(p, "r").get("old") == b"o"  # still there for readers
    assert w.get("old") is None and not w.exists()
    w.set("new", b"n")
    w.close()
    assert sorted(ZipStore(p, "r").list_prefix("")) == ["new"]
    ZipStore(p, "w").close()  # nothing written: no archive, as before
    assert not p.exists()


def test_zip_archive_reads_with_zarr_python(tmp_path):
    zarr = pytest.importorskip("zarr")
    p = tmp_path / "z.zip"
    a = exzarr.create(shape=(40,), chunks=(8,), dtype="i4", storage="zip", path=str(p))
    a[...] = np.arange(40)
    a.store.close()
    a = exzarr.open(str(p), mode="r+", storage="zip")
    a[:8] = -1  # a rewrite, committed in place of the old member
    a.store.close()
    expected = np.arange(40)
    expected[:8] = -1
    zs = zarr.storage.ZipStore(str(p), mode="r")
    np.testing.assert_array_equal(zarr.open_array(zs, mode="r")[...], expected)


# -- two writers ------------------------------------------------------------------------------
def test_zip_two_writers_of_one_archive_keep_each_others_commits(tmp_path):
    p = tmp_path / "a.zip"
    with ZipStore(p, "w") as s:
        s.set("shared", b"0")
        s.set("gone", b"0")
    a, b = ZipStore(p, "a"), ZipStore(p, "a")
    a.set("a/0", b"A")
    a.set("shared", b"A")
    b.set("b/0", b"B")
    b.delete("gone")
    a.close()
    b.close()  # commits over a's archive: a's keys stay, b's changes apply on top
    got = ZipStore(p, "r")
    assert {k: got.get(k) for k in got.list_prefix("")} == {"a/0": b"A", "b/0": b"B", "shared": b"A"}
    b.set("shared", b"B")
    b.close()
    assert ZipStore(p, "r").get("shared") == b"B"  # the same key: the last commit wins


_PART_WRITER = textwrap.dedent("""
    import sys
    from exzarr.storage import ZipStore

    path, me = sys.argv[1], sys.argv[2]
    store = ZipStore(path, "a")
    for j in range(40):
        store.set(f"{me}/{j}", f"{me}:{j}".encode() * 100)
        if j % 8 == 7:
            store.flush()
    store.close()
""")


def test_zip_writer_processes_of_disjoint_keys_lose_nothing(tmp_path):
    """Workers given a pickled store (dask, multiprocessing) each commit their own
    chunks: every commit builds on the archive the others committed."""
    p = tmp_path / "a.zip"
    ZipStore(p, "w").close()
    procs = [subprocess.Popen([sys.executable, "-c", _PART_WRITER, str(p), f"w{i}"], env=_env())
             for i in range(4)]
    assert [q.wait(timeout=300) for q in procs] == [0] * 4
    got = _contents(p)
    assert got == {f"w{i}/{j}": f"w{i}:{j}".encode() * 100 for i in range(4) for j in range(40)}
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]


def test_zip_permission_denied_is_a_storage_error():
    """As a user who may read the archive but not write in its folder."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the writer as another user")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="exzarr-eacces-"))  # (pytest's tmp is root-only)
    try:
        os.chmod(folder, 0o755)
        path = folder / "a.zip"
        data = _committed(path, 2, 100)
        script = textwrap.dedent(f"""
            import errno, os, sys
            from exzarr import errors
            from exzarr.storage import ZipStore
            s = ZipStore({str(path)!r}, "a")
            assert s.get("c/0") is not None  # (imports all a write needs, as root)
            os.setegid(65534); os.seteuid(65534)
            try:
                s.set("c/0", b"x")
            except errors.StorageError as exc:
                print(exc.errno == errno.EACCES, {str(path)!r} in str(exc))
        """)
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env=_env(), timeout=120)
        assert r.stdout.split() == ["True", "True"], r.stderr
        assert _contents(path) == data
        os.chmod(path, 0o600)  # reading refused: a StorageError too
        script = textwrap.dedent(f"""
            import errno, os
            from exzarr import errors
            from exzarr.storage import ZipStore
            os.setegid(65534); os.seteuid(65534)
            try:
                ZipStore({str(path)!r}, "r").get("c/0")
            except errors.StorageError as exc:
                print(exc.errno == errno.EACCES, {str(path)!r} in str(exc))
        """)
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env=_env(), timeout=120)
        assert r.stdout.split() == ["True", "True"], r.stderr
    finally:
        shutil.rmtree(folder)


def test_zip_threads_read_whole_commits_of_a_writer_thread(tmp_path):
    """In one process: readers with their own stores, and readers of the writer's own
    store, while a writer thread writes and commits rounds."""
    import threading

    p = tmp_path / "a.zip"
    keys = [f"k/{j}" for j in range(32)]

    def value(r, j):
        v = f"{r}:{j}:".encode()
        return v + b"." * (2048 - len(v))

    writer = ZipStore(p, "w")
    for j, k in enumerate(keys):
        writer.set(k, value(0, j))
    writer.flush()
    done = threading.Event()
    problems: list[str] = []
    reads = [0]

    def read(store_for_round):
        long_lived = ZipStore(p, "r")
        while not done.is_set():
            for store in (long_lived, ZipStore(p, "r"), writer):
                try:
                    got = store.get_many(keys)
                    rounds = {v.split(b":", 1)[0] for v in got}
                    ok = all(v == value(int(v.split(b":", 1)[0]), j) for j, v in enumerate(got))
                    if store is not writer and (len(rounds) != 1 or not ok):
                        problems.append(f"mixed rounds {sorted(rounds)}")
                    elif not ok:
                        problems.append("a torn value")
                    reads[0] += 1
                except Exception as exc:  # noqa: BLE001 -- every failure is counted
                    problems.append(repr(exc))

    threads = [threading.Thread(target=read, args=(None,)) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for r in range(1, 60):
            for j, k in enumerate(keys):
                writer.set(k, value(r, j))
            writer.flush()
    finally:
        done.set()
        for t in threads:
            t.join()
    writer.close()
    assert reads[0] > 0 and problems == []


# -- other writers' temporary archives ---------------------------------------------------------
def _temps(folder: Path, name: str = "a.zip") -> list[str]:
    return sorted(n for n in os.listdir(folder) if n != name)


_NS_WRITER = textwrap.dedent("""
    import os, sys

    path, last = sys.argv[1], int(sys.argv[2])
    if os.getpid() == 1:  # the new namespace's init: the writer gets pid last + 1
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(last))
        pid = os.fork()
        if pid:
            sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    from exzarr.storage import ZipStore

    s = ZipStore(path, "a")
    s.set("ns/0", b"first")
    s.flush()
    s.set("ns/1", b"pending")  # a session: a temporary archive beside the archive
    print("ready", os.getpid(), flush=True)
    sys.stdin.readline()  # meanwhile a writer on the host starts a session of its own
    s.flush()
    s.set("ns/2", b"after")
    s.close()
    print("done", flush=True)
""")


_DYING_WRITER = textwrap.dedent("""
    import os, sys
    from exzarr.storage import ZipStore

    s = ZipStore(sys.argv[1], "a")
    s.set("host/0", b"h")
    os._exit(0)
""")


def _free_pid() -> int:
    """A pid no process of this host has (checked just now)."""
    with open("/proc/sys/kernel/pid_max") as f:
        top = int(f.read())
    for pid in range(top - 200, top - 2000, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    pytest.skip("no free pid found near pid_max")


def test_zip_writer_in_another_pid_namespace_keeps_its_temporary_archive(tmp_path):
    """A writer in a container (its own pid namespace) whose pid is no process here: a
    writer on the host must not take its temporary archive for a dead writer's."""
    probe = subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"], capture_output=True,
                           text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("making a pid namespace (unshare -p) is not permitted here"
                    + (f": {probe.stderr.strip()}" if probe is not None else ": no unshare"))
    path = tmp_path / "a.zip"
    last = _free_pid() - 1
    proc = subprocess.Popen(["unshare", "-p", "-f", "--mount-proc", sys.executable, "-c",
                             _NS_WRITER, str(path), str(last)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    try:
        ready = proc.stdout.readline().split()
        assert ready == ["ready", str(last + 1)], (ready, proc.stderr.read() if not ready else "")
        assert len(_temps(tmp_path)) == 1
        # A host writer's first write looks for leftovers; it dies before committing
        # (a commit of its own would make the other's commit a merge, which rewrites).
        host = subprocess.run([sys.executable, "-c", _DYING_WRITER, str(path)], env=_env(),
                              capture_output=True, text=True, timeout=120)
        assert host.returncode == 0, host.stderr
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and out.split() == ["done"], err
    assert _contents(path) == {"ns/0": b"first", "ns/1": b"pending", "ns/2": b"after"}
    with ZipStore(path, "a") as host:  # the dead host writer's temporary archive goes
        host.set("host/1", b"h")
    assert _temps(tmp_path) == []


def test_zip_temporary_archive_survives_a_sweep_the_moment_it_is_made(tmp_path, monkeypatch):
    """Another store of the archive starts its session (and looks for leftovers) right
    after this one's temporary archive is created."""
    path = tmp_path / "a.zip"
    with ZipStore(path, "w") as s:
        s.set("k/0", b"committed")
    other = ZipStore(path, "a")
    real_open = os.open
    swept = []

    def open_then_other_writer_starts(file, flags, *args, **kwargs):
        fd = real_open(file, flags, *args, **kwargs)
        if str(file).endswith(".partial") and flags & os.O_CREAT and not swept:
            swept.append(file)
            other.set("other/0", b"o")
        return fd

    monkeypatch.setattr(os, "open", open_then_other_writer_starts)
    s = ZipStore(path, "a")
    s.set("k/1", b"new")
    monkeypatch.setattr(os, "open", real_open)
    assert swept
    s.flush()
    other.close()
    s.close()
    assert _contents(path) == {"k/0": b"committed", "k/1": b"new", "other/0": b"o"}
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("dead", [False, True])
def test_zip_commit_after_the_temporary_archive_was_removed_keeps_every_write(tmp_path, dead):
    """Someone removed the writer's temporary archive (an old leftover rule, a cleaner):
    the commit writes the archive again from the writer's open descriptor, and the store
    goes on working. With ``dead``, overwritten members make the commit a rewrite."""
    path = tmp_path / "a.zip"
    with ZipStore(path, "w") as s:
        for j in range(4):
            s.set(f"c/{j}", bytes([j]) * 1000)
    s = ZipStore(path, "a")
    s.set("c/1", b"one")
    if dead:
        for j in range(4):
            s.set(f"c/{j}", b"again %d" % j)
    (temp,) = _temps(tmp_path)
    os.unlink(tmp_path / temp)
    s.flush()
    expected = {f"c/{j}": bytes([j]) * 1000 for j in range(4)}
    expected["c/1"] = b"one"
    if dead:
        expected.update({f"c/{j}": b"again %d" % j for j in range(4)})
    assert _contents(path) == expected
    s.set("c/9", b"later")
    s.flush()
    assert _contents(path) == {**expected, "c/9": b"later"}
    s.close()
    assert _temps(tmp_path) == []


def test_zip_commit_after_the_temporary_archive_was_removed_and_no_room_then_room(tmp_path,
                                                                               monkeypatch):
    """The rewrite that replaces a removed temporary archive fails once (a full disk):
    the store still holds every write, and the next flush commits them."""
    from exzarr.storage import _zipfile_session

    path = tmp_path / "a.zip"
    with ZipStore(path, "w") as s:
        s.set("c/0", b"zero")
    s = ZipStore(path, "a")
    s.set("c/1", b"one")
    (temp,) = _temps(tmp_path)
    os.unlink(tmp_path / temp)
    real = getattr(_zipfile_session, "sync_data", None)
    failures = [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))]

    def full_once(fd, full):
        if failures:
            raise failures.pop()
        real(fd, full)

    monkeypatch.setattr(_zipfile_session, "sync_data", full_once, raising=False)
    with pytest.raises(errors.StorageError) as exc:
        s.flush()
    assert exc.value.errno == errno.ENOSPC
    assert _contents(path) == {"c/0": b"zero"} and _temps(tmp_path) == []
    assert s.get("c/1") == b"one"
    s.set("c/2", b"two")
    s.flush()
    assert _contents(path) == {"c/0": b"zero", "c/1": b"one", "c/2": b"two"}
    s.close()
    assert _temps(tmp_path) == []


# -- fork ----------------------------------------------------------------------------------------
def _in_child(body) -> int:
    """Run ``body()`` in a forked child; its exit code (0: it returned True)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if body() else 3
        except BaseException:  # noqa: BLE001 -- the child reports through its exit code
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_zip_store_used_in_a_forked_child_commits_the_childs_writes(tmp_path):
    path = tmp_path / "a.zip"
    s = ZipStore(path, "a")
    s.set("parent", b"1")
    s.flush()
    s.set("pending", b"p")  # the parent's session, uncommitted at the fork
    (temp,) = _temps(tmp_path)
    before = (tmp_path / temp).read_bytes()

    def child() -> bool:
        s.set("child", b"2")
        s.flush()
        got = s.get("child"), s.get("pending"), ZipStore(path, "r").get("child")
        s.set("child/late", b"3")
        s.close()
        return got == (b"2", None, b"2")

    assert _in_child(child) == 0
    assert (tmp_path / temp).read_bytes() == before  # the child left it alone
    assert ZipStore(path, "r").get("child/late") == b"3"
    s.close()  # the parent's commit goes over the child's
    assert _contents(path) == {"parent": b"1", "pending": b"p", "child": b"2", "child/late": b"3"}
    assert _temps(tmp_path) == []


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_zip_commit_lock_is_not_kept_by_a_forked_child(tmp_path, monkeypatch):
    """A child forked while a thread commits (holding the folder's lock) must not hold
    that lock after the parent's commit ends."""
    import fcntl
    import threading

    from exzarr.storage import _zipfile_session

    entered, go = threading.Event(), threading.Event()
    real = _zipfile_session._changed_since

    def held(path, base):  # runs under the commit's lock
        entered.set()
        go.wait()
        return real(path, base)

    monkeypatch.setattr(_zipfile_session, "_changed_since", held)
    s = ZipStore(tmp_path / "a.zip", "a")
    s.set("k", b"v")
    t = threading.Thread(target=s.flush)
    t.start()
    entered.wait()
    r, w = os.pipe()
    started_r, started_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # holds whatever it inherited until the parent is done
        os.close(w)
        os.write(started_w, b"s")  # (after the fork hooks ran in the child)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    os.close(started_w)
    try:
        assert os.read(started_r, 1) == b"s"
        os.close(started_r)
        go.set()
        t.join()
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                free = True
            except BlockingIOError:
                free = False
        finally:
            os.close(fd)
    finally:
        os.write(w, b"x")
        os.close(w)
        os.waitpid(pid, 0)
    assert free, "the forked child still holds the archive folder's commit lock"
    s.close()


# -- durability without fsync ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["new", "append", "compact", "merge"])
def test_zip_new_archive_reaches_the_disk_before_it_is_renamed(tmp_path, monkeypatch, how):
    """With fsync off too: a rename over the archive of data still in the page cache can
    leave an empty archive after a power loss (XFS, ext4 without auto_da_alloc)."""
    path = tmp_path / "a.zip"
    if how != "new":
        with ZipStore(path, "w") as s:
            s.set("old", b"o" * 1000)
    events: list[tuple[str, int]] = []
    real_sync = {n: getattr(os, n) for n in ("fsync", "fdatasync") if hasattr(os, n)}
    real_replace = os.replace

    def spy(name):
        def sync(fd):
            events.append(("synced", os.fstat(fd).st_ino))
            return real_sync[name](fd)
        return sync

    def replace(src, dst, **kw):
        events.append(("renamed", os.stat(src).st_ino))
        return real_replace(src, dst, **kw)

    for name in real_sync:
        monkeypatch.setattr(os, name, spy(name))
    monkeypatch.setattr(os, "replace", replace)
    with exzarr.config.set(fsync=False):
        s = ZipStore(path, "a")
        if how == "merge":
            with ZipStore(path, "a") as other:
                other.set("other", b"x")
                s.set("mine", b"y")
        else:
            s.set("k", b"v" * 1000)
        if how == "compact":
            s.compact()
        s.close()
    renamed = [ino for what, ino in events if what == "renamed"]
    assert renamed, events
    for i, (what, ino) in enumerate(events):
        if what == "renamed":
            assert ("synced", ino) in events[:i], f"renamed without a sync first: {events}"


# -- not a regular file at the path ---------------------------------------------------------------
_SPECIAL = textwrap.dedent("""
    import os, socket, sys
    from exzarr.storage import ZipStore
    from exzarr.storage.zip import NotAZipArchiveError

    path, kind, mode, when = sys.argv[1:5]

    def make():
        if kind == "fifo":
            os.mkfifo(path)
        else:
            socket.socket(socket.AF_UNIX).bind(path)

    if when == "before":
        make()
    try:
        s = ZipStore(path, mode)
        if when == "after":  # the archive's path became one after the store was made
            if mode != "r":
                s.set("k", b"v")
            make()
        s.get("k")
        if mode != "r":
            s.set("k", b"v")
            s.flush()
        print("no error")
    except NotAZipArchiveError as exc:
        print("refused", kind in str(exc).lower() or "socket" in str(exc).lower(), path in str(exc))
    print("still there", os.path.exists(path) and not os.path.isfile(path))
""")


@pytest.mark.parametrize("mode", ["r", "a", "w"])
@pytest.mark.parametrize("kind,when", [("fifo", "before"), ("fifo", "after"), ("socket", "before")])
def test_zip_fifo_or_socket_at_the_path_is_refused_without_blocking(tmp_path, mode, kind, when):
    path = tmp_path / "a.zip"
    try:
        r = subprocess.run([sys.executable, "-c", _SPECIAL, str(path), kind, mode, when],
                           capture_output=True, text=True, env=_env(), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ZipStore({kind!r} at the path, mode={mode!r}) blocked")
    assert r.stdout.split("\n")[:2] == ["refused True True", "still there True"], r.stdout + r.stderr
