"""Codecs for object arrays (variable-length strings and bytes) and categories."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from exzarr.codecs.abc import Codec
from exzarr.codecs.filters import as_typed, write_out
from exzarr.codecs.registry import register_codec
from exzarr.errors import CorruptChunkError


class _VLen(Codec):
    """u32 LE item count, then per item a u32 LE length and the bytes."""

    is_object_codec = True

    def _to_bytes(self, item: Any) -> bytes:
        raise NotImplementedError

    def _from_bytes(self, raw: bytes) -> Any:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id}

    def encode(self, buf: Any) -> bytes:
        items = np.asarray(buf, dtype=object).reshape(-1, order="A")
        parts = [struct.pack("<I", len(items))]
        for item in items:
            raw = self._to_bytes(item)
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)

    def decode(self, buf: Any, out: Any = None) -> Any:
        data = memoryview(buf).cast("B") if not isinstance(buf, np.ndarray) else memoryview(
            np.ascontiguousarray(buf).reshape(-1).view("u1"))
        n = len(data)
        if n < 4:
            raise CorruptChunkError(f"{self.codec_id}: {n} bytes is too short for the item count")
        (count,) = struct.unpack_from("<I", data, 0)
        if count > (n - 4) // 4:
            raise CorruptChunkError(f"{self.codec_id}: item count {count} exceeds the data")
        result = np.empty(count, dtype=object)
        pos = 4
        for i in range(count):
            if pos + 4 > n:
                raise CorruptChunkError(f"{self.codec_id}: data ends inside item {i}")
            (length,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if pos + length > n:
                raise CorruptChunkError(f"{self.codec_id}: item {i} runs past the data")
            result[i] = self._from_bytes(bytes(data[pos:pos + length]))
            pos += length
        if out is not None:
            _object_out(result, out, self.codec_id)
            return out
        return result


@register_codec
class VLenUTF8(_VLen):
    """Variable-length UTF-8 strings (object arrays of ``str``)."""

    codec_id = "vlen-utf8"

    def _to_bytes(self, item: Any) -> bytes:
        if item is None or (isinstance(item, (int, float)) and item == 0):
            return b""
        if not isinstance(item, str):
            raise TypeError(f"vlen-utf8 stores str items, not {type(item).__name__}")
        return item.encode("utf-8")

    def _from_bytes(self, raw: bytes) -> Any:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptChunkError(f"vlen-utf8: invalid UTF-8 ({exc})") from None


@register_codec
class VLenBytes(_VLen):
    """Variable-length byte strings (object arrays of ``bytes``)."""

    codec_id = "vlen-bytes"

    def _to_bytes(self, item: Any) -> bytes:
        if item is None or (isinstance(item, (int, float)) and item == 0):
            return b""
        if not isinstance(item, (bytes, bytearray, memoryview, np.bytes_)):
            raise TypeError(f"vlen-bytes stores bytes items, not {type(item).__name__}")
        return bytes(item)

    def _from_bytes(self, raw: bytes) -> Any:
        return raw


@register_codec
class VLenArray(_VLen):
    """Variable-length one-dimensional arrays of one dtype (object arrays of ndarrays).

    Each item is stored as its raw bytes in ``dtype``; missing items (None) as none.
    """

    codec_id = "vlen-array"

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype.hasobject or self.dtype.itemsize == 0:
            raise ValueError(f"vlen-array items need a fixed-size dtype, not {self.dtype}")

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "dtype": self.dtype.str}

    def _to_bytes(self, item: Any) -> bytes:
        if item is None:
            return b""
        arr = np.ascontiguousarray(item, dtype=self.dtype)  # a scalar (the fill 0) is [0]
        if arr.ndim != 1:
            raise ValueError(f"vlen-array stores 1-d arrays, not {arr.ndim}-d ones")
        return arr.tobytes()

    def _from_bytes(self, raw: bytes) -> Any:
        if len(raw) % self.dtype.itemsize:
            raise CorruptChunkError(
                f"vlen-array: an item of {len(raw)} bytes is not a whole number of {self.dtype}")
        return np.frombuffer(raw, dtype=self.dtype).copy()


@register_codec
class Categorize(Codec):
    """Store strings as small integers: 0 for values not in ``labels``, else index + 1."""

    codec_id = "categorize"

    def __init__(self, labels: list[str], dtype: Any, astype: Any = "u1") -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "UO":
            raise ValueError("categorize works on unicode ('U') and object ('O') data")
        self.labels = [label.decode("utf-8") if isinstance(label, bytes) else str(label)
                       for label in labels]
        self.astype = np.dtype(astype)
        if self.astype.kind not in "iu":
            raise ValueError("categorize stores integer codes")

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "labels": self.labels, "dtype": self.dtype.str,
                "astype": self.astype.str}

    @property
    def is_object_codec(self) -> bool:
        return self.dtype.kind == "O"

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return self.astype

    def encode(self, buf: Any) -> np.ndarray:
        arr = (np.asarray(buf, dtype=object) if self.dtype.kind == "O"
               else as_typed(buf, self.dtype)).reshape(-1, order="A")
        enc = np.zeros(arr.shape, dtype=self.astype)
        for i, label in enumerate(self.labels):
            enc[arr == label] = i + 1
        return enc

    def decode(self, buf: Any, out: Any = None) -> Any:
        enc = as_typed(buf, self.astype)
        dec = np.full(enc.shape, "", dtype=self.dtype)
        for i, label in enumerate(self.labels):
            dec[enc == i + 1] = label
        if out is not None and self.dtype.kind == "O":
            _object_out(dec, out, self.codec_id)
            return out
        return write_out(dec, out, self.codec_id)


def _object_out(items: np.ndarray, out: Any, codec_id: str) -> None:
    """Put decoded objects into ``out``, an object array of as many items.

    Raises
    ------
    InvalidArgumentError
        ``out`` is not a contiguous object array of ``items.size`` items.
    """
    from exzarr.errors import InvalidArgumentError

    if (not isinstance(out, np.ndarray) or out.dtype != object or out.size != items.size
            or not (out.flags.c_contiguous or out.flags.f_contiguous)):
        raise InvalidArgumentError(
            f"{codec_id}: the data decodes to {items.size} items; out must be a contiguous "
            f"object array of that many, not {getattr(out, 'dtype', type(out).__name__)} "
            f"of {getattr(out, 'size', '?')}")
    out.reshape(-1, order="A")[:] = items
