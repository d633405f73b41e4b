"""Filters: array-to-array codecs run before the compressor on encode."""

from __future__ import annotations

from typing import Any

import numpy as np

from exzarr.codecs.abc import Codec
from exzarr.codecs.registry import register_codec

_CORE_ELEM = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8"}


def core_elem(dtype: np.dtype) -> str | None:
    """The core's element code for a native-endian number dtype, else None."""
    code = f"{dtype.kind}{dtype.itemsize}"
    if code in _CORE_ELEM and dtype.isnative:
        return code
    return None


def as_typed(buf: Any, dtype: np.dtype) -> np.ndarray:
    """View ``buf`` as a flat array of ``dtype`` (no copy when it is contiguous)."""
    if isinstance(buf, np.ndarray):
        arr = np.ascontiguousarray(buf).reshape(-1)
        return arr.view(dtype) if arr.dtype != dtype else arr
    return np.frombuffer(memoryview(buf).cast("B"), dtype=dtype)


def write_out(result: np.ndarray, out: Any) -> Any:
    """numcodecs' ``decode(buf, out)`` convention: fill ``out`` when given."""
    if out is None:
        return result
    target = as_typed(out, result.dtype)
    target[...] = result.reshape(target.shape)
    return out


@register_codec
class Delta(Codec):
    """Store the first element, then differences between neighbours.

    Parameters
    ----------
    dtype : str or numpy.dtype
        The data type of the decoded data.
    astype : str or numpy.dtype, optional
        The data type of the encoded differences (default: ``dtype``).
    """

    codec_id = "delta"

    def __init__(self, dtype: Any, astype: Any = None) -> None:
        self.dtype = np.dtype(dtype)
        self.astype = self.dtype if astype is None else np.dtype(astype)
        for dt in (self.dtype, self.astype):
            if dt.kind not in "iuf":
                raise ValueError(f"delta works on integer and float types, not {dt.str!r}")

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "dtype": self.dtype.str, "astype": self.astype.str}

    def core_step(self, dtype: np.dtype) -> dict[str, Any] | None:
        elem = core_elem(self.dtype)
        if elem is None or self.astype != self.dtype or self.dtype.itemsize != dtype.itemsize:
            return None
        return {"kind": "delta", "elem": elem}

    def encode(self, buf: Any) -> bytes:
        arr = as_typed(buf, self.dtype)
        enc = np.empty(arr.shape, dtype=self.astype)
        if arr.size:
            enc[0] = arr[0]
            np.subtract(arr[1:], arr[:-1], out=enc[1:], casting="unsafe")
        return enc.tobytes()

    def decode(self, buf: Any, out: Any = None) -> Any:
        enc = as_typed(buf, self.astype)
        dec = np.empty(enc.shape, dtype=self.dtype)
        np.cumsum(enc, out=dec, dtype=self.dtype)
        return write_out(dec, out)
