"""Metadata documents: minimal on write, lenient on read."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import exzarr
from exzarr.errors import ExZarrError
from exzarr.metadata import ArrayMeta, decode_fill_value, encode_fill_value
from exzarr.storage import MemoryStore


@pytest.mark.parametrize(
    "value, dtype, encoded",
    [
        (0, "<i4", 0), (-3, ">i8", -3), (True, "|b1", True), (1.5, "<f8", 1.5),
        (math.nan, "<f4", "NaN"), (math.inf, ">f8", "Infinity"), (-math.inf, "<f8", "-Infinity"),
        (complex(1, math.nan), "<c16", [1.0, "NaN"]), (None, "<f8", None),
        (b"ab", "|S3", "YWIA"), ("hé", "<U3", "hé"),
    ],
)
def test_fill_value_round_trip(value, dtype, encoded):
    dt = np.dtype(dtype)
    assert encode_fill_value(value, dt) == encoded
    back = decode_fill_value(json.loads(json.dumps(encoded)), dt)
    if value is None:
        assert back is None
    else:
        np.testing.assert_array_equal(np.array(back, dtype=dt), np.array(value, dtype=dt))


def test_written_document_is_minimal_and_standard():
    a = exzarr.create(shape=(3,), chunks=(2,), dtype=">f4", fill_value=math.nan,
                      compressor={"id": "zstd", "level": 3, "checksum": False})
    doc = json.loads(a.store.get(".zarray"))
    assert doc["filters"] is None
    assert doc["compressor"] == {"id": "zstd", "level": 3}  # never "checksum": false
    assert doc["fill_value"] == "NaN"
    assert doc["dimension_separator"] == "."
    blosc = exzarr.create(shape=(3,), chunks=(2,), compressor="blosc")
    assert json.loads(blosc.store.get(".zarray"))["compressor"] == {
        "id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}


def test_lenient_reading_of_peer_documents():
    store = MemoryStore()
    store.set(".zarray", json.dumps({
        "zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "<i2",
        "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},  # no blocksize
        "fill_value": None, "order": "C", "filters": [], "custom_key": {"kept": True},
    }).encode())
    store.set(".zattrs", b'{"x": NaN, "name": "\xc3\xa9t\xc3\xa9"}')
    a = exzarr.open(storage=store)
    assert a.fill_value is None and a.filters is None and a.dimension_separator == "."
    np.testing.assert_array_equal(a[...], np.zeros(4, "<i2"))
    assert math.isnan(a.attrs["x"]) and a.attrs["name"] == "été"
    a[:] = 5
    doc = json.loads(store.get(".zarray"))
    assert doc["fill_value"] is None and doc["custom_key"] == {"kept": True}


@pytest.mark.parametrize("bad", [b"not json", b"[]", b'{"zarr_format": 3}', b'{"zarr_format": 2}'])
def test_bad_documents_raise_clear_errors(bad):
    with pytest.raises(ExZarrError):
        ArrayMeta.decode(bad)
