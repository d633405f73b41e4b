"""Arrays travel to other processes (pickle), file:// and memory:// URLs behave as
directories and roots, and writes survive chunk directories removed behind them."""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest

import exzarr


def _stores(tmp_path):
    yield dict(storage="filesystem", path=str(tmp_path / "d"))
    yield dict(storage="memory")
    yield dict(storage="zip", path=str(tmp_path / "z.zip"))
    yield dict(storage="sqlite", path=str(tmp_path / "s.db"))
    yield dict(path=f"memory://pickle-{uuid.uuid4().hex}")


def test_arrays_pickle_and_copy_on_every_store(tmp_path):
    for where in _stores(tmp_path):
        a = exzarr.create(shape=(7, 5), chunks=(3, 2), dtype="<i4", attrs={"k": 1}, **where)
        a[...] = np.arange(35).reshape(7, 5)
        for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
            np.testing.assert_array_equal(b[...], a[...], err_msg=repr(where))
            assert b.attrs["k"] == 1 and b.chunks == a.chunks


def test_a_pickled_array_reads_in_another_process(tmp_path):
    for kind in ("filesystem", "zip", "sqlite"):
        path = str(tmp_path / f"a-{kind}")
        a = exzarr.create(shape=(10,), chunks=(4,), dtype="f8", storage=kind, path=path,
                          cache_bytes=1 << 16)
        a[...] = np.linspace(0, 1, 10)
        blob = tmp_path / f"{kind}.pkl"
        blob.write_bytes(pickle.dumps(a))
        out = subprocess.run(
            [sys.executable, "-c", "import pickle, sys; a = pickle.load(open(sys.argv[1], 'rb'));"
             " print(a.cache is not None, a[...].sum())", str(blob)],
            capture_output=True, text=True, timeout=60, check=True).stdout.split()
        assert out[0] == "True" and float(out[1]) == pytest.approx(5.0)


def test_in_memory_sqlite_stores_refuse_to_pickle():
    a = exzarr.create(shape=(2,), chunks=(2,), dtype="u1", storage="sqlite", path=":memory:")
    with pytest.raises(TypeError, match="in-memory"):
        pickle.dumps(a)


def test_file_urls_create_like_directories(tmp_path):
    url = (tmp_path / "new" / "arr").as_uri()
    a = exzarr.create(shape=(4,), chunks=(2,), dtype="i4", path=url)
    a[...] = [1, 2, 3, 4]
    assert type(a.store).__name__ == "DirectoryStore"
    np.testing.assert_array_equal(exzarr.load(str(tmp_path / "new" / "arr")), [1, 2, 3, 4])
    g = exzarr.open_group((tmp_path / "g").as_uri(), mode="a")
    g.create_array("q", shape=(2,), chunks=(2,), dtype="u1")[...] = 7
    assert list(exzarr.open_group(str(tmp_path / "g"), mode="r")) == ["q"]


def test_memory_url_with_no_root_lists_its_keys():
    import fsspec

    fs = fsspec.filesystem("memory")
    saved = dict(fs.store)
    fs.store.clear()
    try:
        a = exzarr.create(shape=(6,), chunks=(2,), dtype="i4", path="memory://")
        a[...] = 7
        assert a.nchunks_initialized == 3
        assert sorted(a.store.list_prefix("")) == [".zarray", "0", "1", "2"]
        a.resize(2)
        a.resize(6)
        np.testing.assert_array_equal(a[...], [7, 7, 0, 0, 0, 0])
    finally:
        fs.store.clear()
        fs.store.update(saved)


def test_writes_make_chunk_directories_removed_behind_them(tmp_path):
    p = tmp_path / "a"
    a = exzarr.create(shape=(4, 4), chunks=(2, 2), dtype="i4", dimension_separator="/",
                      storage="filesystem", path=str(p))
    a[...] = 1
    shutil.rmtree(p / "1")
    a[...] = 2
    np.testing.assert_array_equal(a[...], 2)
    shutil.rmtree(p / "0")
    a[0:1, :] = 4  # partly covered chunks: the rest reads as fill
    np.testing.assert_array_equal(a[...], [[4] * 4, [0] * 4, [2] * 4, [2] * 4])


def test_a_zip_store_never_closed_is_finished_at_exit(tmp_path):
    import zipfile

    p = tmp_path / "open.zip"
    subprocess.run([sys.executable, "-c", (
        "import exzarr\n"
        f"a = exzarr.create(shape=(4,), chunks=(2,), dtype='i4', storage='zip', path={str(p)!r})\n"
        "a[:] = 1\n"
        "a[:2] = 2\n")], check=True, timeout=60)
    assert sorted(zipfile.ZipFile(p).namelist()) == [".zarray", "0", "1"]  # no stale "0"
    np.testing.assert_array_equal(exzarr.open(str(p), storage="zip", mode="r")[...], [2, 2, 1, 1])


def test_a_closed_in_memory_sqlite_store_says_its_data_is_gone():
    from exzarr.storage.sqlite import SQLiteStore

    s = SQLiteStore(":memory:")
    s.set("k", b"v")
    s.close()
    with pytest.raises(ValueError, match="closed and its data is gone"):
        s.get("k")


_FORK_SCRIPT = """
import os, sys, numpy as np, exzarr
from exzarr.storage.zip import ZipStore
st = ZipStore(sys.argv[1], "w")
a = exzarr.create(shape=(100,), chunks=(10,), dtype="i4", storage=st)
a[:] = np.arange(100)
a[:10] = 7  # a stale member: the child's exit would compact the archive
if sys.argv[2] == "busy":
    a[20:30] = 5
pid = os.fork()
if pid == 0:
    sys.exit(0)  # a normal exit: atexit handlers and __del__ run in the child
os.waitpid(pid, 0)
print(a[:12].tolist())
a[50:60] = 1
st.close()
"""


def test_a_forked_child_leaves_the_parents_zip_archive_alone(tmp_path):
    import zipfile

    for case in ("stale", "busy"):
        p = str(tmp_path / f"{case}.zip")
        out = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, p, case], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        assert out.strip() == str([7] * 10 + [10, 11])
        with zipfile.ZipFile(p) as z:
            assert z.testzip() is None
        expected = np.arange(100)
        expected[:10], expected[50:60] = 7, 1
        if case == "busy":
            expected[20:30] = 5
        np.testing.assert_array_equal(exzarr.open(p, storage="zip", mode="r")[...], expected)


def test_a_pickled_sqlite_store_keeps_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage="sqlite", path="rel.db")
    a[...] = 7
    blob = pickle.dumps(a)
    monkeypatch.chdir("/")
    np.testing.assert_array_equal(pickle.loads(blob)[...], 7)


def test_file_urls_are_not_percent_decoded(tmp_path):
    url = f"file://{tmp_path}/p%20q.zarr"
    exzarr.create(shape=(2,), chunks=(2,), dtype="u1", path=url)[...] = 3
    assert sorted(os.listdir(tmp_path)) == ["p%20q.zarr"]  # as fsspec and zarr-python name it
