"""Property tests: exzarr basic indexing (get and set) against NumPy as the oracle.

Every example builds a random array (0-3 dimensions, size-0 and size-1 dimensions,
chunks of 1 and chunks larger than the shape, order C and F, several dtypes and fill
values), keeps a NumPy array with the same contents beside it, and checks that a
random basic selection (ints, negative ints, slices with any bounds and step,
Ellipsis, None) reads the same values, shape and dtype, and that a write through the
same selection leaves both arrays equal -- including the bytes actually stored for
each chunk, decoded by numcodecs (so C/F order and edge-chunk padding are checked
against the on-disk format, not only against exzarr's own reader).
"""

from __future__ import annotations

import itertools
import math

import numcodecs
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import exzarr

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = ["|b1", "|i1", "<u2", ">i4", "<i8", "<f4", ">f8", "<c8", "|S3"]
COMPRESSORS = [None, "zstd", "lz4", "blosc", "zlib"]


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

def random_values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Random contents of ``dtype`` (with -0.0, NaN and inf sprinkled into floats)."""
    n = math.prod(shape)
    kind = dtype.kind
    if kind == "b":
        flat = rng.integers(0, 2, n).astype(bool)
    elif kind in "iu":
        info = np.iinfo(dtype)
        flat = rng.integers(info.min, info.max, n, endpoint=True, dtype=dtype.newbyteorder("="))
    elif kind == "f":
        flat = rng.standard_normal(n) * 100
        specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf])
        mask = rng.random(n) < 0.1
        flat[mask] = rng.choice(specials, int(mask.sum()))
    elif kind == "c":
        flat = rng.standard_normal(n) * 10 + 1j * rng.standard_normal(n)
    elif kind == "S":
        letters = np.frombuffer(b"abcxyz\x00", dtype="S1")
        flat = np.array([b"".join(rng.choice(letters, dtype.itemsize)) for _ in range(n)],
                        dtype=dtype)
    else:  # pragma: no cover - not drawn
        raise AssertionError(dtype)
    return np.asarray(flat).astype(dtype).reshape(shape)


def fill_values(dtype: np.dtype) -> st.SearchStrategy:
    kind = dtype.kind
    if kind == "b":
        return st.sampled_from([False, True, None])
    if kind in "iu":
        info = np.iinfo(dtype)
        return st.one_of(st.just(0), st.none(), st.integers(int(info.min), int(info.max)))
    if kind == "f":
        return st.sampled_from([0.0, -1.5, 42.0, None, float("nan"), float("-inf")])
    if kind == "c":
        return st.sampled_from([0, None, complex(1, -2)])
    if kind == "S":
        return st.sampled_from([None, b"", b"ab", b"xyz"])
    raise AssertionError(dtype)  # pragma: no cover


def reference_fill(fill, dtype: np.dtype):
    return np.zeros((), dtype) if fill is None else np.array(fill, dtype=dtype)


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------

@st.composite
def array_specs(draw, max_ndim: int = 3, max_dim: int = 7):
    ndim = draw(st.integers(0, max_ndim))
    shape = tuple(draw(st.lists(st.integers(0, max_dim), min_size=ndim, max_size=ndim)))
    # Chunks of 1, chunks that divide, chunks that leave an edge chunk, chunks larger
    # than the shape (also for size-0 dimensions).
    chunks = tuple(draw(st.integers(1, max(1, s + 3))) for s in shape)
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    fill = draw(fill_values(dtype))
    order = draw(st.sampled_from(["C", "F"]))
    compressor = draw(st.sampled_from(COMPRESSORS))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, order=order,
                compressor=compressor, seed=seed)


def _bound(size: int) -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.integers(-size - 3, size + 3),
        st.sampled_from([-(10**12), 10**12, -(2**63), 2**63 - 1]),
    )


def _step(size: int) -> st.SearchStrategy:
    small = st.integers(-4, 4).filter(lambda s: s != 0)
    wide = st.integers(-size - 3, size + 3).filter(lambda s: s != 0)
    return st.one_of(st.none(), small, wide, st.sampled_from([10**12, -(10**12)]))


def _maybe_numpy_int(draw, i: int):
    return np.intp(i) if draw(st.integers(0, 4)) == 0 else i


@st.composite
def dim_index(draw, size: int):
    """An in-bounds integer, or a slice with random start, stop and step."""
    kind = draw(st.sampled_from(["int", "slice", "slice", "all"]))
    if kind == "int" and size > 0:
        return _maybe_numpy_int(draw, draw(st.integers(-size, size - 1)))
    if kind == "all":
        return slice(None)
    return slice(draw(_bound(size)), draw(_bound(size)), draw(_step(size)))


@st.composite
def oob_int(draw, size: int):
    return _maybe_numpy_int(draw, draw(st.one_of(st.integers(size, size + 5),
                                                 st.integers(-size - 5, -size - 1),
                                                 st.sampled_from([2**40, -(2**40)]))))


@st.composite
def selections(draw, shape: tuple[int, ...], oob_axis: int | None = None):
    """A basic selection for ``shape``; with ``oob_axis`` that axis gets an out-of-bounds int.

    Ellipsis may stand in for any run of dimensions, trailing dimensions may be left
    out, and None may appear anywhere. Indices are generated per dimension first, so
    every int is in bounds for the dimension it ends up applying to.
    """
    ndim = len(shape)
    per = [draw(dim_index(s)) for s in shape]
    if oob_axis is not None:
        per[oob_axis] = draw(oob_int(shape[oob_axis]))
    mode = draw(st.sampled_from(["full", "prefix", "ellipsis"]))
    if mode == "prefix":
        lo = oob_axis + 1 if oob_axis is not None else 0
        items: list = per[: draw(st.integers(lo, ndim))]
    elif mode == "ellipsis":
        i = draw(st.integers(0, ndim))
        run = draw(st.integers(0, ndim - i))
        if oob_axis is not None and i <= oob_axis < i + run:
            run = 0
        items = per[:i] + [Ellipsis] + per[i + run:]
    else:
        items = list(per)
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def make_pair(spec: dict, init: str = "random", storage: str = "memory", path=None):
    """An exzarr array and its NumPy twin, both initialised the same way."""
    dtype = spec["dtype"]
    a = exzarr.create(shape=spec["shape"], chunks=spec["chunks"], dtype=dtype,
                      fill_value=spec["fill_value"], order=spec["order"],
                      compressor=spec["compressor"], storage=storage, path=path)
    ref = np.full(spec["shape"], reference_fill(spec["fill_value"], dtype), dtype=dtype)
    if init == "random":
        values = random_values(np.random.default_rng(spec["seed"]), spec["shape"], dtype)
        a[...] = values
        ref[...] = values
    return a, ref


def assert_same_result(got, expected) -> None:
    """Same shape, same dtype, same bits (NaN payloads and -0.0 included).

    Where NumPy returns an array, so must exzarr; NumPy scalars (which drop the byte
    order and the ``S`` length) are compared by type and by value in the array dtype.
    """
    assert np.shape(got) == np.shape(expected), (np.shape(got), np.shape(expected))
    if isinstance(expected, np.ndarray) and expected.ndim:
        assert isinstance(got, np.ndarray), type(got)
    if isinstance(got, np.ndarray) and isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
        assert got.tobytes() == expected.tobytes(), (got, expected)
        return
    # 0-d results: one side (or both) is a NumPy scalar.
    got_arr, exp_arr = np.asarray(got), np.asarray(expected)
    assert got_arr.dtype.kind == exp_arr.dtype.kind, (got_arr.dtype, exp_arr.dtype)
    if exp_arr.dtype.kind != "S":
        assert got_arr.dtype.newbyteorder("=") == exp_arr.dtype.newbyteorder("="), (
            got_arr.dtype, exp_arr.dtype)
        assert got_arr.astype(exp_arr.dtype).tobytes() == exp_arr.tobytes(), (got, expected)
    else:
        assert got_arr.item() == exp_arr.item(), (got, expected)


def stored_chunk_keys(a: exzarr.Array) -> set[str]:
    return {k for k in a.store.list_prefix("") if not k.rsplit("/", 1)[-1].startswith(".")}


def check_store_matches(a: exzarr.Array, ref: np.ndarray, spec: dict) -> None:
    """Each chunk is stored iff it holds a non-fill element, and its bytes -- decoded
    by numcodecs, laid out in the array's order -- equal the reference there; edge
    padding holds fill."""
    dtype = spec["dtype"]
    fill = reference_fill(spec["fill_value"], dtype)
    fill_row = np.frombuffer(fill.tobytes(), np.uint8)
    nan_fill = (dtype.kind == "f" and dtype.isnative and spec["fill_value"] is not None
                and math.isnan(spec["fill_value"]))
    chunks = spec["chunks"]
    codec = numcodecs.get_codec(a.compressor.get_config()) if a.compressor else None
    grid = [range(-(-s // c)) for s, c in zip(ref.shape, chunks)]
    expected_keys = set()
    for coords in itertools.product(*grid):
        region = tuple(slice(k * c, (k + 1) * c) for k, c in zip(coords, chunks))
        part = ref[region + (Ellipsis,)]
        if nan_fill:
            is_fill = bool(np.isnan(part).all())
        else:
            raw = np.frombuffer(part.tobytes(), np.uint8).reshape(-1, dtype.itemsize)
            is_fill = bool((raw == fill_row).all())
        key = a.chunk_key(coords)
        if is_fill:
            continue
        expected_keys.add(key)
        data = a.store.get(key)
        assert data is not None, f"chunk {key} holds data but is not stored"
        decoded = bytes(codec.decode(data)) if codec else bytes(data)
        assert len(decoded) == math.prod(chunks) * dtype.itemsize
        chunk = np.frombuffer(decoded, dtype=dtype).reshape(chunks, order=spec["order"])
        inner = tuple(slice(0, p) for p in part.shape) + (Ellipsis,)
        assert chunk[inner].tobytes() == np.ascontiguousarray(part).tobytes(), key
        padded = np.full(chunks, fill, dtype=dtype)
        padded[inner] = chunk[inner]
        if not nan_fill:
            assert chunk.tobytes() == padded.tobytes(), f"edge padding of {key} is not fill"
    assert stored_chunk_keys(a) == expected_keys


def _wider(dtype: np.dtype) -> np.dtype | None:
    """A different dtype that holds every value of ``dtype`` exactly (None: skip)."""
    kind = dtype.kind
    if kind == "b":
        return np.dtype("<i2")
    if kind in "iu":
        return np.dtype(">i8") if dtype.itemsize < 8 or kind == "i" else np.dtype("<u8").newbyteorder(">")
    if kind == "f":
        return np.dtype("<f8") if dtype.itemsize < 8 else np.dtype(">f8") if dtype.isnative else np.dtype("<f8")
    if kind == "c":
        return np.dtype(">c16")
    return None


def random_value_for(draw, shape: tuple[int, ...], dtype: np.dtype, seed: int):
    """A scalar (NumPy or Python) or an array broadcastable to ``shape``: possibly of
    another dtype holding the same values, possibly non-contiguous."""
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["np_scalar", "py_scalar", "full", "broadcast", "zero_d",
                                 "other_dtype", "strided", "transposed"]))
    if kind in ("np_scalar", "py_scalar", "zero_d"):
        v = random_values(rng, (), dtype)
        if kind == "np_scalar":
            return v[()]
        if kind == "py_scalar":
            return v.item()
        return v
    if kind == "full":
        return random_values(rng, shape, dtype)
    if kind == "other_dtype":
        wider = _wider(dtype)
        v = random_values(rng, shape, dtype)
        return v if wider is None else v.astype(wider)
    if kind == "strided":
        big = random_values(rng, tuple(2 * s for s in shape), dtype)
        v = big[tuple(slice(None, None, 2) for _ in shape)]
        return v[::-1] if v.ndim and draw(st.booleans()) else v
    if kind == "transposed":
        return random_values(rng, shape[::-1], dtype).T
    # Drop some leading dimensions, and turn some of the rest into 1.
    keep = draw(st.integers(0, len(shape)))
    vshape = tuple(1 if draw(st.booleans()) else s for s in shape[len(shape) - keep:])
    return random_values(rng, vshape, dtype)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------

@settings(max_examples=300, **SETTINGS)
@given(spec=array_specs(), data=st.data())
def test_plan_tables_are_the_product_of_the_dimensions(spec, data):
    # The core's per-chunk tables are built with NumPy broadcasting; by definition they
    # are the dimensions' entries (and "covers") taken in itertools.product order.
    from exzarr.indexing import plan_selection

    plan = plan_selection(data.draw(selections(spec["shape"]), label="selection"),
                          spec["shape"], spec["chunks"])
    rows = list(itertools.product(*(d.entries for d in plan.dims)))
    regions = plan.regions()
    assert regions.dtype == np.int64 and regions.shape == (plan.nchunks, len(plan.dims), 4)
    assert regions.tolist() == [[list(e) for e in row] for row in rows]
    covered = [all(c) for c in itertools.product(*(d.covers for d in plan.dims))]
    assert plan.covered() == covered
    assert plan.partial().dtype == np.uint8
    assert plan.partial().tolist() == [int(not c) for c in covered]


@settings(max_examples=300, **SETTINGS)
@given(spec=array_specs(), data=st.data())
def test_get_matches_numpy(spec, data):
    init = data.draw(st.sampled_from(["random", "random", "empty"]), label="init")
    a, ref = make_pair(spec, init)
    sel = data.draw(selections(spec["shape"]), label="selection")
    assert_same_result(a[sel], ref[sel])


@settings(max_examples=200, **SETTINGS)
@given(spec=array_specs(), data=st.data())
def test_get_into_out_matches_numpy(spec, data):
    # Reading into a caller's buffer of any layout (a strided, possibly reversed view
    # into a larger array) fills exactly that view, touches nothing around it, and
    # returns the buffer itself.
    a, ref = make_pair(spec, data.draw(st.sampled_from(["random", "empty"]), label="init"))
    sel = data.draw(selections(spec["shape"]), label="selection")
    expected = np.array(ref[sel], dtype=spec["dtype"])  # (a 0-d read gives a scalar)
    steps = [data.draw(st.sampled_from([1, 2, -1, -3]), label=f"step{d}")
             for d in range(expected.ndim)]
    host_shape = tuple(n * abs(k) + 1 for n, k in zip(expected.shape, steps))
    host = random_values(np.random.default_rng(spec["seed"]), host_shape, spec["dtype"])
    host_before = host.copy()

    def carve(h):  # the same strided view into h, or into its copy
        return h[(Ellipsis,) + tuple(slice(None, None, k) for k in steps)][
            (Ellipsis,) + tuple(slice(0, n) for n in expected.shape)]

    out = carve(host)
    assert a.get_basic_selection(sel, out=out) is out
    assert_same_result(out.copy(), expected)
    out[...] = carve(host_before)
    assert host.tobytes() == host_before.tobytes()  # nothing outside the view changed


def test_get_into_out_rejects_what_does_not_fit():
    a = exzarr.create(shape=(4, 6), chunks=(3, 3), dtype="i4")
    with pytest.raises(ValueError, match="shape"):
        a.get_basic_selection((slice(0, 2), 1), out=np.empty((2, 1), "i4"))
    with pytest.raises(TypeError, match="dtype int32"):
        a.get_basic_selection(Ellipsis, out=np.empty((4, 6), "i8"))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        a.get_basic_selection(Ellipsis, out=[[0] * 6] * 4)
    ro = np.empty((4, 6), "i4")
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        a.get_basic_selection(Ellipsis, out=ro)


@settings(max_examples=250, **SETTINGS)
@given(spec=array_specs(), data=st.data())
def test_set_matches_numpy(spec, data):
    init = data.draw(st.sampled_from(["random", "empty"]), label="init")
    a, ref = make_pair(spec, init)
    for round_ in range(data.draw(st.integers(1, 3), label="writes")):
        sel = data.draw(selections(spec["shape"]), label=f"selection{round_}")
        target_shape = ref[sel].shape
        value = random_value_for(data.draw, target_shape, spec["dtype"],
                                 data.draw(st.integers(0, 2**32 - 1)))
        ref[sel] = value
        a[sel] = value
        assert_same_result(a[...], ref)
    check_store_matches(a, ref, spec)
    # A second Array on the same store sees the same data.
    again = exzarr.open(storage=a.store)
    assert_same_result(again[...], ref)


@settings(max_examples=60, **SETTINGS)
@given(spec=array_specs(max_ndim=2, max_dim=5), data=st.data())
def test_get_and_set_on_filesystem(spec, data, tmp_path_factory):
    path = tmp_path_factory.mktemp("fs") / "a.zarr"
    a, ref = make_pair(spec, "random", storage="filesystem", path=path)
    sel = data.draw(selections(spec["shape"]), label="selection")
    assert_same_result(a[sel], ref[sel])
    value = random_value_for(data.draw, ref[sel].shape, spec["dtype"], spec["seed"] + 1)
    a[sel] = value
    ref[sel] = value
    reopened = exzarr.open(path)
    assert_same_result(reopened[...], ref)
    check_store_matches(reopened, ref, spec)


@settings(max_examples=150, **SETTINGS)
@given(spec=array_specs(), data=st.data())
def test_out_of_bounds_int_raises_index_error(spec, data):
    if not spec["shape"]:
        sel = data.draw(st.sampled_from([0, -1, (0,), (None, 0), (Ellipsis, 0)]))
    else:
        axis = data.draw(st.integers(0, len(spec["shape"]) - 1), label="axis")
        sel = data.draw(selections(spec["shape"], oob_axis=axis), label="selection")
    a, ref = make_pair(spec, "random")
    with pytest.raises(IndexError):
        ref[sel]
    with pytest.raises(IndexError):
        a[sel]
    with pytest.raises(IndexError):
        a[sel] = reference_fill(spec["fill_value"], spec["dtype"])
    assert_same_result(a[...], ref)  # a failed write changes nothing


# --------------------------------------------------------------------------------------
# NumPy assignment rules beyond the plain broadcast
# --------------------------------------------------------------------------------------

@settings(max_examples=80, **SETTINGS)
@given(spec=array_specs(), data=st.data())
def test_set_value_with_extra_leading_unit_dims(spec, data):
    """NumPy strips leading length-1 dimensions of the value: ``x[1:3] = ones((1, 1, 2, 5))``."""
    a, ref = make_pair(spec, "random")
    sel = data.draw(selections(spec["shape"]), label="selection")
    target_shape = ref[sel].shape
    # NumPy itself deprecates (and for some dtypes refuses) a size-1 array into one element.
    assume(len(target_shape) >= 1)
    extra = data.draw(st.integers(1, 2), label="extra")
    value = random_values(np.random.default_rng(spec["seed"] + 7), (1,) * extra + target_shape,
                          spec["dtype"])
    ref[sel] = value
    a[sel] = value
    assert_same_result(a[...], ref)


@pytest.mark.parametrize("dtype", ["|i1", "<u2", ">i4", "|u1"])
@pytest.mark.parametrize("value", [300, -129, 2**40, -1, 2**64])
def test_set_out_of_range_python_int_like_numpy(dtype, value):
    """NumPy 2 refuses a Python int that does not fit the dtype (OverflowError)."""
    a = exzarr.create(shape=(4,), chunks=(3,), dtype=dtype)
    ref = np.zeros(4, dtype=dtype)
    try:
        ref[1] = value
    except OverflowError:
        with pytest.raises(OverflowError):
            a[1] = value
        assert_same_result(a[...], np.zeros(4, dtype=dtype))
    else:
        a[1] = value
        assert_same_result(a[...], ref)


@pytest.mark.parametrize("value_shape", [(3,), (2, 2), (5,), (1, 3)])
def test_set_unbroadcastable_value_raises_value_error(value_shape):
    a = exzarr.create(shape=(4, 4), chunks=(3, 3), dtype="i4", fill_value=7)
    ref = np.full((4, 4), 7, dtype="i4")
    with pytest.raises(ValueError):
        ref[1:3, :] = np.ones(value_shape, "i4")
    with pytest.raises(ValueError):
        a[1:3, :] = np.ones(value_shape, "i4")
    assert_same_result(a[...], ref)


# --------------------------------------------------------------------------------------
# Fixed examples NumPy users rely on
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(
    "sel",
    [
        (slice(None, None, -1),) * 3,
        (slice(None, None, -3), Ellipsis, slice(5, None, -2)),
        (None, -1, None, Ellipsis, None),
        (Ellipsis, 0),
        (slice(-100, 100), slice(100, -100, -1), 2),
        (slice(2, 2), slice(None), slice(None)),
        (-7, -5, -3),
        (6, 4, 2),
        (),
        Ellipsis,
    ],
)
def test_fixed_selections(order, sel):
    spec = dict(shape=(7, 5, 3), chunks=(3, 2, 5), dtype=np.dtype("<f8"), fill_value=-1.0,
                order=order, compressor="zstd", seed=1)
    a, ref = make_pair(spec, "random")
    assert_same_result(a[sel], ref[sel])
    value = np.arange(math.prod(ref[sel].shape), dtype="<f8").reshape(ref[sel].shape)
    a[sel] = value
    ref[sel] = value
    assert_same_result(a[...], ref)
    check_store_matches(a, ref, spec)


def test_zero_dim_array():
    a = exzarr.create(shape=(), chunks=(), dtype="<i2", fill_value=5)
    ref = np.full((), 5, dtype="<i2")
    for sel in [(), Ellipsis, None, (None, Ellipsis), (Ellipsis, None, None)]:
        assert_same_result(a[sel], ref[sel])
    a[...] = 9
    ref[...] = 9
    assert_same_result(a[()], ref[()])
    assert sorted(stored_chunk_keys(a)) == ["0"]
    a[()] = 5  # back to fill: the chunk goes away
    assert stored_chunk_keys(a) == set()
    for sel in [0, (0,), slice(None), (Ellipsis, Ellipsis)]:
        with pytest.raises(IndexError):
            ref[sel]
        with pytest.raises(IndexError):
            a[sel]


@pytest.mark.parametrize("sel", [(0, 0, 0), (Ellipsis, Ellipsis), (None, 0, slice(None), 0),
                                 (0, Ellipsis, 0, Ellipsis)])
def test_too_many_indices_or_ellipses_raise_index_error(sel):
    a = exzarr.create(shape=(3, 4), chunks=(2, 2), dtype="i4")
    ref = np.zeros((3, 4), "i4")
    with pytest.raises(IndexError):
        ref[sel]
    with pytest.raises(IndexError):
        a[sel]
    with pytest.raises(IndexError):
        a[sel] = 1


def test_zero_step_raises_value_error():
    a = exzarr.create(shape=(5,), chunks=(2,), dtype="i4")
    with pytest.raises(ValueError):
        np.zeros(5)[::0]
    with pytest.raises(ValueError):
        a[::0]
    with pytest.raises(ValueError):
        a[::0] = 1
