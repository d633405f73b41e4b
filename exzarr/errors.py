"""The exzarr error hierarchy.

Every error derives from :class:`ExZarrError` and from the builtin exception an
idiomatic ``except`` clause would name (``ValueError``, ``KeyError``,
``FileNotFoundError``...). Each carries ``.code``: the error atom of the original
ExZarr library (``"shape_required"``, ``"path_not_found"``...) as a string.
"""

from __future__ import annotations

import errno

__all__ = [
    "ArrayNotFoundError",
    "ChunksRequiredError",
    "ContainsArrayError",
    "IncompatibleArrayError",
    "ContainsGroupError",
    "CorruptChunkError",
    "ExZarrError",
    "InvalidArgumentError",
    "InvalidChunksError",
    "InvalidFilterConfigError",
    "InvalidKeyError",
    "InvalidMetadataError",
    "InvalidShapeError",
    "LockNotSupportedError",
    "MetadataNotFoundError",
    "MissingDependencyError",
    "PathNotFoundError",
    "ReadOnlyError",
    "ShapeRequiredError",
    "StorageError",
    "UnknownCodecError",
    "UnknownFilterError",
]


class ExZarrError(Exception):
    """Base class of every exzarr error."""

    code = "exzarr_error"


class ShapeRequiredError(ExZarrError, ValueError):
    """``create`` was called without ``shape``."""

    code = "shape_required"


class ChunksRequiredError(ExZarrError, ValueError):
    """``create`` was called without ``chunks``."""

    code = "chunks_required"


class InvalidShapeError(ExZarrError, ValueError):
    """The shape is not a sequence of non-negative integers."""

    code = "invalid_shape"


class InvalidChunksError(ExZarrError, ValueError):
    """The chunks are not positive integers, one per dimension of the shape."""

    code = "invalid_chunks"


class UnknownCodecError(ExZarrError, ValueError):
    """No codec is registered under this id."""

    code = "unknown_codec"

    def __init__(self, message: str, codec_id: str | None = None) -> None:
        super().__init__(message)
        self.codec_id = codec_id


class UnknownFilterError(UnknownCodecError):
    """No filter codec is registered under this id."""

    code = "unknown_filter"

    def __init__(self, message: str, filter_id: str | None = None) -> None:
        super().__init__(message, filter_id)
        self.filter_id = filter_id


class InvalidFilterConfigError(ExZarrError, ValueError):
    """A codec or filter was given options it does not accept."""

    code = "invalid_filter_config"

    def __init__(self, filter_id: str, reason: str) -> None:
        super().__init__(f"invalid configuration for codec {filter_id!r}: {reason}")
        self.filter_id = filter_id
        self.reason = reason


class InvalidArgumentError(ExZarrError, ValueError):
    """A call was given a value it does not accept (a dtype, order, mode, fill value,
    storage backend, or no ``path`` where one is needed); the message says which."""

    code = "invalid_argument"


class InvalidMetadataError(ExZarrError, ValueError):
    """Stored metadata (``.zarray``, ``.zgroup``, ``.zmetadata``) or a store's own
    format is unreadable or not Zarr v2; the message names the document or file."""

    code = "invalid_metadata"


class InvalidKeyError(ExZarrError, KeyError):
    """A store key or node name is not allowed: an empty part, ``.`` or ``..``, a
    leading ``/``, a NUL, or a name that is not a string; the message names it."""

    code = "invalid_key"

    def __init__(self, message: str, key: object = None) -> None:
        super().__init__(message)
        self.key = key

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class StorageError(ExZarrError, OSError):
    """The storage under a store failed: a full disk (``errno.ENOSPC``), a read-only
    file system (``EROFS``), a refused permission (``EACCES``), a database error. It
    keeps ``.errno`` (None where the storage reports none) and the message names the
    store and what was being done.

    Construct it as an OSError: ``StorageError(errno, message, filename)``. As OSError
    does, it becomes the matching builtin too: a StorageError with ``EACCES`` is also
    a ``PermissionError``, with ``EISDIR`` an ``IsADirectoryError``, and so on, so code
    written against the builtins keeps working.
    """

    code = "storage_error"

    def __new__(cls, *args: object, **kwargs: object) -> StorageError:
        if cls is StorageError and len(args) >= 2 and isinstance(args[0], int):
            cls = _STORAGE_KINDS.get(args[0], cls)
        return super().__new__(cls, *args, **kwargs)


class StoragePermissionError(StorageError, PermissionError):
    """A StorageError for ``EACCES`` or ``EPERM`` (a ``PermissionError`` too)."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """A StorageError for ``ENOENT`` (a ``FileNotFoundError`` too)."""


class StorageExistsError(StorageError, FileExistsError):
    """A StorageError for ``EEXIST`` (a ``FileExistsError`` too)."""


class StorageIsADirectoryError(StorageError, IsADirectoryError):
    """A StorageError for ``EISDIR`` (an ``IsADirectoryError`` too)."""


class StorageNotADirectoryError(StorageError, NotADirectoryError):
    """A StorageError for ``ENOTDIR`` (a ``NotADirectoryError`` too)."""


class StorageTimeoutError(StorageError, TimeoutError):
    """A StorageError for ``ETIMEDOUT`` (a ``TimeoutError`` too)."""


class StorageConnectionError(StorageError, ConnectionError):
    """A StorageError for a refused, reset or broken connection (a ``ConnectionError``)."""


_STORAGE_KINDS: dict[int, type[StorageError]] = {
    errno.EACCES: StoragePermissionError, errno.EPERM: StoragePermissionError,
    errno.ENOENT: StorageNotFoundError, errno.EEXIST: StorageExistsError,
    errno.EISDIR: StorageIsADirectoryError, errno.ENOTDIR: StorageNotADirectoryError,
    errno.ETIMEDOUT: StorageTimeoutError, errno.ECONNREFUSED: StorageConnectionError,
    errno.ECONNRESET: StorageConnectionError, errno.ECONNABORTED: StorageConnectionError,
    errno.EPIPE: StorageConnectionError,
}


class LockNotSupportedError(InvalidArgumentError):
    """Cross-process locking was asked of a store that cannot lock (memory, zip, a
    remote object store); the message says which stores can."""

    code = "lock_not_supported"


class MissingDependencyError(ExZarrError, ImportError):
    """An optional dependency a feature needs is not installed; the message names the
    extra to install."""

    code = "missing_dependency"


class PathNotFoundError(ExZarrError, FileNotFoundError):
    """Nothing exists at the given path."""

    code = "path_not_found"


class MetadataNotFoundError(ExZarrError, FileNotFoundError):
    """The path exists but holds no ``.zarray`` (or ``.zgroup``) document."""

    code = "metadata_not_found"


ArrayNotFoundError = MetadataNotFoundError


class ContainsGroupError(ExZarrError, ValueError):
    """An array was expected where a group is stored."""

    code = "contains_group"


class ContainsArrayError(ExZarrError, ValueError):
    """A group was expected where an array is stored (or the path is taken)."""

    code = "contains_array"


class IncompatibleArrayError(ContainsArrayError, TypeError):
    """An existing array has another shape or dtype than a ``require_*`` call asked for
    (a TypeError too, as zarr-python raises)."""

    code = "incompatible_array"


class CorruptChunkError(ExZarrError, ValueError):
    """A stored chunk could not be decoded; ``.key`` names it."""

    code = "corrupt_chunk"

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ReadOnlyError(ExZarrError, PermissionError):
    """A write was attempted on an array or store opened read-only."""

    code = "read_only"


class _ChunkFailure(Exception):
    """Raised by the core for one chunk of a batch; the array layer adds the key."""

    # Status codes of exzarr/_core.pyx.
    CORRUPT, SIZE, NOMEM, ENCODE, CHECKSUM, IO, LIMIT = 1, 2, 3, 4, 5, 6, 7

    def __init__(self, status: int, index: int, detail: str) -> None:
        super().__init__(status, index, detail)
        self.status = status
        self.index = index
        self.detail = detail

    def to_error(self, key: str | None, action: str = "decode", codec: str | None = None) -> Exception:
        """The public error for this failure, naming ``key`` (or the codec for bare buffers)."""
        what = f"chunk {key!r}" if key is not None else f"{codec or 'codec'} data"
        if self.status == self.IO:
            import os

            from exzarr.storage.base import storage_error

            # The core gives the errno, or (errno, detail, the chunk file's path).
            err, text, path = (self.detail if isinstance(self.detail, tuple)
                               else (self.detail if isinstance(self.detail, int) else 0, "", None))
            where = f"{what} (file {path})" if path else what
            return storage_error(err or None, text or os.strerror(err), f"reading or writing {where}",
                                 path or key)
        if self.status == self.NOMEM:
            return MemoryError(f"out of memory while processing {what}")
        if self.status == self.ENCODE:
            return ExZarrError(f"could not encode {what}: {self.detail}")
        if self.status == self.LIMIT:
            return CorruptChunkError(
                f"{what} does not state its decoded size and decodes to more than "
                "decode_limit_bytes; if it is genuine, raise the limit with "
                "exzarr.config.set(decode_limit_bytes=...)", key)
        problem = {self.CORRUPT: "is corrupt", self.CHECKSUM: "fails its checksum"}.get(
            self.status, "decodes to the wrong size")
        hint = "; rewrite it or delete it to read it as fill_value" if key is not None else ""
        return CorruptChunkError(f"{what} {problem} and cannot be {action}d ({self.detail}){hint}", key)
