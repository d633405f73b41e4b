"""Filters: array-to-array codecs run before the compressor on encode.

Each numeric filter has a C path in the core (used by arrays for whole chunk batches
without the GIL, and by ``encode``/``decode`` here) and a NumPy reference path with
numcodecs' exact semantics for the type combinations the C path does not cover.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from exzarr.codecs.abc import Codec
from exzarr.codecs.registry import register_codec

_CORE_ELEM = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8"}


def core_elem(dtype: np.dtype) -> str | None:
    """The core's element code for a native-endian number dtype, else None."""
    code = f"{dtype.kind}{dtype.itemsize}"
    if code in _CORE_ELEM and (dtype.isnative or dtype.itemsize == 1):
        return code
    return None


def as_typed(buf: Any, dtype: np.dtype) -> np.ndarray:
    """View ``buf`` as a flat array of ``dtype`` (no copy when it is contiguous)."""
    if isinstance(buf, np.ndarray):
        arr = buf if buf.flags.f_contiguous and not buf.flags.c_contiguous else np.ascontiguousarray(buf)
        arr = arr.reshape(-1, order="A")
        return arr.view(dtype) if arr.dtype != dtype else arr
    return np.frombuffer(memoryview(buf).cast("B"), dtype=dtype)


def out_nbytes(out: Any) -> int:
    """The byte size of a ``decode(buf, out=)`` buffer.

    Raises
    ------
    InvalidArgumentError
        ``out`` is not a writable, contiguous buffer.
    """
    from exzarr.errors import InvalidArgumentError

    if isinstance(out, np.ndarray):
        if not (out.flags.c_contiguous or out.flags.f_contiguous) or not out.flags.writeable:
            raise InvalidArgumentError("out must be a writable, contiguous array")
        return out.nbytes
    try:
        view = memoryview(out)
    except TypeError:
        raise InvalidArgumentError(
            f"out must be a writable buffer (a NumPy array, bytearray...), not "
            f"{type(out).__name__}") from None
    if view.readonly or not view.contiguous:
        raise InvalidArgumentError("out must be a writable, contiguous buffer")
    return view.nbytes


def check_out(nbytes: int, out: Any, codec_id: str) -> None:
    """Refuse an ``out`` buffer that cannot hold exactly ``nbytes`` decoded bytes.

    Raises
    ------
    InvalidArgumentError
        Naming both sizes.
    """
    from exzarr.errors import InvalidArgumentError

    have = out_nbytes(out)
    if have != nbytes:
        raise InvalidArgumentError(
            f"{codec_id}: the data decodes to {nbytes} bytes but out holds {have}; pass a "
            f"buffer of {nbytes} bytes, or out=None")


def write_out(result: np.ndarray, out: Any, codec_id: str = "codec") -> Any:
    """numcodecs' ``decode(buf, out)`` convention: fill ``out`` when given.

    Raises
    ------
    InvalidArgumentError
        ``out`` is not a writable buffer of the decoded data's size.
    """
    if out is None:
        return result
    check_out(result.nbytes, out, codec_id)
    target = as_typed(out, result.dtype)
    target[...] = result.reshape(target.shape)
    return out


class Filter(Codec):
    """A filter with an optional C path: subclasses give ``_spec`` and a NumPy path."""

    _pipelines: dict[Any, Any]

    def _spec(self) -> dict[str, Any] | None:
        """The core step for this filter's own dtype, or None (NumPy path)."""
        return None

    def core_step(self, dtype: np.dtype) -> dict[str, Any] | None:
        spec = self._spec()
        if spec is None or self.decoded_itemsize() not in (None, dtype.itemsize):
            return None
        return spec

    def decoded_itemsize(self) -> int | None:
        """Item size of the data the filter expects, when it has a dtype."""
        dt = getattr(self, "dtype", None)
        return None if dt is None else np.dtype(dt).itemsize

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        """The dtype of what ``encode`` produces for input of ``dtype``."""
        return dtype

    def _pipeline(self) -> Any:
        from exzarr import _core

        cache = self.__dict__.setdefault("_pipelines", {})
        if "p" not in cache:
            spec = self._spec()
            cache["p"] = None if spec is None else _core.Pipeline([spec], None)
        return cache["p"]

    def encode(self, buf: Any) -> Any:
        pipe = self._pipeline()
        if pipe is None:
            return self._encode_numpy(buf)
        from exzarr import _core
        from exzarr.codecs.compressors import contiguous_bytes

        view, _ = contiguous_bytes(buf)
        return np.frombuffer(_core.encode_buffer(pipe, view), dtype=self.encoded_dtype(
            np.dtype(getattr(self, "dtype", "u1"))))

    def decode(self, buf: Any, out: Any = None) -> Any:
        pipe = self._pipeline()
        if pipe is None:
            return self._decode_numpy(buf, out)
        from exzarr import _core
        from exzarr.codecs.compressors import contiguous_bytes
        from exzarr.errors import CorruptChunkError, _ChunkFailure

        view, _ = contiguous_bytes(buf)
        try:
            size = _core.decoded_size(pipe, view)
            if size < 0:
                raise CorruptChunkError(f"{self.codec_id}: encoded data of {len(view)} bytes is malformed")
            dst = np.empty(size, dtype=np.uint8)
            _core.decode_buffer(pipe, view, dst)
        except _ChunkFailure as failure:
            raise failure.to_error(None, codec=self.codec_id) from None
        dt = np.dtype(getattr(self, "dtype", "u1"))
        result = dst.view(dt) if size % dt.itemsize == 0 else dst
        return write_out(result, out, self.codec_id)

    def _encode_numpy(self, buf: Any) -> Any:
        raise NotImplementedError

    def _decode_numpy(self, buf: Any, out: Any) -> Any:
        raise NotImplementedError


def _typed_pair(dtype: np.dtype, astype: np.dtype, *, same_kind: bool) -> tuple[str, str] | None:
    a, b = core_elem(dtype), core_elem(astype)
    if a is None or b is None:
        return None
    if same_kind and (dtype.kind == "f") != (astype.kind == "f"):
        return None
    return a, b


@register_codec
class Delta(Filter):
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

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return self.astype

    def _spec(self) -> dict[str, Any] | None:
        pair = _typed_pair(self.dtype, self.astype, same_kind=True)
        return None if pair is None else {"kind": "delta", "elem": pair[0], "elem_out": pair[1]}

    def _encode_numpy(self, buf: Any) -> np.ndarray:
        arr = as_typed(buf, self.dtype)
        enc = np.empty(arr.shape, dtype=self.astype)
        if arr.size:
            enc[0] = arr[0]
            np.subtract(arr[1:], arr[:-1], out=enc[1:], casting="unsafe")
        return enc

    def _decode_numpy(self, buf: Any, out: Any) -> Any:
        enc = as_typed(buf, self.astype)
        dec = np.empty(enc.shape, dtype=self.dtype)
        np.cumsum(enc, out=dec)
        return write_out(dec, out, self.codec_id)


@register_codec
class Quantize(Filter):
    """Round floats to keep ``digits`` decimal digits, numcodecs' bit-based rule.

    Parameters
    ----------
    digits : int
        Decimal digits to keep.
    dtype : str or numpy.dtype
        The float data type of the data.
    astype : str or numpy.dtype, optional
        The float type to store (default: ``dtype``).
    """

    codec_id = "quantize"

    def __init__(self, digits: int, dtype: Any, astype: Any = None) -> None:
        self.digits = int(digits)
        self.dtype = np.dtype(dtype)
        self.astype = self.dtype if astype is None else np.dtype(astype)
        if self.dtype.kind != "f" or self.astype.kind != "f":
            raise ValueError("quantize works on floating point data types only")

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "digits": self.digits, "dtype": self.dtype.str,
                "astype": self.astype.str}

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return self.astype

    @property
    def scale(self) -> float:
        exp = math.log10(10.0 ** -self.digits)
        exp = math.floor(exp) if exp < 0 else math.ceil(exp)
        bits = math.ceil(math.log2(10.0 ** -exp))
        return 2.0 ** bits

    def _spec(self) -> dict[str, Any] | None:
        pair = _typed_pair(self.dtype, self.astype, same_kind=True)
        if pair is None:
            return None
        return {"kind": "quantize", "elem": pair[0], "elem_out": pair[1], "scale": self.scale}

    def _encode_numpy(self, buf: Any) -> np.ndarray:
        arr = as_typed(buf, self.dtype)
        scale = self.scale
        enc = np.around(scale * arr) / scale
        return enc.astype(self.astype, copy=False)

    def _decode_numpy(self, buf: Any, out: Any) -> Any:
        return write_out(as_typed(buf, self.astype).astype(self.dtype), out, self.codec_id)


@register_codec
class FixedScaleOffset(Filter):
    """Store ``round((x - offset) * scale)`` as ``astype``; decode ``enc / scale + offset``.

    Parameters
    ----------
    offset, scale : float
        The affine map.
    dtype : str or numpy.dtype
        The data type of the data.
    astype : str or numpy.dtype, optional
        The data type to store (default: ``dtype``).
    """

    codec_id = "fixedscaleoffset"

    def __init__(self, offset: float, scale: float, dtype: Any, astype: Any = None) -> None:
        self.offset = offset
        self.scale = scale
        self.dtype = np.dtype(dtype)
        self.astype = self.dtype if astype is None else np.dtype(astype)
        if self.dtype.kind not in "iuf" or self.astype.kind not in "iuf":
            raise ValueError("fixedscaleoffset works on integer and float data types only")
        if not isinstance(offset, (int, float)) or not isinstance(scale, (int, float)):
            raise ValueError("offset and scale must be numbers")

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "scale": self.scale, "offset": self.offset,
                "dtype": self.dtype.str, "astype": self.astype.str}

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return self.astype

    def _spec(self) -> dict[str, Any] | None:
        if self.dtype.kind != "f":
            return None
        pair = _typed_pair(self.dtype, self.astype, same_kind=False)
        if pair is None:
            return None
        return {"kind": "fixedscaleoffset", "elem": pair[0], "elem_out": pair[1],
                "scale": float(self.scale), "offset": float(self.offset)}

    def _encode_numpy(self, buf: Any) -> np.ndarray:
        arr = as_typed(buf, self.dtype)
        enc = np.around((arr - self.offset) * self.scale)
        return enc.astype(self.astype, copy=False)

    def _decode_numpy(self, buf: Any, out: Any) -> Any:
        enc = as_typed(buf, self.astype)
        dec = (enc / self.scale) + self.offset
        return write_out(dec.astype(self.dtype, copy=False), out, self.codec_id)


@register_codec
class AsType(Filter):
    """Cast to ``encode_dtype`` for storage and back to ``decode_dtype`` on read."""

    codec_id = "astype"

    def __init__(self, encode_dtype: Any, decode_dtype: Any) -> None:
        self.encode_dtype = np.dtype(encode_dtype)
        self.decode_dtype = np.dtype(decode_dtype)

    @property
    def dtype(self) -> np.dtype:
        return self.decode_dtype

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "encode_dtype": self.encode_dtype.str,
                "decode_dtype": self.decode_dtype.str}

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return self.encode_dtype

    def _spec(self) -> dict[str, Any] | None:
        # Float <-> integer casts of out-of-range values differ between C compilers'
        # and NumPy's conversions on some types: keep those on the NumPy path.
        pair = _typed_pair(self.decode_dtype, self.encode_dtype, same_kind=True)
        return None if pair is None else {"kind": "astype", "elem": pair[0], "elem_out": pair[1]}

    def _encode_numpy(self, buf: Any) -> np.ndarray:
        return as_typed(buf, self.decode_dtype).astype(self.encode_dtype)

    def _decode_numpy(self, buf: Any, out: Any) -> Any:
        dec = as_typed(buf, self.encode_dtype).astype(self.decode_dtype)
        return write_out(dec, out, self.codec_id)


@register_codec
class BitRound(Filter):
    """Round float mantissas to ``keepbits`` bits (round half to even on the bits)."""

    codec_id = "bitround"
    _MANTISSA: ClassVar[dict[str, int]] = {"f2": 10, "f4": 23, "f8": 52}

    def __init__(self, keepbits: int) -> None:
        if isinstance(keepbits, bool) or not isinstance(keepbits, int) or keepbits < 0:
            raise ValueError("keepbits must be a non-negative integer")
        self.keepbits = keepbits
        self.dtype: np.dtype | None = None  # learnt from the array it is used on

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "keepbits": self.keepbits}

    def decoded_itemsize(self) -> int | None:
        return None

    def core_step(self, dtype: np.dtype) -> dict[str, Any] | None:
        bits = self._MANTISSA.get(f"{dtype.kind}{dtype.itemsize}")
        if bits is None:
            raise ValueError(f"bitround works on float arrays, not {dtype.str!r}")
        if self.keepbits > bits:
            raise ValueError(f"keepbits {self.keepbits} exceeds the {bits} mantissa bits of {dtype.str}")
        elem = core_elem(dtype)
        return None if elem is None or elem == "f2" else {"kind": "bitround", "elem": elem,
                                                           "param": self.keepbits}

    def encode(self, buf: Any) -> np.ndarray:
        a = buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, dtype=self.dtype or "f4")
        if a.dtype.kind != "f" or a.dtype.itemsize > 8:
            raise TypeError("only float arrays (16-64 bit) can be bit-rounded")
        bits = self._MANTISSA[f"f{a.dtype.itemsize}"]
        if self.keepbits > bits:
            raise ValueError("keepbits too large for the given dtype")
        if self.keepbits == bits:
            return a
        b = a.copy().view(a.dtype.str.replace("f", "i"))
        maskbits = bits - self.keepbits
        mask = (np.array(-1, dtype=b.dtype) >> maskbits) << maskbits
        b += ((b >> maskbits) & 1) + ((1 << (maskbits - 1)) - 1)
        b &= mask
        return b.view(a.dtype)

    def decode(self, buf: Any, out: Any = None) -> Any:
        # Decoding is the identity; bytes stay bytes (numcodecs returns them as u1).
        a = buf if isinstance(buf, np.ndarray) else np.frombuffer(memoryview(buf).cast("B"), "u1")
        if a.dtype.kind == "i":
            a = a.view(a.dtype.str.replace("i", "f"))
        return write_out(a, out, self.codec_id)


@register_codec
class Shuffle(Filter):
    """Byte shuffle: the k-th byte of every element together, for ``elementsize`` bytes."""

    codec_id = "shuffle"

    def __init__(self, elementsize: int = 4) -> None:
        self.elementsize = int(elementsize)
        if self.elementsize < 0:
            raise ValueError("elementsize must be >= 0")

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "elementsize": self.elementsize}

    def decoded_itemsize(self) -> int | None:
        return None

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return np.dtype("u1")

    def _spec(self) -> dict[str, Any]:
        return {"kind": "shuffle", "param": self.elementsize}


@register_codec
class PackBits(Filter):
    """Pack booleans eight to a byte, after one byte giving the number of padding bits."""

    codec_id = "packbits"
    dtype = np.dtype(bool)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id}

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return np.dtype("u1")

    def _spec(self) -> dict[str, Any]:
        return {"kind": "packbits"}
