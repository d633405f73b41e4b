"""Reads whose result is 16 MiB or more (``STREAM_MIN_OUT`` in ``exzarr/_core.pyx``).

The core copies decoded chunks into such results with non-temporal stores, 64 bytes at
a time from the first 16-byte boundary of each row, the rest of the row byte by byte.
These reads cover rows of every alignment and length against NumPy: item sizes 1 to 8,
rows shorter than one 64-byte step, rows ending mid-step, results that are views into
bigger buffers at odd byte offsets, strided results, partial edge chunks, chunks read
in part, and raw (uncompressed) chunks held in memory.
"""

from __future__ import annotations

import numpy as np
import pytest

import exzarr

MIB = 1 << 20


def _values(shape: tuple, dtype: str) -> np.ndarray:
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.uint64) * 2654435761 % 1000003).astype(dtype).reshape(shape)


@pytest.mark.parametrize("shape,chunks,dtype", [
    ((16384, 1100), (1000, 333), "u1"),      # rows of 333 bytes: 16-byte steps never align
    ((8000, 1201), (512, 700), "<u2"),      # 1,400-byte rows, edge chunks of 501 items
    ((1024, 1024, 5), (256, 300, 5), "<f4"),  # rows of 20 bytes after merging: short rows
    ((3000, 800), (128, 800), "<f8"),       # chunks whole rows of the result: contiguous
    ((80, 300, 180), (17, 64, 31), "<i4"),  # 3-d, nothing divides
])
@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("storage", ["memory", "filesystem"])
def test_big_results_match_numpy(tmp_path, shape, chunks, dtype, compressor, storage):
    values = _values(shape, dtype)
    assert values.nbytes >= 16 * MIB
    path = str(tmp_path / "a") if storage == "filesystem" else None
    arr = exzarr.create(shape=shape, chunks=chunks, dtype=dtype, compressor=compressor,
                        storage=storage, path=path)
    arr[...] = values
    np.testing.assert_array_equal(arr[...], values)
    # Into views of a bigger buffer at an odd byte offset (every row misaligned).
    raw = np.zeros(values.nbytes + 64, np.uint8)
    for offset in (1, 7, 13):
        raw[:] = 0
        out = raw[offset:offset + values.nbytes].view(dtype).reshape(shape)
        got = arr.get_basic_selection(..., out=out)
        np.testing.assert_array_equal(got, values)
        assert not raw[:offset].any() and not raw[offset + values.nbytes:].any()
    # A strided result: each row lands apart, items apart.
    wide = np.zeros(shape[:-1] + (shape[-1] * 2,), dtype)
    arr.get_basic_selection(..., out=wide[..., ::2])
    np.testing.assert_array_equal(wide[..., ::2], values)
    assert not wide[..., 1::2].any()


def test_big_result_of_chunks_read_in_part():
    """A selection that cuts through chunks: each chunk is decoded, part of it copied."""
    values = _values((6000, 1500), "<f4")
    arr = exzarr.create(shape=values.shape, chunks=(1024, 1024), dtype="<f4",
                        compressor="zstd")
    arr[...] = values
    sel = (slice(3, 5997), slice(5, 1499))
    got = arr[sel]
    assert got.nbytes >= 16 * MIB
    np.testing.assert_array_equal(got, values[sel])
