"""Codecs: numcodecs-compatible compressors and filters, and their registry.

``get_codec({"id": "zstd", "level": 3})`` builds a codec from its config;
``register_codec`` and the entry-point group ``exzarr.codecs`` add new ones.
"""

from exzarr.codecs.abc import Codec
from exzarr.codecs.checksums import CRC32, CRC32C, Adler32, Fletcher32
from exzarr.codecs.compressors import LZ4, Blosc, GZip, Zlib, Zstd
from exzarr.codecs.filters import AsType, BitRound, Delta, FixedScaleOffset, PackBits, Quantize, Shuffle
from exzarr.codecs.objects import Categorize, VLenArray, VLenBytes, VLenUTF8
from exzarr.codecs.registry import get_codec, register_codec, registered_codecs
from exzarr.codecs.stdlib import BZ2, LZMA

__all__ = [
    "BZ2",
    "CRC32",
    "CRC32C",
    "LZ4",
    "LZMA",
    "Adler32",
    "AsType",
    "BitRound",
    "Blosc",
    "Categorize",
    "Codec",
    "Delta",
    "FixedScaleOffset",
    "Fletcher32",
    "GZip",
    "PackBits",
    "Quantize",
    "Shuffle",
    "VLenArray",
    "VLenBytes",
    "VLenUTF8",
    "Zlib",
    "Zstd",
    "get_codec",
    "register_codec",
    "registered_codecs",
]
