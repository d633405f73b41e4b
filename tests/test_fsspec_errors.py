"""fsspec stores report what went wrong with the URL and what to do, and open arrays
that servers list oddly. The failing filesystems are memory filesystems with one
behaviour of a remote one swapped in (s3fs's Forbidden, a missing bucket, an HTTP host
answering 404 for folders)."""

from __future__ import annotations

import fsspec
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import exzarr
from exzarr.errors import InvalidArgumentError, PathNotFoundError


class _FakeFS(MemoryFileSystem):
    """A memory filesystem under its own protocol (MemoryFileSystem strips only memory://),
    with files of its own."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.store = {}
        cls.pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path):
        prefix = f"{cls.protocol}://"
        if path.startswith(prefix):
            path = path[len(prefix):]
        return "/" + path.strip("/") if path.strip("/") else ""


class _DeniedFS(_FakeFS):
    protocol = "exzarr-denied"
    def cat_file(self, path, *args, **kwargs):
        raise PermissionError("Forbidden")

    def exists(self, path, **kwargs):
        raise PermissionError("Forbidden")

    def pipe_file(self, path, value, **kwargs):
        raise PermissionError("Forbidden")


class _NoBucketFS(_FakeFS):
    protocol = "exzarr-nobucket"
    def pipe_file(self, path, value, **kwargs):
        raise FileNotFoundError("The specified bucket does not exist")


class _FolderlessFS(_FakeFS):
    """Serves files but answers 404 for folders, as static HTTP hosts do."""

    protocol = "exzarr-folderless"
    def exists(self, path, **kwargs):
        return path.rstrip("/") in self.store or "/" + path.strip("/") in self.store

    def ls(self, path, detail=True, **kwargs):
        raise FileNotFoundError(path)


@pytest.fixture(autouse=True, scope="module")
def _registered():
    for cls in (_DeniedFS, _NoBucketFS, _FolderlessFS):
        fsspec.register_implementation(cls.protocol, cls, clobber=True)
    yield


def test_denied_access_says_so_with_the_url():
    with pytest.raises(PermissionError, match=r"exzarr-denied://b/arr.*credentials"):
        exzarr.open("exzarr-denied://b/arr", mode="r")
    with pytest.raises(PermissionError, match="credentials"):
        exzarr.create(shape=(2,), chunks=(2,), path="exzarr-denied://b/new")


def test_a_missing_bucket_on_write_is_path_not_found_with_the_url():
    with pytest.raises(PathNotFoundError, match=r"exzarr-nobucket://gone/a.*bucket"):
        exzarr.create(shape=(2,), chunks=(2,), path="exzarr-nobucket://gone/a")


def test_an_array_opens_where_the_folder_itself_is_not_listed():
    url = "exzarr-folderless://site/arr"
    fs = _FolderlessFS()
    src = exzarr.array(np.arange(6), chunks=(3,))
    for key in src.store.list_prefix(""):
        fs.pipe_file(f"/site/arr/{key}", src.store.get(key))
    np.testing.assert_array_equal(exzarr.open(url, mode="r")[...], np.arange(6))
    np.testing.assert_array_equal(exzarr.load(url), np.arange(6))


def test_an_unknown_protocol_is_an_invalid_argument():
    with pytest.raises(InvalidArgumentError, match="nosuchproto"):
        exzarr.open("nosuchproto://x/y", mode="r")


def test_file_urls_with_options_make_their_folders(tmp_path):
    url = f"file://{tmp_path}/deep/arr"
    a = exzarr.create(shape=(4,), chunks=(2,), dtype="i2", path=url,
                      storage_options={"skip_instance_cache": True})
    a[...] = [1, 2, 3, 4]
    np.testing.assert_array_equal(exzarr.open(str(tmp_path / "deep" / "arr"))[...], [1, 2, 3, 4])
