"""Compressors backed by the standard library: bz2 and lzma (run in Python)."""

from __future__ import annotations

import bz2
import lzma
from typing import Any, ClassVar

import numpy as np

from exzarr.codecs.abc import Codec
from exzarr.codecs.compressors import contiguous_bytes
from exzarr.codecs.filters import check_out
from exzarr.codecs.registry import register_codec
from exzarr.errors import CorruptChunkError


def _into(data: bytes, out: Any, codec_id: str) -> Any:
    if out is None:
        return data
    check_out(len(data), out, codec_id)
    if isinstance(out, np.ndarray):
        out.reshape(-1, order="A").view(np.uint8)[:] = np.frombuffer(data, np.uint8)
    else:
        memoryview(out).cast("B")[:] = data
    return out


@register_codec
class BZ2(Codec):
    """bzip2 streams.

    Parameters
    ----------
    level : int
        Compression level 1 to 9 (numcodecs' default 1).
    """

    codec_id = "bz2"
    is_compressor: ClassVar[bool] = True

    def __init__(self, level: int = 1) -> None:
        if not 1 <= int(level) <= 9:
            raise ValueError(f"bz2 level must be in [1, 9], not {level!r}")
        self.level = int(level)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "level": self.level}

    def encode(self, buf: Any) -> bytes:
        return bz2.compress(contiguous_bytes(buf)[0], self.level)

    def decode(self, buf: Any, out: Any = None) -> Any:
        try:
            data = bz2.decompress(contiguous_bytes(buf)[0])
        except (OSError, ValueError, EOFError) as exc:
            raise CorruptChunkError(f"invalid bz2 data: {exc}") from None
        return _into(data, out, self.codec_id)


@register_codec
class LZMA(Codec):
    """xz/lzma streams, with numcodecs' options (``format``, ``check``, ``preset``, ``filters``)."""

    codec_id = "lzma"
    is_compressor: ClassVar[bool] = True

    def __init__(self, format: int = 1, check: int = -1, preset: int | None = None,  # noqa: A002
                 filters: list[dict[str, Any]] | None = None) -> None:
        self.format = int(format)
        self.check = int(check)
        self.preset = preset
        self.filters = filters
        if self.format == lzma.FORMAT_RAW and not filters:
            raise ValueError("lzma FORMAT_RAW needs filters")

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "format": self.format, "check": self.check,
                "preset": self.preset, "filters": self.filters}

    def encode(self, buf: Any) -> bytes:
        return lzma.compress(contiguous_bytes(buf)[0], format=self.format, check=self.check,
                             preset=self.preset, filters=self.filters)

    def decode(self, buf: Any, out: Any = None) -> Any:
        try:
            data = lzma.decompress(contiguous_bytes(buf)[0], format=self.format,
                                   filters=self.filters if self.format == lzma.FORMAT_RAW else None)
        except (lzma.LZMAError, ValueError, EOFError) as exc:
            raise CorruptChunkError(f"invalid lzma data: {exc}") from None
        return _into(data, out, self.codec_id)
