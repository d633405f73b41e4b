"""blosc (lz4, byte shuffle) chunks encoded straight from the rows of the array written.

For 2-, 4- and 8-byte items the core shuffles each blosc block from the rows of the user's array
instead of gathering the chunk into a buffer and calling c-blosc (``blosc_rows`` in
``exzarr/_core.pyx``). It must write the very bytes c-blosc writes: the block size and
split c-blosc picks, its lz4 acceleration for each clevel, streams lz4 cannot shrink
stored as they are, short last blocks, and whole chunks c-blosc stores as they are.
Every chunk is compared with numcodecs' Blosc, single-threaded (with threads c-blosc
writes the blocks in the order they finish, which is valid but not repeatable).
"""

from __future__ import annotations

import numcodecs
import numcodecs.blosc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import exzarr


@pytest.fixture(autouse=True)
def _blosc_one_thread(monkeypatch):
    monkeypatch.setattr(numcodecs.blosc, "use_threads", False)


def _values(kind: str, shape: tuple, dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if kind == "noise":  # low bytes incompressible, high bytes not: mixed streams
        out = np.round(rng.normal(0, 20, n), 2)
    elif kind == "smooth":
        out = np.sin(np.arange(n) / 300.0) * 1000
    elif kind == "random":  # nothing compresses: c-blosc stores the chunk as it is
        size = np.dtype(dtype).itemsize
        return rng.integers(0, 256, n * size, dtype=np.uint8).view(dtype).reshape(shape)
    else:  # "sparse": mostly zeros
        out = np.zeros(n)
        out[::7] = 3
    return out.astype(dtype).reshape(shape)


def _strided(values: np.ndarray) -> np.ndarray:
    """The same values as a view whose rows lie apart (so that chunks are not one
    contiguous run of the array)."""
    wide = np.zeros(values.shape[:-1] + (values.shape[-1] * 2 + 3,), values.dtype)
    wide[..., 3:3 + values.shape[-1]] = values
    return wide[..., 3:3 + values.shape[-1]]


def _check_chunks(arr: exzarr.Array, values: np.ndarray, compressor: dict) -> int:
    """Compare every stored chunk with numcodecs' encoding of it; return how many."""
    codec = numcodecs.get_codec(dict(compressor))
    chunks = arr.chunks
    grid = [-(-s // c) for s, c in zip(values.shape, chunks)]
    count = 0
    for idx in np.ndindex(*grid):
        sel = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks))
        block = np.zeros(chunks, values.dtype)  # edge chunks: padded with the fill value
        part = values[sel]
        block[tuple(slice(0, s) for s in part.shape)] = part
        key = ".".join(map(str, idx))
        got = arr.store.get(key)
        if got is None:  # chunks all of the fill value are not stored
            assert not block.any(), f"chunk {key} missing"
            continue
        want = bytes(codec.encode(block))
        assert bytes(got) == want, (f"chunk {key}: {len(got)} bytes, c-blosc makes"
                                    f" {len(want)}; headers {bytes(got[:16]).hex()}"
                                    f" / {want[:16].hex()}")
        count += 1
    return count


CASES = [
    # shape, chunks: 1 MiB chunks of two 512 KiB blocks; rows of 1,400 bytes, so that
    # blocks end mid-row; 3-d; 1-d with a short last block; rows under 512 bytes.
    ((1024, 1024), (512, 512)),
    ((600, 700), (300, 350)),
    ((4, 300, 300), (2, 150, 150)),
    ((100000,), (33333,)),
    ((2048, 64), (1024, 64)),
]


@pytest.mark.parametrize("shape,chunks", CASES, ids=[str(c[1]) for c in CASES])
@pytest.mark.parametrize("kind", ["noise", "smooth", "random", "sparse"])
@pytest.mark.parametrize("dtype", ["<f4", "<i4", "<f8", "<u2", ">i8"])
def test_bytes_match_c_blosc(tmp_path, shape, chunks, kind, dtype):
    values = _values(kind, shape, dtype, seed=len(shape) + len(kind))
    for clevel in (1, 5, 9):
        compressor = {"id": "blosc", "cname": "lz4", "clevel": clevel, "shuffle": 1,
                      "blocksize": 0}
        for storage in ("filesystem", "memory"):
            path = str(tmp_path / f"{storage}{clevel}") if storage == "filesystem" else None
            arr = exzarr.create(shape=shape, chunks=chunks, dtype=dtype,
                                compressor=compressor, storage=storage, path=path)
            arr[...] = _strided(values) if len(shape) > 1 else values
            assert _check_chunks(arr, values, compressor) > 0
            np.testing.assert_array_equal(arr[...], values)


@pytest.mark.parametrize("blocksize", [4096, 65536, 300000])
def test_forced_block_sizes(blocksize):
    values = _values("noise", (512, 768), "<f4", seed=3)
    compressor = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1,
                  "blocksize": blocksize}
    arr = exzarr.create(shape=values.shape, chunks=(256, 384), dtype="<f4",
                        compressor=compressor)
    arr[...] = _strided(values)
    assert _check_chunks(arr, values, compressor) == 4


def test_one_pipeline_for_two_chunk_sizes():
    """The plan is kept per chunk size: arrays of other chunk sizes with the same codec
    settings, written one after the other, each get c-blosc's own blocks."""
    compressor = {"id": "blosc", "cname": "lz4", "clevel": 4, "shuffle": 1, "blocksize": 0}
    values = _values("smooth", (640, 640), "<f4", seed=4)
    for chunks in [(320, 320), (64, 640), (320, 320), (640, 128)]:
        arr = exzarr.create(shape=values.shape, chunks=chunks, dtype="<f4",
                            compressor=compressor)
        arr[...] = _strided(values)
        _check_chunks(arr, values, compressor)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(1, 90), min_size=2, max_size=3).map(tuple),
    chunk_scale=st.lists(st.integers(1, 90), min_size=3, max_size=3),
    kind=st.sampled_from(["noise", "smooth", "random", "sparse"]),
    dtype=st.sampled_from(["<f4", "<f8", "<i2", "<u8", "<i1"]),
    clevel=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_property_bytes_match_c_blosc(shape, chunk_scale, kind, dtype, clevel, seed):
    chunks = tuple(min(s, c) for s, c in zip(shape, chunk_scale))
    values = _values(kind, shape, dtype, seed)
    compressor = {"id": "blosc", "cname": "lz4", "clevel": clevel, "shuffle": 1,
                  "blocksize": 0}
    arr = exzarr.create(shape=shape, chunks=chunks, dtype=dtype, compressor=compressor)
    arr[...] = _strided(values)
    _check_chunks(arr, values, compressor)
    np.testing.assert_array_equal(arr[...], values)


@pytest.mark.parametrize("nbytes", [4096, 10000, 65536, 2**20, 3 * 2**20 + 8])
@pytest.mark.parametrize("kind", ["noise", "smooth", "random", "sparse"])
@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<u2"])
def test_codec_encode_matches_c_blosc(nbytes, kind, dtype):
    """The codec API (one buffer, as numcodecs' Blosc.encode) takes the same path."""
    size = np.dtype(dtype).itemsize
    values = _values(kind, (nbytes // size,), dtype, seed=nbytes)
    for clevel in (1, 5, 9):
        config = {"id": "blosc", "cname": "lz4", "clevel": clevel, "shuffle": 1,
                  "blocksize": 0}
        got = exzarr.codecs.get_codec(dict(config)).encode(values)
        assert bytes(got) == bytes(numcodecs.get_codec(config).encode(values))


def test_codec_encode_sizes_in_turn():
    """One codec encoding buffers of more sizes than it keeps plans for, in turn: each
    size planned again after it was dropped still gets c-blosc's blocks."""
    config = {"id": "blosc", "cname": "lz4", "clevel": 6, "shuffle": 1, "blocksize": 0}
    codec = exzarr.codecs.get_codec(dict(config))
    oracle = numcodecs.get_codec(config)
    sizes = [4096 * k + 4 * (k % 3) for k in range(1, 12)] + [2**20, 2**18 + 12]
    for _ in range(2):
        for n in sizes:
            values = _values("noise", (n // 4,), "<f4", seed=n)
            assert bytes(codec.encode(values)) == bytes(oracle.encode(values)), n
