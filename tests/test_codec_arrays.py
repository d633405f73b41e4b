"""Arrays using every codec, filter chain and the Zarr v2 dtypes beyond plain numbers
(fixed bytes ``S``, unicode ``U``, datetime64/timedelta64, object str and bytes),
written by exzarr and read by zarr-python 3 and zarr-python 2.18, and the other way.

zarr-python 3 runs in this process (``zarr.create_array(..., zarr_format=2)`` with
numcodecs objects); zarr-python 2.18 runs in its own interpreter (EXZARR_ZARR2_PYTHON),
once per direction for the whole batch, through ``tests/codec_zarr2_worker.py``.

Also: the original ExZarr filter spellings (``("delta", {"dtype": "int64"})``), the
metadata of ``dtype=str`` / ``dtype=bytes`` arrays, and the errors of unknown codecs
and bad options, raised before anything is written.
"""

from __future__ import annotations

import itertools
import json
import math
import traceback
import zlib
from pathlib import Path

import numcodecs
import numpy as np
import pytest

import exzarr
from tests.codec_zarr2_worker import fill_python, fill_to_json, load_values, region_slices, save_values
from tests.interop.conftest import run_zarr2_worker, zarr2_python

WORKER = Path(__file__).with_name("codec_zarr2_worker.py")
LABELS = ["apple", "bär", "日本", "", "kiwi"]

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# ---------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------

def _full(shape):
    return [[[0, s] for s in shape]]


def _partial(shape, chunks):
    """The first chunk and one more row; then the last two rows. Chunks in between are
    never written (they read as fill)."""
    rest = [[0, s] for s in shape[1:]]
    return [[[0, min(chunks[0] + 1, shape[0])]] + rest, [[max(shape[0] - 2, 0), shape[0]]] + rest]


def case(cid, dtype, *, filters=None, compressor=None, fill=0, shape=(47,), chunks=(10,),
         order="C", data="ramp", partial=False, peers=("zarr3", "zarr2"), exzarr_filters=None,
         exzarr_kwargs=None, params=None):
    shape, chunks = list(shape), list(chunks)
    return {
        "id": cid, "dtype": np.dtype(dtype).str, "filters": filters, "compressor": compressor,
        "fill": fill, "shape": shape, "chunks": chunks, "order": order, "data": data,
        "writes": _partial(shape, chunks) if partial else _full(shape), "partial": partial,
        "peers": list(peers), "exzarr_filters": exzarr_filters, "exzarr_kwargs": exzarr_kwargs,
        "params": params or {},
    }


ZSTD1 = {"id": "zstd", "level": 1}
ZLIB1 = {"id": "zlib", "level": 1}
LZ4 = {"id": "lz4", "acceleration": 1}
BZ2 = {"id": "bz2", "level": 1}
LZMA = {"id": "lzma", "format": 1, "check": -1, "preset": None, "filters": None}
LZMA1 = {"id": "lzma", "format": 1, "check": 1, "preset": 1, "filters": None}
BLOSC = {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1, "blocksize": 0}


def delta(dtype, astype=None):
    return {"id": "delta", "dtype": dtype, "astype": astype or dtype}


def fso(offset, scale, dtype, astype):
    return {"id": "fixedscaleoffset", "offset": offset, "scale": scale, "dtype": dtype, "astype": astype}


CASES = [
    # delta, with narrowing astype and f8 <-> f4
    case("delta-i8-zstd-original-spelling", "<i8", filters=[delta("<i8")], compressor=ZSTD1,
         data="ints", exzarr_filters=[("delta", {"dtype": "int64"})]),
    case("delta-i4-astype-i2-zlib", "<i4", filters=[delta("<i4", "<i2")], compressor=ZLIB1,
         data="small"),
    case("delta-i8-astype-i1-wrapping", "<i8", filters=[delta("<i8", "|i1")], compressor=None,
         data="small", shape=(50,)),
    case("delta-u2-2d-F-lz4", "<u2", filters=[delta("<u2")], compressor=LZ4, data="ints",
         shape=(13, 9), chunks=(5, 4), order="F", partial=True),
    case("delta-f8-astype-f4", "<f8", filters=[delta("<f8", "<f4")], compressor=ZSTD1,
         data="field", shape=(50,)),
    case("delta-f4-astype-f8", "<f4", filters=[delta("<f4", "<f8")], compressor=None,
         data="big-field", shape=(50,)),
    # shuffle
    case("shuffle-8-f8-zstd", "<f8", filters=[{"id": "shuffle", "elementsize": 8}],
         compressor=ZSTD1, data="field"),
    case("shuffle-4-i4-2d-F-lz4", "<i4", filters=[{"id": "shuffle", "elementsize": 4}],
         compressor=LZ4, data="ints", shape=(13, 9), chunks=(5, 4), order="F", partial=True),
    case("shuffle-16-c16", "<c16", filters=[{"id": "shuffle", "elementsize": 16}],
         compressor=ZLIB1, data="field"),
    case("shuffle-2-u2-none", "<u2", filters=[{"id": "shuffle", "elementsize": 2}], data="ints"),
    # quantize
    case("quantize-2-f8-zlib", "<f8", filters=[{"id": "quantize", "digits": 2, "dtype": "<f8",
                                                  "astype": "<f8"}], compressor=ZLIB1, data="field"),
    case("quantize-3-f4-astype-f2", "<f4", filters=[{"id": "quantize", "digits": 1, "dtype": "<f4",
                                                       "astype": "<f2"}], compressor=ZSTD1, data="field"),
    case("quantize-0-f8-astype-f4", "<f8", filters=[{"id": "quantize", "digits": 0, "dtype": "<f8",
                                                       "astype": "<f4"}], data="field"),
    # fixedscaleoffset
    case("fso-f8-u2", "<f8", filters=[fso(1000, 10, "<f8", "<u2")], compressor=ZSTD1, data="fso",
         params={"offset": 1000, "scale": 10, "range": 6000}),
    case("fso-f4-i2", "<f4", filters=[fso(0, 100, "<f4", "<i2")], compressor=LZ4, data="fso",
         params={"offset": -300, "scale": 100, "range": 600}),
    case("fso-i4-u1-int-params", "<i4", filters=[fso(100, 1, "<i4", "|u1")], compressor=ZLIB1,
         data="fso", params={"offset": 100, "scale": 1, "range": 250}),
    case("fso-f8-f4-float-params", "<f8", filters=[fso(0.5, 2.5, "<f8", "<f4")], data="field"),
    # bitround
    case("bitround-10-f4-specials", "<f4", filters=[{"id": "bitround", "keepbits": 10}],
         compressor=ZSTD1, data="specials"),
    case("bitround-20-f8", "<f8", filters=[{"id": "bitround", "keepbits": 20}], compressor=BLOSC,
         data="specials"),
    case("bitround-0-f4", "<f4", filters=[{"id": "bitround", "keepbits": 0}], data="field"),
    # astype
    case("astype-f4-from-f8", "<f8", filters=[{"id": "astype", "encode_dtype": "<f4",
                                                 "decode_dtype": "<f8"}], compressor=ZLIB1, data="field"),
    case("astype-i1-from-i8", "<i8", filters=[{"id": "astype", "encode_dtype": "|i1",
                                                 "decode_dtype": "<i8"}], data="small"),
    case("astype-u2-from-f8", "<f8", filters=[{"id": "astype", "encode_dtype": "<u2",
                                                 "decode_dtype": "<f8"}], compressor=ZSTD1, data="whole"),
    # packbits
    case("packbits-bool-2d", "|b1", filters=[{"id": "packbits"}], compressor=ZSTD1, data="mask",
         shape=(13, 11), chunks=(5, 3), partial=True, fill=False),
    # checksums (numcodecs 0.15 in the zarr 2.18 environment has no CRC32C: it needs the
    # crc32c package there)
    case("crc32-start", "<i2", filters=[{"id": "crc32"}], data="ints", partial=True),
    case("crc32-end-zstd", "<f8", filters=[{"id": "crc32", "location": "end"}], compressor=ZSTD1,
         data="field"),
    case("adler32-start", "<u4", filters=[{"id": "adler32"}], compressor=LZ4, data="ints"),
    case("adler32-end", "|u1", filters=[{"id": "adler32", "location": "end"}], data="ints"),
    case("crc32c-end", "<i4", filters=[{"id": "crc32c"}], compressor=ZLIB1, data="ints",
         peers=("zarr3",)),
    case("crc32c-start", "<f4", filters=[{"id": "crc32c", "location": "start"}], data="field",
         peers=("zarr3",)),
    case("fletcher32-S3-odd", "|S3", filters=[{"id": "fletcher32"}], data="bytes", fill="",
         chunks=(7,)),
    case("fletcher32-i2-zstd", "<i2", filters=[{"id": "fletcher32"}], compressor=ZSTD1, data="ints",
         partial=True),
    # compressors run through the standard library
    case("bz2-f8", "<f8", compressor=BZ2, data="field", partial=True),
    case("lzma-i2", "<i2", compressor=LZMA, data="ints"),
    case("lzma-preset1-crc32check-2d-F", "<f4", compressor=LZMA1, data="field", shape=(13, 9),
         chunks=(5, 4), order="F"),
    # chains
    case("quantize-shuffle-original-spelling", "<f8",
         filters=[{"id": "quantize", "digits": 2, "dtype": "<f8", "astype": "<f8"},
                  {"id": "shuffle", "elementsize": 8}], compressor=ZSTD1, data="field",
         exzarr_filters=[("quantize", {"digits": 2, "dtype": "float64"}),
                         ("shuffle", {"elementsize": 8})]),
    case("delta-shuffle-crc32-zlib", "<i8", filters=[delta("<i8"), {"id": "shuffle", "elementsize": 8},
                                                     {"id": "crc32"}], compressor=ZLIB1, data="ints"),
    case("fso-delta-adler32", "<f8", filters=[fso(1000, 10, "<f8", "<u2"), delta("<u2"),
                                              {"id": "adler32", "location": "end"}],
         compressor=ZSTD1, data="fso", params={"offset": 1000, "scale": 10, "range": 6000}),
    case("bitround-shuffle-fletcher32", "<f4", filters=[{"id": "bitround", "keepbits": 7},
                                                        {"id": "shuffle", "elementsize": 4},
                                                        {"id": "fletcher32"}], compressor=LZ4,
         data="field"),
    # fixed-size bytes and unicode
    case("S5-zlib", "|S5", compressor=ZLIB1, data="bytes", fill="", partial=True),
    case("S5-fill-bz2", "|S5", compressor=BZ2, data="bytes", fill="YWJj", partial=True),
    case("U4-zstd", "<U4", compressor=ZSTD1, data="unicode", fill="", partial=True),
    case("U6-fill-none", "<U6", data="unicode", fill="zz", partial=True),
    case("U7-categorize-zlib", "<U7", filters=[{"id": "categorize", "labels": LABELS, "dtype": "<U7",
                                                "astype": "|u1"}], compressor=ZLIB1, data="labels",
         fill=""),
    # datetime64 / timedelta64
    case("M8ns-lz4", "<M8[ns]", compressor=LZ4, data="dates", partial=True),
    case("M8D-zlib", "<M8[D]", compressor=ZLIB1, data="dates"),
    case("M8s-delta", "<M8[s]", filters=[delta("<i8")], compressor=ZSTD1, data="dates"),
    case("M8ms-NaT-fill", "<M8[ms]", data="dates", fill=-(2**63), partial=True),
    case("m8ms-bz2", "<m8[ms]", compressor=BZ2, data="dates", partial=True),
    case("m8us-shuffle", "<m8[us]", filters=[{"id": "shuffle", "elementsize": 8}], data="dates"),
    case("m8h-NaT-fill-zstd", "<m8[h]", compressor=ZSTD1, data="dates", fill=-(2**63)),
    # object arrays: str with vlen-utf8, bytes with vlen-bytes, str with categorize
    case("str-vlen-utf8-zstd", "|O", filters=[{"id": "vlen-utf8"}], compressor=ZSTD1, data="text",
         fill="", partial=True, exzarr_kwargs={"dtype": "str"}),
    case("str-vlen-utf8-bz2-2d", "|O", filters=[{"id": "vlen-utf8"}], compressor=BZ2, data="text",
         fill="", shape=(9, 7), chunks=(4, 3), exzarr_kwargs={"dtype": "str"}),
    case("bytes-vlen-bytes-zlib", "|O", filters=[{"id": "vlen-bytes"}], compressor=ZLIB1,
         data="binary", fill="", exzarr_kwargs={"dtype": "bytes"}),
    case("str-categorize-object", "|O", filters=[{"id": "categorize", "labels": LABELS, "dtype": "|O",
                                                  "astype": "|u1"}], compressor=ZLIB1, data="labels",
         fill="", peers=("zarr2",)),  # zarr-python 3 requires vlen-utf8 for str data
]
CASE_IDS = [c["id"] for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)
ZARR3_CASES = [c for c in CASES if "zarr3" in c["peers"]]
ZARR2_CASES = [c for c in CASES if "zarr2" in c["peers"]]


# ---------------------------------------------------------------------------------------
# Data and expectations
# ---------------------------------------------------------------------------------------

def make_data(c) -> np.ndarray:
    dt = np.dtype(c["dtype"])
    shape = tuple(c["shape"])
    n = math.prod(shape)
    rng = np.random.default_rng(zlib.crc32(c["id"].encode()))
    kind = c["data"]
    if kind == "ints":
        info = np.iinfo(dt)
        steps = rng.integers(-3, 4, size=n)
        flat = np.cumsum(steps) + (int(info.min) + int(info.max)) // 2 + 7
        flat[rng.random(n) < 0.05] = info.max
        flat = flat.astype(dt)
    elif kind == "small":
        flat = rng.integers(-100, 101, size=n).astype(dt)
    elif kind in ("field", "big-field", "specials", "whole"):
        x = np.linspace(0, 6 * np.pi, n)
        flat = np.round(20 * np.sin(x) * np.cos(x / 3) + rng.normal(scale=0.5, size=n), 2)
        if kind == "big-field":  # magnitudes from 1 to 1e7: float32 differences round
            flat = flat * 10.0 ** rng.integers(0, 8, size=n)
        if kind == "whole":
            flat = np.abs(np.round(flat * 100))
        if dt.kind == "c":
            flat = flat + 1j * np.round(rng.normal(size=n), 3)
        flat = flat.astype(dt)
        if kind == "specials":
            fi = np.finfo(dt)
            for i, v in enumerate([np.nan, np.inf, -np.inf, -0.0, fi.tiny / 3, -fi.tiny, fi.max,
                                   fi.min, 1.0, fi.eps]):
                flat[(i * 13 + 1) % n] = v
    elif kind == "fso":
        p = c["params"]
        flat = (p["offset"] + rng.uniform(0, p["range"], size=n) / p["scale"])
        flat = np.round(flat).astype(dt) if dt.kind in "iu" else flat.astype(dt)
    elif kind == "mask":
        flat = rng.random(n) < 0.3
    elif kind == "bytes":
        alphabet = np.frombuffer(b"abcXYZ019\xff\x80 -", dtype="u1")
        flat = np.array([bytes(rng.choice(alphabet, size=rng.integers(0, dt.itemsize + 1)))
                         for _ in range(n)], dtype=dt)
    elif kind == "unicode":
        alphabet = list("abcé日本🎉 Z")
        flat = np.array(["".join(rng.choice(alphabet, size=rng.integers(0, dt.itemsize // 4 + 1)))
                         for _ in range(n)], dtype=dt)
    elif kind == "labels":
        pool = LABELS + ["cherry", "APPLE", "x"]  # not labels: they read back as ""
        flat = np.array([pool[i] for i in rng.integers(0, len(pool), size=n)],
                        dtype=object if dt.hasobject else dt)
    elif kind == "dates":
        base = {"D": 19000, "s": 1_700_000_000, "ms": 1_700_000_000_000, "ns": 1_700_000_000 * 10**9,
                "us": 3600 * 10**6, "h": 500}[np.datetime_data(dt)[0]]
        ints = base + np.cumsum(rng.integers(-5, 50, size=n))
        ints[rng.random(n) < 0.08] = np.iinfo("i8").min  # NaT
        flat = ints.astype("i8").view(dt)
    elif kind == "text":
        pool = ["", "a", "hello", "grüße", "日本語テキスト", "🎉", "x" * 40, "tab\tnew\nline", "\x00nul"]
        flat = np.empty(n, dtype=object)
        flat[:] = [pool[i] + ("" if i % 3 else str(j)) for j, i in enumerate(rng.integers(0, len(pool), n))]
    elif kind == "binary":
        flat = np.empty(n, dtype=object)
        flat[:] = [bytes(rng.integers(0, 256, size=rng.integers(0, 12), dtype="u1")) for _ in range(n)]
    else:
        raise ValueError(kind)
    return flat.reshape(shape)


def fill_element(c):
    """What a never-written cell reads as."""
    value = fill_python(c)
    dt = np.dtype(c["dtype"])
    if dt.hasobject:
        return b"" if c["filters"][0]["id"] == "vlen-bytes" else value
    return np.zeros((), dtype=dt)[()] if value is None else np.array(value, dtype=dt)[()]


def logical_array(c, data) -> np.ndarray:
    """The values after the case's writes (fill where never written)."""
    out = np.empty(data.shape, dtype=data.dtype)
    out[...] = fill_element(c)
    for region in c["writes"]:
        sel = region_slices(region)
        out[sel] = data[sel]
    return out


def expected_array(c, data) -> np.ndarray:
    """What readers must return: each chunk (padded with fill) through numcodecs' filter
    chain, encode then decode, so lossy filters give numcodecs' exact values."""
    logical = logical_array(c, data)
    if not c["filters"]:
        return logical
    filters = [numcodecs.get_codec(dict(f)) for f in c["filters"]]
    chunks, shape = c["chunks"], c["shape"]
    grid = [math.ceil(s / k) for s, k in zip(shape, chunks)]
    out = logical.copy()
    written = set()
    for region in c["writes"]:
        written |= _chunks_touched(region, chunks)
    for pos in np.ndindex(*grid):
        if pos not in written:
            continue
        chunk = np.empty(chunks, dtype=logical.dtype)
        chunk[...] = fill_element(c)
        src = tuple(slice(p * k, min((p + 1) * k, s)) for p, k, s in zip(pos, chunks, shape))
        valid = tuple(slice(0, s.stop - s.start) for s in src)
        chunk[valid] = logical[src]
        if logical.dtype.hasobject:
            buf = chunk.reshape(-1, order=c["order"])
        else:
            buf = np.frombuffer(chunk.tobytes(order=c["order"]), dtype=logical.dtype)
        for f in filters:
            buf = f.encode(buf)
        for f in reversed(filters):
            buf = f.decode(buf)
        if logical.dtype.hasobject:
            dec = np.asarray(buf, dtype=object).reshape(chunks, order=c["order"])
        else:
            dec = np.frombuffer(np.asarray(buf).tobytes(), dtype=logical.dtype).reshape(chunks, order=c["order"])
        out[src] = dec[valid]
    return out


def _chunks_touched(region, chunks):
    """Grid positions of the chunks a write region touches."""
    ranges = [range(a // k, (b - 1) // k + 1) for (a, b), k in zip(region, chunks)]
    return set(itertools.product(*ranges))


def assert_same(got, want, dtype=None):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.hasobject:
        g = got.astype(object) if got.dtype.kind == "T" else got
        assert g.reshape(-1).tolist() == want.reshape(-1).tolist()
        return
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.dtype.kind in "mM":
        np.testing.assert_array_equal(got.view("i8"), want.view("i8"))
    else:
        np.testing.assert_array_equal(got, want)


def test_expected_values_are_lossless_where_they_should_be():
    """Sanity of the oracle: lossless chains give back the written values."""
    lossless = {"delta-i8-zstd-original-spelling", "delta-i4-astype-i2-zlib", "delta-u2-2d-F-lz4",
                "shuffle-8-f8-zstd", "crc32-start", "fletcher32-S3-odd", "str-vlen-utf8-zstd",
                "M8s-delta", "m8us-shuffle", "bytes-vlen-bytes-zlib", "packbits-bool-2d",
                "astype-u2-from-f8"}
    for c in CASES:
        data = make_data(c)
        if c["id"] in lossless:
            assert_same(expected_array(c, data), logical_array(c, data))
    lossy = {"delta-i8-astype-i1-wrapping", "delta-f8-astype-f4", "quantize-2-f8-zlib",
             "fso-f8-u2", "bitround-10-f4-specials", "str-categorize-object", "U7-categorize-zlib"}
    for c in CASES:
        if c["id"] in lossy:
            data = make_data(c)
            exp, log = expected_array(c, data), logical_array(c, data)
            assert exp.reshape(-1).tolist() != log.reshape(-1).tolist(), c["id"]


# ---------------------------------------------------------------------------------------
# Writers and readers
# ---------------------------------------------------------------------------------------

def exzarr_write(c, path, data):
    kwargs = dict(c["exzarr_kwargs"] or {})
    if "dtype" not in kwargs:
        kwargs["dtype"] = c["dtype"]
        kwargs["filters"] = c["exzarr_filters"] or c["filters"]
        kwargs["fill_value"] = fill_python(c)
    elif c["filters"] and len(c["filters"]) > 1:
        kwargs["filters"] = c["filters"][1:]
    a = exzarr.create(shape=tuple(c["shape"]), chunks=tuple(c["chunks"]), compressor=c["compressor"],
                      order=c["order"], storage="filesystem", path=str(path), **kwargs)
    for region in c["writes"]:
        sel = region_slices(region)
        a[sel] = data[sel]
    return a


def codec_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return numcodecs.get_codec(dict(a)) == numcodecs.get_codec(dict(b))


def filters_equal(got, want) -> bool:
    got, want = got or [], want or []
    return len(got) == len(want) and all(codec_equal(g, w) for g, w in zip(got, want))


def check_exzarr_reads(c, path, data):
    a = exzarr.open(str(path), mode="r")
    assert a.dtype == np.dtype(c["dtype"])
    assert a.shape == tuple(c["shape"]) and a.chunks == tuple(c["chunks"])
    assert filters_equal([f.get_config() for f in a.filters or []], c["filters"]), a.filters
    assert codec_equal(a.compressor.get_config() if a.compressor else None, c["compressor"])
    if not a.dtype.hasobject and c["fill"] is not None:
        dt = np.dtype(c["dtype"])
        assert fill_to_json(np.array(a.fill_value, dtype=dt)[()]) == \
            fill_to_json(np.array(fill_python(c), dtype=dt)[()]), a.fill_value
    expected = expected_array(c, data)
    assert_same(a[...], expected)
    if a.ndim == 1 and a.shape[0] > 3:
        assert_same(a[1:-1:2], expected[1:-1:2])
        assert_same(a[::-3], expected[::-3])
    else:
        assert_same(a[1:, ::2], expected[1:, ::2])
    assert_same(exzarr.load(str(path)), expected)


def zarr3_dtype(c):
    import zarr.core.dtype as zdt

    if np.dtype(c["dtype"]).hasobject:
        return zdt.VariableLengthBytes() if c["filters"][0]["id"] == "vlen-bytes" else zdt.VariableLengthUTF8()
    return c["dtype"]


def zarr3_write(c, path, data):
    import zarr

    fill = fill_python(c)
    if np.dtype(c["dtype"]).hasobject and c["filters"][0]["id"] == "vlen-bytes":
        fill = b""
    z = zarr.create_array(
        store=str(path), zarr_format=2, shape=tuple(c["shape"]), chunks=tuple(c["chunks"]),
        dtype=zarr3_dtype(c), order=c["order"], fill_value=fill,
        filters=[numcodecs.get_codec(dict(f)) for f in c["filters"]] if c["filters"] else None,
        compressors=numcodecs.get_codec(dict(c["compressor"])) if c["compressor"] else None)
    for region in c["writes"]:
        sel = region_slices(region)
        z[sel] = data[sel]


def zarray(path):
    with open(Path(path) / ".zarray", encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------
# exzarr <-> zarr-python 3
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("c", ZARR3_CASES, ids=[c["id"] for c in ZARR3_CASES])
def test_exzarr_writes_zarr3_reads(c, tmp_path):
    import zarr

    data = make_data(c)
    exzarr_write(c, tmp_path / "a", data)
    doc = zarray(tmp_path / "a")
    assert doc["dtype"] == c["dtype"]
    assert filters_equal(doc["filters"], c["filters"]), doc["filters"]
    assert codec_equal(doc["compressor"], c["compressor"])
    z = zarr.open_array(str(tmp_path / "a"), mode="r")
    expected = expected_array(c, data)
    assert_same(z[...], expected)
    if not np.dtype(c["dtype"]).hasobject:
        assert z.dtype == np.dtype(c["dtype"])


@pytest.mark.parametrize("c", ZARR3_CASES, ids=[c["id"] for c in ZARR3_CASES])
def test_zarr3_writes_exzarr_reads(c, tmp_path):
    import zarr

    data = make_data(c)
    zarr3_write(c, tmp_path / "a", data)
    check_exzarr_reads(c, tmp_path / "a", data)
    # zarr-python 3 reads its own array the same way.
    assert_same(zarr.open_array(str(tmp_path / "a"), mode="r")[...], expected_array(c, data))


# ---------------------------------------------------------------------------------------
# exzarr <-> zarr-python 2.18 (one subprocess per direction)
# ---------------------------------------------------------------------------------------

def run_worker(mode, jobs, workdir):
    return run_zarr2_worker(WORKER, mode, jobs, workdir, timeout=300)


@pytest.fixture(scope="module")
def zarr2_read(tmp_path_factory):
    """exzarr writes every case; zarr-python 2.18 reads them all in one process."""
    zarr2_python()
    root = tmp_path_factory.mktemp("codec-zarr2-read")
    jobs, errors = [], {}
    for i, c in enumerate(ZARR2_CASES):
        d = root / f"c{i}"
        try:
            exzarr_write(c, d, make_data(c))
        except Exception:  # noqa: BLE001 - reported by the case's test
            errors[c["id"]] = traceback.format_exc()
            continue
        jobs.append({"case": c, "dir": str(d), "values": str(root / f"c{i}.values")})
    results = run_worker("read", jobs, root)
    return results, errors, {j["case"]["id"]: j["values"] for j in jobs}


@pytest.fixture(scope="module")
def zarr2_written(tmp_path_factory):
    """zarr-python 2.18 writes every case in one process."""
    zarr2_python()
    root = tmp_path_factory.mktemp("codec-zarr2-write")
    jobs = []
    for i, c in enumerate(ZARR2_CASES):
        values = root / f"c{i}-input.values"
        save_values(str(values), make_data(c))
        jobs.append({"case": c, "dir": str(root / f"c{i}"), "values": str(values)})
    return run_worker("write", jobs, root), {j["case"]["id"]: Path(j["dir"]) for j in jobs}


def test_zarr2_worker_environment(zarr2_read):
    assert zarr2_read[0]["_meta"]["zarr"].startswith("2.18"), zarr2_read[0]["_meta"]


@pytest.mark.parametrize("c", ZARR2_CASES, ids=[c["id"] for c in ZARR2_CASES])
def test_exzarr_writes_zarr2_reads(c, zarr2_read):
    results, errors, values = zarr2_read
    if c["id"] in errors:
        pytest.fail(f"exzarr could not write the case:\n{errors[c['id']]}", pytrace=False)
    res = results.get(c["id"])
    assert res is not None and res["ok"], f"zarr-python 2.18 could not read:\n{(res or {}).get('error')}"
    assert res["dtype"] == c["dtype"]
    assert filters_equal(res["filters"], c["filters"]), res["filters"]
    assert codec_equal(res["compressor"], c["compressor"])
    assert_same(load_values(values[c["id"]]), expected_array(c, make_data(c)))
    if not np.dtype(c["dtype"]).hasobject:
        want = None if c["fill"] is None else np.array(fill_python(c), dtype=c["dtype"])[()]
        assert res["fill_value"] == fill_to_json(want)


@pytest.mark.parametrize("c", ZARR2_CASES, ids=[c["id"] for c in ZARR2_CASES])
def test_zarr2_writes_exzarr_reads(c, zarr2_written):
    results, dirs = zarr2_written
    res = results.get(c["id"])
    assert res is not None and res["ok"], f"zarr-python 2.18 could not write:\n{(res or {}).get('error')}"
    assert filters_equal(res["zarray"]["filters"], c["filters"]), res["zarray"]["filters"]
    check_exzarr_reads(c, dirs[c["id"]], make_data(c))


# ---------------------------------------------------------------------------------------
# Metadata of exzarr's own spellings
# ---------------------------------------------------------------------------------------

def test_original_filter_spellings_write_numcodecs_configs(tmp_path):
    a = exzarr.create(shape=(100,), chunks=(30,), dtype="int64", filters=[("delta", {"dtype": "int64"})],
                      storage="filesystem", path=str(tmp_path / "d"))
    a[...] = np.arange(100) ** 2
    assert zarray(tmp_path / "d")["filters"] == [numcodecs.Delta(dtype="<i8").get_config()]
    b = exzarr.create(shape=(100,), chunks=(30,), dtype="float64", storage="filesystem",
                      path=str(tmp_path / "q"),
                      filters=[("quantize", {"digits": 2, "dtype": "float64"}), ("shuffle", {"elementsize": 8})])
    x = np.sin(np.arange(100.0))
    b[...] = x
    assert zarray(tmp_path / "q")["filters"] == [numcodecs.Quantize(digits=2, dtype="<f8").get_config(),
                                                  numcodecs.Shuffle(elementsize=8).get_config()]
    np.testing.assert_array_equal(b[...], numcodecs.Quantize(digits=2, dtype="<f8").encode(x))
    assert not b._python_codecs  # both filters run in the core


@pytest.mark.parametrize("dtype,codec,fill", [(str, "vlen-utf8", ""), ("str", "vlen-utf8", ""),
                                              (bytes, "vlen-bytes", ""), ("bytes", "vlen-bytes", "")],
                         ids=["str", "'str'", "bytes", "'bytes'"])
def test_object_dtype_metadata(dtype, codec, fill, tmp_path):
    exzarr.create(shape=(5,), chunks=(2,), dtype=dtype, storage="filesystem", path=str(tmp_path / "a"))
    doc = zarray(tmp_path / "a")
    assert doc["dtype"] == "|O"
    assert doc["filters"] == [{"id": codec}]
    assert doc["fill_value"] == fill


@pytest.mark.parametrize("fill", [None, b"", b"ab\x00"], ids=["default", "empty", "bytes"])
@pytest.mark.parametrize("reopen", [False, True], ids=["new", "reopened"])
def test_vlen_bytes_missing_chunks_read_as_fill_bytes(reopen, fill, tmp_path):
    """A never-written chunk of a bytes array reads as the bytes fill (b"" by default).
    Its JSON form is base64 ("" for b""), as zarr-python 3 writes and reads it; exzarr
    must read it back as bytes, not as the base64 text."""
    kwargs = {} if fill is None else {"fill_value": fill}
    a = exzarr.create(shape=(6,), chunks=(2,), dtype=bytes, storage="filesystem",
                      path=str(tmp_path / "a"), **kwargs)
    a[:2] = np.array([b"x", b"\x00y"], dtype=object)
    want_fill = b"" if fill is None else fill
    if reopen:
        a = exzarr.open(str(tmp_path / "a"), mode="r")
    assert a[...].tolist() == [b"x", b"\x00y"] + [want_fill] * 4
    assert a.fill_value == want_fill
    import zarr

    assert zarr.open_array(str(tmp_path / "a"), mode="r")[...].tolist() == [b"x", b"\x00y"] + [want_fill] * 4


def test_vlen_bytes_fill_written_by_zarr3_reads_as_bytes(tmp_path):
    import zarr
    import zarr.core.dtype as zdt

    z = zarr.create_array(store=str(tmp_path / "a"), zarr_format=2, shape=(4,), chunks=(2,),
                          dtype=zdt.VariableLengthBytes(), fill_value=b"ab")
    z[:2] = np.array([b"p", b"q"], dtype=object)
    assert exzarr.open(str(tmp_path / "a"), mode="r")[...].tolist() == [b"p", b"q", b"ab", b"ab"]


# ---------------------------------------------------------------------------------------
# Errors: unknown ids, bad options, raised at create before anything is written
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,error,ident", [
    ({"filters": [("nosuchfilter", {})]}, exzarr.UnknownFilterError, "nosuchfilter"),
    ({"filters": [{"id": "frobnicate", "x": 1}]}, exzarr.UnknownFilterError, "frobnicate"),
    ({"compressor": "nosuchcodec"}, exzarr.UnknownCodecError, "nosuchcodec"),
    ({"compressor": {"id": "snappy-ish", "level": 1}}, exzarr.UnknownCodecError, "snappy-ish"),
], ids=["filter-tuple", "filter-dict", "compressor-name", "compressor-dict"])
def test_unknown_ids(kwargs, error, ident, tmp_path):
    path = tmp_path / "arr"
    with pytest.raises(error) as info:
        exzarr.create(shape=(10,), chunks=(5,), dtype="<f8", storage="filesystem", path=str(path), **kwargs)
    assert ident in str(info.value)
    assert info.value.codec_id == ident
    if error is exzarr.UnknownFilterError:
        assert info.value.filter_id == ident
    assert not path.exists()


BAD_OPTIONS = [
    ("<i8", [("delta", {})], "delta"),                                   # missing dtype
    ("<i8", [("delta", {"dtype": "int64", "bogus": 1})], "delta"),       # unknown option
    ("<i8", [("delta", {"dtype": "object"})], "delta"),
    ("<i4", [("quantize", {"digits": 2, "dtype": "int32"})], "quantize"),
    ("<f8", [("quantize", {"digits": 2})], "quantize"),
    ("<u1", [("shuffle", {"elementsize": -1})], "shuffle"),
    ("<f4", [("bitround", {"keepbits": -1})], "bitround"),
    ("<f4", [("bitround", {"keepbits": "3"})], "bitround"),
    ("<f4", [("bitround", {"keepbits": 24})], "bitround"),               # more than f4's 23 bits
    ("<f8", [("bitround", {"keepbits": 53})], "bitround"),
    ("<i4", [("bitround", {"keepbits": 3})], "bitround"),                # not a float array
    ("<i4", [("crc32", {"location": "middle"})], "crc32"),
    ("<i4", [("crc32c", {"location": 1})], "crc32c"),
    ("<i4", [("fletcher32", {"location": "start"})], "fletcher32"),
    ("<f8", [("fixedscaleoffset", {"offset": "a", "scale": 1, "dtype": "<f8"})], "fixedscaleoffset"),
    ("<f8", [("fixedscaleoffset", {"offset": 0, "dtype": "<f8"})], "fixedscaleoffset"),
    ("<U3", [("categorize", {"labels": ["a"], "dtype": "<f8"})], "categorize"),
    ("<U3", [("categorize", {"labels": ["a"], "dtype": "<U3", "astype": "<f4"})], "categorize"),
    ("<f8", [("astype", {"encode_dtype": "notadtype", "decode_dtype": "<f8"})], "astype"),
    ("<f8", [("packbits", {"size": 3})], "packbits"),
    ("<f8", [{"id": "lzma", "format": 3}], "lzma"),                      # FORMAT_RAW needs filters
]
BAD_COMPRESSORS = [
    ({"id": "bz2", "level": 0}, "bz2"), ({"id": "zstd", "level": 99}, "zstd"),
    ({"id": "blosc", "cname": "nope"}, "blosc"), ({"id": "zlib", "level": 10}, "zlib"),
    ({"id": "lz4", "acceleration": "fast"}, "lz4"), ({"id": "lzma", "format": 3}, "lzma"),
]


@pytest.mark.parametrize("dtype,filters,ident", BAD_OPTIONS, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD_OPTIONS)])
def test_bad_filter_options(dtype, filters, ident, tmp_path):
    path = tmp_path / "arr"
    with pytest.raises(exzarr.InvalidFilterConfigError) as info:
        exzarr.create(shape=(10,), chunks=(5,), dtype=dtype, filters=filters, storage="filesystem",
                      path=str(path))
    err = info.value
    assert err.filter_id == ident and ident in str(err)
    assert err.reason and err.reason in str(err)
    assert not path.exists(), "create wrote something before failing"


@pytest.mark.parametrize("compressor,ident", BAD_COMPRESSORS, ids=[b[1] for b in BAD_COMPRESSORS])
def test_bad_compressor_options(compressor, ident, tmp_path):
    path = tmp_path / "arr"
    with pytest.raises(exzarr.InvalidFilterConfigError) as info:
        exzarr.create(shape=(10,), chunks=(5,), dtype="<f8", compressor=compressor,
                      storage="filesystem", path=str(path))
    assert info.value.filter_id == ident and info.value.reason in str(info.value)
    assert not path.exists()
