"""In-memory store: a dict of bytes; fast and not persistent."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from exzarr.storage.base import Store, check_key, check_keys, is_valid_key


class MemoryStore(Store):
    """Keys and values in a Python dict.

    Parameters
    ----------
    data : dict, optional
        An existing mapping to use as storage (shared, not copied).
    """

    backend = "memory"

    def __init__(self, data: dict[str, bytes] | None = None, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self._data: dict[str, bytes] = {} if data is None else data
        from exzarr.storage._locks import LocalLocks

        self._locks = LocalLocks()

    def get(self, key: str) -> bytes | None:
        return self._data.get(check_key(key))

    def get_many(self, keys: Any) -> list[bytes | None]:
        data = self._data
        return [data.get(k) for k in check_keys(list(keys))]

    def set(self, key: str, value: bytes) -> None:
        self._check_writable()
        self._data[check_key(key)] = bytes(value)

    def delete(self, key: str) -> None:
        self._check_writable()
        self._data.pop(check_key(key), None)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        # A shared dict may hold keys no store may (a leading "/", ".."): not listed.
        return iter([k for k in self._data if k.startswith(prefix) and is_valid_key(k)])

    def contains(self, key: str) -> bool:
        return check_key(key) in self._data

    def process_lock(self, key: str, *,
                     shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """A lock on ``key`` of this store, exclusive or ``shared`` (a readers-writer
        lock, as :meth:`Store.process_lock` describes): no other process sees its data,
        so a lock within this one is a lock across all (``lock=True`` works here)."""
        self._check_writable()
        return self._locks.hold(check_key(key), shared=shared)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_locks"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from exzarr.storage._locks import LocalLocks

        self.__dict__.update(state, _locks=LocalLocks())

    def __repr__(self) -> str:
        return f"<MemoryStore {len(self._data)} keys>"
