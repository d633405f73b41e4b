"""Codecs: numcodecs-compatible compressors and filters, and their registry.

``get_codec({"id": "zstd", "level": 3})`` builds a codec from its config;
``register_codec`` and the entry-point group ``exzarr.codecs`` add new ones.
"""

from exzarr.codecs.abc import Codec
from exzarr.codecs.compressors import LZ4, Blosc, GZip, Zlib, Zstd
from exzarr.codecs.filters import Delta
from exzarr.codecs.registry import get_codec, register_codec, registered_codecs

__all__ = [
    "LZ4",
    "Blosc",
    "Codec",
    "Delta",
    "GZip",
    "Zlib",
    "Zstd",
    "get_codec",
    "register_codec",
    "registered_codecs",
]
