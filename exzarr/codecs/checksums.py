"""Checksum codecs: a 4-byte little-endian checksum before or after the data.

A mismatch on decode raises :class:`~exzarr.errors.CorruptChunkError`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from exzarr.codecs.filters import Filter
from exzarr.codecs.registry import register_codec


class Checksum32(Filter):
    """Base of the 32-bit checksum codecs."""

    default_location: ClassVar[str] = "start"

    def __init__(self, location: str | None = None) -> None:
        location = location or self.default_location
        if location not in ("start", "end"):
            raise ValueError(f"location must be 'start' or 'end', not {location!r}")
        self.location = location

    def get_config(self) -> dict[str, Any]:
        # numcodecs writes the location only when it is not the codec's default.
        config: dict[str, Any] = {"id": self.codec_id}
        if self.location != self.default_location:
            config["location"] = self.location
        return config

    def decoded_itemsize(self) -> int | None:
        return None

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return np.dtype("u1")

    def _spec(self) -> dict[str, Any]:
        return {"kind": self.codec_id, "param": 0 if self.location == "start" else 1}


@register_codec
class CRC32(Checksum32):
    """zlib's CRC-32, before the data by default."""

    codec_id = "crc32"


@register_codec
class Adler32(Checksum32):
    """zlib's Adler-32, before the data by default."""

    codec_id = "adler32"


@register_codec
class CRC32C(Checksum32):
    """CRC-32C (Castagnoli), after the data by default."""

    codec_id = "crc32c"
    default_location = "end"


@register_codec
class Fletcher32(Checksum32):
    """HDF5's Fletcher-32 over 16-bit words, after the data."""

    codec_id = "fletcher32"
    default_location = "end"

    def __init__(self) -> None:
        super().__init__("end")

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id}
