"""Regression tests for bugs found reviewing group.py and the zip, sqlite and fsspec stores.

Each test names the faulty function; they fail until the bug is fixed.
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
import zipfile

import numpy as np
import pytest

import exzarr
from exzarr import errors
from exzarr.storage import MemoryStore, SQLiteStore, ZipStore
from exzarr.storage.fsspec import FsspecStore


# -- SQLiteStore ----------------------------------------------------------------------------
def test_sqlite_memory_database_is_one_database_for_every_thread():
    """SQLiteStore._conn: each thread connects to ":memory:" anew, i.e. to its own empty
    database without the table ("no such table: zarr")."""
    store = SQLiteStore(":memory:")
    store.set("k", b"v")
    got = []

    def read():
        try:
            got.append(store.get("k"))
        except Exception as exc:  # noqa: BLE001 - compared below
            got.append(exc)

    t = threading.Thread(target=read)
    t.start()
    t.join()
    assert got == [b"v"]


def test_sqlite_memory_database_holds_a_threaded_array():
    exzarr.config.set(threads=4)
    a = exzarr.create(shape=(400,), chunks=(4,), dtype="i4", storage=SQLiteStore(":memory:"))
    for i in range(20):  # many rounds: a fix that shares one connection unlocked races
        a[...] = np.arange(400) + i
        np.testing.assert_array_equal(a[...], np.arange(400) + i)


@pytest.mark.parametrize("dirname", ["run#1", "what?", "50%25"])
def test_sqlite_read_only_path_with_uri_characters(tmp_path, dirname):
    """SQLiteStore._conn builds f"file:{path}?mode=ro" without quoting the path: '#'
    starts a fragment, '?' a query, '%xx' is decoded, so another file is opened (and
    created read-write, since '?mode=ro' was cut off)."""
    folder = tmp_path / dirname
    folder.mkdir()
    db = folder / "x.db"
    w = SQLiteStore(db)
    w.set("k", b"v")
    w.close()
    before = sorted(os.listdir(tmp_path))
    r = SQLiteStore(db, read_only=True)
    try:
        assert r.get("k") == b"v"
    finally:
        r.close()
    assert sorted(os.listdir(tmp_path)) == before  # no stray database beside it


@pytest.mark.parametrize("mode", ["r", "r+"])
def test_sqlite_open_group_on_a_missing_database(tmp_path, mode):
    """open_group + SQLiteStore: mode 'r' leaks sqlite3.OperationalError ("unable to open
    database file") instead of PathNotFoundError; mode 'r+' creates an empty database
    (SQLiteStore.__init__ creates file and table eagerly) and then reports
    MetadataNotFoundError "exists but has no .zgroup"."""
    p = tmp_path / "missing.db"
    with pytest.raises(errors.PathNotFoundError):
        exzarr.open_group(str(p), mode=mode, storage="sqlite")
    assert not p.exists()


def test_sqlite_open_array_r_plus_on_a_missing_database(tmp_path):
    p = tmp_path / "missing.db"
    with pytest.raises(errors.PathNotFoundError):
        exzarr.open(str(p), mode="r+", storage="sqlite")
    assert not p.exists()


# -- ZipStore -------------------------------------------------------------------------------
def test_zip_failed_compaction_keeps_the_store_and_archive_usable(tmp_path, monkeypatch):
    """ZipStore.compact passes the live archive's ZipInfo objects to out.writestr(), which
    rewrites their header_offset for the new file. If compaction fails halfway (disk
    full), the open archive's directory points at wrong offsets: every later read and the
    retried close() fail with BadZipFile, and the archive never gets its central
    directory back -- all data lost. The partial temp file is also left behind."""
    p = tmp_path / "a.zip"
    s = ZipStore(p)
    s.set("a", b"A" * 100)
    s.set("b", b"B1")
    s.set("c", b"C")
    s.set("b", b"B2")
    s.delete("a")

    real = zipfile.ZipFile.writestr
    calls = []

    def disk_full_on_second_member(self, zinfo, data, *args, **kwargs):
        if str(self.filename).endswith(".partial"):
            calls.append(1)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, zinfo, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", disk_full_on_second_member)
    with pytest.raises(OSError):
        s.close()
    monkeypatch.setattr(zipfile.ZipFile, "writestr", real)
    assert s.get("b") == b"B2" and s.get("c") == b"C" and s.get("a") is None
    s.close()  # space is back: the retry succeeds
    with zipfile.ZipFile(p) as zf:
        assert sorted(zf.namelist()) == ["b", "c"]
        assert zf.read("b") == b"B2"
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]  # no leftover .compact.partial


def _zip_array(path, **kw):
    a = exzarr.create(shape=(64, 64), chunks=(16, 16), dtype="i4", compressor="zstd",
                      storage="zip", path=str(path), **kw)
    data = np.arange(64 * 64, dtype="i4").reshape(64, 64)
    a[...] = data
    a.store.close()
    return data


def test_zip_damaged_member_names_its_key(tmp_path):
    # Members are read with pread at their offset, outside zipfile: the CRC-32 is still
    # checked, and a damaged chunk names its key.
    p = tmp_path / "a.zip"
    data = _zip_array(p)
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo("1.2")
    raw = bytearray(p.read_bytes())
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[offset + info.file_size // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    b = exzarr.open(str(p), mode="r", storage="zip")
    with pytest.raises(errors.CorruptChunkError) as exc:
        b[...]
    assert exc.value.key == "1.2" and "CRC-32" in str(exc.value)
    np.testing.assert_array_equal(b[:16, :], data[:16, :])  # the other chunks still read


def test_zip_deflated_members_written_by_others_still_read(tmp_path):
    # An archive whose members are deflated (zip -r of a directory store, say) goes
    # through zipfile for those members.
    src = tmp_path / "dir"
    data = np.linspace(0, 1, 4096).reshape(64, 64)
    a = exzarr.create(shape=data.shape, chunks=(32, 32), dtype=data.dtype,
                      storage="filesystem", path=str(src))
    a[...] = data
    p = tmp_path / "deflated.zip"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(os.listdir(src)):
            zf.write(src / name, name)
    np.testing.assert_array_equal(exzarr.open(str(p), mode="r", storage="zip")[...], data)


def test_zip_reads_what_it_wrote_before_closing(tmp_path):
    # Members written in this session are still in zipfile's buffer until flushed: the
    # pread path must see them, and see a rewritten key's newest bytes.
    s = ZipStore(tmp_path / "a.zip")
    s.set("k", b"one")
    assert s.get("k") == b"one"
    s.set("k", b"two, longer")
    s.set("j", b"")
    assert s.get_many(["k", "j", "missing"]) == [b"two, longer", b"", None]
    s.close()
    s2 = ZipStore(tmp_path / "a.zip", mode="r")
    assert s2.get_many(["k", "j"]) == [b"two, longer", b""]


# -- FsspecStore ----------------------------------------------------------------------------
def test_fsspec_get_many_does_not_glob_keys():
    """FsspecStore.get_many: fs.cat(list) runs expand_path, which treats '[', '*', '?'
    as glob patterns: a key such as 'v[0]/0' matches nothing, so it reads as missing
    (None -> fill value) or, when every key of a batch has brackets, cat raises
    FileNotFoundError."""
    store = FsspecStore(f"memory://glob-{uuid.uuid4().hex}")
    store.set("x[1]", b"A")
    store.set("y", b"B")
    store.set("x1", b"C")  # what the pattern x[1] does match
    assert store.get_many(["x[1]", "y"]) == [b"A", b"B"]


def test_fsspec_array_with_brackets_in_its_name():
    store = FsspecStore(f"memory://glob-{uuid.uuid4().hex}")
    g = exzarr.open_group(storage=store, mode="w")
    a = g.create_array("temp[K]", shape=(4,), chunks=(2,), dtype="i4", fill_value=-1)
    a[...] = [1, 2, 3, 4]
    np.testing.assert_array_equal(g["temp[K]"][...], [1, 2, 3, 4])


def test_fsspec_contains_does_not_hide_real_errors():
    """FsspecStore.contains uses fs.isfile, which returns False on *any* exception
    (fsspec's isfile has a bare except): a permission or network error looks like a
    missing key, while get() raises it. open() then says "not a Zarr array" and
    create(overwrite=False) happily overwrites existing metadata."""
    from fsspec.implementations.memory import MemoryFileSystem

    class ReadDenied(MemoryFileSystem):
        """Writes pass; reading anything under 'secret' is refused (like an S3 policy)."""

        def info(self, path, **kwargs):
            if "secret" in path:
                raise PermissionError(f"access denied: {path}")
            return super().info(path, **kwargs)

        def cat_file(self, path, *args, **kwargs):
            if "secret" in path:
                raise PermissionError(f"access denied: {path}")
            return super().cat_file(path, *args, **kwargs)

    store = FsspecStore(f"memory://denied-{uuid.uuid4().hex}")
    exzarr.create(shape=(3,), chunks=(3,), dtype="i1", storage=store, path="secret")
    store.fs = ReadDenied()
    with pytest.raises(PermissionError):
        store.get("secret/.zarray")
    with pytest.raises(PermissionError):
        store.contains("secret/.zarray")
    with pytest.raises(PermissionError):
        exzarr.open(storage=store, path="secret", mode="r")


# -- group.py -------------------------------------------------------------------------------
def test_consolidated_store_batches_see_the_consolidated_view():
    """ConsolidatedStore.set_many writes metadata keys to the base store only (set()
    also updates the in-memory view), so a following get() returns the old document;
    get_many likewise bypasses the view."""
    base = MemoryStore()
    g = exzarr.open_group(storage=base, mode="w")
    g.create_array("a", shape=(2,), chunks=(2,), attrs={"v": 1})
    g.consolidate()
    c = exzarr.open_group(storage=base, mode="a", consolidated=True)
    c.store.set_many({"a/.zattrs": b'{"v": 2}'})
    assert c.store.get("a/.zattrs") == b'{"v": 2}'
    base.set("a/.zattrs", b'{"v": 3}')  # behind the view's back: the view keeps "v": 2
    assert c.store.get_many(["a/.zattrs"]) == [c.store.get("a/.zattrs")]


def test_open_group_w_consolidated_does_not_wipe_then_fail(tmp_path):
    """open_group(mode='w', consolidated=True) deletes everything at the path, then
    raises MetadataNotFoundError "has no .zmetadata" (it just deleted it). Either the
    call must succeed (a new, empty group) or fail before deleting anything."""
    p = str(tmp_path / "g")
    g = exzarr.open_group(p, mode="w")
    g.create_array("precious", shape=(3,), chunks=(3,), dtype="i2")[...] = [1, 2, 3]
    g.consolidate()
    try:
        fresh = exzarr.open_group(p, mode="w", consolidated=True)
    except exzarr.ExZarrError:
        np.testing.assert_array_equal(exzarr.open(p + "/precious", mode="r")[...], [1, 2, 3])
    else:
        assert list(fresh) == []


def test_save_into_a_store_path_keeps_the_rest_of_the_store():
    """api.save(array, path=..., storage=<Store>): open_store() returns the Store as is, so
    ``path`` is ignored, every key of the store is deleted and the array lands at the
    root (a whole hierarchy wiped)."""
    store = MemoryStore()
    g = exzarr.open_group(storage=store, mode="w")
    g.create_array("keep", shape=(2,), chunks=(2,), dtype="u1")[...] = [7, 8]
    a = exzarr.create(shape=(3,), chunks=(3,), dtype="i4")
    a[...] = [1, 2, 3]
    exzarr.save(a, path="copy", storage=store)
    np.testing.assert_array_equal(exzarr.open(storage=store, path="copy")[...], [1, 2, 3])
    np.testing.assert_array_equal(exzarr.open(storage=store, path="keep")[...], [7, 8])
    assert sorted(exzarr.open_group(storage=store, mode="r")) == ["copy", "keep"]
