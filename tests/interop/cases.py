"""The interoperability matrix: case descriptions shared by every peer's tests.

A case is a JSON-serialisable dict (so the zarr-python 2.18 worker, which runs under
another interpreter, receives the very same descriptions):

    id            readable name, unique
    dtype         numpy ``dtype.str`` with byte order (``"<i4"``, ``">c16"``, ``"|b1"``)
    compressor    numcodecs config dict, or None
    filters       list of numcodecs config dicts, or None
    order         "C" or "F"
    sep           dimension_separator, "." or "/"
    fill          fill_value in its ``.zarray`` JSON form (None, 0, "NaN", [1.5, -2.0], ...)
    shape/chunks  small 1-, 2- and 3-D geometries, most with edge chunks
    writes        list of {"region": [[start, stop, step], ...], "value": "data"|"fill"},
                  applied in order; cells never written read as fill
    write_empty   write_empty_chunks for writers that have the option

The module needs only the standard library and NumPy (>= 1.26): the worker imports it.
Anything using exzarr or a peer imports it inside the function.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import zlib
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------
# Axes of the matrix
# ---------------------------------------------------------------------------------------

DTYPES = [
    "|i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8",
    "|u1", "<u2", ">u2", "<u4", ">u4", "<u8", ">u8",
    "<f4", ">f4", "<f8", ">f8",
    "|b1",
    "<c8", ">c8", "<c16", ">c16",
]

BLOSC_CNAMES = ["blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"]
BLOSC_SHUFFLES = [0, 1, 2, -1]

# Every non-blosc compressor config is paired with every dtype.
PLAIN_COMPRESSORS: list[tuple[str, dict[str, Any] | None]] = [
    ("none", None),
    ("zlib1", {"id": "zlib", "level": 1}),
    ("zlib9", {"id": "zlib", "level": 9}),
    ("gzip1", {"id": "gzip", "level": 1}),
    ("gzip6", {"id": "gzip", "level": 6}),
    ("zstd1", {"id": "zstd", "level": 1}),
    ("zstd5", {"id": "zstd", "level": 5}),
    ("lz4a1", {"id": "lz4", "acceleration": 1}),
    ("lz4a10", {"id": "lz4", "acceleration": 10}),
]
# Once per dtype family, not per dtype.
ZSTD_CHECKSUM = ("zstd3ck", {"id": "zstd", "level": 3, "checksum": True})
# Beyond the issue's list, each with three dtypes: level extremes, libzstd's default and
# fast levels, blosc without compression, with its best level and with a set blocksize.
EXTRA_COMPRESSORS: list[dict[str, Any]] = [
    {"id": "zlib", "level": 0},
    {"id": "gzip", "level": 9},
    {"id": "zstd", "level": 0},
    {"id": "zstd", "level": -3},
    {"id": "zstd", "level": 19},
    {"id": "blosc", "cname": "zstd", "clevel": 0, "shuffle": 1, "blocksize": 0},
    {"id": "blosc", "cname": "lz4hc", "clevel": 9, "shuffle": 2, "blocksize": 0},
    {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 256},
    {"id": "blosc", "cname": "zlib", "clevel": 1, "shuffle": -1, "blocksize": 1024},
]


def blosc(cname: str, shuffle: int, clevel: int = 5) -> dict[str, Any]:
    return {"id": "blosc", "cname": cname, "clevel": clevel, "shuffle": shuffle, "blocksize": 0}


def family(dtype: str) -> str:
    kind = np.dtype(dtype).kind
    return {"i": "int", "u": "uint", "f": "float", "c": "complex", "b": "bool"}[kind]


# Nonzero fill values: the extremes where JSON integers get large.
_NONZERO_INT = {
    "i1": -7, "i2": -300, "i4": 123456, "i8": -(2**63),
    "u1": 255, "u2": 40000, "u4": 7, "u8": 2**64 - 1,
}

ORDERS = ["C", "F"]
SEPS = [".", "/"]
PATTERNS = ["full", "partial", "strided", "overwrite", "empty"]
GEOMETRIES = [
    ((53, 37), (20, 16)),        # 2-D, edge chunks in both dimensions
    ((1003,), (256,)),           # 1-D with an edge chunk
    ((13, 11, 9), (6, 5, 8)),    # 3-D with edge chunks everywhere
    ((40, 9), (16, 24)),         # a chunk wider than the array
    ((60, 48), (20, 16)),        # divisible: no edge chunks
    ((53, 37), (20, 16)),
]
# Chunks hold >= 240 elements: c-blosc stores buffers under 128 bytes uncompressed
# ("memcpyed"), which would leave its compressors untested.


def fill_choices(dtype: str) -> list[Any]:
    """The ``.zarray`` JSON fill values a dtype is tried with."""
    fam = family(dtype)
    code = np.dtype(dtype).kind + str(np.dtype(dtype).itemsize)
    if fam in ("int", "uint"):
        return [0, _NONZERO_INT[code], None]
    if fam == "float":
        return [0.0, 1.5, "NaN", "Infinity", "-Infinity", None, -2.25]
    if fam == "complex":
        return [[0.0, 0.0], [1.5, -2.0], None, ["NaN", 0.0], [0.0, "-Infinity"]]
    return [False, True, None]


# ---------------------------------------------------------------------------------------
# Building the cases
# ---------------------------------------------------------------------------------------

def _slug(dtype: str) -> str:
    return {"<": "le", ">": "be", "|": "na"}[dtype[0]] + dtype[1:]


def _compressor_label(cfg: dict[str, Any] | None) -> str:
    if cfg is None:
        return "none"
    if cfg["id"] == "blosc" and cfg["clevel"] == 5 and cfg["blocksize"] == 0:
        return f"blosc-{cfg['cname']}-s{cfg['shuffle']}"
    for label, c in PLAIN_COMPRESSORS + [ZSTD_CHECKSUM]:
        if c == cfg:
            return label
    return "-".join([cfg["id"]] + [f"{k}{v}" for k, v in cfg.items() if k != "id"])


def _blosc_pairs() -> list[tuple[str, dict[str, Any]]]:
    """(dtype, blosc config) pairs: every dtype with every cname (shuffle rotating), plus
    enough extra pairs that every (cname, shuffle) meets every item size."""
    pairs = []
    covered = set()
    for k, dt in enumerate(DTYPES):
        for j, cname in enumerate(BLOSC_CNAMES):
            shuffle = BLOSC_SHUFFLES[(k + j) % 4]
            pairs.append((dt, blosc(cname, shuffle)))
            covered.add((np.dtype(dt).itemsize, cname, shuffle))
    by_size: dict[int, list[str]] = {}
    for dt in DTYPES:
        by_size.setdefault(np.dtype(dt).itemsize, []).append(dt)
    extra = 0
    for size, dts in sorted(by_size.items()):
        for cname, shuffle in itertools.product(BLOSC_CNAMES, BLOSC_SHUFFLES):
            if (size, cname, shuffle) not in covered:
                pairs.append((dts[extra % len(dts)], blosc(cname, shuffle)))
                extra += 1
    return pairs


def _region(shape: tuple[int, ...], per_dim) -> list[list[int]]:
    return [list(per_dim(d, s)) for d, s in enumerate(shape)]


def _writes(pattern: str, shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[dict[str, Any]]:
    full = _region(shape, lambda d, s: (0, s, 1))
    if pattern == "full":
        return [{"region": full, "value": "data"}]
    if pattern == "partial":
        # The first chunk and a bit of the next; then a corner of the last (edge) chunk.
        # Chunks in between are never written.
        return [
            {"region": _region(shape, lambda d, s: (0, min(chunks[d] + 1, s), 1)), "value": "data"},
            {"region": _region(shape, lambda d, s: (max(s - 2, 0), s, 1)), "value": "data"},
        ]
    if pattern == "strided":
        # Every other index along the first dimension: every chunk partly written.
        return [{"region": [[1, shape[0], 2]] + full[1:], "value": "data"}]
    if pattern == "overwrite":
        # Everything, then the first chunk back to the fill value (an empty chunk).
        first = _region(shape, lambda d, s: (0, min(chunks[d], s), 1))
        return [{"region": full, "value": "data"}, {"region": first, "value": "fill"}]
    if pattern == "empty":
        return []
    raise ValueError(pattern)


def build_cases() -> list[dict[str, Any]]:
    """The matrix: every dtype x every plain compressor, every dtype x every blosc cname
    (and every cname x shuffle x item size), zstd with checksum once per dtype family;
    order, separator, fill value, write pattern, geometry and write_empty_chunks rotate
    deterministically so that each of their values meets every dtype."""
    combos: list[tuple[str, dict[str, Any] | None]] = []
    for dt in DTYPES:
        for _, cfg in PLAIN_COMPRESSORS:
            combos.append((dt, cfg))
    seen_family = set()
    for dt in DTYPES:
        if family(dt) not in seen_family:
            seen_family.add(family(dt))
            combos.append((dt, ZSTD_CHECKSUM[1]))
    combos.extend(_blosc_pairs())
    for j, cfg in enumerate(EXTRA_COMPRESSORS):
        for m in range(3):
            combos.append((DTYPES[(5 * j + 8 * m) % len(DTYPES)], cfg))

    per_dtype: dict[str, int] = {}
    cases = []
    for dt, cfg in combos:
        n = per_dtype.get(dt, 0)
        per_dtype[dt] = n + 1
        k = DTYPES.index(dt)
        fills = fill_choices(dt)
        shape, chunks = GEOMETRIES[(n + k) % len(GEOMETRIES)]
        case = {
            "dtype": dt,
            "compressor": cfg,
            "filters": None,
            "order": ORDERS[n % 2],
            "sep": SEPS[(n // 2) % 2],
            "fill": fills[(n + k) % len(fills)],
            "shape": list(shape),
            "chunks": list(chunks),
            "pattern": PATTERNS[(n + 2 * k) % len(PATTERNS)],
            "write_empty": (n // 4 + k) % 2 == 0,
        }
        case["writes"] = _writes(case["pattern"], shape, chunks)
        case["id"] = "-".join([
            _slug(dt), _compressor_label(cfg), case["order"],
            "sep" + ("dot" if case["sep"] == "." else "slash"),
            "fill_" + _fill_label(case["fill"]), "x".join(map(str, shape)), case["pattern"],
            "we" if case["write_empty"] else "noempty",
        ])
        cases.append(case)
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


def _fill_label(fill: Any) -> str:
    if fill is None:
        return "none"
    if isinstance(fill, list):
        return "c" + "_".join(_fill_label(x) for x in fill)
    return str(fill).replace("-", "m").replace(".", "p")


def _odd_geometry_cases() -> list[dict[str, Any]]:
    """0-d arrays (one chunk, key "0") and arrays with a zero-length dimension."""
    out = []
    for i, (dt, fill, cfg) in enumerate([
        ("<f8", "NaN", {"id": "zstd", "level": 1}), (">i4", -5, None),
        ("<c16", [1.5, -2.0], blosc("lz4", 1)), ("|b1", True, {"id": "zlib", "level": 1}),
        ("<u8", None, {"id": "lz4", "acceleration": 1}), (">f4", 0.0, {"id": "gzip", "level": 1}),
    ]):
        for pattern in ("full", "empty"):
            case = {"dtype": dt, "compressor": cfg, "filters": None, "order": "CF"[i % 2],
                    "sep": "./"[i % 2], "fill": fill, "shape": [], "chunks": [],
                    "pattern": pattern, "write_empty": pattern == "full"}
            case["writes"] = _writes(pattern, (), ())
            case["id"] = f"zerod-{_slug(dt)}-{_compressor_label(cfg)}-fill_{_fill_label(fill)}-{pattern}"
            out.append(case)
    for dt, shape, chunks in [("<i2", [0, 7], [5, 3]), ("<f8", [6, 0, 4], [4, 2, 3]), ("|u1", [0], [4])]:
        case = {"dtype": dt, "compressor": {"id": "zlib", "level": 1}, "filters": None,
                "order": "C", "sep": ".", "fill": 3, "shape": shape, "chunks": chunks,
                "pattern": "full", "write_empty": True}
        case["writes"] = _writes("full", tuple(shape), tuple(chunks))
        case["id"] = f"zerolen-{_slug(dt)}-{'x'.join(map(str, shape))}"
        out.append(case)
    return out


CASES = build_cases() + _odd_geometry_cases()


# ---------------------------------------------------------------------------------------
# Cases outside the matrix
# ---------------------------------------------------------------------------------------

def _extra_case(name: str, **kw: Any) -> dict[str, Any]:
    case = {"filters": None, "order": "C", "sep": ".", "write_empty": False,
            "shape": [13, 7], "chunks": [5, 3], "pattern": "partial"}
    case.update(kw)
    if "writes" not in case:
        case["writes"] = _writes(case["pattern"], tuple(case["shape"]), tuple(case["chunks"]))
    case["id"] = name
    return case


_DELTA8 = [{"id": "delta", "dtype": "<i8"}]
DELTA_CASES = [
    _extra_case("delta-i8-none-C-dot-partial", dtype="<i8", compressor=None, fill=0,
                filters=_DELTA8, exzarr_filters=[["delta", {"dtype": "int64"}]]),
    _extra_case("delta-i8-zlib-F-slash-full", dtype="<i8", compressor={"id": "zlib", "level": 1},
                fill=-5, order="F", sep="/", pattern="full", filters=_DELTA8,
                exzarr_filters=[["delta", {"dtype": "int64"}]]),
    _extra_case("delta-i8-blosc-C-dot-strided-3d", dtype="<i8", compressor=blosc("zstd", 1),
                fill=None, pattern="strided", shape=[7, 5, 4], chunks=[3, 2, 3],
                filters=_DELTA8, exzarr_filters=[["delta", {"dtype": "int64"}]]),
    _extra_case("delta-i8-zstd-C-dot-overwrite-we", dtype="<i8", compressor={"id": "zstd", "level": 1},
                fill=7, pattern="overwrite", write_empty=True, filters=_DELTA8,
                exzarr_filters=[["delta", {"dtype": "int64"}]]),
    _extra_case("delta-i4-lz4-F-dot-partial", dtype="<i4", compressor={"id": "lz4", "acceleration": 1},
                fill=3, order="F", filters=[{"id": "delta", "dtype": "<i4"}],
                exzarr_filters=[["delta", {"dtype": "int32"}]]),
]


def _holes_writes(shape: list[int], chunks: list[int]) -> list[dict[str, Any]]:
    """Data everywhere, then back to fill: a whole interior chunk, the whole corner edge
    chunk (so empty), and one cell of the first chunk (so not empty)."""
    full = [[0, s, 1] for s in shape]
    last = [[(s - 1) // c * c, s, 1] for s, c in zip(shape, chunks)]
    second = [[c, min(2 * c, s), 1] for s, c in zip(shape, chunks)]
    part = [[0, 1, 1] for _ in shape]
    return [
        {"region": full, "value": "data"},
        {"region": second, "value": "fill"},
        {"region": last, "value": "fill"},
        {"region": part, "value": "fill"},
    ]


def _all_fill_writes(shape: list[int]) -> list[dict[str, Any]]:
    return [{"region": [[0, s, 1] for s in shape], "value": "fill"}]


EMPTY_CHUNK_CASES = []
for _dt, _fill in [("<i4", 0), ("<f8", "NaN"), (">f8", "NaN"), ("<f4", None), ("|b1", True),
                   ("<c16", ["NaN", 0.0]), (">u2", 40000), ("|i1", -7)]:
    for _sep in (".", "/"):
        for _kind, _wr in (("holes", _holes_writes([13, 7], [5, 3])),
                           ("allfill", _all_fill_writes([13, 7]))):
            EMPTY_CHUNK_CASES.append(_extra_case(
                f"empty-{_slug(_dt)}-fill_{_fill_label(_fill)}-{_kind}-sep{'dot' if _sep == '.' else 'slash'}",
                dtype=_dt, compressor={"id": "zlib", "level": 1}, fill=_fill, sep=_sep,
                order="F" if _kind == "holes" else "C", writes=_wr, pattern=_kind))


# numcodecs (hence zarr-python 2 and 3) bundles c-blosc without snappy: it can neither
# write nor read blosc-snappy data (numcodecs.blosc.list_compressors() lacks it).
NUMCODECS_BLOSC_CNAMES = ("blosclz", "lz4", "lz4hc", "zlib", "zstd")


def numcodecs_supports(case: dict[str, Any]) -> bool:
    cfg = case["compressor"]
    return not (cfg and cfg["id"] == "blosc" and cfg["cname"] not in NUMCODECS_BLOSC_CNAMES)


def tensorstore_supports(case: dict[str, Any]) -> bool:
    """What tensorstore's zarr driver documents it can do (driver/zarr schema): no
    filters, compressors only zlib/gzip/blosc/bz2/zstd, and zstd with ``level`` only."""
    if case.get("filters"):
        return False
    cfg = case["compressor"]
    if cfg is None:
        return True
    if cfg["id"] not in ("zlib", "gzip", "blosc", "bz2", "zstd"):
        return False
    if cfg["id"] == "zstd" and set(cfg) - {"id", "level"}:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _json_float(v: Any) -> float:
    return _SPECIAL[v] if isinstance(v, str) else float(v)


def fill_python(fill: Any, dtype: str) -> Any:
    """The Python value of a JSON fill value, to pass to a library's create()."""
    if fill is None:
        return None
    fam = family(dtype)
    if fam == "bool":
        return bool(fill)
    if fam in ("int", "uint"):
        return int(fill)
    if fam == "float":
        return _json_float(fill)
    return complex(_json_float(fill[0]), _json_float(fill[1]))


def fill_element(fill: Any, dtype: str) -> Any:
    """What a never-written cell reads as: the fill value, or zero for ``null``."""
    value = fill_python(fill, dtype)
    return np.zeros((), dtype=dtype)[()] if value is None else np.array(value, dtype=dtype)[()]


def same_fill(a: Any, b: Any) -> bool:
    """Fill values equal, NaN equal to NaN, None only equal to None."""
    if a is None or b is None:
        return a is None and b is None
    a = complex(a) if not isinstance(a, (bool, np.bool_)) else bool(a)
    b = complex(b) if not isinstance(b, (bool, np.bool_)) else bool(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    return all(x == y or (math.isnan(x) and math.isnan(y))
               for x, y in ((a.real, b.real), (a.imag, b.imag)))


def same_int_fill(a: Any, b: Any) -> bool:
    """Exact comparison for large integers (complex() would round them)."""
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) \
            and not isinstance(a, (bool, np.bool_)) and not isinstance(b, (bool, np.bool_)):
        return int(a) == int(b)
    return same_fill(a, b)


def make_data(case: dict[str, Any]) -> np.ndarray:
    """Deterministic, compressible values (slow ramps) with about 10% random values over
    the dtype's whole range, its extremes and, for floats, NaN, infinities and -0.0."""
    dt = np.dtype(case["dtype"])
    shape = tuple(case["shape"])
    size = math.prod(shape)
    rng = np.random.default_rng(zlib.crc32(case["id"].encode()))
    nat = dt.newbyteorder("=")
    idx = np.arange(size)
    noisy = rng.random(size) < 0.1
    if dt.kind in "iu":
        info = np.iinfo(nat)
        flat = ((idx // 3) % 100 - (50 if dt.kind == "i" else 0)).astype(nat)
        flat[noisy] = rng.integers(info.min, info.max, size=int(noisy.sum()), dtype=nat,
                                   endpoint=True)
        specials = [info.min, info.max]
    elif dt.kind == "f":
        flat = np.round(np.sin(idx / 10.0) * 100, 1).astype(nat)
        flat[noisy] = rng.standard_normal(int(noisy.sum())) * 10.0 ** rng.integers(-3, 6, int(noisy.sum()))
        fi = np.finfo(nat)
        specials = [np.nan, np.inf, -np.inf, -0.0, fi.max, fi.tiny, fi.min]
    elif dt.kind == "c":
        part = np.dtype(f"f{nat.itemsize // 2}")
        flat = (np.round(np.sin(idx / 10.0) * 100, 1).astype(part)
                + 1j * np.round(np.cos(idx / 7.0) * 10, 1).astype(part)).astype(nat)
        n = int(noisy.sum())
        flat[noisy] = rng.standard_normal(n) * 100 + 1j * rng.standard_normal(n)
        specials = [complex(np.nan, 1.0), complex(np.inf, -np.inf), complex(0.0, np.nan)]
    else:
        flat = (idx // 5) % 2 == 0
        flat[noisy] = ~flat[noisy]
        specials = []
    for i, v in enumerate(specials if size else []):  # spread over several chunks
        flat[(i * 7919) % size] = v
    return flat.reshape(shape).astype(dt)


def region_slices(region: list[list[int]]) -> tuple[slice, ...]:
    return tuple(slice(a, b, c) for a, b, c in region)


def write_value(case: dict[str, Any], data: np.ndarray, write: dict[str, Any]) -> np.ndarray:
    """The block a write puts into its region."""
    sel = region_slices(write["region"])
    if write["value"] == "data":
        return data[sel]
    block = data[sel]
    return np.full(block.shape, fill_element(case["fill"], case["dtype"]), dtype=data.dtype)


def expected_array(case: dict[str, Any], data: np.ndarray | None = None) -> np.ndarray:
    """What a reader must return after the case's writes."""
    if data is None:
        data = make_data(case)
    out = np.full(tuple(case["shape"]), fill_element(case["fill"], case["dtype"]),
                  dtype=case["dtype"])
    for write in case["writes"]:
        out[region_slices(write["region"])] = write_value(case, data, write)
    return out


def _touched(case: dict[str, Any]) -> set[tuple[int, ...]]:
    chunks = case["chunks"]
    touched = set()
    for write in case["writes"]:
        per_dim = []
        for (a, b, c), ch in zip(write["region"], chunks):
            per_dim.append(sorted({i // ch for i in range(a, b, c)}))
        touched.update(itertools.product(*per_dim))
    return touched


def _equals_fill(block: np.ndarray, fill: Any) -> bool:
    if block.dtype.kind in "fc":
        return bool(np.all((block == fill) | (np.isnan(block) & np.isnan(fill))))
    return bool(np.all(block == fill))


def expected_chunks(case: dict[str, Any], data: np.ndarray | None = None,
                    write_empty: bool | None = None) -> set[tuple[int, ...]]:
    """Grid positions of the chunks a writer must have stored: those a write touched,
    less (unless write_empty_chunks) those left equal to the fill value everywhere."""
    if write_empty is None:
        write_empty = case["write_empty"]
    touched = _touched(case)
    if write_empty:
        return touched
    exp = expected_array(case, data)
    fill = fill_element(case["fill"], case["dtype"])
    keep = set()
    for pos in touched:
        sel = tuple(slice(p * c, (p + 1) * c) for p, c in zip(pos, case["chunks"]))
        if not _equals_fill(exp[sel], fill):
            keep.add(pos)
    return keep


def stored_chunks(path: str | os.PathLike[str], sep: str, ndim: int | None = None) -> set[tuple[int, ...]]:
    """Grid positions of the chunk files under an array directory (either separator).
    A 0-d array's only chunk is stored under "0" and is at grid position ()."""
    found = set()
    root = os.fspath(path)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith("."):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            parts = rel.replace(os.sep, "/").split("/") if sep == "/" else rel.split(".")
            if sep == "." and os.sep in rel:
                raise AssertionError(f"nested chunk file {rel!r} in a '.'-separated array")
            if not all(p.isdigit() for p in parts):
                raise AssertionError(f"unexpected file {rel!r} in the array directory")
            if ndim is not None and len(parts) != max(ndim, 1):
                raise AssertionError(f"chunk file {rel!r} in a {ndim}-d array")
            found.add(tuple(int(p) for p in parts) if ndim != 0 else ())
    return found


def _no_bare_constants(name: str) -> Any:
    raise AssertionError(f".zarray holds a bare {name}: not JSON (use the string form)")


def chunk_file(path: str | os.PathLike[str], pos: tuple[int, ...], sep: str) -> str:
    """The file of the chunk at grid position ``pos`` ("0" for a 0-d array)."""
    parts = [str(p) for p in pos] or ["0"]
    return os.path.join(os.fspath(path), *parts) if sep == "/" else os.path.join(os.fspath(path), ".".join(parts))


def zarray(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The .zarray document, parsed strictly (no bare NaN/Infinity)."""
    with open(os.path.join(os.fspath(path), ".zarray"), encoding="utf-8") as f:
        return json.load(f, parse_constant=_no_bare_constants)


def native(arr: np.ndarray) -> np.ndarray:
    """The same values in native byte order (tensorstore takes only those); 0-d stays 0-d."""
    return np.asarray(arr).astype(arr.dtype.newbyteorder("="), order="C", copy=True)


# ---------------------------------------------------------------------------------------
# exzarr side (imports exzarr lazily: the zarr 2.18 worker never calls these)
# ---------------------------------------------------------------------------------------

def update_writes(case: dict[str, Any]) -> list[dict[str, Any]]:
    """What exzarr writes into an array a peer wrote (read-modify-write of the peer's
    chunks): every third index along the first dimension back to fill, then the first
    chunk plus one row of the next with data again."""
    shape, chunks = case["shape"], case["chunks"]
    rest = [[0, s, 1] for s in shape[1:]]
    return [
        {"region": [[0, shape[0], 3]] + rest, "value": "fill"},
        {"region": [[0, min(chunks[0] + 1, shape[0]), 1]] + [[0, min(c, s), 1] for s, c in
                                                            zip(shape[1:], chunks[1:])],
         "value": "data"},
    ]


def updatable(case: dict[str, Any]) -> bool:
    return bool(case["shape"]) and all(case["shape"])


def exzarr_update(case: dict[str, Any], path: str | os.PathLike[str],
                  data: np.ndarray | None = None) -> dict[str, Any]:
    """Open a peer's array r+, apply update_writes; return the case as now expected."""
    import exzarr

    if data is None:
        data = make_data(case)
    arr = exzarr.open(os.fspath(path), mode="r+", write_empty_chunks=case["write_empty"])
    upd = update_writes(case)
    for write in upd:
        arr[region_slices(write["region"])] = write_value(case, data, write)
    return dict(case, writes=case["writes"] + upd)


def exzarr_write(case: dict[str, Any], path: str | os.PathLike[str], data: np.ndarray | None = None):
    import exzarr

    if data is None:
        data = make_data(case)
    filters = case.get("filters")
    if case.get("exzarr_filters") is not None:  # the original's (name, options) tuples
        filters = [tuple(f) for f in case["exzarr_filters"]]
    arr = exzarr.create(
        shape=tuple(case["shape"]), chunks=tuple(case["chunks"]), dtype=case["dtype"],
        compressor=case["compressor"], filters=filters,
        fill_value=fill_python(case["fill"], case["dtype"]), order=case["order"],
        dimension_separator=case["sep"], storage="filesystem", path=os.fspath(path),
        write_empty_chunks=case["write_empty"],
    )
    for write in case["writes"]:
        arr[region_slices(write["region"])] = write_value(case, data, write)
    return arr


def check_exzarr_reads(case: dict[str, Any], path: str | os.PathLike[str],
                       data: np.ndarray | None = None, *, codec_equal=None) -> None:
    """exzarr reads what a peer wrote: values, dtype, shape, fill, order, chunk count."""
    import exzarr

    arr = exzarr.open(os.fspath(path), mode="r")
    assert arr.dtype == np.dtype(case["dtype"]) and arr.dtype.str == case["dtype"], arr.dtype
    assert arr.shape == tuple(case["shape"])
    assert arr.chunks == tuple(case["chunks"])
    assert arr.order == case["order"]
    assert arr.dimension_separator == case["sep"]
    assert same_int_fill(arr.fill_value, fill_python(case["fill"], case["dtype"])), \
        (arr.fill_value, case["fill"])
    if codec_equal is not None:
        got = arr.compressor.get_config() if arr.compressor is not None else None
        assert codec_equal(got, case["compressor"]), (got, case["compressor"])
    values = arr[...]
    if case["shape"]:  # a 0-d read gives a NumPy scalar, always native-endian
        assert values.dtype == np.dtype(case["dtype"])
    expected = expected_array(case, data)
    np.testing.assert_array_equal(values, expected)
    if case["shape"]:
        # Partial reads: strided across chunk boundaries, and reversed.
        sel = tuple(slice(1, max(s - 1, 1), 2) for s in case["shape"])
        np.testing.assert_array_equal(arr[sel], expected[sel])
        np.testing.assert_array_equal(arr[::-1], expected[::-1])
    assert arr.nchunks_initialized == len(stored_chunks(path, case["sep"], len(case["shape"])))
    # And through load(), the whole-array convenience.
    np.testing.assert_array_equal(exzarr.load(os.fspath(path)), expected_array(case, data))


def check_exzarr_wrote(case: dict[str, Any], path: str | os.PathLike[str],
                       data: np.ndarray | None = None) -> None:
    """What must be on disk after exzarr_write: the chunk files and the .zarray."""
    assert stored_chunks(path, case["sep"], len(case["shape"])) == expected_chunks(case, data)
    if case["compressor"] and case["compressor"]["id"] == "blosc":
        check_blosc_chunks(case, path)
    doc = zarray(path)
    assert doc["zarr_format"] == 2
    assert doc["shape"] == case["shape"] and doc["chunks"] == case["chunks"]
    assert doc["dtype"] == case["dtype"]
    assert doc["order"] == case["order"]
    assert doc.get("dimension_separator", ".") == case["sep"]
    if not case.get("filters"):
        assert doc["filters"] is None, doc["filters"]
    else:
        assert isinstance(doc["filters"], list) and len(doc["filters"]) == len(case["filters"])
        for got, want in zip(doc["filters"], case["filters"]):
            assert codec_equal(got, want), (got, want)
    assert codec_equal(doc["compressor"], case["compressor"]), (doc["compressor"], case["compressor"])
    got, want = doc["fill_value"], case["fill"]
    if want is None:
        assert got is None
    elif family(case["dtype"]) in ("int", "uint"):
        assert isinstance(got, int) and not isinstance(got, bool) and got == want
    elif family(case["dtype"]) == "bool":
        assert got is want
    else:
        assert same_fill(fill_python(got, case["dtype"]), fill_python(want, case["dtype"])), (got, want)


def codec_equal(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Two codec configs mean the same codec to numcodecs (``checksum: false`` or a
    missing default member do not make a difference)."""
    if a is None or b is None:
        return a is None and b is None
    import numcodecs

    return numcodecs.get_codec(dict(a)) == numcodecs.get_codec(dict(b))


def case_ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in cases]


# c-blosc 1.x header: version, versionlz, flags, typesize, nbytes, blocksize, cbytes.
BLOSC_FORMATS = {"blosclz": 0, "lz4": 1, "lz4hc": 1, "snappy": 2, "zlib": 3, "zstd": 4}


def check_blosc_chunks(case: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """The chunks exzarr wrote are blosc frames of the configured compressor and shuffle,
    and compressed ones exist (not all stored "memcpyed")."""
    cfg = case["compressor"]
    itemsize = np.dtype(case["dtype"]).itemsize
    shuffle = cfg["shuffle"]
    if shuffle == -1:
        shuffle = 2 if itemsize == 1 else 1
    chunk_bytes = math.prod(case["chunks"]) * itemsize
    compressed = 0
    for pos in stored_chunks(path, case["sep"], len(case["shape"])):
        with open(chunk_file(path, pos, case["sep"]), "rb") as f:
            head = f.read(16)
        version, _versionlz, flags, typesize = head[:4]
        nbytes = int.from_bytes(head[4:8], "little")
        assert version == 2, f"blosc header version {version}"
        assert typesize == itemsize, f"blosc typesize {typesize}, itemsize {itemsize}"
        assert nbytes == chunk_bytes, f"blosc nbytes {nbytes}, chunk has {chunk_bytes}"
        memcpyed = bool(flags & 0x02)
        if not memcpyed:
            compressed += 1
            assert flags >> 5 == BLOSC_FORMATS[cfg["cname"]], f"blosc flags {flags:#04x}"
            if shuffle == 1:
                assert flags & 0x01 or itemsize == 1, f"no byte shuffle in flags {flags:#04x}"
            if shuffle == 2:
                assert flags & 0x04 and not flags & 0x01, f"no bit shuffle in flags {flags:#04x}"
            if shuffle == 0:
                assert not flags & 0x05, f"shuffled though shuffle=0: flags {flags:#04x}"
    # blosclz, and snappy on 1-byte items, give up on these small chunks (numcodecs' and
    # tensorstore's c-blosc too, byte for byte).
    gives_up = (cfg["cname"] == "blosclz" or (cfg["cname"] == "snappy" and itemsize == 1)
                or cfg["clevel"] == 0 or chunk_bytes < 128)  # c-blosc copies buffers < 128 B
    if any(w["value"] == "data" for w in case["writes"]) and not gives_up:
        assert compressed, "every blosc chunk is stored uncompressed (memcpyed)"
