"""A plugin package for exzarr's tests: a pure-Python codec and a dbm storage backend."""

from __future__ import annotations

import dbm.dumb
import os
import threading
from typing import Any

from exzarr.codecs import Codec
from exzarr.storage import Store


class XorCodec(Codec):
    """XOR every byte with ``key``: a byte-level codec written in pure Python."""

    codec_id = "xor-demo"
    is_compressor = True

    def __init__(self, key: int = 0x5A) -> None:
        if not 0 <= int(key) <= 255:
            raise ValueError("key must be a byte value")
        self.key = int(key)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "key": self.key}

    def encode(self, buf: Any) -> bytes:
        data = bytes(memoryview(buf).cast("B"))
        return bytes(b ^ self.key for b in data)

    def decode(self, buf: Any, out: Any = None) -> Any:
        data = self.encode(buf)
        if out is not None:
            memoryview(out).cast("B")[:] = data
            return out
        return data


class DbmStore(Store):
    """Keys and values in a ``dbm.dumb`` database file.

    exzarr calls a store from its worker threads at once, and dbm.dumb is not
    thread-safe (two writers append at the same offset): every call holds a lock.
    """

    backend = "dbm-demo"

    def __init__(self, path: str, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.path = os.fspath(path)
        self._db = dbm.dumb.open(self.path, "r" if read_only else "c")
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            try:
                return self._db[key.encode()]
            except KeyError:
                return None

    def set(self, key: str, value: bytes) -> None:
        self._check_writable()
        with self._lock:
            self._db[key.encode()] = bytes(value)

    def delete(self, key: str) -> None:
        self._check_writable()
        with self._lock:
            self._db.pop(key.encode(), None)

    def list_prefix(self, prefix: str):
        with self._lock:
            keys = [k.decode() for k in self._db.keys()]
        return iter(sorted(k for k in keys if k.startswith(prefix)))

    def exists(self) -> bool:
        return os.path.exists(self.path + ".dat")

    def close(self) -> None:
        self._db.close()


def open_dbm_store(path: Any = None, read_only: bool = False, **options: Any) -> DbmStore:
    """The factory exzarr calls for ``storage="dbm-demo"``."""
    return DbmStore(path, read_only=read_only)
