"""Storage backends: the Store interface, built-in stores and the backend registry."""

from exzarr.storage.base import Store
from exzarr.storage.directory import DirectoryStore
from exzarr.storage.memory import MemoryStore
from exzarr.storage.sqlite import SQLiteStore
from exzarr.storage.zip import ZipStore
from exzarr.storage.registry import is_url, open_store, register_backend, registered_backends

__all__ = [
    "DirectoryStore",
    "MemoryStore",
    "SQLiteStore",
    "ZipStore",
    "Store",
    "open_store",
    "register_backend",
    "registered_backends",
]
