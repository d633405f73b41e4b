"""Property tests: orthogonal, coordinate and mask selections (zarr-python's oindex and
vindex) against NumPy as the oracle, read and written, on random arrays of every
layout the basic-indexing tests draw (sizes 0 and 1, edge chunks, C and F order, fill
values); writes are also checked against the chunk bytes as numcodecs decodes them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exzarr
from tests.test_indexing_properties import (SETTINGS, array_specs, assert_same_result,
                                            check_store_matches, make_pair, random_value_for)


@st.composite
def orthogonal_index(draw, size: int):
    """One dimension of an orthogonal selection, and the positions NumPy would take."""
    kinds = ["slice", "list", "array", "mask"] + (["int"] if size else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        i = draw(st.integers(-size, size - 1))
        return i, None
    if kind == "slice":
        sl = slice(draw(st.none() | st.integers(-size - 2, size + 2)),
                   draw(st.none() | st.integers(-size - 2, size + 2)),
                   draw(st.none() | st.integers(-3, 3).filter(bool)))
        return sl, np.arange(size)[sl]
    if kind == "mask":
        mask = np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool)
        return mask, np.flatnonzero(mask)
    values = draw(st.lists(st.integers(-size, size - 1), max_size=6)) if size else []
    positions = np.array([v % size for v in values], dtype=np.int64) if size else np.zeros(0, np.int64)
    if kind == "list":
        return values, positions
    return np.array(values, dtype=draw(st.sampled_from(["i8", "i2", "intp"]))), positions


@st.composite
def orthogonal_selections(draw, shape):
    per = [draw(orthogonal_index(s)) for s in shape]
    return tuple(p[0] for p in per), per


def numpy_orthogonal(ref: np.ndarray, per) -> np.ndarray:
    """ref at the outer product of the positions, int dimensions dropped."""
    positions = [np.array([sel % ref.shape[d]]) if pos is None else pos
                 for d, (sel, pos) in enumerate(per)]
    out = ref[np.ix_(*positions)] if ref.ndim else ref
    drop = tuple(d for d, (_, pos) in enumerate(per) if pos is None)
    return out.reshape(tuple(n for d, n in enumerate(out.shape) if d not in drop))


@st.composite
def coordinate_selections(draw, shape):
    """One integer array (or int) per dimension, all broadcasting to one shape."""
    base = tuple(draw(st.lists(st.integers(0, 4), max_size=2)))
    if 0 in shape and 0 not in base:
        base = base + (0,)  # an empty dimension has no coordinates: no points at all
    items = []
    for size in shape:
        if size == 0:
            items.append(np.zeros(base, dtype=np.int64))
            continue
        if draw(st.integers(0, 3)) == 0:
            items.append(draw(st.integers(-size, size - 1)))
        else:
            n = int(np.prod(base))
            vals = draw(st.lists(st.integers(-size, size - 1), min_size=n, max_size=n))
            items.append(np.array(vals, dtype=np.int64).reshape(base))
    return tuple(items)


def nonempty_specs():
    return array_specs().filter(lambda s: len(s["shape"]) >= 1)


@settings(max_examples=250, **SETTINGS)
@given(spec=nonempty_specs(), data=st.data())
def test_orthogonal_get_matches_numpy(spec, data):
    a, ref = make_pair(spec, data.draw(st.sampled_from(["random", "empty"]), label="init"))
    sel, per = data.draw(orthogonal_selections(spec["shape"]), label="selection")
    expected = numpy_orthogonal(ref, per)
    assert_same_result(a.oindex[sel], expected[()] if expected.ndim == 0 else expected)
    assert_same_result(a.get_orthogonal_selection(sel), expected[()] if expected.ndim == 0 else expected)


@settings(max_examples=200, **SETTINGS)
@given(spec=nonempty_specs(), data=st.data())
def test_orthogonal_set_matches_numpy(spec, data):
    a, ref = make_pair(spec, data.draw(st.sampled_from(["random", "empty"]), label="init"))
    sel, per = data.draw(orthogonal_selections(spec["shape"]), label="selection")
    shape = numpy_orthogonal(ref, per).shape
    value = random_value_for(data.draw, shape, spec["dtype"], spec["seed"] + 1)
    positions = [np.array([s % ref.shape[d]]) if pos is None else pos
                 for d, (s, pos) in enumerate(per)]
    full = tuple(len(p) for p in positions)
    # NumPy's own assignment through the outer product, value broadcast as exzarr does.
    ref[np.ix_(*positions)] = np.broadcast_to(np.asarray(value).astype(spec["dtype"]),
                                              shape).reshape(full)
    a.oindex[sel] = value
    assert_same_result(a[...], ref)
    check_store_matches(a, ref, spec)


@settings(max_examples=250, **SETTINGS)
@given(spec=nonempty_specs(), data=st.data())
def test_coordinate_get_matches_numpy(spec, data):
    a, ref = make_pair(spec, data.draw(st.sampled_from(["random", "empty"]), label="init"))
    sel = data.draw(coordinate_selections(spec["shape"]), label="selection")
    expected = ref[sel]
    got = a.vindex[sel]
    assert_same_result(got, expected)


@settings(max_examples=200, **SETTINGS)
@given(spec=nonempty_specs(), data=st.data())
def test_coordinate_and_mask_set_match_numpy(spec, data):
    a, ref = make_pair(spec, data.draw(st.sampled_from(["random", "empty"]), label="init"))
    if data.draw(st.booleans(), label="mask"):
        rng = np.random.default_rng(spec["seed"])
        sel = rng.random(spec["shape"]) < 0.3
        assert_same_result(a.vindex[sel], ref[sel])
    else:
        sel = data.draw(coordinate_selections(spec["shape"]), label="selection")
    shape = ref[sel].shape
    value = random_value_for(data.draw, shape, spec["dtype"], spec["seed"] + 2)
    ref[sel] = np.broadcast_to(np.asarray(value).astype(spec["dtype"]), shape)
    a.vindex[sel] = value
    assert_same_result(a[...], ref)
    check_store_matches(a, ref, spec)


def test_getitem_dispatches_as_zarr_python_does(tmp_path):
    x = np.arange(6 * 7 * 8, dtype="i4").reshape(6, 7, 8)
    a = exzarr.create(shape=x.shape, chunks=(4, 3, 5), dtype="i4", storage="filesystem",
                      path=str(tmp_path / "a"))
    a[...] = x
    np.testing.assert_array_equal(a[[5, 0, 5]], x[[5, 0, 5]])             # orthogonal
    np.testing.assert_array_equal(a[1:5, [6, -1], ::3], x[1:5, [6, -1], ::3])
    np.testing.assert_array_equal(a[:, np.array([True] * 3 + [False] * 4)], x[:, :3])
    np.testing.assert_array_equal(a[[0, 5], [1, 2], [7, 0]], x[[0, 5], [1, 2], [7, 0]])  # points
    np.testing.assert_array_equal(a[[0, 5], 2, [7, 0]], x[[0, 5], 2, [7, 0]])
    mask = x % 7 == 0
    np.testing.assert_array_equal(a[mask], x[mask])
    pts = np.array([[0, 1], [5, 4]])  # one index array of more dimensions: points
    np.testing.assert_array_equal(a[pts, 0, 3], x[pts, 0, 3])
    np.testing.assert_array_equal(a[2, 1:3, [0, 1, 2]], x[2, 1:3][:, [0, 1, 2]])  # as zarr
    with pytest.raises(IndexError, match="oindex"):
        a[[0, 1], :, [2, 3]]  # NumPy and zarr disagree here: say which
    a[mask] = -1
    a[[0, 1], [0, 1], [0, 1]] = [100, 101]
    a[:, [6]] = 9
    x[mask] = -1
    x[[0, 1], [0, 1], [0, 1]] = [100, 101]
    x[:, [6]] = 9
    np.testing.assert_array_equal(exzarr.open(str(tmp_path / "a"))[...], x)


def test_fancy_selections_on_0d_and_1d_arrays():
    z = exzarr.create(shape=(), chunks=(), dtype="i4", fill_value=3)
    assert z.oindex[()] == 3
    z.oindex[...] = 5
    assert z[()] == 5
    a = exzarr.create(shape=(10,), chunks=(3,), dtype="i4")
    a[...] = np.arange(10)
    np.testing.assert_array_equal(a[np.array([[0, 9], [4, 4]])], [[0, 9], [4, 4]])
    a[np.array([[1], [2]])] = -1
    np.testing.assert_array_equal(a[:4], [0, -1, -1, 3])


def test_fancy_selections_on_object_arrays():
    words = np.array(["a", "bb", "", "dddd", "e", "ff"], dtype=object).reshape(2, 3)
    a = exzarr.create(shape=(2, 3), chunks=(1, 2), dtype=str)
    a[...] = words
    assert a.oindex[[1, 0], [2]].tolist() == [["ff"], [""]]
    assert a.vindex[[0, 1], [1, 0]].tolist() == ["bb", "dddd"]
    a.vindex[[1], [2]] = "new"
    assert a[1, 2] == "new" and a[0, 2] == ""


def test_fancy_selection_errors_say_what_to_do():
    a = exzarr.create(shape=(4, 5), chunks=(2, 2), dtype="i4")
    with pytest.raises(IndexError, match="out of bounds for axis 1 with size 5"):
        a.oindex[:, [5]]
    with pytest.raises(IndexError, match="does not match axis 0"):
        a.oindex[np.ones(3, bool), :]
    with pytest.raises(IndexError, match="one index array per dimension"):
        a.vindex[[1, 2]]
    with pytest.raises(IndexError, match="broadcast"):
        a.vindex[[1, 2], [1, 2, 3]]
    with pytest.raises(IndexError, match="integers or booleans"):
        a.oindex[[0.5], :]
    with pytest.raises(IndexError, match="shape"):
        a.get_mask_selection(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="broadcast"):
        a.oindex[[0, 1], [0]] = [1, 2, 3]
    with pytest.raises(ValueError, match="shape"):
        a.get_orthogonal_selection(([0, 1], 0), out=np.empty(3, "i4"))
