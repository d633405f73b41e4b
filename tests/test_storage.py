"""The store contract on each built-in backend, plus backend-specific behaviour."""

from __future__ import annotations

import os
import threading

import pytest

from exzarr.storage import DirectoryStore, MemoryStore, open_store, register_backend
from tests.store_contract import StoreContract


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


def test_registry_resolves_names_and_custom_backends(tmp_path):
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store("filesystem", tmp_path), DirectoryStore)
    register_backend("test-dict", lambda path=None, read_only=False: MemoryStore(read_only=read_only))
    assert isinstance(open_store("test-dict"), MemoryStore)
    with pytest.raises(Exception, match="unknown storage backend"):
        open_store("nonesuch")
