"""Compressors with a C path in the core: zlib, gzip (libdeflate), zstd, lz4, blosc."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from exzarr.codecs.abc import Codec
from exzarr.codecs.registry import register_codec

class CoreCodec(Codec):
    """A codec whose encode and decode run in the core, without the GIL."""

    is_compressor: ClassVar[bool] = True
    _pipeline: Any = None

    def _step(self, typesize: int) -> dict[str, Any]:
        raise NotImplementedError

    def core_step(self, dtype: np.dtype) -> dict[str, Any]:
        return self._step(dtype.itemsize)

    def _core(self, typesize: int = 1) -> Any:
        from exzarr import _core

        cache = self.__dict__.setdefault("_pipelines", {})
        pipe = cache.get(typesize)
        if pipe is None:
            pipe = cache[typesize] = _core.Pipeline([], self._step(typesize))
        return pipe

    def encode(self, buf: Any) -> bytes:
        from exzarr import _core

        view, itemsize = contiguous_bytes(buf)
        return _core.encode_buffer(self._core(itemsize), view)

    def decode(self, buf: Any, out: Any = None) -> Any:
        from exzarr import _core
        from exzarr.errors import CorruptChunkError, _ChunkFailure

        pipe = self._core()
        try:
            if out is not None:
                from exzarr.codecs.filters import check_out, out_nbytes

                size = _core.decoded_size(pipe, buf)
                if size >= 0:
                    check_out(size, out, self.codec_id)
                else:  # a stream without a size: out is checked as a buffer only
                    out_nbytes(out)
                target = out.reshape(-1, order="A").view(np.uint8) if isinstance(out, np.ndarray) else out
                try:
                    _core.decode_buffer(pipe, buf, target)
                except _ChunkFailure as failure:
                    if failure.status != failure.SIZE:
                        raise
                    raise CorruptChunkError(
                        f"{self.codec_id} data does not decode to the {out_nbytes(out)} bytes out "
                        f"holds ({failure.detail}): out has the wrong size or the data is "
                        "corrupt") from None
                return out
            size = _core.decoded_size(pipe, buf)
            if size < 0 and self.codec_id in ("lz4", "blosc"):
                raise CorruptChunkError(f"{self.codec_id} data has an invalid size header")
            if size >= 0:
                # Not zero-filled: a forged size header costs address space, not memory,
                # before the decoder rejects the data.
                dst = np.empty(size, dtype=np.uint8)
                _core.decode_buffer(pipe, buf, dst)
                return dst.tobytes()
            from exzarr import config

            return _core.decode_buffer_unsized(pipe, buf, config.get("decode_limit_bytes"))
        except _ChunkFailure as failure:
            raise failure.to_error(None, codec=self.codec_id) from None


def contiguous_bytes(buf: Any) -> tuple[memoryview, int]:
    """A flat byte view of ``buf`` (copied only when not contiguous) and its item size."""
    if isinstance(buf, np.ndarray):
        # Bytes in memory order, as numcodecs takes them (a Fortran array stays as it is).
        arr = buf if buf.flags.f_contiguous and not buf.flags.c_contiguous else np.ascontiguousarray(buf)
        return memoryview(arr.reshape(-1, order="A").view(np.uint8)), arr.itemsize
    view = memoryview(buf)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view.cast("B"), view.itemsize


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], not {value!r}")
    return int(value)


@register_codec
class Zlib(CoreCodec):
    """zlib streams through libdeflate.

    Parameters
    ----------
    level : int
        Compression level, 0 (store) to 9; numcodecs' default is 1.
    """

    codec_id = "zlib"

    def __init__(self, level: int = 1) -> None:
        self.level = _check_int("level", level, 0, 9)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "level": self.level}

    def _step(self, typesize: int) -> dict[str, Any]:
        return {"kind": self.codec_id, "level": self.level}


@register_codec
class GZip(Zlib):
    """gzip members through libdeflate (same options as :class:`Zlib`)."""

    codec_id = "gzip"


@register_codec
class Zstd(CoreCodec):
    """Zstandard frames through libzstd.

    Parameters
    ----------
    level : int
        Compression level; 0 means libzstd's default (3). Negative levels are fast modes.
    checksum : bool
        Append a content checksum to each frame. Written to the config only when true,
        since ``"checksum": false`` breaks tensorstore and older numcodecs.
    """

    codec_id = "zstd"

    def __init__(self, level: int = 0, checksum: bool = False) -> None:
        self.level = _check_int("level", level, -131072, 22)
        self.checksum = bool(checksum)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"id": self.codec_id, "level": self.level}
        if self.checksum:
            config["checksum"] = True
        return config

    def _step(self, typesize: int) -> dict[str, Any]:
        return {"kind": "zstd", "level": self.level, "checksum": self.checksum}


@register_codec
class LZ4(CoreCodec):
    """LZ4 blocks behind a 4-byte little-endian size, numcodecs' layout.

    Parameters
    ----------
    acceleration : int
        1 is the default; higher is faster and compresses less.
    """

    codec_id = "lz4"

    def __init__(self, acceleration: int = 1) -> None:
        self.acceleration = _check_int("acceleration", acceleration, -(2**31), 2**31 - 1)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "acceleration": self.acceleration}

    def _step(self, typesize: int) -> dict[str, Any]:
        return {"kind": "lz4", "acceleration": self.acceleration}


BLOSC_CNAMES = ("blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd")
NOSHUFFLE, SHUFFLE, BITSHUFFLE, AUTOSHUFFLE = 0, 1, 2, -1


@register_codec
class Blosc(CoreCodec):
    """c-blosc 1.x frames.

    Parameters
    ----------
    cname : str
        Inner compressor: one of ``blosclz lz4 lz4hc snappy zlib zstd``.
    clevel : int
        Compression level 0 to 9.
    shuffle : int
        -1 automatic (bit shuffle for 1-byte items, else byte shuffle), 0 none,
        1 byte shuffle, 2 bit shuffle.
    blocksize : int
        Block size in bytes; 0 lets blosc choose.
    """

    codec_id = "blosc"

    def __init__(self, cname: str = "lz4", clevel: int = 5, shuffle: int = SHUFFLE,
                 blocksize: int = 0) -> None:
        if isinstance(cname, bytes):
            cname = cname.decode("ascii")
        if cname not in BLOSC_CNAMES:
            raise ValueError(f"cname must be one of {', '.join(BLOSC_CNAMES)}, not {cname!r}")
        self.cname = cname
        self.clevel = _check_int("clevel", clevel, 0, 9)
        self.shuffle = _check_int("shuffle", shuffle, -1, 2)
        self.blocksize = _check_int("blocksize", blocksize, 0, 2**31 - 1)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "cname": self.cname, "clevel": self.clevel,
                "shuffle": self.shuffle, "blocksize": self.blocksize}

    def _step(self, typesize: int) -> dict[str, Any]:
        shuffle = self.shuffle
        if shuffle == AUTOSHUFFLE:
            shuffle = BITSHUFFLE if typesize == 1 else SHUFFLE
        return {"kind": "blosc", "cname": self.cname, "clevel": self.clevel,
                "shuffle": shuffle, "typesize": typesize if typesize <= 255 else 1,
                "blocksize": self.blocksize}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        # Old metadata may lack blocksize.
        return cls(**{k: v for k, v in config.items() if k != "id"})
