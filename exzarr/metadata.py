"""Zarr v2 metadata documents (``.zarray``, ``.zgroup``, ``.zattrs``) and fill values.

Writes minimal, standard JSON; reads leniently (extra keys, ``filters: []``, no
``dimension_separator``, ``null`` fill values, bare ``NaN`` in attributes).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exzarr.errors import (InvalidArgumentError, InvalidChunksError, InvalidMetadataError,
                           InvalidShapeError)

ZARRAY = ".zarray"
ZGROUP = ".zgroup"
ZATTRS = ".zattrs"
ZMETADATA = ".zmetadata"

# The original's dtype names, beside anything numpy.dtype accepts.
DTYPE_NAMES = {
    "int8": "|i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "|u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float32": "<f4", "float64": "<f8", "bool": "|b1",
    "complex64": "<c8", "complex128": "<c16",
}


#: dtype spellings of variable-length data, and the object codec each needs.
OBJECT_DTYPES = {"str": "vlen-utf8", "string": "vlen-utf8", "bytes": "vlen-bytes"}


def normalize_dtype(dtype: Any) -> np.dtype:
    """A numpy dtype from the original's names (``"int8"``, ``:float64``) or numpy's.

    ``str`` and ``bytes`` (the types or their names) mean variable-length data: an
    object dtype, stored with the ``vlen-utf8`` or ``vlen-bytes`` codec.
    """
    if dtype is str or dtype is bytes:
        return np.dtype(object)
    if isinstance(dtype, str):
        if dtype in OBJECT_DTYPES:
            return np.dtype(object)
        dtype = DTYPE_NAMES.get(dtype.lstrip(":"), dtype)
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidArgumentError(f"unsupported dtype {dtype!r}: {exc}") from exc
    if dt.kind == "T":  # NumPy 2's StringDType: stored as variable-length UTF-8
        return np.dtype(object)
    if dt.kind not in "biufcSUVmMO" or dt.names is not None or dt.subdtype:
        raise InvalidArgumentError(
            f"dtype {dt!r} is not supported; use a bool, integer, float, complex, "
            "bytes, unicode, datetime or str dtype"
        )
    return dt


def normalize_shape(shape: Any) -> tuple[int, ...]:
    """A tuple of non-negative ints, or InvalidShapeError."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise InvalidShapeError(f"shape must be a tuple of integers, not {shape!r}") from None
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise InvalidShapeError(f"shape must be non-negative integers, not {shape!r}")
    return tuple(int(d) for d in dims)


def normalize_chunks(chunks: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A tuple of positive ints, one per dimension, or InvalidChunksError.

    ``True`` picks about 1 MiB chunks; an int applies to every dimension; ``None`` or
    ``-1`` in one dimension means the whole dimension.
    """
    if chunks is True:
        return guess_chunks(shape, 8)
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        chunks = (int(chunks),) * len(shape)
    try:
        dims = list(chunks)
    except TypeError:
        raise InvalidChunksError(f"chunks must be a tuple of integers, not {chunks!r}") from None
    if len(dims) != len(shape):
        raise InvalidChunksError(
            f"chunks {tuple(dims)} have {len(dims)} dimensions but shape {shape} has {len(shape)}"
        )
    out = []
    for c, s in zip(dims, shape):
        if c is None or (isinstance(c, (int, np.integer)) and c == -1):
            c = max(s, 1)
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c <= 0:
            raise InvalidChunksError(f"chunks must be positive integers, not {tuple(dims)}")
        out.append(int(c))
    return tuple(out)


def guess_chunks(shape: tuple[int, ...], itemsize: int, target: int = 1 << 20) -> tuple[int, ...]:
    """Chunks of about ``target`` bytes, halving the largest dimension until they fit."""
    chunks = [max(s, 1) for s in shape]
    while math.prod(chunks) * itemsize > target and max(chunks) > 1:
        i = chunks.index(max(chunks))
        chunks[i] = (chunks[i] + 1) // 2
    return tuple(chunks)


# ---------------------------------------------------------------------------------------
# Fill values
# ---------------------------------------------------------------------------------------

def _float_to_json(v: float) -> Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return float(v)


def _json_to_float(v: Any) -> float:
    if isinstance(v, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if v in special:
            return special[v]
        try:  # zarr-python 2 stores some as hex ("0x7fc00000") or plain number strings.
            return float.fromhex(v) if v.startswith(("0x", "-0x")) else float(v)
        except ValueError:
            raise InvalidMetadataError(f"fill_value {v!r} is not a number") from None
    return float(v)


def encode_fill_value(value: Any, dtype: np.dtype) -> Any:
    """The JSON form of a fill value, as zarr-python writes it."""
    if value is None:
        return None
    kind = dtype.kind
    if kind == "b":
        return bool(value)
    if kind in "iu":
        return int(value)
    if kind == "f":
        return _float_to_json(float(value))
    if kind == "c":
        c = complex(value)
        return [_float_to_json(c.real), _float_to_json(c.imag)]
    if kind in "SV":
        if isinstance(value, (int, np.integer)) and value == 0:
            return base64.standard_b64encode(bytes(dtype.itemsize)).decode("ascii")
        raw = np.array(value, dtype=dtype).tobytes()
        return base64.standard_b64encode(raw).decode("ascii")
    if kind == "U":
        return str(np.array(value, dtype=dtype)[()])
    if kind in "mM":  # the count of units, in native order whatever the dtype's
        return int(np.array(value, dtype=dtype).astype(dtype.newbyteorder("=")).view("i8"))
    if kind == "O":
        if isinstance(value, bytes):
            return base64.standard_b64encode(value).decode("ascii")
        return value if isinstance(value, (str, int, float, bool)) else str(value)
    raise InvalidArgumentError(f"no fill_value encoding for dtype {dtype.str}")


def integer_in_range(value: Any, dtype: np.dtype) -> int:
    """``value`` as an int of integer ``dtype``; ValueError when the type cannot hold it."""
    v = int(value)
    info = np.iinfo(dtype)
    if not info.min <= v <= info.max:
        raise ValueError(f"{v} is outside the range of {dtype} ({info.min} to {info.max})")
    return v


def decode_fill_value(value: Any, dtype: np.dtype) -> Any:
    """The Python/numpy value of a JSON fill value (``None`` stays ``None``)."""
    if value is None:
        return None
    kind = dtype.kind
    if kind == "b":
        return bool(value)
    if kind in "iu":
        try:
            return integer_in_range(value, dtype)
        except (TypeError, ValueError) as exc:
            raise InvalidMetadataError(f"fill_value {value!r}: {exc}") from None
    if kind == "f":
        return _json_to_float(value)
    if kind == "c":
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return complex(_json_to_float(value[0]), _json_to_float(value[1]))
        return complex(_json_to_float(value))
    if kind in "SV":
        if isinstance(value, str):
            raw = base64.standard_b64decode(value)
            return np.frombuffer(raw.ljust(dtype.itemsize, b"\0")[: dtype.itemsize], dtype=dtype)[0]
        return np.array(value, dtype=dtype)[()]
    if kind == "U":
        return str(value)
    if kind in "mM":
        if isinstance(value, str):
            return np.array(value, dtype=dtype)[()]
        return np.array(int(value), dtype="i8").view(dtype.newbyteorder("="))[()]
    if kind == "O":
        return value
    raise InvalidMetadataError(f"no fill_value decoding for dtype {dtype.str}")


def fill_bytes(value: Any, dtype: np.dtype) -> bytes:
    """One element of ``value`` in ``dtype`` (``None`` reads as zero bytes)."""
    if value is None or dtype.hasobject:
        return bytes(dtype.itemsize)
    if dtype.kind == "V" and isinstance(value, (int, np.integer)) and value == 0:
        return bytes(dtype.itemsize)
    return np.array(value, dtype=dtype).tobytes()


# ---------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------

def dtype_to_json(dtype: np.dtype) -> Any:
    """A dtype as ``.zarray`` spells it: its type string, or for a structured dtype the
    list of ``[name, type(, shape)]`` fields (nested for nested ones), as zarr-python 2."""
    return dtype.str if dtype.names is None else [list(f) for f in dtype.descr]


def dtype_from_json(value: Any) -> np.dtype:
    """The dtype of a ``.zarray``'s ``dtype``: a type string or a (nested) field list."""
    def fields(items: Any) -> list[tuple[Any, ...]]:
        out = []
        for f in items:
            if not isinstance(f, (list, tuple)) or len(f) not in (2, 3):
                raise TypeError(f"a structured dtype field is [name, type] or [name, type, "
                                f"shape], not {f!r}")
            name, typ = f[0], fields(f[1]) if isinstance(f[1], list) else f[1]
            out.append((name, typ) if len(f) == 2 else (name, typ, tuple(f[2])))
        return out

    return np.dtype(fields(value) if isinstance(value, list) else value)


def _json_default(obj: Any) -> Any:
    """NumPy numbers and arrays (``attrs["max"] = a.max()``) as their Python values, as
    zarr 2 stores them; anything else is refused as json refuses it."""
    import numpy as np

    if isinstance(obj, (np.bool_, np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "biuf":
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def json_dumps(doc: Any) -> bytes:
    """Metadata JSON as zarr-python 3 writes it: indent 2, NaN allowed, UTF-8."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=True,
                      default=_json_default).encode("utf-8")


def json_loads(raw: bytes | str, what: str = "metadata") -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMetadataError(f"{what} is not valid JSON: {exc}") from exc


# The largest chunk, in bytes: offsets inside one stay far from overflowing 64 bits.
MAX_CHUNK_BYTES = 1 << 62


@dataclass
class ArrayMeta:
    """The contents of a ``.zarray`` document."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    compressor: dict[str, Any] | None
    fill_value: Any
    order: str = "C"
    filters: list[dict[str, Any]] | None = None
    dimension_separator: str = "."
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        nbytes = math.prod(self.chunks) * self.dtype.itemsize
        if nbytes > MAX_CHUNK_BYTES:
            raise InvalidChunksError(
                f"chunks {self.chunks} of {self.dtype} hold {nbytes} bytes each, more than "
                f"the {MAX_CHUNK_BYTES} a chunk can have; choose smaller chunks")

    def to_json(self) -> dict[str, Any]:
        doc = {
            "zarr_format": 2,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "dtype": dtype_to_json(self.dtype),
            "compressor": self.compressor,
            "fill_value": encode_fill_value(self.fill_value, self.dtype),
            "order": self.order,
            "filters": self.filters or None,
            "dimension_separator": self.dimension_separator,
        }
        doc.update({k: v for k, v in self.extra.items() if k not in doc})
        return doc

    def to_dict(self) -> dict[str, Any]:
        """The same as :meth:`to_json` (zarr-python 3's metadata name)."""
        return self.to_json()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    zarr_format = 2

    def encode(self) -> bytes:
        return json_dumps(self.to_json())

    @classmethod
    def from_json(cls, doc: Any) -> ArrayMeta:
        if not isinstance(doc, dict):
            raise InvalidMetadataError(".zarray must hold a JSON object")
        fmt = doc.get("zarr_format", 2)
        if fmt != 2:
            raise InvalidMetadataError(f"zarr_format {fmt} is not supported; exzarr reads Zarr v2")
        try:
            shape = normalize_shape(doc["shape"])
            chunks = normalize_chunks(doc["chunks"], shape)
            dtype = dtype_from_json(doc["dtype"])
        except KeyError as exc:
            raise InvalidMetadataError(f".zarray lacks the required key {exc.args[0]!r}") from None
        except TypeError as exc:
            raise InvalidMetadataError(f".zarray has an invalid dtype: {exc}") from None
        order = doc.get("order", "C")
        if order not in ("C", "F"):
            raise InvalidMetadataError(f".zarray order must be 'C' or 'F', not {order!r}")
        sep = doc.get("dimension_separator") or "."
        if sep not in (".", "/"):
            raise InvalidMetadataError(f".zarray dimension_separator must be '.' or '/', not {sep!r}")
        known = {"zarr_format", "shape", "chunks", "dtype", "compressor", "fill_value",
                 "order", "filters", "dimension_separator"}
        fill_value = decode_fill_value(doc.get("fill_value"), dtype)
        filters = doc.get("filters") or None
        if (dtype.hasobject and isinstance(fill_value, str) and filters
                and isinstance(filters[0], dict) and filters[0].get("id") == "vlen-bytes"):
            # Byte-string fill values are stored as base64, as zarr-python writes them.
            try:
                fill_value = base64.standard_b64decode(fill_value)
            except ValueError:
                fill_value = fill_value.encode()
        return cls(
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            compressor=doc.get("compressor"),
            fill_value=fill_value,
            order=order,
            filters=doc.get("filters") or None,
            dimension_separator=sep,
            extra={k: v for k, v in doc.items() if k not in known},
        )

    @classmethod
    def decode(cls, raw: bytes) -> ArrayMeta:
        return cls.from_json(json_loads(raw, ".zarray"))


def group_document() -> bytes:
    return json_dumps({"zarr_format": 2})


def ensure_parent_groups(store: Any, path: str, first: int = 0) -> None:
    """Write a ``.zgroup`` for each missing group above ``path`` in ``store`` (from the
    ``first``-th level down; 0 is the root), as zarr-python 3 does.

    Raises
    ------
    ContainsArrayError
        One of them is an array, which cannot hold members.
    """
    from exzarr.errors import ContainsArrayError

    parts = path.strip("/").split("/") if path.strip("/") else []
    for i in range(first, len(parts)):
        sub = "/".join(parts[:i])
        prefix = sub + "/" if sub else ""
        if store.contains(prefix + ZARRAY):
            raise ContainsArrayError(f"{sub or '/'!r} is an array: it cannot hold members")
        if not store.contains(prefix + ZGROUP):
            store.set(prefix + ZGROUP, group_document())


def chunk_keys_of(keys: list[str], prefix: str, meta: ArrayMeta | None) -> list[str]:
    """Which of ``keys`` (store keys below ``prefix``) are chunks of the array there.

    A chunk key names a position of the array's grid; keys of arrays or groups nested
    below it are not its chunks, even where they look like them (a child array ``5``
    of a "/"-separated 2-d array holds ``5/0``). With ``meta`` None (unreadable
    metadata) only flat keys of digits count.
    """
    nested = tuple(k[:-len(name)] for k in keys for name in (ZARRAY, ZGROUP)
                   if k.endswith("/" + name) and k != prefix + name)
    grid = [-(-s // c) for s, c in zip(meta.shape, meta.chunks)] if meta is not None else []
    out = []
    for k in keys:
        rest = k[len(prefix):]
        if nested and k.startswith(nested):
            continue
        if meta is None:
            ok = "/" not in rest and all(p.isdigit() for p in rest.split("."))
        else:
            parts = rest.split(meta.dimension_separator)
            ok = (parts == ["0"] if not grid else len(parts) == len(grid) and all(
                p.isdigit() and int(p) < n for p, n in zip(parts, grid)))
        if ok:
            out.append(k)
    return out
