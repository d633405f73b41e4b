"""The contract every Store backend passes: subclass and provide a ``store`` fixture."""

from __future__ import annotations

import pytest

from exzarr.errors import ReadOnlyError


class StoreContract:
    """Shared tests; a subclass defines the fixtures ``store`` and ``reopen``.

    ``reopen(store, read_only)`` returns a new Store over the same data.
    """

    def test_get_set_delete(self, store):
        assert store.get("a") is None
        store.set("a", b"1")
        assert store.get("a") == b"1"
        store.set("a", b"22")
        assert store.get("a") == b"22"
        assert store.contains("a") and not store.contains("b")
        store.delete("a")
        assert store.get("a") is None and not store.contains("a")
        store.delete("a")  # absent: no error

    def test_nested_keys_and_listing(self, store):
        for k in ("g/.zgroup", "g/a/.zarray", "g/a/0.0", "g/a/0.1", "g/b/1/0", "top"):
            store.set(k, k.encode())
        assert sorted(store.list_prefix("g/a/")) == ["g/a/.zarray", "g/a/0.0", "g/a/0.1"]
        assert sorted(store.list_prefix("")) == sorted(
            ["g/.zgroup", "g/a/.zarray", "g/a/0.0", "g/a/0.1", "g/b/1/0", "top"])
        assert store.list_dir("g") == [".zgroup", "a", "b"]
        assert store.list_dir("") == ["g", "top"]
        assert store.getsize("g/a/0.1") == len(b"g/a/0.1")
        assert store.getsize("nope") == 0

    def test_batches(self, store):
        store.set_many({"x/0": b"a", "x/1": b"bb", "x/2": b""})
        assert store.get_many(["x/1", "x/9", "x/0", "x/2"]) == [b"bb", None, b"a", b""]
        store.delete_many(["x/0", "x/1"])
        assert store.get_many(["x/0", "x/1", "x/2"]) == [None, None, b""]

    def test_binary_values_and_large_values(self, store):
        blob = bytes(range(256)) * 4096
        store.set("blob", blob)
        assert store.get("blob") == blob
        store.set("memview", memoryview(b"abc"))
        assert store.get("memview") == b"abc"

    def test_read_only(self, store, reopen):
        store.set("k", b"v")
        ro = reopen(store, True)
        assert ro.get("k") == b"v"
        with pytest.raises(ReadOnlyError):
            ro.set("k", b"w")
        with pytest.raises(ReadOnlyError):
            ro.delete("k")
        assert ro.get("k") == b"v"

    def test_persistence(self, store, reopen):
        store.set("p/q", b"data")
        assert reopen(store, False).get("p/q") == b"data"
