"""Chains mixing codecs with and without a C path: the core runs the filters next to
the data, Python runs the rest, and the stored bytes are numcodecs' all the same."""

from __future__ import annotations

import math

import numcodecs
import numpy as np
import pytest

import exzarr
from exzarr.codecs.abc import Codec
from exzarr.codecs.registry import register_codec
from exzarr.errors import CorruptChunkError


@register_codec
class _Reverse(Codec):
    """A filter with no C path: the bytes of the chunk, reversed."""

    codec_id = "reverse-bytes-test"

    def encode(self, buf):
        return np.frombuffer(memoryview(buf).cast("B"), np.uint8)[::-1].copy()

    def decode(self, buf, out=None):
        return np.frombuffer(memoryview(buf).cast("B"), np.uint8)[::-1].copy()

    def get_config(self):
        return {"id": self.codec_id}


DELTA = ("delta", {"dtype": "<i4"})
SHUFFLE = ("shuffle", {"elementsize": 4})


@pytest.mark.parametrize("filters, compressor, in_core, outer", [
    ([DELTA], "bz2", 1, ["bz2"]),
    ([DELTA, SHUFFLE], {"id": "lzma", "preset": 1}, 2, ["lzma"]),
    ([DELTA, ("reverse-bytes-test", {}), SHUFFLE], "zstd", 1,
     ["reverse-bytes-test", "shuffle", "zstd"]),
    ([("reverse-bytes-test", {}), DELTA], "zlib", 0, ["reverse-bytes-test", "delta", "zlib"]),
])
def test_mixed_chains_split_between_core_and_python(filters, compressor, in_core, outer, tmp_path):
    a = exzarr.create(shape=(50, 7), chunks=(12, 4), dtype="<i4", filters=filters,
                      compressor=compressor, storage="filesystem", path=str(tmp_path / "a"))
    assert [c.codec_id for c in a._outer] == outer
    assert len(a._pipeline.description[1]) == in_core
    data = (np.arange(350, dtype="<i4") % 97).reshape(50, 7)
    a[...] = data
    a[3:40:3, 1] = -5  # partial chunks: decoded, patched, re-encoded
    data[3:40:3, 1] = -5
    np.testing.assert_array_equal(a[...], data)
    np.testing.assert_array_equal(a[::-3, 2:], data[::-3, 2:])
    # numcodecs decodes every stored chunk to the chunk, edge padding included (the
    # bytes themselves differ where exzarr's libdeflate compresses otherwise than zlib).
    codecs = [numcodecs.get_codec(dict(f.get_config())) if f.codec_id != _Reverse.codec_id
              else _Reverse() for f in [*a.filters, a.compressor]]
    for pos in np.ndindex(*[math.ceil(s / c) for s, c in zip(a.shape, a.chunks)]):
        chunk = np.zeros(a.chunks, "<i4")
        part = data[tuple(slice(p * c, (p + 1) * c) for p, c in zip(pos, a.chunks))]
        chunk[tuple(slice(0, n) for n in part.shape)] = part
        buf = a.store.get(a.chunk_key(pos))
        for c in reversed(codecs):
            buf = c.decode(buf)
        assert np.frombuffer(bytes(memoryview(buf).cast("B")), "<i4").tolist() == \
            chunk.reshape(-1).tolist(), pos
    cached = exzarr.open(str(tmp_path / "a"), mode="r", cache_bytes=1 << 20)
    np.testing.assert_array_equal(cached[...], data)
    np.testing.assert_array_equal(cached[10:20], data[10:20])


def test_a_corrupt_chunk_of_a_mixed_chain_names_its_key():
    a = exzarr.create(shape=(20,), chunks=(10,), dtype="<i4", filters=[DELTA], compressor="bz2")
    a[...] = np.arange(20)
    a.store.set("1", a.store.get("1")[:-5])
    with pytest.raises(CorruptChunkError) as info:
        a[...]
    assert info.value.key == "1"
    good = bytes(numcodecs.BZ2().encode(np.zeros(3, "<i4")))  # decodes, to the wrong size
    a.store.set("0", good)
    with pytest.raises(CorruptChunkError, match="expected 40"):
        a[:5]
