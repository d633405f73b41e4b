"""A read of part of a chunk judges the chunk as a read of all of it would.

Reads of the start of a C-order chunk decode only as far as the selection reaches
(zstd frames without a checksum); the rest of the chunk is still checked: its frame
and block headers must reach exactly the end of the data and state the chunk's size.
Every other codec decodes whole chunks. So truncated, extended and resized chunks are
refused by every selection, and for lz4, zlib, blosc and checksummed zstd any damage a
full read finds, a partial read finds too.

Also: the codec API's ``decode`` of a stream that does not state its decoded size is
bounded by ``decode_limit_bytes`` and takes memory as output arrives, not the limit.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import exzarr
from exzarr import CorruptChunkError
from exzarr.codecs import GZip, Zlib, Zstd

CODECS = {
    "zstd": {"id": "zstd", "level": 1},
    "zstd-checksum": {"id": "zstd", "level": 1, "checksum": True},
    "lz4": {"id": "lz4", "acceleration": 1},
    "zlib": {"id": "zlib", "level": 1},
    "blosc-lz4": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
}
# Selections that read only the start of chunk 0.0 (the first rows of a C-order chunk).
PARTIAL = [np.s_[0:1, 0:1], np.s_[0:2, :], np.s_[3, 5:9]]
# Codecs whose partial reads find every damage a full read finds.
EXACT = {"zstd-checksum", "lz4", "zlib", "blosc-lz4"}


def _array(codec: str, chunks: tuple[int, int] = (64, 64)) -> exzarr.Array:
    a = exzarr.create(shape=(64, 128), chunks=chunks, dtype="<f8", compressor=CODECS[codec])
    rng = np.random.default_rng(7)
    # Smooth data with some noise: compressible, in several zstd blocks per chunk.
    a[...] = np.cumsum(rng.integers(-3, 4, size=(64, 128)), axis=1).astype("<f8")
    return a


def _outcome(a: exzarr.Array, sel: object) -> str:
    try:
        a[sel]
    except CorruptChunkError as e:
        assert e.key == "0.0"
        return "error"
    return "data"


def _mutations(good: bytes, rng: np.random.Generator) -> list[bytes]:
    n = len(good)
    cuts = sorted({1, 4, 5, 8, 12, n // 4, n // 2, n - 64, n - 8, n - 4, n - 3, n - 1}
                  | {int(x) for x in rng.integers(1, n, 24)})
    out = [good[:c] for c in cuts if 0 < c < n]
    out += [good + b"\0", good + good[:16], good + bytes(64)]
    for pos in rng.integers(0, n, 48):
        flipped = bytearray(good)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        out.append(bytes(flipped))
    return out


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_cut_or_extended_chunks_fail_every_selection(codec):
    """Truncated and extended chunks: every partial read raises as the full read does."""
    a = _array(codec)
    good = a.store.get("0.0")
    assert good is not None
    n = len(good)
    cases = [good[:c] for c in sorted({n // 2, n - 1, n - 4, 9, 40, n * 3 // 4}) if 0 < c < n]
    cases += [good + b"\0", good + good[:32]]
    for bad in cases:
        a.store.set("0.0", bad)
        full = _outcome(a, Ellipsis)
        for sel in PARTIAL:
            assert _outcome(a, sel) == full, (codec, len(bad), sel)
        if len(bad) < n:
            assert full == "error", (codec, len(bad))


@pytest.mark.parametrize("codec", sorted(EXACT))
def test_partial_reads_agree_with_full_reads(codec):
    """For codecs checked whole, a partial read and a full read give the same verdict on
    every damaged chunk, and where both return data it is the same data."""
    a = _array(codec)
    good = a.store.get("0.0")
    rng = np.random.default_rng(11)
    for bad in _mutations(good, rng):
        a.store.set("0.0", bad)
        full = _outcome(a, Ellipsis)
        for sel in PARTIAL:
            assert _outcome(a, sel) == full, (codec, sel)
        if full == "data":
            whole = a[...]
            for sel in PARTIAL:
                np.testing.assert_array_equal(a[sel], whole[sel])


def test_zstd_partial_reads_check_the_frame_sizes():
    """zstd without a checksum: a frame that states another content size, or whose blocks
    end early, is refused by a partial read without decoding the rest."""
    a = _array("zstd")
    raw = np.asarray(a[0:64, 0:64]).tobytes()
    for frame in (zstandard.ZstdCompressor(level=1).compress(raw[:-8]),       # says less
                  zstandard.ZstdCompressor(level=1).compress(raw + bytes(8)),  # says more
                  zstandard.ZstdCompressor(level=1).compress(raw)[:-5]):       # cut
        a.store.set("0.0", frame)
        assert _outcome(a, Ellipsis) == "error"
        for sel in PARTIAL:
            assert _outcome(a, sel) == "error"
    # Two frames making up the chunk between them, and a frame without a content size
    # (decoded whole), are read alike by both.
    c = zstandard.ZstdCompressor(level=1)
    half = len(raw) // 2
    cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    for stored in (c.compress(raw[:half]) + c.compress(raw[half:]),
                   cobj.compress(raw) + cobj.flush()):
        a.store.set("0.0", stored)
        whole = a[...]
        np.testing.assert_array_equal(whole[:, :64], np.frombuffer(raw, "<f8").reshape(64, 64))
        for sel in PARTIAL:
            np.testing.assert_array_equal(a[sel], whole[sel])


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=1 << 15), chunked=st.booleans(),
       codec=st.sampled_from(["zstd", "zlib", "gzip"]))
def test_unsized_decode_round_trips(data, chunked, codec):
    """Streams without a stated size decode exactly (the oracle made them)."""
    if codec == "zstd":
        if chunked:
            cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
            stream = b"".join(cobj.compress(data[i:i + 999]) for i in range(0, len(data), 999))
            stream += cobj.flush()
        else:
            stream = zstandard.ZstdCompressor().compress(data)
        assert Zstd().decode(stream) == data
    elif codec == "zlib":
        assert Zlib().decode(zlib.compress(data, 1)) == data
    else:
        stream = gzip.compress(data) + (gzip.compress(data[:100]) if chunked else b"")
        assert GZip().decode(stream) == data + (data[:100] if chunked else b"")


def test_unsized_decode_is_bounded_without_taking_the_limit():
    """A small stream expanding past decode_limit_bytes raises CorruptChunkError; the
    memory it took follows what it produced (in a child, whose peak RSS is its own)."""
    code = textwrap.dedent("""
        import resource, sys, zlib
        import zstandard
        import exzarr
        from exzarr import CorruptChunkError
        from exzarr.codecs import Zlib, Zstd

        co = zstandard.ZstdCompressor(write_content_size=False).compressobj()
        mib = bytes(1 << 20)
        bomb = b"".join(co.compress(mib) for _ in range(1024)) + co.flush()  # 1 GiB
        zbomb = zlib.compress(bytes(256 << 20), 9)                            # 256 MiB
        assert len(bomb) < 1 << 20 and len(zbomb) < 1 << 20
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with exzarr.config.set(decode_limit_bytes=32 << 20):
            for codec, stream in ((Zstd(), bomb), (Zlib(), zbomb)):
                try:
                    codec.decode(stream)
                except CorruptChunkError as e:
                    assert "decode_limit_bytes" in str(e), e
                else:
                    raise AssertionError("accepted")
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) >> 10
        print(grown)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 100, f"peak RSS grew by {out.stdout.strip()} MiB"


def test_default_limit_is_below_2_gib_and_configurable():
    assert 0 < exzarr.config.get("decode_limit_bytes") < 2**31
    stream = zlib.compress(bytes(4 << 20))
    with exzarr.config.set(decode_limit_bytes=(4 << 20) - 1):
        with pytest.raises(CorruptChunkError, match="decode_limit_bytes"):
            Zlib().decode(stream)
    with exzarr.config.set(decode_limit_bytes=4 << 20):
        assert Zlib().decode(stream) == bytes(4 << 20)


def test_a_checksum_in_any_frame_makes_partial_reads_decode_it():
    """A chunk of two frames, the second with a content checksum that fails: a partial
    read of the first frame's rows refuses it as the full read does."""
    a = _array("zstd")
    raw = np.asarray(a[0:64, 0:64]).tobytes()
    half = len(raw) // 2
    second = bytearray(zstandard.ZstdCompressor(level=1, write_checksum=True).compress(raw[half:]))
    second[-1] ^= 0xFF  # the checksum
    a.store.set("0.0", zstandard.ZstdCompressor(level=1).compress(raw[:half]) + bytes(second))
    assert _outcome(a, Ellipsis) == "error"
    for sel in PARTIAL:
        assert _outcome(a, sel) == "error"


def test_empty_data_is_refused_by_every_codec_api():
    for codec in (Zstd(), Zlib(), GZip()):
        with pytest.raises(CorruptChunkError):
            codec.decode(b"")
