"""exzarr: chunked, compressed N-dimensional arrays in the Zarr v2 format.

The data path (decompression, filters, chunk copies) runs in a Cython core with the
GIL released, linked directly to libzstd, liblz4, libdeflate and libblosc.

>>> import exzarr
>>> a = exzarr.create(shape=(1000, 1000), chunks=(100, 100), dtype="float64")
>>> a[0, :3] = 1.5
>>> a[0, :4]
array([1.5, 1.5, 1.5, 0. ])
"""

from exzarr import config, errors
from exzarr.api import (
    array,
    create,
    empty,
    empty_like,
    full,
    full_like,
    load,
    ones,
    ones_like,
    open,
    open_array,
    save,
    zeros,
    zeros_like,
)
from exzarr.array import Array
from exzarr.group import Group, group, open_group
from exzarr.errors import (
    ChunksRequiredError,
    CorruptChunkError,
    ExZarrError,
    IncompatibleArrayError,
    InvalidArgumentError,
    InvalidChunksError,
    InvalidFilterConfigError,
    InvalidKeyError,
    InvalidMetadataError,
    InvalidShapeError,
    LockNotSupportedError,
    MetadataNotFoundError,
    PathNotFoundError,
    ReadOnlyError,
    ShapeRequiredError,
    StorageError,
    UnknownCodecError,
    UnknownFilterError,
)

__version__ = "0.1.0"

__all__ = [
    "Array",
    "Group",
    "ChunksRequiredError",
    "CorruptChunkError",
    "ExZarrError",
    "IncompatibleArrayError",
    "InvalidArgumentError",
    "InvalidChunksError",
    "InvalidFilterConfigError",
    "InvalidKeyError",
    "InvalidMetadataError",
    "InvalidShapeError",
    "LockNotSupportedError",
    "MetadataNotFoundError",
    "PathNotFoundError",
    "ReadOnlyError",
    "ShapeRequiredError",
    "StorageError",
    "UnknownCodecError",
    "UnknownFilterError",
    "array",
    "config",
    "create",
    "empty",
    "empty_like",
    "errors",
    "full",
    "full_like",
    "group",
    "load",
    "ones",
    "ones_like",
    "open_group",
    "open",
    "open_array",
    "save",
    "zeros",
    "zeros_like",
]
