"""Codec-level oracle tests of exzarr's filters, checksums, object codecs and the
stdlib compressors (bz2, lzma) against numcodecs.

For every codec and each dtype it accepts:

* bytes encoded by numcodecs decode in exzarr to the array numcodecs decodes them to,
  and bytes encoded by exzarr decode in numcodecs to the same array;
* filters (lossy ones included) encode to exactly numcodecs' bytes;
* ``get_config()`` equals numcodecs' config for the same parameters.

Filters with a C path (``Filter._spec`` / ``core_step``) are checked twice: as codec
objects (``encode``/``decode``) and through the array pipeline (``exzarr.create(...,
filters=[...])``), where the stored chunk bytes must equal numcodecs applied to the
chunk, and reading back must give what numcodecs decodes.
"""

from __future__ import annotations

import json
import lzma
import math

import numcodecs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import exzarr
from exzarr.codecs import (
    BZ2,
    CRC32,
    CRC32C,
    LZMA,
    Adler32,
    AsType,
    BitRound,
    Categorize,
    Delta,
    FixedScaleOffset,
    Fletcher32,
    PackBits,
    Quantize,
    Shuffle,
    VLenBytes,
    VLenUTF8,
    get_codec,
)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

HYP = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
HYP_FEW = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))

# numcodecs cannot encode an empty buffer with these (Delta indexes arr[0], Fletcher32
# reads the first byte), nor can its Fletcher32 decode the 4 bytes that encode one:
# there exzarr's own round trip is checked, and numcodecs' decoding where it can.
NUMCODECS_NO_EMPTY_ENCODE = {"delta", "fletcher32"}
NUMCODECS_NO_EMPTY_DECODE = {"fletcher32"}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def raw(x) -> bytes:
    """The bytes of an encoded or decoded buffer, in memory order."""
    if isinstance(x, np.ndarray):
        return x.tobytes(order="A")
    return bytes(memoryview(x).cast("B"))


def same_values(a, b) -> bool:
    """Byte-identical numeric buffers (NaN payloads included); element-equal object arrays."""
    if isinstance(a, np.ndarray) and a.dtype.hasobject or isinstance(b, np.ndarray) and b.dtype.hasobject:
        return np.asarray(a).reshape(-1).tolist() == np.asarray(b).reshape(-1).tolist()
    return raw(a) == raw(b)


def nc(codec):
    """numcodecs' codec built from exzarr's config (so the configs are compatible too)."""
    return numcodecs.get_codec(dict(codec.get_config()))


def check_codec(ours, arr, *, lossless: bool = True, exact_encode: bool = True) -> bytes:
    """exzarr's codec against numcodecs' on ``arr``; returns exzarr's encoded bytes.

    exact_encode: the encoded bytes must be numcodecs' (filters; deterministic
    compressors). lossless: decode(encode(arr)) must give arr back.
    """
    theirs = nc(ours)
    enc_ours = ours.encode(arr)
    empty = np.asarray(arr).size == 0
    if empty and ours.codec_id in NUMCODECS_NO_EMPTY_ENCODE:
        ref = ours.decode(raw(enc_ours))
        assert np.asarray(ref).size == 0
        if ours.codec_id not in NUMCODECS_NO_EMPTY_DECODE:
            assert same_values(theirs.decode(raw(enc_ours)), ref)
        return raw(enc_ours)
    enc_theirs = theirs.encode(arr)
    if exact_encode:
        assert raw(enc_ours) == raw(enc_theirs), "encoded bytes differ from numcodecs'"
    # numcodecs decodes exzarr's bytes; exzarr decodes numcodecs' bytes (as they come,
    # typed, and as plain bytes) and its own.
    ref = theirs.decode(enc_theirs)
    assert same_values(theirs.decode(raw(enc_ours)), ref), "numcodecs decodes exzarr's bytes differently"
    assert same_values(ours.decode(raw(enc_ours)), ref), "exzarr's round trip differs from numcodecs'"
    assert same_values(ours.decode(enc_theirs), ref), "exzarr decodes numcodecs' bytes differently"
    assert same_values(ours.decode(raw(enc_theirs)), ref)
    if lossless:
        expect = np.asarray(arr).reshape(-1, order="A")
        assert same_values(ref, expect) if expect.dtype.hasobject else raw(ref) == raw(expect), \
            "not lossless"
    # decode into out=
    ref_arr = ref
    if isinstance(ref_arr, np.ndarray) and not ref_arr.dtype.hasobject and ref_arr.size:
        out = np.empty_like(ref_arr)
        assert ours.decode(raw(enc_ours), out=out) is out
        assert raw(out) == raw(ref_arr)
    return raw(enc_ours)


def config_matches(ours, theirs) -> None:
    cfg = ours.get_config()
    assert cfg == theirs.get_config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert get_codec(dict(cfg)).get_config() == cfg
    assert get_codec(dict(theirs.get_config())).get_config() == cfg
    assert numcodecs.get_codec(dict(cfg)).get_config() == theirs.get_config()


# Arrays of a dtype: hypothesis-drawn, 1-d of length 0..max_len (so empty and odd
# lengths), sometimes 2-d.
def arrays_of(dtype, elements=None, max_len=300):
    dtype = np.dtype(dtype)
    shapes = st.one_of(
        st.integers(0, max_len).map(lambda n: (n,)),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=13),
    )
    return hnp.arrays(dtype, shapes, elements=elements)


def finite_floats(dtype, lo=-1e6, hi=1e6):
    w = np.dtype(dtype).itemsize * 8
    return st.floats(lo, hi, width=w, allow_nan=False, allow_infinity=False)


INT_DTYPES = ["|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8"]
FLOAT_DTYPES = ["<f4", "<f8"]

# A few fixed arrays with the awkward cases.
def special_floats(dtype) -> np.ndarray:
    fi = np.finfo(dtype)
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e-3, 123.456, -98765.4321, np.nan, np.inf,
            -np.inf, fi.max, fi.min, fi.tiny, fi.tiny / 4, -fi.tiny / 8, fi.eps, 3.0e5]
    return np.array(vals, dtype=dtype)


# --------------------------------------------------------------------------------------
# Pipeline helper: exzarr.create(..., filters=[...]) against numcodecs on each chunk
# --------------------------------------------------------------------------------------

def numcodecs_chunk(arr: np.ndarray, chunks, pos, fill, order="C") -> np.ndarray:
    """The full chunk at grid position ``pos`` (edge chunks padded with ``fill``)."""
    chunk = np.full(chunks, fill, dtype=arr.dtype)
    src = tuple(slice(p * c, min((p + 1) * c, s)) for p, c, s in zip(pos, chunks, arr.shape))
    dst = tuple(slice(0, s.stop - s.start) for s in src)
    chunk[dst] = arr[src]
    return np.asfortranarray(chunk) if order == "F" else chunk


def check_pipeline(filters, arr: np.ndarray, chunks, *, compressor=None, order="C",
                   expect_c_path: bool | None = True, lossless: bool = True):
    """Write ``arr`` through an in-memory exzarr array with ``filters``; each stored chunk
    must be numcodecs' encoding of that chunk, and reading back gives numcodecs' decoding."""
    a = exzarr.create(shape=arr.shape, chunks=chunks, dtype=arr.dtype, filters=filters,
                      compressor=compressor, fill_value=0, order=order, write_empty_chunks=True)
    if expect_c_path is not None:
        assert a._python_codecs is (not expect_c_path), "C path expectation"
    a[...] = arr
    nc_filters = [numcodecs.get_codec(dict(f.get_config())) for f in a.filters or []]
    nc_comp = numcodecs.get_codec(dict(a.compressor.get_config())) if a.compressor else None
    expected = np.empty(arr.shape, dtype=arr.dtype)
    grid = [math.ceil(s / c) for s, c in zip(arr.shape, chunks)]
    for pos in np.ndindex(*grid):
        # Filters see the chunk's bytes in its order, as a flat array of the dtype (a
        # Fortran-ordered ndarray would not do: numcodecs' BitRound copies it to C order).
        chunk = numcodecs_chunk(arr, chunks, pos, a.fill_value, order)
        buf = np.frombuffer(chunk.tobytes(order=order), dtype=arr.dtype)
        for f in nc_filters:
            buf = f.encode(buf)
        stored = a.store.get(a.chunk_key(pos))
        assert stored is not None
        if nc_comp is not None:
            stored = bytes(nc_comp.decode(stored))  # numcodecs decompresses exzarr's chunk
        assert stored == raw(np.asarray(buf)), f"chunk {pos}: stored bytes differ from numcodecs'"
        for f in reversed(nc_filters):
            buf = f.decode(buf)
        dec = np.frombuffer(raw(np.asarray(buf)), dtype=arr.dtype).reshape(chunks, order=order)
        dst = tuple(slice(p * c, min((p + 1) * c, s)) for p, c, s in zip(pos, chunks, arr.shape))
        src = tuple(slice(0, d.stop - d.start) for d in dst)
        expected[dst] = dec[src]
    got = a[...]
    assert raw(np.ascontiguousarray(got)) == raw(expected), "read back differs from numcodecs' decoding"
    if lossless:
        assert raw(expected) == raw(np.ascontiguousarray(arr))
    return a


# --------------------------------------------------------------------------------------
# delta
# --------------------------------------------------------------------------------------

DELTA_CONFIGS = (
    [(d, None) for d in INT_DTYPES + FLOAT_DTYPES + [">i4", ">f8"]]
    + [("<i8", "<i2"), ("<i4", "|i1"), ("<i2", "|i1"), ("<u4", "|u1"), ("<i8", "<i4"),
       ("<u2", "|i1"), ("<i4", "<i8"), ("|u1", "<u2"),  # narrowing and widening ints
       ("<f8", "<f4"), ("<f4", "<f8"),                    # f8 -> f4 and back
       ("<i4", "<f8"), ("<f8", "<i4")]                    # mixed kinds: NumPy path
)


def delta_lossless(dt, at) -> bool:
    """Integer differences wrap and add back up modulo 2**bits when astype is not
    narrower; the mixed-kind cases here hold exactly representable values. Float deltas
    round, and narrowing ones lose high bits: those are compared with numcodecs only."""
    if dt.kind in "iu" and at.kind in "iu":
        return at.itemsize >= dt.itemsize
    return (dt.kind == "f") != (at.kind == "f")


def delta_elements(dtype):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return st.one_of(finite_floats(dt), st.sampled_from([np.nan, np.inf, -np.inf, -0.0]))
    return None  # the whole range: differences wrap


@pytest.mark.parametrize("dtype,astype", DELTA_CONFIGS, ids=str)
@HYP
@given(data=st.data())
def test_delta(dtype, astype, data):
    codec = Delta(dtype=dtype, astype=astype)
    dt, at = np.dtype(dtype), np.dtype(astype or dtype)
    if dt.kind == "f" and at.kind in "iu":
        elements = st.integers(-1000, 1000).map(float)  # float -> int differences in range
    elif dt.kind in "iu" and at.kind == "f":
        elements = st.integers(-(2**20), 2**20)
    elif dt.kind in "iu" and at.kind in "iu" and at.itemsize < dt.itemsize:
        # numcodecs stores the first element with ``enc[0] = arr[0]``, which raises when
        # it does not fit astype: keep values in astype's range (differences still wrap).
        info = np.iinfo(at)
        elements = st.integers(max(int(info.min), int(np.iinfo(dt).min)),
                               min(int(info.max), int(np.iinfo(dt).max)))
    else:
        elements = delta_elements(dt)
    arr = data.draw(arrays_of(dt, elements))
    # Integer differences wrap and add back up modulo 2**bits; the mixed-kind cases hold
    # exactly representable values. Float deltas round: compared with numcodecs only.
    check_codec(codec, arr, lossless=delta_lossless(dt, at))


@pytest.mark.parametrize("dtype,astype", DELTA_CONFIGS, ids=str)
def test_delta_fixed_arrays(dtype, astype):
    dt = np.dtype(dtype)
    codec = Delta(dtype=dtype, astype=astype)
    if dt.kind == "f":
        arrays = [special_floats(dt)[:9], np.round(np.sin(np.arange(1001) / 7) * 1000, 2).astype(dt)]
    else:
        info = np.iinfo(dt)
        arrays = [np.array([info.min, info.max, 0, info.max, info.min, 1], dtype=dt),
                  (np.arange(999) * 37 % 251).astype(dt)]
        at = np.dtype(astype or dtype)
        if at.kind in "iu" and at.itemsize < dt.itemsize:
            arrays[0][0] = 0  # numcodecs' enc[0] = arr[0] raises when it does not fit
    for arr in arrays + [np.zeros(1, dtype=dt)]:
        check_codec(codec, arr, lossless=False)


def test_delta_f4_astype_f8_decode_accumulates_like_numpy():
    """numcodecs decodes with ``np.cumsum(enc_f8, out=dec_f4)``, which accumulates in
    float64 and rounds each partial sum to float32."""
    enc = np.array([1e8, 1.5, 1.5, 1.5, 1.5, 3.25], dtype="<f8")
    want = numcodecs.Delta(dtype="<f4", astype="<f8").decode(enc)
    got = Delta(dtype="<f4", astype="<f8").decode(enc)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype,astype", [(d, a) for d, a in DELTA_CONFIGS if np.dtype(d).isnative
                                          and not (np.dtype(d).kind == "f") != (np.dtype(a or d).kind == "f")],
                         ids=str)
def test_delta_pipeline(dtype, astype):
    dt = np.dtype(dtype)
    rng = np.random.default_rng(7)
    if dt.kind == "f":
        arr = np.round(np.cumsum(rng.normal(size=1003)) * 100, 2).astype(dt)
    else:
        arr = rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, size=1003, dtype=dt, endpoint=True)
        arr[::3] = np.arange(0, 1003, 3).astype(dt)
        arr[::250] = 7  # each chunk's first element fits astype (numcodecs' enc[0] = arr[0])
    for compressor in (None, "zstd"):
        check_pipeline([Delta(dtype=dtype, astype=astype)], arr, (250,), compressor=compressor,
                       lossless=delta_lossless(dt, np.dtype(astype or dtype)))


# --------------------------------------------------------------------------------------
# shuffle
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("elementsize", [0, 1, 2, 4, 8, 16])
@HYP
@given(data=st.data())
def test_shuffle(elementsize, data):
    n = data.draw(st.integers(0, 60))
    dtype = data.draw(st.sampled_from(["|u1", "<i2", "<f4", "<f8", "<c16", "|S3"]))
    unit = max(elementsize, 1)
    itemsize = np.dtype(dtype).itemsize
    count = n * unit // math.gcd(unit, itemsize)  # a whole number of elements
    arr = data.draw(hnp.arrays(np.dtype(dtype), (count,)))
    check_codec(Shuffle(elementsize=elementsize), arr)


@pytest.mark.parametrize("elementsize", [0, 1, 2, 4, 8, 16])
def test_shuffle_pipeline(elementsize):
    arr = np.arange(2 * 3 * 64, dtype="<i8").reshape(6, 64) * 1000003
    check_pipeline([Shuffle(elementsize=elementsize)], arr, (2, 64))
    check_pipeline([Shuffle(elementsize=elementsize)], arr, (3, 16), compressor="zstd", order="F")


def test_shuffle_rejects_partial_elements():
    with pytest.raises((ValueError, exzarr.ExZarrError)):
        Shuffle(elementsize=4).encode(np.zeros(7, dtype="u1"))


# --------------------------------------------------------------------------------------
# quantize
# --------------------------------------------------------------------------------------

QUANTIZE_CONFIGS = [(d, dt, a) for d in range(0, 7) for dt in FLOAT_DTYPES for a in (None,)] + [
    (2, "<f8", "<f4"), (3, "<f8", "<f2"), (1, "<f4", "<f2"), (4, "<f4", "<f8"), (6, "<f8", "<f4"),
    (0, "<f4", "<f8"), (-1, "<f8", None), (5, ">f8", None),
]


@pytest.mark.parametrize("digits,dtype,astype", QUANTIZE_CONFIGS, ids=str)
@HYP_FEW
@given(data=st.data())
def test_quantize(digits, dtype, astype, data):
    elements = st.one_of(finite_floats(dtype, -1e4, 1e4), st.sampled_from([np.nan, np.inf, -np.inf]))
    arr = data.draw(arrays_of(dtype, elements))
    check_codec(Quantize(digits=digits, dtype=dtype, astype=astype), arr, lossless=False)


@pytest.mark.parametrize("digits,dtype,astype", QUANTIZE_CONFIGS, ids=str)
def test_quantize_fixed_arrays(digits, dtype, astype):
    codec = Quantize(digits=digits, dtype=dtype, astype=astype)
    x = np.linspace(-500, 500, 1001)
    for arr in (special_floats(dtype), (20 * np.sin(x) * np.cos(x / 3)).astype(dtype)):
        check_codec(codec, arr, lossless=False)
    if np.dtype(dtype).isnative:
        field = (20 * np.sin(x) * np.cos(x / 3)).astype(dtype)[:1000].reshape(40, 25)
        check_pipeline([codec], field, (16, 10), lossless=False,
                       expect_c_path=astype is None or np.dtype(astype).itemsize > 2)


# --------------------------------------------------------------------------------------
# fixedscaleoffset
# --------------------------------------------------------------------------------------

FSO_CONFIGS = [
    (1000, 10, "<f8", "<u2"), (1000.5, 100.0, "<f8", "<i4"), (0, 1000, "<f4", "<i2"),
    (-3.25, 4, "<f4", "|u1"), (10, 0.5, "<f8", "<f4"), (2.5, 3, "<f4", "<f8"),
    (0.1, 1e3, "<f8", "<f8"), (0, 1, "<f4", "<f4"), (273.15, 50, "<f4", "<u2"),
    (-1e3, 0.25, "<f8", "|i1"), (7, 16, "<f8", "<i8"), (0, 10, "<f4", "<f2"),
    (100, 1, "<i4", "|u1"), (-5, 2, "<i2", "<i2"), (3, 4, "<u2", "<i4"), (0.5, 2.0, "<i4", "<f8"),
    (12, 10, ">f8", ">u2"),
]


def fso_elements(offset, scale, dtype, astype):
    dt, at = np.dtype(dtype), np.dtype(astype)
    if at.kind in "iu":
        info = np.iinfo(at)
        lo, hi = max(int(info.min) + 1, -(2**40)), min(int(info.max) - 1, 2**40)
        if dt.kind in "iu":
            # x = offset + k / scale with k in range and x an integer of dtype.
            dinfo = np.iinfo(dt)
            return st.integers(lo, hi).map(lambda k: int(offset + k / scale)).filter(
                lambda x: dinfo.min <= x <= dinfo.max and lo <= (x - offset) * scale <= hi)
        return st.tuples(st.integers(lo, hi), st.floats(-0.45, 0.45)).map(
            lambda kj: offset + (kj[0] + kj[1]) / scale).filter(
            lambda x: lo <= float(np.asarray(x, dtype=dt) - offset) * scale <= hi)
    if dt.kind in "iu":
        dinfo = np.iinfo(dt)
        return st.integers(max(int(dinfo.min), -(2**20)), min(int(dinfo.max), 2**20))
    return st.one_of(finite_floats(dt, -1e4, 1e4), st.sampled_from([np.nan, np.inf, -np.inf]))


@pytest.mark.parametrize("offset,scale,dtype,astype", FSO_CONFIGS, ids=str)
@HYP
@given(data=st.data())
def test_fixedscaleoffset(offset, scale, dtype, astype, data):
    arr = data.draw(arrays_of(dtype, fso_elements(offset, scale, dtype, astype)))
    check_codec(FixedScaleOffset(offset=offset, scale=scale, dtype=dtype, astype=astype), arr,
                lossless=False)


# Big-endian data is covered at the codec level (test_fixedscaleoffset).
@pytest.mark.parametrize("offset,scale,dtype,astype",
                         [c for c in FSO_CONFIGS if np.dtype(c[2]).isnative], ids=str)
def test_fixedscaleoffset_pipeline(offset, scale, dtype, astype):
    dt, at = np.dtype(dtype), np.dtype(astype)
    rng = np.random.default_rng(3)
    if at.kind in "iu":
        # Codes k spread over astype's range (within 2**20), values offset + k / scale.
        info = np.iinfo(at)
        k = rng.integers(max(int(info.min), -(2**20)) + 1, min(int(info.max), 2**20) - 1, size=900)
        x = offset + (k + (0 if dt.kind in "iu" else rng.uniform(-0.45, 0.45, size=900))) / scale
        arr = np.round(x).astype(dt) if dt.kind in "iu" else x.astype(dt)
        codes = (arr.astype("f8") - offset) * scale
        arr = arr[(codes > int(info.min)) & (codes < int(info.max))]
    elif dt.kind == "f":
        arr = (rng.normal(size=900) * 1000).astype(dt)
    else:
        arr = rng.integers(-1000, 1000, size=900).astype(dt)
    c_path = dt.kind == "f" and at.str[1:] != "f2"  # float input, no float16
    check_pipeline([FixedScaleOffset(offset=offset, scale=scale, dtype=dtype, astype=astype)],
                   arr, (128,), compressor="zlib", lossless=False, expect_c_path=c_path)


# --------------------------------------------------------------------------------------
# bitround
# --------------------------------------------------------------------------------------

BITROUND_CONFIGS = ([("<f4", k) for k in range(0, 24)] + [("<f8", k) for k in range(0, 53, 3)]
                    + [("<f8", 52), ("<f8", 51), ("<f2", 0), ("<f2", 5), ("<f2", 10)])


def bitround_elements(dtype):
    w = np.dtype(dtype).itemsize * 8
    return st.floats(width=w, allow_nan=True, allow_infinity=True, allow_subnormal=True)


@pytest.mark.parametrize("dtype,keepbits", BITROUND_CONFIGS, ids=str)
@HYP_FEW
@given(data=st.data())
def test_bitround(dtype, keepbits, data):
    arr = data.draw(arrays_of(dtype, bitround_elements(dtype)))
    check_codec(BitRound(keepbits=keepbits), arr, lossless=False)


@pytest.mark.parametrize("dtype,keepbits", BITROUND_CONFIGS, ids=str)
def test_bitround_fixed_arrays(dtype, keepbits):
    dt = np.dtype(dtype)
    special = special_floats(dt)
    nan_payload = np.array([0x7FC00001 if dt.itemsize == 4 else 0x7E01], dtype=f"u{dt.itemsize}")
    arrays = [special, -special, (np.sin(np.arange(777)) * 1e5).astype(dt)]
    if dt.itemsize in (2, 4):
        arrays.append(nan_payload.view(dt))
    for arr in arrays:
        check_codec(BitRound(keepbits=keepbits), arr, lossless=False)


@pytest.mark.parametrize("dtype,keepbits", BITROUND_CONFIGS, ids=str)
def test_bitround_pipeline(dtype, keepbits):
    dt = np.dtype(dtype)
    special = special_floats(dt)
    field = np.concatenate([special, (np.sin(np.arange(1001 - special.size)) * 1e3).astype(dt)])
    check_pipeline([BitRound(keepbits=keepbits)], field, (128,), lossless=False,
                   expect_c_path=dt.itemsize in (4, 8))
    check_pipeline([BitRound(keepbits=keepbits)], field, (77,), compressor="zstd", lossless=False,
                   expect_c_path=dt.itemsize in (4, 8))


@pytest.mark.parametrize("dtype,keepbits", [(">f4", 7), (">f8", 30), (">f4", 0)], ids=str)
def test_bitround_big_endian_array(dtype, keepbits):
    """numcodecs' BitRound takes only native floats (it looks up str(dtype)): a
    big-endian array must store the byte-swapped rounding of the native values."""
    dt = np.dtype(dtype)
    native = np.concatenate([special_floats(dt.newbyteorder("=")),
                             np.sin(np.arange(300)).astype(dt.newbyteorder("="))])
    arr = native.astype(dt)
    a = check_pipeline([BitRound(keepbits=keepbits)], native, (64,), lossless=False)
    b = exzarr.create(shape=arr.shape, chunks=(64,), dtype=dt, compressor=None,
                      filters=[BitRound(keepbits=keepbits)])
    b[...] = arr
    for pos in range(a.nchunks):
        want = np.frombuffer(a.store.get(a.chunk_key((pos,))), dtype=native.dtype).astype(dt)
        assert b.store.get(b.chunk_key((pos,))) == want.tobytes()
    assert b[...].tobytes() == a[...].astype(dt).tobytes()


def test_bitround_keepbits_too_large_for_dtype():
    with pytest.raises(ValueError):
        BitRound(keepbits=24).encode(np.zeros(3, dtype="<f4"))
    with pytest.raises(ValueError):
        numcodecs.BitRound(keepbits=24).encode(np.zeros(3, dtype="<f4"))


# --------------------------------------------------------------------------------------
# astype
# --------------------------------------------------------------------------------------

ASTYPE_PAIRS = [  # (encode_dtype, decode_dtype)
    ("<f4", "<f8"), ("<f8", "<f4"), ("<f2", "<f4"), ("<f4", "<f2"), ("<f2", "<f8"),
    ("|i1", "<i8"), ("<i2", "<i4"), ("|u1", "<u2"), ("|u1", "<i8"), ("<i8", "|i1"),
    ("<u8", "<i8"), ("<i4", "<u4"), ("<u2", "|u1"), ("<i8", "<u4"),
    ("<i4", "<f8"), ("<f8", "<i4"), ("<i2", "<f4"), ("<f4", "<i2"), ("<f8", "<u8"),
    ("<f4", ">f8"), (">i4", "<i4"), ("<i4", ">i2"),
]


def astype_elements(enc, dec):
    e, d = np.dtype(enc), np.dtype(dec)
    if d.kind == "f" and e.kind in "iu":  # float -> int only in range (else UB in C)
        info = np.iinfo(e)
        lo, hi = max(int(info.min), -(2**24)), min(int(info.max), 2**24)
        return st.integers(lo, hi).map(float)
    if d.kind in "iu" and e.kind == "f":
        info = np.iinfo(d)
        return st.integers(max(int(info.min), -(2**53)), min(int(info.max), 2**53))
    if d.kind == "f":
        return st.floats(width=d.itemsize * 8)
    return None


@pytest.mark.parametrize("encode_dtype,decode_dtype", ASTYPE_PAIRS, ids=str)
@HYP
@given(data=st.data())
def test_astype(encode_dtype, decode_dtype, data):
    arr = data.draw(arrays_of(decode_dtype, astype_elements(encode_dtype, decode_dtype)))
    check_codec(AsType(encode_dtype=encode_dtype, decode_dtype=decode_dtype), arr, lossless=False)


# Big-endian data is covered at the codec level (test_astype).
@pytest.mark.parametrize("encode_dtype,decode_dtype",
                         [p for p in ASTYPE_PAIRS if np.dtype(p[1]).isnative], ids=str)
def test_astype_pipeline(encode_dtype, decode_dtype):
    e, d = np.dtype(encode_dtype), np.dtype(decode_dtype)
    rng = np.random.default_rng(11)
    if d.kind == "f":
        arr = (rng.normal(size=999) * 100).astype(d)
        if e.kind in "iu":
            arr = np.round(arr).astype(d)
            arr = arr[(arr >= np.iinfo(e).min) & (arr <= np.iinfo(e).max)]
    else:
        info = np.iinfo(d)
        arr = rng.integers(info.min, info.max, size=999, dtype=d, endpoint=True)
    # The C path: native-endian, no float16, float <-> float or int <-> int.
    c_path = (e.isnative and "f2" not in (e.str[1:], d.str[1:])
              and (e.kind == "f") == (d.kind == "f"))
    check_pipeline([AsType(encode_dtype=encode_dtype, decode_dtype=decode_dtype)], arr, (100,),
                   compressor="lz4", lossless=False, expect_c_path=c_path)


# --------------------------------------------------------------------------------------
# packbits
# --------------------------------------------------------------------------------------

@HYP
@given(arr=arrays_of("|b1", max_len=200))
def test_packbits(arr):
    check_codec(PackBits(), arr)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 1001])
def test_packbits_lengths_and_pipeline(n):
    arr = (np.arange(n) * 7 % 5 < 2)
    enc = check_codec(PackBits(), arr)
    assert enc[0] == (8 - n % 8) % 8 and len(enc) == 1 + (n + 7) // 8
    if n:
        check_pipeline([PackBits()], arr, (max(1, n // 3),))
        check_pipeline([PackBits()], arr, (13,), compressor="zstd")


# --------------------------------------------------------------------------------------
# Checksums: crc32, adler32 (start by default), crc32c (end by default), fletcher32
# --------------------------------------------------------------------------------------

CHECKSUMS = [(CRC32, None), (CRC32, "start"), (CRC32, "end"), (Adler32, None),
             (Adler32, "start"), (Adler32, "end"), (CRC32C, None), (CRC32C, "start"),
             (CRC32C, "end"), (Fletcher32, None)]


def make_checksum(cls, location):
    return cls() if location is None else cls(location=location)


@pytest.mark.parametrize("cls,location", CHECKSUMS, ids=str)
@HYP
@given(data=st.data())
def test_checksum(cls, location, data):
    dtype = data.draw(st.sampled_from(["|u1", "<i2", "<f8", "|S3", "|b1"]))
    arr = data.draw(arrays_of(dtype, max_len=700))
    check_codec(make_checksum(cls, location), arr)


@pytest.mark.parametrize("cls,location", CHECKSUMS, ids=str)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 719, 720, 721, 722, 1441, 4097])
def test_checksum_lengths(cls, location, n):
    """Odd byte lengths, and Fletcher-32's 360-word blocks (720 bytes) around the edges."""
    arr = (np.arange(n) * 131 % 256).astype("u1")
    enc = check_codec(make_checksum(cls, location), arr)
    assert len(enc) == n + 4
    for dtype in ("<i2", "<f8", "|S3"):
        typed = np.frombuffer(arr.tobytes()[: n - n % np.dtype(dtype).itemsize], dtype=dtype)
        check_codec(make_checksum(cls, location), typed)


@pytest.mark.parametrize("cls,location", CHECKSUMS, ids=str)
def test_checksum_mismatch_raises(cls, location):
    codec = make_checksum(cls, location)
    enc = bytearray(codec.encode(np.arange(100, dtype="<i4")))
    for i in (0, 3, len(enc) // 2, len(enc) - 1):
        bad = bytearray(enc)
        bad[i] ^= 0x40
        with pytest.raises(exzarr.CorruptChunkError):
            codec.decode(bytes(bad))
    with pytest.raises(exzarr.CorruptChunkError):
        codec.decode(b"abc")  # too short to hold a checksum


@pytest.mark.parametrize("cls,location", CHECKSUMS, ids=str)
def test_checksum_pipeline(cls, location):
    arr = np.arange(1001, dtype="<i2").reshape(77, 13)
    check_pipeline([make_checksum(cls, location)], arr, (10, 5))
    check_pipeline([make_checksum(cls, location)], arr, (7, 13), compressor="zstd", order="F")
    s = np.array([b"a", b"bc", b"def"] * 101, dtype="|S3")  # odd chunk byte counts
    check_pipeline([make_checksum(cls, location)], s, (7,))


@pytest.mark.parametrize("cls,location", CHECKSUMS, ids=str)
@pytest.mark.parametrize("compressor", [None, "zlib"])
def test_checksum_mismatch_raises_through_array_read(cls, location, compressor):
    a = exzarr.create(shape=(40,), chunks=(16,), dtype="<i4", compressor=compressor,
                      filters=[make_checksum(cls, location)])
    a[...] = np.arange(40)
    key = a.chunk_key((1,))
    stored = a.store.get(key)
    comp = a.compressor
    payload = bytearray(comp.decode(stored) if comp else stored)
    for i in (0, 5, len(payload) - 1):
        bad = bytearray(payload)
        bad[i] ^= 0x01
        a.store.set(key, comp.encode(bytes(bad)) if comp else bytes(bad))
        with pytest.raises(exzarr.CorruptChunkError) as info:
            a[...]
        assert info.value.key == key
        with pytest.raises(exzarr.CorruptChunkError):
            a[20]
    a.store.set(key, stored)
    np.testing.assert_array_equal(a[...], np.arange(40))


# --------------------------------------------------------------------------------------
# Fortran-ordered and non-contiguous input: filters take the elements in memory order
# --------------------------------------------------------------------------------------

LAYOUT_CODECS = [
    Delta(dtype="<i4"), Delta(dtype="<f8", astype="<f4"), Quantize(digits=2, dtype="<f8"),
    FixedScaleOffset(offset=10, scale=100, dtype="<f8", astype="<i4"),
    AsType(encode_dtype="<f4", decode_dtype="<f8"), Shuffle(elementsize=8), CRC32(),
    Adler32(location="end"), CRC32C(), Fletcher32(), BitRound(keepbits=9),
]


@pytest.mark.parametrize("codec", LAYOUT_CODECS, ids=repr)
def test_fortran_ordered_input(codec):
    dtype = getattr(codec, "dtype", None) or np.dtype("<f8")
    if codec.codec_id == "astype":
        dtype = codec.decode_dtype
    base = np.round(np.sin(np.arange(7 * 11)) * 1000, 3).reshape(7, 11).astype(dtype)
    farr = np.asfortranarray(base)
    enc = check_codec(codec, farr, lossless=False)
    if codec.codec_id == "bitround":
        return  # numcodecs' BitRound returns a C-order copy of its input, and so does exzarr's
    # The same as encoding the Fortran-order bytes as a flat array.
    assert enc == raw(codec.encode(np.frombuffer(farr.tobytes(order="F"), dtype=dtype)))


# --------------------------------------------------------------------------------------
# Chains of C filters through the array pipeline
# --------------------------------------------------------------------------------------

CHAINS = [
    ("<f8", [Quantize(digits=2, dtype="<f8"), Shuffle(elementsize=8)], "zstd"),
    ("<i8", [Delta(dtype="<i8"), Shuffle(elementsize=8), CRC32()], "zlib"),
    ("<i4", [Delta(dtype="<i4", astype="<i2"), Fletcher32()], None),
    ("<f4", [BitRound(keepbits=7), Shuffle(elementsize=4), CRC32C()], "lz4"),
    ("<f8", [FixedScaleOffset(offset=100, scale=10, dtype="<f8", astype="<u2"),
             Delta(dtype="<u2"), Adler32(location="end")], "zstd"),
    ("<f8", [AsType(encode_dtype="<f4", decode_dtype="<f8"), Shuffle(elementsize=4)], None),
    ("|b1", [PackBits(), CRC32(location="end")], "zstd"),
    ("<f4", [Quantize(digits=3, dtype="<f4", astype="<f8"), BitRound(keepbits=20)], None),
]


@pytest.mark.parametrize("dtype,filters,compressor", CHAINS, ids=lambda x: str(x)[:40])
def test_filter_chains_pipeline(dtype, filters, compressor):
    dt = np.dtype(dtype)
    x = np.linspace(0, 30, 1500)
    if dt.kind == "f":
        arr = np.round(20 * np.sin(x) * np.cos(x / 2) + 100, 2).astype(dt).reshape(50, 30)
    elif dt.kind == "b":
        arr = (np.sin(x) > 0.3).reshape(50, 30)
    else:
        arr = np.cumsum(np.round(np.sin(x) * 50)).astype(dt).reshape(50, 30)
    check_pipeline(filters, arr, (16, 30), compressor=compressor, lossless=False)
    check_pipeline(filters, arr, (10, 7), compressor=compressor, lossless=False, order="F")


# --------------------------------------------------------------------------------------
# Compressors run through the standard library: bz2, lzma
# --------------------------------------------------------------------------------------

LZMA_CONFIGS = [
    {}, {"preset": 1}, {"preset": 9 | lzma.PRESET_EXTREME}, {"check": lzma.CHECK_CRC32},
    {"format": lzma.FORMAT_ALONE, "preset": 2},
    {"format": lzma.FORMAT_RAW, "filters": [{"id": lzma.FILTER_DELTA, "dist": 4},
                                             {"id": lzma.FILTER_LZMA2, "preset": 1}]},
    # (numcodecs cannot decode FORMAT_XZ with filters: lzma.decompress refuses them.)
]

STDLIB_CODECS = [BZ2(level=lvl) for lvl in (1, 5, 9)] + [LZMA(**c) for c in LZMA_CONFIGS]
byte_arrays = st.one_of(arrays_of("|u1", max_len=3000), arrays_of("<f8", max_len=400),
                        arrays_of("|S5", max_len=200), arrays_of("<i2"))


@pytest.mark.parametrize("codec", STDLIB_CODECS, ids=repr)
@HYP_FEW
@given(arr=byte_arrays)
def test_stdlib_compressors(codec, arr):
    enc = check_codec(codec, arr, exact_encode=False)
    assert bytes(codec.decode(enc)) == raw(arr)
    out = bytearray(arr.nbytes)
    codec.decode(enc, out=out)
    assert bytes(out) == raw(arr)


@pytest.mark.parametrize("codec", STDLIB_CODECS, ids=repr)
def test_stdlib_compressor_arrays(codec):
    arr = np.round(np.cumsum(np.random.default_rng(5).normal(size=(60, 50)), axis=1), 2)
    a = exzarr.create(shape=arr.shape, chunks=(25, 20), dtype=arr.dtype, compressor=codec)
    a[...] = arr
    theirs = nc(codec)
    for pos in [(0, 0), (2, 2)]:
        chunk = numcodecs_chunk(arr, (25, 20), pos, 0.0)
        assert bytes(theirs.decode(a.store.get(a.chunk_key(pos)))) == chunk.tobytes()
        a.store.set(a.chunk_key(pos), bytes(theirs.encode(chunk)))  # numcodecs' chunk
    np.testing.assert_array_equal(a[...], arr)
    bad = bytearray(a.store.get(a.chunk_key((1, 1))))
    bad[len(bad) // 2] ^= 0xFF
    a.store.set(a.chunk_key((1, 1)), bytes(bad[: len(bad) // 2]))
    with pytest.raises(exzarr.CorruptChunkError):
        a[...]


# --------------------------------------------------------------------------------------
# Object codecs: categorize, vlen-utf8, vlen-bytes
# --------------------------------------------------------------------------------------

LABELS = ["ä", "apple", "banana", "", "日本", "x" * 9]
CATEGORIZE_CONFIGS = [("<U9", "|u1"), ("<U9", "<u2"), ("<U12", "|i1"), ("|O", "|u1"), ("|O", "<i4")]


@pytest.mark.parametrize("dtype,astype", CATEGORIZE_CONFIGS, ids=str)
@HYP
@given(data=st.data())
def test_categorize(dtype, astype, data):
    values = st.one_of(st.sampled_from(LABELS), st.text(max_size=5))
    items = data.draw(st.lists(values, max_size=100))
    arr = np.array(items, dtype=object if dtype == "|O" else dtype)
    if dtype != "|O":
        arr = arr.astype(dtype)  # an empty list gives '<U1'
    codec = Categorize(labels=LABELS, dtype=dtype, astype=astype)
    check_codec(codec, arr, lossless=all(v in LABELS for v in items))


@pytest.mark.parametrize("dtype,astype", CATEGORIZE_CONFIGS, ids=str)
def test_categorize_array(dtype, astype):
    items = (["apple", "banana", "ä", "cherry", "", "日本"] * 50)[:293]
    arr = np.array(items, dtype=object if dtype == "|O" else dtype)
    expected = np.array([v if v in LABELS else "" for v in items], dtype=arr.dtype)
    a = exzarr.create(shape=arr.shape, chunks=(40,), dtype=arr.dtype, compressor="zlib",
                      filters=[Categorize(labels=LABELS, dtype=dtype, astype=astype)],
                      fill_value="" if dtype == "|O" else "")
    a[...] = arr
    assert a[...].tolist() == expected.tolist()
    theirs = numcodecs.Categorize(labels=LABELS, dtype=dtype, astype=astype)
    chunk = arr[40:80]
    assert bytes(numcodecs.Zlib(1).decode(a.store.get(a.chunk_key((1,))))) == raw(theirs.encode(chunk))


text_items = st.one_of(st.text(max_size=20), st.sampled_from(["", "ä", "日本語", "🎉🎉", "a\x00b"]))


@HYP
@given(items=st.lists(text_items, max_size=60), shape2=st.booleans())
def test_vlen_utf8(items, shape2):
    arr = np.array(items + [""] * (len(items) % 2 if shape2 else 0), dtype=object)
    if shape2 and arr.size:
        arr = arr.reshape(2, -1)
    enc = check_codec(VLenUTF8(), arr)
    assert enc[:4] == len(items).to_bytes(4, "little") or shape2


@HYP
@given(items=st.lists(st.binary(max_size=30), max_size=60))
def test_vlen_bytes(items):
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    check_codec(VLenBytes(), arr)


def test_vlen_missing_values_encode_as_empty_like_numcodecs():
    for ours, theirs, arr in [
        (VLenUTF8(), numcodecs.VLenUTF8(), np.array(["a", None, "", "é"], dtype=object)),
        (VLenBytes(), numcodecs.VLenBytes(), np.array([b"a", None, b"", b"\xff"], dtype=object)),
    ]:
        assert ours.encode(arr) == bytes(theirs.encode(arr))


def test_vlen_utf8_rejects_non_str_like_numcodecs():
    arr = np.array(["a", b"b"], dtype=object)
    with pytest.raises(TypeError):
        numcodecs.VLenUTF8().encode(arr)
    with pytest.raises(TypeError):
        VLenUTF8().encode(arr)


@pytest.mark.parametrize("item", [5, 3.5, "text"], ids=repr)
def test_vlen_bytes_rejects_non_bytes_like_numcodecs(item):
    """numcodecs raises TypeError for a non-bytes item; ``bytes(5)`` would silently
    store five zero bytes."""
    arr = np.empty(2, dtype=object)
    arr[:] = [b"a", item]
    with pytest.raises(TypeError):
        numcodecs.VLenBytes().encode(arr)
    with pytest.raises(TypeError):
        VLenBytes().encode(arr)


def test_categorize_bytes_labels_like_numcodecs():
    """numcodecs decodes bytes labels as UTF-8 text (ensure_text)."""
    labels = [b"apple", "b\u00e4r", "\u00e9".encode()]
    theirs = numcodecs.Categorize(labels=labels, dtype="<U5")
    ours = Categorize(labels=labels, dtype="<U5")
    assert ours.get_config() == theirs.get_config()
    arr = np.array(["apple", "b\u00e4r", "\u00e9", "x"], dtype="<U5")
    check_codec(ours, arr, lossless=False)
    assert raw(ours.encode(arr)) == raw(theirs.encode(arr))


@pytest.mark.parametrize("codec", [VLenUTF8(), VLenBytes()], ids=["utf8", "bytes"])
def test_vlen_corrupt_raises(codec):
    enc = codec.encode(np.array(["abc", "de"] if codec.codec_id == "vlen-utf8" else [b"abc", b"de"],
                                dtype=object))
    for bad in (enc[:3], enc[:-1], b"\xff\xff\xff\x7f" + enc[4:]):
        with pytest.raises(exzarr.CorruptChunkError):
            codec.decode(bad)


# --------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------

CONFIG_PAIRS = (
    [(Delta(dtype=d, astype=a), numcodecs.Delta(dtype=d, astype=a)) for d, a in DELTA_CONFIGS]
    + [(Shuffle(elementsize=e), numcodecs.Shuffle(elementsize=e)) for e in (0, 1, 2, 4, 8, 16)]
    + [(Shuffle(), numcodecs.Shuffle())]
    + [(Quantize(digits=d, dtype=t, astype=a), numcodecs.Quantize(digits=d, dtype=t, astype=a))
       for d, t, a in QUANTIZE_CONFIGS]
    + [(FixedScaleOffset(offset=o, scale=s, dtype=d, astype=a),
        numcodecs.FixedScaleOffset(offset=o, scale=s, dtype=d, astype=a)) for o, s, d, a in FSO_CONFIGS]
    + [(FixedScaleOffset(offset=1, scale=2, dtype="<f8"), numcodecs.FixedScaleOffset(offset=1, scale=2, dtype="<f8"))]
    + [(BitRound(keepbits=k), numcodecs.BitRound(keepbits=k)) for k in (0, 1, 10, 23, 52)]
    + [(AsType(encode_dtype=e, decode_dtype=d), numcodecs.AsType(encode_dtype=e, decode_dtype=d))
       for e, d in ASTYPE_PAIRS]
    + [(PackBits(), numcodecs.PackBits()), (Fletcher32(), numcodecs.Fletcher32())]
    # numcodecs writes the checksum location only when it was given and differs from
    # the codec's default (a default location it was given explicitly is equivalent).
    + [(CRC32(), numcodecs.CRC32()), (CRC32(location="end"), numcodecs.CRC32(location="end")),
       (Adler32(), numcodecs.Adler32()), (Adler32(location="end"), numcodecs.Adler32(location="end")),
       (CRC32C(), numcodecs.CRC32C()), (CRC32C(location="start"), numcodecs.CRC32C(location="start"))]
    + [(BZ2(level=lvl), numcodecs.BZ2(level=lvl)) for lvl in (1, 9)] + [(BZ2(), numcodecs.BZ2())]
    + [(LZMA(**c), numcodecs.LZMA(**c)) for c in LZMA_CONFIGS]
    + [(Categorize(labels=LABELS, dtype=d, astype=a), numcodecs.Categorize(labels=LABELS, dtype=d, astype=a))
       for d, a in CATEGORIZE_CONFIGS]
    + [(Categorize(labels=["a"], dtype="<U3"), numcodecs.Categorize(labels=["a"], dtype="<U3"))]
    + [(VLenUTF8(), numcodecs.VLenUTF8()), (VLenBytes(), numcodecs.VLenBytes())]
)


@pytest.mark.parametrize("ours,theirs", CONFIG_PAIRS, ids=repr)
def test_get_config_matches_numcodecs(ours, theirs):
    config_matches(ours, theirs)


@pytest.mark.parametrize("cls,default", [(CRC32, "start"), (Adler32, "start"), (CRC32C, "end")])
def test_checksum_default_location_is_not_written(cls, default):
    other = "end" if default == "start" else "start"
    assert cls(location=default).get_config() == {"id": cls.codec_id}
    assert cls(location=other).get_config() == {"id": cls.codec_id, "location": other}
    # numcodecs writes an explicit default location; it means the same codec.
    theirs = numcodecs.get_codec({"id": cls.codec_id, "location": default})
    arr = np.arange(33, dtype="u1")
    assert raw(theirs.encode(arr)) == raw(cls(location=default).encode(arr))
    assert get_codec({"id": cls.codec_id, "location": default}).get_config() == {"id": cls.codec_id}
