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

from exzarr.errors import (ExZarrError, InvalidArgumentError, InvalidChunksError,
                           InvalidMetadataError, InvalidShapeError)

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
        raise InvalidShapeError(f"shape must be non-negative integers, not {_short(shape)}")
    if len(dims) > MAX_NDIM:
        raise InvalidShapeError(
            f"shape has {len(dims)} dimensions; exzarr's core (like NumPy 1.x) handles at most "
            f"{MAX_NDIM} dimensions")
    big = next((d for d in dims if d > INT64_MAX), None)
    if big is not None:
        raise InvalidShapeError(
            f"shape has a dimension of {_magnitude(int(big))}, past int64's maximum (2**63 - 1)")
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
            raise InvalidChunksError(f"chunks must be positive integers, not {_short(dims)}")
        if c > INT64_MAX:
            raise InvalidChunksError(f"chunk size {_magnitude(int(c))} is past int64's maximum "
                                     "(2**63 - 1)")
        out.append(int(c))
    return tuple(out)


#: Most dimensions an array may have: the core's limit, and NumPy 1.x's.
MAX_NDIM = 32
INT64_MAX = 2 ** 63 - 1


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about untrusted values."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # deeply nested lists; ints past repr's digits
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 4] + " ..."


def _magnitude(n: int) -> str:
    """``n``, or ``about 2**k`` when it has too many digits to read."""
    return str(n) if n < 10 ** 30 else f"about 2**{n.bit_length() - 1}"


def _json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    for typ, name in ((bool, "boolean"), (dict, "object"), (list, "list"), (str, "string"),
                      ((int, float), "number")):
        if isinstance(value, typ):
            return name
    return "null" if value is None else type(value).__name__


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
    """The Python/numpy value of a JSON fill value (``None`` stays ``None``).

    Raises
    ------
    InvalidMetadataError
        The value does not fit the dtype (a word for a number, NaN for an integer, a
        list for a float, bytes that are not base64...); the message names both.
    """
    if value is None:
        return None
    try:
        return _decode_fill(value, dtype)
    except InvalidMetadataError:
        raise
    except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:  # binascii.Error too
        raise InvalidMetadataError(
            f"fill_value {_short(value)} does not fit dtype {dtype.str}: {exc}") from None


def _decode_fill(value: Any, dtype: np.dtype) -> Any:
    kind = dtype.kind
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "b":
        if isinstance(value, bool) or (number and value in (0, 1)):
            return bool(value)
        raise TypeError(f"a boolean fill value is true or false, not a JSON {_json_kind(value)}")
    if kind in "iu":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("an integer dtype's fill value is a whole number")
        if not (number or isinstance(value, bool)):
            raise TypeError(f"an integer fill value is a JSON number, not a {_json_kind(value)}")
        return integer_in_range(value, dtype)
    if kind == "f":
        if not (number or isinstance(value, str)):
            raise TypeError(f"a float fill value is a number or 'NaN'/'Infinity'/'-Infinity', "
                            f"not a JSON {_json_kind(value)}")
        return _json_to_float(value)
    if kind == "c":
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError("a complex fill value is [real, imag]")
            return complex(_decode_fill(value[0], np.dtype("f8")),
                           _decode_fill(value[1], np.dtype("f8")))
        return complex(_decode_fill(value, np.dtype("f8")))
    if kind in "SV":
        if isinstance(value, str):
            raw = base64.b64decode(value, validate=True)
            return np.frombuffer(raw.ljust(dtype.itemsize, b"\0")[: dtype.itemsize], dtype=dtype)[0]
        if not number:
            raise TypeError(f"a bytes fill value is a base64 string, not a JSON {_json_kind(value)}")
        if kind == "V" and value == 0:  # older writers' 0 for "all zero bytes"
            return np.frombuffer(bytes(dtype.itemsize), dtype=dtype)[0]
        return np.array(value, dtype=dtype)[()]
    if kind == "U":
        if not (isinstance(value, str) or number):
            raise TypeError(f"a unicode fill value is a string, not a JSON {_json_kind(value)}")
        return str(value)
    if kind in "mM":
        if isinstance(value, str):
            return np.array(value, dtype=dtype)[()]
        if not number or isinstance(value, float):
            raise TypeError("a datetime fill value is an integer count of its unit or 'NaT'")
        return np.array(integer_in_range(value, np.dtype("i8")), dtype="i8").view(
            dtype.newbyteorder("="))[()]
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
    """Parse a metadata document; InvalidMetadataError naming ``what`` if it is not
    UTF-8 JSON (or nests deeper than the parser can go)."""
    try:
        return json.loads(raw)
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidMetadataError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidMetadataError(f"{what} nests JSON too deeply to be metadata") from None


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
        """The metadata of a parsed ``.zarray`` document, checked field by field.

        Read leniently where peers differ (extra keys are kept; ``filters: []``, a
        missing ``dimension_separator`` or ``order``, a ``null`` fill value are
        accepted) and strictly elsewhere.

        Raises
        ------
        InvalidMetadataError
            Naming the field and what it holds: a missing or mistyped field, a shape or
            chunk count past int64, more than 32 dimensions, an unknown dtype, a fill
            value the dtype cannot hold, a codec config that is not an object.
        """
        if not isinstance(doc, dict):
            raise InvalidMetadataError(f".zarray holds a JSON {_json_kind(doc)}; it must hold an "
                                       "object with zarr_format, shape, chunks, dtype...")
        fmt = doc.get("zarr_format", 2)
        if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt != 2:
            raise InvalidMetadataError(
                f".zarray has zarr_format {_short(fmt)}; exzarr reads Zarr v2 (zarr_format 2)")
        for name in ("shape", "chunks", "dtype"):
            if name not in doc:
                raise InvalidMetadataError(f".zarray lacks the required key {name!r}")
        shape = _checked(".zarray", "shape", lambda v: normalize_shape(_json_list(v)), doc["shape"])
        chunks = _checked(".zarray", "chunks", lambda v: _stored_chunks(v, shape), doc["chunks"])
        dtype = _checked(".zarray", "dtype", _dtype_field, doc["dtype"])
        order = doc.get("order", "C")
        if order not in ("C", "F"):
            raise InvalidMetadataError(f".zarray order must be 'C' or 'F', not {_short(order)}")
        sep = doc.get("dimension_separator")
        sep = "." if sep is None else sep
        if sep not in (".", "/"):
            raise InvalidMetadataError(
                f".zarray dimension_separator must be '.' or '/', not {_short(sep)}")
        compressor = doc.get("compressor")
        if compressor is not None:
            _checked(".zarray", "compressor", _codec_config, compressor)
        filters = doc.get("filters")
        if filters is not None:
            if not isinstance(filters, list):
                raise InvalidMetadataError(
                    f".zarray filters must be a list of codec configs or null, not a JSON "
                    f"{_json_kind(filters)}")
            for f in filters:
                _checked(".zarray", "filters", _codec_config, f)
        filters = filters or None
        known = {"zarr_format", "shape", "chunks", "dtype", "compressor", "fill_value",
                 "order", "filters", "dimension_separator"}
        fill_value = decode_fill_value(doc.get("fill_value"), dtype)
        if (dtype.hasobject and isinstance(fill_value, str) and filters
                and filters[0].get("id") == "vlen-bytes"):
            # Byte-string fill values are stored as base64, as zarr-python writes them.
            try:
                fill_value = base64.standard_b64decode(fill_value)
            except ValueError:
                fill_value = fill_value.encode()
        _checked(".zarray", "fill_value", lambda v: fill_bytes(v, dtype), fill_value)
        return _checked(".zarray", "chunks", lambda _: cls(
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            compressor=compressor,
            fill_value=fill_value,
            order=order,
            filters=filters,
            dimension_separator=sep,
            extra={k: v for k, v in doc.items() if k not in known},
        ), chunks)

    @classmethod
    def decode(cls, raw: bytes) -> ArrayMeta:
        return cls.from_json(json_loads(raw, ".zarray"))


class StoredShapeError(InvalidMetadataError, InvalidShapeError):
    """A stored document's shape is invalid: both a metadata and a shape error."""

    code = InvalidMetadataError.code


class StoredChunksError(InvalidMetadataError, InvalidChunksError):
    """A stored document's chunks are invalid: both a metadata and a chunks error."""

    code = InvalidMetadataError.code


def _checked(document: str, name: str, check: Any, value: Any) -> Any:
    """``check(value)``, any failure of it an InvalidMetadataError naming the field
    (one that is also the InvalidShapeError or InvalidChunksError ``check`` raised)."""
    try:
        return check(value)
    except InvalidMetadataError as exc:
        raise InvalidMetadataError(f"{document} {name}: {exc}") from None
    except (ExZarrError, TypeError, ValueError, OverflowError, MemoryError, RecursionError,
            SyntaxError) as exc:
        cls = (StoredShapeError if isinstance(exc, InvalidShapeError) else StoredChunksError
               if isinstance(exc, InvalidChunksError) else InvalidMetadataError)
        raise cls(f"{document} {name} {_short(value)} is invalid: {exc}") from None


def _json_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"it must be a list of integers, not a JSON {_json_kind(value)}")
    return value


def _stored_chunks(value: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    # Stored chunks are explicit: no None or -1 for "the whole dimension".
    if any(isinstance(c, bool) or not isinstance(c, int) or c <= 0 for c in _json_list(value)):
        raise InvalidChunksError(f"chunks must be positive integers, not {_short(value)}")
    return normalize_chunks(value, shape)


def _dtype_field(value: Any) -> np.dtype:
    if not isinstance(value, (str, list)):
        raise TypeError(f"a dtype is a NumPy type string such as '<f8' or a list of fields, "
                        f"not a JSON {_json_kind(value)}")
    dtype = dtype_from_json(value)
    if dtype.itemsize == 0 and not dtype.hasobject:
        raise ValueError("a dtype of 0 bytes per element holds nothing")
    if dtype.kind in "mM" and np.datetime_data(dtype)[0] == "generic":
        raise ValueError("a datetime or timedelta dtype needs a unit, such as '<M8[ns]'")
    return dtype


def _codec_config(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise TypeError(f"a codec config is an object with a string 'id', not "
                        f"{_short(value)}")
    return value


def group_from_json(doc: Any, what: str = ZGROUP) -> None:
    """Check a parsed ``.zgroup`` document: an object with ``zarr_format`` 2.

    Other keys are allowed (zarr-python 3 writes ``consolidated_metadata``).

    Raises
    ------
    InvalidMetadataError
        Saying what ``what`` holds instead.
    """
    if not isinstance(doc, dict):
        raise InvalidMetadataError(
            f"{what} holds a JSON {_json_kind(doc)}; a Zarr v2 group's is {{\"zarr_format\": 2}}")
    if "zarr_format" not in doc:
        raise InvalidMetadataError(
            f"{what} has no zarr_format; a Zarr v2 group's is {{\"zarr_format\": 2}}")
    fmt = doc["zarr_format"]
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt != 2:
        raise InvalidMetadataError(
            f"{what} has zarr_format {_short(fmt)}; exzarr reads Zarr v2 groups (zarr_format 2)")


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


def listed_keys(store: Any, prefix: str) -> list[str]:
    """``store.list_prefix(prefix)`` without keys no store may hold (a hostile or
    foreign store's listing may yield them: they are skipped, never opened, written or
    deleted)."""
    from exzarr.storage.base import is_valid_key

    return [k for k in store.list_prefix(prefix) if is_valid_key(k)]


def clear_prefix(store: Any, prefix: str) -> None:
    """Delete everything stored below ``prefix`` ("" or ending in "/"), and what killed
    writers left there (temporary files no listing shows)."""
    store.delete_many(listed_keys(store, prefix))
    store.remove_leftovers(prefix)


def chunk_keys_of(keys: list[str], prefix: str, meta: ArrayMeta | None, *,
                  bounded: bool = True) -> list[str]:
    """Which of ``keys`` (store keys below ``prefix``) are chunks of the array there.

    A chunk key names a position of the array's grid; keys of arrays or groups nested
    below it are not its chunks, even where they look like them (a child array ``5``
    of a "/"-separated 2-d array holds ``5/0``). With ``meta`` None (unreadable
    metadata) only flat keys of digits count.

    Parameters
    ----------
    keys : list of str
        Store keys, all starting with ``prefix``.
    prefix : str
        The array's folder, "" or ending in "/".
    meta : ArrayMeta or None
        The array's metadata (its shape bounds the grid; its separator splits keys).
    bounded : bool
        Only positions inside the grid of ``meta.shape`` (the array's chunks). False:
        positions past it too, chunks a writer of a larger shape left behind, which
        a resize must delete before the array grows over them again.
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
                p.isdigit() and (not bounded or int(p) < n) for p, n in zip(parts, grid)))
        if ok:
            out.append(k)
    return out
