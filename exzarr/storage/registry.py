"""Storage backend registry: names to store factories, plus entry points."""

from __future__ import annotations

from typing import Any, Callable

from exzarr.errors import ExZarrError
from exzarr.storage.base import Store

ENTRY_POINT_GROUP = "exzarr.storage"

_backends: dict[str, Callable[..., Store]] = {}
_entry_points_loaded = False


def register_backend(name: str, factory: Callable[..., Store]) -> None:
    """Make ``storage=name`` build stores with ``factory(path=..., read_only=..., **options)``."""
    _backends[name] = factory


def _load_entry_points(force: bool = False) -> None:
    """Read the entry points once; ``force`` looks again (a package may be new)."""
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _backends:
            try:
                _backends[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not break every lookup
                import warnings

                warnings.warn(f"exzarr storage plugin {ep.name!r} failed to load: {exc}", stacklevel=3)


def registered_backends() -> list[str]:
    _load_entry_points()
    return sorted(_backends)


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
        name = "fsspec"
    factory = _backends.get(name)
    if factory is None:
        _load_entry_points(force=True)
        factory = _backends.get(name)
    if factory is None:
        raise ExZarrError(
            f"unknown storage backend {name!r}; registered: {', '.join(registered_backends())}"
        )
    return factory(path=path, read_only=read_only, **(storage_options or {}))


def _memory(path: Any = None, read_only: bool = False, **options: Any) -> Store:
    from exzarr.storage.memory import MemoryStore

    return MemoryStore(read_only=read_only, **options)


def _filesystem(path: Any = None, read_only: bool = False, **options: Any) -> Store:
    from exzarr.storage.directory import DirectoryStore

    if path is None:
        raise ExZarrError("storage='filesystem' needs path=...: the directory to use")
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
