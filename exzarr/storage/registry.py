"""Storage backend registry: names to store factories, plus entry points."""

from __future__ import annotations

from typing import Any, Callable

from exzarr._plugins import EntryPointRegistry
from exzarr.errors import InvalidArgumentError
from exzarr.storage.base import Store

ENTRY_POINT_GROUP = "exzarr.storage"

_backends = EntryPointRegistry(ENTRY_POINT_GROUP, "storage")


def register_backend(name: str, factory: Callable[..., Store]) -> None:
    """Make ``storage=name`` build stores with ``factory(path=..., read_only=..., **options)``."""
    _backends.register(name, factory)


def registered_backends() -> list[str]:
    return sorted(_backends.all())


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL with a protocol (``s3://``, ``memory://``, ``file://``...)."""
    return isinstance(path, str) and "://" in path


def open_store(storage: Any, path: Any = None, *, read_only: bool = False,
               storage_options: dict[str, Any] | None = None) -> Store:
    """A Store for ``storage`` (a backend name or a Store) at ``path``.

    A ``path`` that is a URL selects the fsspec backend whatever ``storage`` names,
    unless ``storage`` names another registered backend explicitly.
    """
    if isinstance(storage, Store):
        return storage
    name = str(storage).lstrip(":")
    if is_url(path) and name in ("filesystem", "directory", "memory"):
        local = _local_path(path)
        if local is not None and not storage_options:
            # A file:// URL is a local directory: the store that creates directories and
            # lets the core read and write chunk files itself (zarr-python: LocalStore).
            path, name = local, "filesystem"
        else:
            name = "fsspec"
    factory = _backends.lookup(name)
    if factory is None:
        raise InvalidArgumentError(
            f"unknown storage backend {name!r}; registered: {', '.join(registered_backends())}"
        )
    return factory(path=path, read_only=read_only, **(storage_options or {}))


def _local_path(url: str) -> str | None:
    """The local path of a ``file://`` URL (None for other URLs)."""
    from urllib.parse import urlparse

    parts = urlparse(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return parts.path  # not percent-decoded: the directory fsspec and zarr-python use


def _memory(path: Any = None, read_only: bool = False, **options: Any) -> Store:
    from exzarr.storage.memory import MemoryStore

    return MemoryStore(read_only=read_only, **options)


def _filesystem(path: Any = None, read_only: bool = False, **options: Any) -> Store:
    from exzarr.storage.directory import DirectoryStore

    if path is None:
        raise InvalidArgumentError("storage='filesystem' needs path=...: the directory to use")
    return DirectoryStore(path, read_only=read_only, **options)


def _zip(path: Any = None, read_only: bool = False, **options: Any) -> Store:
    from exzarr.storage.zip import open_zip_store

    return open_zip_store(path, read_only=read_only, **options)


def _sqlite(path: Any = None, read_only: bool = False, **options: Any) -> Store:
    from exzarr.storage.sqlite import open_sqlite_store

    return open_sqlite_store(path, read_only=read_only, **options)


def _fsspec(path: Any = None, read_only: bool = False, **options: Any) -> Store:
    from exzarr.storage.fsspec import open_fsspec_store

    return open_fsspec_store(path, read_only=read_only, **options)


register_backend("memory", _memory)
register_backend("zip", _zip)
register_backend("sqlite", _sqlite)
register_backend("fsspec", _fsspec)
register_backend("filesystem", _filesystem)
register_backend("directory", _filesystem)
