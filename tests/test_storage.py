"""The store contract on every backend, plus backend-specific behaviour."""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
import zipfile

import numpy as np
import pytest

import exzarr
from exzarr.storage import DirectoryStore, MemoryStore, SQLiteStore, ZipStore, open_store, register_backend
from exzarr.storage.fsspec import FsspecStore
from tests.s3server import MotoServer
from tests.store_contract import StoreContract


@pytest.fixture(scope="session")
def s3():
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return MemoryStore()

    @pytest.fixture
    def reopen(self):
        return lambda s, ro: MemoryStore(s._data, read_only=ro)


class TestDirectoryStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        return DirectoryStore(tmp_path / "root")

    @pytest.fixture
    def reopen(self):
        return lambda s, ro: DirectoryStore(s.root, read_only=ro)

    def test_keys_cannot_escape_the_root(self, store):
        for bad in ("../x", "a/../../x", "/abs", "a//b"):
            with pytest.raises(KeyError):
                store.set(bad, b"")

    def test_core_paths_of_keys(self, store):
        # The paths the core writes chunk files to: plain keys joined under the root (the
        # folders of nested ones made), each with a temporary name beside it; a list
        # with one key that is not plain goes key by key, and a bad key fails.
        root = store.root
        keys = ["0.0", "0.1", "a/b/3", "a/c"]
        paths, tmps = store.write_paths(keys)
        assert paths == [os.fsencode(os.path.join(root, *k.split("/"))) for k in keys]
        assert paths == store.file_paths(keys)
        for key, path, tmp in zip(keys, paths, tmps):
            assert os.path.dirname(tmp) == os.path.dirname(path)
            assert os.path.basename(tmp).startswith(b".tmp-") and tmp.endswith(b".partial")
        assert len(set(tmps)) == len(keys)
        assert os.path.isdir(os.path.join(root, "a", "b")) and os.path.isdir(os.path.join(root, "a"))
        assert store.file_paths([".zarray", "x/.zattrs"]) == [
            os.fsencode(os.path.join(root, ".zarray")), os.fsencode(os.path.join(root, "x", ".zattrs"))]
        assert store.file_paths([]) == [] and store.write_paths([]) == ([], [])
        for bad in ("../x", "a/../../x", "/abs", "a//b", "a/", "", "."):
            with pytest.raises(KeyError):
                store.write_paths(["0.0", bad])
            with pytest.raises(KeyError):
                store.file_paths([bad, "0.0"])

    def test_concurrent_writers_never_leave_torn_files(self, store):
        payloads = [bytes([i]) * 200_000 for i in range(8)]

        def write(p):
            for _ in range(5):
                store.set("same", p)

        threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get("same") in payloads
        assert os.listdir(store.root) == ["same"]


class TestZipStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        s = ZipStore(tmp_path / "a.zip")
        yield s
        s.close()

    @pytest.fixture
    def reopen(self):
        def again(s, ro):
            s.flush()
            return ZipStore(s.path, read_only=ro)
        return again

    def test_rewrites_leave_no_duplicate_members(self, store):
        store.set("k", b"1")
        store.set("k", b"22")
        store.set("gone", b"x")
        store.delete("gone")
        assert store.get("k") == b"22" and store.get("gone") is None
        store.close()
        with zipfile.ZipFile(store.path) as zf:
            assert zf.namelist() == ["k"]
            assert zf.read("k") == b"22"


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        s = SQLiteStore(tmp_path / "a.db")
        yield s
        s.close()

    @pytest.fixture
    def reopen(self):
        return lambda s, ro: SQLiteStore(s.path, read_only=ro)

    def test_one_table_of_blobs(self, store):
        store.set("a/0.0", b"\x00\x01")
        conn = sqlite3.connect(store.path)
        assert conn.execute("SELECT key, value FROM zarr").fetchall() == [("a/0.0", b"\x00\x01")]

    def test_readers_beside_a_writer(self, store):
        store.set_many({f"k{i}": bytes([i]) * 1000 for i in range(50)})
        errors = []

        def read():
            reader = SQLiteStore(store.path, read_only=True)
            try:
                for _ in range(20):
                    got = reader.get_many([f"k{i}" for i in range(50)])
                    assert all(g is not None and len(g) == 1000 for g in got)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                reader.close()

        readers = [threading.Thread(target=read) for _ in range(4)]
        for t in readers:
            t.start()
        for i in range(50):
            store.set(f"k{i}", bytes([255 - i]) * 1000)
        for t in readers:
            t.join()
        assert not errors


class TestFsspecMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return FsspecStore(f"memory://contract-{uuid.uuid4().hex}")

    @pytest.fixture
    def reopen(self):
        return lambda s, ro: FsspecStore(s.url, read_only=ro)


class TestS3Store(StoreContract):
    @pytest.fixture
    def store(self, s3):
        bucket = f"b{uuid.uuid4().hex[:12]}"
        s3.make_bucket(bucket)
        return FsspecStore(f"s3://{bucket}/root", s3.storage_options)

    @pytest.fixture
    def reopen(self, s3):
        return lambda s, ro: FsspecStore(s.url, s3.storage_options, read_only=ro)


def test_s3_both_ways_with_zarr_python(s3):
    import zarr

    s3.make_bucket("interop")
    opts = s3.storage_options
    data = np.arange(600, dtype="<f8").reshape(20, 30)
    a = exzarr.create(shape=(20, 30), chunks=(7, 8), dtype="<f8", path="s3://interop/ex",
                      storage_options=opts, compressor="blosc")
    a[...] = data
    z = zarr.open_array("s3://interop/ex", mode="r", storage_options=opts)
    np.testing.assert_array_equal(z[...], data)
    zw = zarr.create_array("s3://interop/zp", shape=(20, 30), chunks=(7, 8), dtype="<i4",
                           zarr_format=2, storage_options=opts)
    zw[...] = data.astype("<i4")
    np.testing.assert_array_equal(
        exzarr.open("s3://interop/zp", mode="r", storage_options=opts)[...], data.astype("<i4"))


def test_save_and_load_take_storage_options(s3):
    s3.make_bucket("saves")
    a = exzarr.create(shape=(5,), chunks=(2,), dtype="i2")
    a[...] = [1, 2, 3, 4, 5]
    exzarr.save(a, path="s3://saves/a", storage_options=s3.storage_options)
    np.testing.assert_array_equal(
        exzarr.load("s3://saves/a", storage_options=s3.storage_options), [1, 2, 3, 4, 5])
    exzarr.save(np.eye(3), path="s3://saves/np", storage_options=s3.storage_options)
    np.testing.assert_array_equal(
        exzarr.load("s3://saves/np", storage_options=s3.storage_options), np.eye(3))


def test_registry_resolves_names_urls_and_custom_backends(tmp_path):
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store("filesystem", tmp_path), DirectoryStore)
    assert isinstance(open_store("zip", tmp_path / "x.zip"), ZipStore)
    assert isinstance(open_store("sqlite", tmp_path / "x.db"), SQLiteStore)
    assert isinstance(open_store("filesystem", "memory://abc"), FsspecStore)
    register_backend("test-dict", lambda path=None, read_only=False: MemoryStore(read_only=read_only))
    assert isinstance(open_store("test-dict"), MemoryStore)
    with pytest.raises(exzarr.ExZarrError, match="unknown storage backend"):
        open_store("nonesuch")


@pytest.mark.parametrize("storage, name", [("zip", "a.zip"), ("sqlite", "a.db"),
                                           ("filesystem", "dir")])
def test_arrays_on_each_backend(tmp_path, storage, name):
    path = str(tmp_path / name)
    data = np.random.default_rng(3).integers(0, 1000, (33, 17)).astype("<u2")
    a = exzarr.create(shape=data.shape, chunks=(8, 5), dtype="<u2", storage=storage, path=path)
    a[...] = data
    a[3:9, 2] = 7
    data[3:9, 2] = 7
    a.store.close()
    np.testing.assert_array_equal(exzarr.load(path=path, storage=storage), data)


def test_reopening_sees_members_another_client_added(s3):
    """fsspec hands back one cached filesystem per options, with its listing cache: an
    opened store must not list what that cache remembered from before."""
    import json

    import s3fs

    s3.make_bucket("listings")
    url = "s3://listings/g"
    g = exzarr.open_group(url, mode="w", storage_options=s3.storage_options)
    g.zeros("a", shape=(2,), chunks=(2,))
    assert list(g) == ["a"]
    other = s3fs.S3FileSystem(skip_instance_cache=True, **s3.storage_options)
    meta = exzarr.zeros((3,), chunks=(3,)).meta.to_json()
    other.pipe_file("listings/g/b/.zarray", json.dumps(meta).encode())
    again = exzarr.open_group(url, mode="r", consolidated=False,
                              storage_options=s3.storage_options)
    assert list(again) == ["a", "b"]
