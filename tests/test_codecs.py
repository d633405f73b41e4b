"""Byte-level oracle tests of exzarr's codecs, in the style of numcodecs' own tests.

exzarr's encoded bytes must decode with the reference implementation (the stdlib for
zlib/gzip, ``zstandard``, ``lz4.block`` with numcodecs' 4-byte little-endian size
prefix, numcodecs for everything) to the original bytes; bytes encoded by the
reference must decode in exzarr; and ``get_config()`` must match numcodecs'.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib

import lz4.block
import numcodecs
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import exzarr
from exzarr.codecs import LZ4, Blosc, Delta, GZip, Zlib, Zstd, get_codec

BLOSC_CNAMES = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]  # what numcodecs ships
SHUFFLES = [-1, 0, 1, 2]

# Arrays in the spirit of numcodecs' test suite: several dtypes and layouts, empty
# arrays, odd lengths, 1-byte items, big-endian items, compressible and random data.
_rng = np.random.default_rng(42)
ARRAYS = [
    np.arange(1000, dtype="<i4"),
    np.arange(1000, dtype=">i8"),
    np.linspace(1000, 1001, 1000, dtype="<f8"),
    np.linspace(-1, 1, 999, dtype=">f4"),
    _rng.normal(loc=1000, scale=1, size=(10, 77)).astype("<f8"),
    _rng.integers(0, 2, size=1001).astype(bool),
    _rng.integers(0, 256, size=4097, dtype="u1"),
    _rng.integers(-(2**15), 2**15, size=(7, 13, 3), dtype="<i2"),
    (_rng.normal(size=333) + 1j * _rng.normal(size=333)).astype("<c16"),
    np.zeros(5000, dtype="<u2"),
    np.frombuffer(b"odd length!", dtype="u1"),
    np.array([7], dtype="u1"),
    np.array([], dtype="u1"),
    np.array([], dtype="<f8"),
    np.zeros((0, 5), dtype="<i4"),
    np.array([b"abc", b"de", b""], dtype="S3"),
    np.full(7, b"wide items", dtype="S300"),  # itemsize > 255: blosc typesize 1
]
ARRAY_IDS = [f"{a.dtype.str}-{'x'.join(map(str, a.shape)) or 'scalar'}" for a in ARRAYS]


# --------------------------------------------------------------------------------------
# Reference implementations
# --------------------------------------------------------------------------------------

def ref_zstd_decode(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def ref_lz4_encode(raw: bytes, acceleration: int = 1) -> bytes:
    # store_size=True prepends the uncompressed size as 4 bytes little-endian:
    # exactly numcodecs' layout.
    return lz4.block.compress(raw, mode="fast", acceleration=acceleration, store_size=True)


def ref_lz4_decode(data: bytes) -> bytes:
    return lz4.block.decompress(data)


def oracles(codec) -> list[tuple[str, object, object]]:
    """(name, encode(raw bytes) -> bytes, decode(bytes) -> raw bytes) for ``codec``."""
    cfg = codec.get_config()
    nc = numcodecs.get_codec(dict(cfg))
    nc_pair = ("numcodecs", lambda raw, arr: bytes(nc.encode(arr)),
               lambda data: bytes(nc.decode(data)))
    cid = cfg["id"]
    if cid == "zlib":
        lvl = cfg["level"]
        return [("zlib", lambda raw, arr: zlib.compress(raw, lvl), zlib.decompress), nc_pair]
    if cid == "gzip":
        lvl = cfg["level"]
        return [("gzip", lambda raw, arr: gzip.compress(raw, compresslevel=lvl, mtime=0),
                 gzip.decompress), nc_pair]
    if cid == "zstd":
        lvl = cfg["level"] or 3
        ck = bool(cfg.get("checksum"))
        return [("zstandard",
                 lambda raw, arr: zstandard.ZstdCompressor(level=lvl, write_checksum=ck).compress(raw),
                 ref_zstd_decode), nc_pair]
    if cid == "lz4":
        acc = cfg["acceleration"]
        return [("lz4.block", lambda raw, arr: ref_lz4_encode(raw, acc), ref_lz4_decode), nc_pair]
    return [nc_pair]


def memory_bytes(arr: np.ndarray) -> bytes:
    """The array's bytes in memory order, as numcodecs hands them to a compressor."""
    return arr.tobytes(order="A")


def check_encode_decode(codec, arr: np.ndarray) -> bytes:
    """exzarr <-> reference in both directions, plus exzarr's own round trip (also
    through ``out=``). Returns exzarr's encoding."""
    raw = memory_bytes(arr)
    enc = codec.encode(arr)
    assert isinstance(enc, bytes)
    # exzarr -> exzarr, returned and into out buffers of several kinds.
    assert bytes(codec.decode(enc)) == raw
    out = np.empty_like(arr, order="A")
    assert codec.decode(enc, out=out) is out
    assert memory_bytes(out) == raw
    ba = bytearray(len(raw))
    codec.decode(enc, out=ba)
    assert bytes(ba) == raw
    # Any buffer type in, for encode and decode.
    assert codec.decode(bytearray(enc)) == raw
    assert codec.decode(memoryview(enc)) == raw
    assert codec.decode(np.frombuffer(enc, dtype="u1")) == raw
    for name, ref_encode, ref_decode in oracles(codec):
        if name == "numcodecs" and not raw and codec.codec_id in ("zstd", "lz4", "blosc"):
            # numcodecs 0.16 cannot decode an empty zstd/lz4/blosc buffer, not even its
            # own; exzarr must then write exactly what numcodecs writes.
            assert enc == bytes(numcodecs.get_codec(codec.get_config()).encode(arr))
        else:
            # exzarr -> reference
            assert ref_decode(enc) == raw, f"{name} cannot decode exzarr's bytes"
        # reference -> exzarr
        theirs = ref_encode(raw, arr)
        assert bytes(codec.decode(theirs)) == raw, f"exzarr cannot decode {name}'s bytes"
    return enc


# --------------------------------------------------------------------------------------
# Round trips against the references
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("arr", ARRAYS, ids=ARRAY_IDS)
@pytest.mark.parametrize("level", [0, 1, 5, 9])
def test_zlib(arr, level):
    check_encode_decode(Zlib(level=level), arr)


@pytest.mark.parametrize("arr", ARRAYS, ids=ARRAY_IDS)
@pytest.mark.parametrize("level", [0, 1, 5, 9])
def test_gzip(arr, level):
    enc = check_encode_decode(GZip(level=level), arr)
    assert enc[:2] == b"\x1f\x8b"  # a gzip member, not a bare zlib stream


@pytest.mark.parametrize("arr", ARRAYS, ids=ARRAY_IDS)
@pytest.mark.parametrize("level", [-5, 0, 1, 3, 9, 19])
@pytest.mark.parametrize("checksum", [False, True])
def test_zstd(arr, level, checksum):
    enc = check_encode_decode(Zstd(level=level, checksum=checksum), arr)
    params = zstandard.get_frame_parameters(enc)
    assert params.content_size == arr.nbytes  # a single frame announcing its size
    assert params.has_checksum == checksum


@pytest.mark.parametrize("arr", ARRAYS, ids=ARRAY_IDS)
@pytest.mark.parametrize("acceleration", [1, 2, 10, 100])
def test_lz4(arr, acceleration):
    enc = check_encode_decode(LZ4(acceleration=acceleration), arr)
    assert struct.unpack("<I", enc[:4])[0] == arr.nbytes


@pytest.mark.parametrize("arr", ARRAYS, ids=ARRAY_IDS)
def test_lz4_high_compression_block_decodes(arr):
    raw = memory_bytes(arr)
    theirs = lz4.block.compress(raw, mode="high_compression", compression=12, store_size=True)
    assert LZ4().decode(theirs) == raw


@pytest.mark.parametrize("arr", ARRAYS, ids=ARRAY_IDS)
@pytest.mark.parametrize("shuffle", SHUFFLES)
@pytest.mark.parametrize("cname", BLOSC_CNAMES)
def test_blosc(arr, cname, shuffle):
    codec = Blosc(cname=cname, clevel=5, shuffle=shuffle)
    enc = check_encode_decode(codec, arr)
    # Same header as numcodecs writes: format versions, flags (shuffle kind, inner
    # compressor), typesize, nbytes, blocksize. cbytes may differ with library versions.
    theirs = numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle).encode(arr)
    assert enc[:12] == bytes(theirs)[:12]
    assert struct.unpack("<I", enc[12:16])[0] == len(enc)


@pytest.mark.parametrize("clevel", [0, 1, 9])
@pytest.mark.parametrize("blocksize", [0, 256, 4096])
@pytest.mark.parametrize("cname", BLOSC_CNAMES)
def test_blosc_levels_and_blocksizes(cname, clevel, blocksize):
    arr = np.arange(3001, dtype="<i8") % 97
    codec = Blosc(cname=cname, clevel=clevel, shuffle=1, blocksize=blocksize)
    enc = check_encode_decode(codec, arr)
    theirs = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=1, blocksize=blocksize).encode(arr)
    assert enc[:12] == bytes(theirs)[:12]


@pytest.mark.parametrize("arr", ARRAYS[:8], ids=ARRAY_IDS[:8])
def test_blosc_snappy_round_trip(arr):
    assert "snappy" in exzarr._core.blosc_compressors(), "the linked c-blosc lacks snappy"
    codec = Blosc(cname="snappy", clevel=5, shuffle=1)
    raw = memory_bytes(arr)
    assert Blosc().decode(codec.encode(arr)) == raw


@pytest.mark.parametrize("dtype", ["<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8",
                                   "<f4", "<f8", ">i4", ">f8"])
def test_delta(dtype):
    arr = (np.arange(500) * 7 % 131 - 50).astype(dtype)
    codec = Delta(dtype=dtype)
    nc = numcodecs.Delta(dtype=dtype)
    enc = codec.encode(arr)
    assert np.asarray(enc).tobytes() == np.asarray(nc.encode(arr)).tobytes()
    assert np.asarray(codec.decode(enc)).tobytes() == arr.tobytes()
    assert np.asarray(nc.decode(enc)).tobytes() == arr.tobytes()
    assert np.asarray(codec.decode(bytes(np.asarray(nc.encode(arr))))).tobytes() == arr.tobytes()


@pytest.mark.parametrize("dtype,astype", [("<i8", "<i2"), ("<i4", "<i1"), ("<f8", "<f4")])
def test_delta_astype(dtype, astype):
    arr = (np.arange(300) % 17).astype(dtype)
    codec = Delta(dtype=dtype, astype=astype)
    nc = numcodecs.Delta(dtype=dtype, astype=astype)
    enc = codec.encode(arr)
    assert np.asarray(enc).tobytes() == np.asarray(nc.encode(arr)).tobytes()
    assert np.asarray(codec.decode(enc)).tobytes() == np.asarray(nc.decode(enc)).tobytes()


# --------------------------------------------------------------------------------------
# Arrays in Fortran order: numcodecs compresses the memory, not a C-order copy
# --------------------------------------------------------------------------------------

F_ARRAYS = [np.asfortranarray(np.arange(60, dtype="<i2").reshape(3, 4, 5)),
            np.asfortranarray(np.linspace(0, 1, 77 * 3).reshape(77, 3))]


@pytest.mark.parametrize("arr", F_ARRAYS, ids=["i2-3x4x5", "f8-77x3"])
@pytest.mark.parametrize("codec", [Zlib(), GZip(), Zstd(), LZ4(), Blosc(shuffle=0)],
                         ids=["zlib", "gzip", "zstd", "lz4", "blosc"])
def test_fortran_ordered_input_is_encoded_in_memory_order(codec, arr):
    assert arr.flags.f_contiguous and not arr.flags.c_contiguous
    nc = numcodecs.get_codec(codec.get_config())
    assert bytes(nc.decode(nc.encode(arr))) == memory_bytes(arr)  # numcodecs' convention
    check_encode_decode(codec, arr)


# --------------------------------------------------------------------------------------
# zstd frames as other writers lay them out
# --------------------------------------------------------------------------------------

ZSTD_PAYLOADS = [b"", b"x", b"hello world " * 1000, bytes(range(256)) * 300,
                 np.random.default_rng(1).integers(0, 256, 70000, dtype="u1").tobytes()]


@pytest.mark.parametrize("raw", ZSTD_PAYLOADS, ids=lambda r: f"{len(r)}B")
@pytest.mark.parametrize("level", [1, 3, 19])
def test_zstd_frame_without_content_size(raw, level):
    frame = zstandard.ZstdCompressor(level=level, write_content_size=False).compress(raw)
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert Zstd().decode(frame) == raw
    out = bytearray(len(raw))
    Zstd().decode(frame, out=out)
    assert bytes(out) == raw


@pytest.mark.parametrize("raw", ZSTD_PAYLOADS, ids=lambda r: f"{len(r)}B")
def test_zstd_streamed_frame(raw):
    cobj = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
    frame = b"".join([cobj.compress(raw[i:i + 1000]) for i in range(0, len(raw), 1000)])
    frame += cobj.flush()
    assert Zstd().decode(frame) == raw


@pytest.mark.parametrize("sizes", [(True, True), (False, False), (True, False), (False, True)])
def test_zstd_concatenated_frames(sizes):
    parts = [b"first part " * 300, bytes(range(256)) * 40, b"", b"tail"]
    frames = b""
    for i, raw in enumerate(parts):
        cctx = zstandard.ZstdCompressor(level=1 + i, write_content_size=sizes[i % 2])
        frames += cctx.compress(raw)
    whole = b"".join(parts)
    assert Zstd().decode(frames) == whole
    out = np.empty(len(whole), dtype="u1")
    Zstd().decode(frames, out=out)
    assert out.tobytes() == whole
    # exzarr's own frames concatenate too.
    two = Zstd(level=5).encode(parts[0]) + Zstd(checksum=True).encode(parts[1])
    assert Zstd().decode(two) == parts[0] + parts[1]


def test_zstd_skippable_frame_between_frames():
    a, b = b"a" * 5000, b"b" * 7000
    skippable = struct.pack("<II", 0x184D2A50, 5) + b"12345"
    data = zstandard.ZstdCompressor().compress(a) + skippable + zstandard.ZstdCompressor().compress(b)
    assert Zstd().decode(data) == a + b


# --------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------

def expected_config(nc_codec) -> dict:
    cfg = dict(nc_codec.get_config())
    if cfg["id"] == "zstd" and cfg.get("checksum") is False:
        del cfg["checksum"]  # never write "checksum": false
    return cfg


CONFIG_CASES = (
    [(Zlib(level=lvl), numcodecs.Zlib(level=lvl)) for lvl in range(10)]
    + [(GZip(level=lvl), numcodecs.GZip(level=lvl)) for lvl in range(10)]
    + [(Zstd(level=lvl, checksum=ck), numcodecs.Zstd(level=lvl, checksum=ck))
       for lvl in (-7, 0, 1, 3, 22) for ck in (False, True)]
    + [(LZ4(acceleration=acc), numcodecs.LZ4(acceleration=acc)) for acc in (1, 5, 1000)]
    + [(Blosc(cname=c, clevel=cl, shuffle=sh, blocksize=bs),
        numcodecs.Blosc(cname=c, clevel=cl, shuffle=sh, blocksize=bs))
       for c in BLOSC_CNAMES for cl in (0, 5, 9) for sh in SHUFFLES for bs in (0, 1 << 16)]
    + [(Delta(dtype=d, astype=a), numcodecs.Delta(dtype=d, astype=a))
       for d, a in (("<i4", None), ("<i8", "<i2"), (">f8", None), ("|u1", "|u1"))]
)


@pytest.mark.parametrize("ours,theirs", CONFIG_CASES, ids=lambda c: repr(c))
def test_get_config_matches_numcodecs(ours, theirs):
    cfg = ours.get_config()
    assert cfg == expected_config(theirs)
    assert json.loads(json.dumps(cfg)) == cfg
    # from_config / get_codec round trips, from our config and from numcodecs'.
    assert type(ours).from_config(cfg).get_config() == cfg
    assert get_codec(dict(cfg)).get_config() == cfg
    assert get_codec(dict(theirs.get_config())).get_config() == cfg
    # numcodecs accepts ours.
    assert numcodecs.get_codec(dict(cfg)).get_config() == theirs.get_config()


@pytest.mark.parametrize("ours,theirs", [
    (Zlib(), numcodecs.Zlib()), (GZip(), numcodecs.GZip()), (Zstd(), numcodecs.Zstd()),
    (LZ4(), numcodecs.LZ4()), (Blosc(), numcodecs.Blosc()),
], ids=["zlib", "gzip", "zstd", "lz4", "blosc"])
def test_default_config_matches_numcodecs(ours, theirs):
    assert ours.get_config() == expected_config(theirs)


def test_zstd_config_never_writes_checksum_false():
    assert "checksum" not in Zstd(level=3).get_config()
    assert "checksum" not in get_codec({"id": "zstd", "level": 3, "checksum": False}).get_config()
    assert Zstd(level=3, checksum=True).get_config() == {"id": "zstd", "level": 3, "checksum": True}


def test_blosc_config_without_blocksize():
    codec = get_codec({"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2})
    assert codec.get_config() == {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2,
                                  "blocksize": 0}


def test_array_metadata_uses_numcodecs_configs():
    for name, nc in [("zlib", numcodecs.Zlib(level=1)), ("gzip", numcodecs.GZip(level=1)),
                     ("lz4", numcodecs.LZ4()), ("blosc", numcodecs.Blosc()),
                     ("zstd", numcodecs.Zstd(level=0))]:
        a = exzarr.create(shape=(4,), chunks=(2,), compressor=name)
        doc = json.loads(a.store.get(".zarray"))
        assert doc["compressor"] == expected_config(nc), name


# --------------------------------------------------------------------------------------
# Hypothesis: random arrays through every codec, against numcodecs
# --------------------------------------------------------------------------------------

HYP_CODECS = [Zlib(level=1), Zlib(level=9), GZip(level=6), Zstd(level=0), Zstd(level=-3),
              Zstd(level=5, checksum=True), LZ4(), LZ4(acceleration=50)] + [
    Blosc(cname=c, clevel=5, shuffle=s) for c in BLOSC_CNAMES for s in SHUFFLES]

hyp_dtypes = st.sampled_from(["|u1", "|i1", "<u2", ">i2", "<i4", ">u4", "<i8", "<f4", ">f8",
                              "|b1", "<c8", "|S5"]).map(np.dtype)


@st.composite
def hyp_arrays(draw):
    dtype = draw(hyp_dtypes)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=23))
    # Odd byte lengths come from u1/i1/b1/S5 arrays of odd sizes.
    return np.ascontiguousarray(draw(hnp.arrays(dtype, shape)))


@settings(max_examples=150, deadline=None)
@given(codec=st.sampled_from(HYP_CODECS), arr=hyp_arrays())
def test_hypothesis_arrays_against_numcodecs(codec, arr):
    check_encode_decode(codec, arr)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(min_size=0, max_size=3000), level=st.integers(1, 9))
def test_hypothesis_bytes_zlib_gzip_zstd_lz4(raw, level):
    arr = np.frombuffer(raw, dtype="u1")
    for codec in (Zlib(level=level), GZip(level=level), Zstd(level=level), LZ4(acceleration=level)):
        check_encode_decode(codec, arr)


# --------------------------------------------------------------------------------------
# decode() argument checking
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", [Zlib(), GZip(), Zstd(), LZ4(), Blosc()],
                         ids=["zlib", "gzip", "zstd", "lz4", "blosc"])
@pytest.mark.parametrize("delta", [-1, 1, 100])
def test_decode_into_out_of_wrong_size_raises(codec, delta):
    raw = bytes(range(200)) * 5
    enc = codec.encode(raw)
    out = bytearray(len(raw) + delta)
    with pytest.raises(exzarr.ExZarrError):
        codec.decode(enc, out=out)


@pytest.mark.parametrize("layout", ["no_content_size", "two_frames", "three_frames_mixed"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_array_reads_zstd_chunks_written_by_other_writers(layout, order):
    """Chunks as tensorstore (no content size) or a streaming writer (several frames)
    lay them out, read through the array path (straight-into-output and scratch)."""
    a = exzarr.create(shape=(12, 10), chunks=(6, 10), dtype="<i4", compressor="zstd", order=order)
    data = np.arange(120, dtype="<i4").reshape(12, 10) * 3
    for k in range(2):
        raw = data[6 * k: 6 * k + 6].tobytes(order=order)
        if layout == "no_content_size":
            enc = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
        elif layout == "two_frames":
            enc = b"".join(zstandard.ZstdCompressor(write_content_size=False).compress(p)
                           for p in (raw[:100], raw[100:]))
        else:
            enc = (zstandard.ZstdCompressor().compress(raw[:7])
                   + zstandard.ZstdCompressor(write_content_size=False).compress(raw[7:150])
                   + zstandard.ZstdCompressor(write_checksum=True).compress(raw[150:]))
        a.store.set(a.chunk_key((k, 0)), enc)
    np.testing.assert_array_equal(a[...], data)
    np.testing.assert_array_equal(a[1:11:3, ::-2], data[1:11:3, ::-2])
    a[0, 0] = -1  # a partial write decodes the chunk first
    data[0, 0] = -1
    np.testing.assert_array_equal(a[...], data)
