"""Selections to chunk plans.

:func:`plan_selection` turns a NumPy basic-indexing selection (ints, negative ints,
slices with any step, Ellipsis, None) into the output shape and, for every chunk it
touches, the chunk's grid coordinates and the region to move: per dimension the start
and step inside the chunk, the start inside the output, and the count. The core
executes the plan; nothing here loops over elements.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DimPlan:
    """One dimension's share of a plan."""

    chunk_ids: tuple[int, ...]           # chunk index along this dimension, per entry
    entries: tuple[tuple[int, int, int, int], ...]  # chunk start, step, out start, count
    count: int                           # elements selected along this dimension
    dropped: bool                        # selected by an integer: no output dimension
    covers: tuple[bool, ...]             # entry selects every in-bounds element of its chunk


# Up to this many chunks a plan's tables are built element by element: NumPy's
# broadcasting costs more than it saves (a 64x64 window's 4 chunks: 3.5 us by
# product, 8.3 us by broadcasting; 4,096 chunks: 2.3 ms against 75 us).
_FEW_CHUNKS = 32


@dataclass(frozen=True)
class Plan:
    """The chunks a selection touches and what to move for each."""

    dims: tuple[DimPlan, ...]
    out_shape: tuple[int, ...]           # the result's shape, as NumPy would give it
    full_shape: tuple[int, ...]          # the result with dropped dimensions kept as 1
    new_axes: tuple[int, ...]            # positions of None in the result

    @property
    def nchunks(self) -> int:
        return math.prod(len(d.chunk_ids) for d in self.dims)

    def chunk_coords(self) -> list[tuple[int, ...]]:
        return list(itertools.product(*(d.chunk_ids for d in self.dims)))

    def regions(self) -> np.ndarray:
        """The (nchunks, ndim, 4) int64 array the core takes, in chunk_coords order."""
        n, ndim = self.nchunks, len(self.dims)
        if n <= _FEW_CHUNKS:
            rows = list(itertools.product(*(d.entries for d in self.dims)))
            return np.array(rows, dtype=np.int64).reshape(n, ndim, 4)
        out = np.empty((n, ndim, 4), dtype=np.int64)
        if out.size:
            # The chunks' product is in C order (chunk_coords' order): dimension k's
            # entry stays for the `inner` chunks of the dimensions after it, and its
            # entries repeat for every combination of the ones before.
            inner = n
            for k, d in enumerate(self.dims):
                entries = np.array(d.entries, dtype=np.int64)
                inner //= len(entries)
                out[:, k, :] = np.tile(np.repeat(entries, inner, axis=0),
                                       (n // (len(entries) * inner), 1))
        return out

    def covered(self) -> list[bool]:
        """Per chunk: whether the selection overwrites every in-bounds element."""
        if all(all(d.covers) for d in self.dims):
            return [True] * self.nchunks
        return [all(c) for c in itertools.product(*(d.covers for d in self.dims))]

    def partial(self) -> np.ndarray:
        """Per chunk, as uint8 for the core: 1 where the selection leaves some of its
        in-bounds elements out (``not covered``)."""
        if self.nchunks <= _FEW_CHUNKS:
            return np.frombuffer(bytes(not c for c in self.covered()), dtype=np.uint8)
        whole = np.ones((), dtype=bool)
        for d in self.dims:
            whole = np.logical_and.outer(whole, np.array(d.covers, dtype=bool))
        return (~whole).reshape(-1).view(np.uint8)


def _normalize_int(index: Any, size: int, axis: int) -> int:
    i = operator.index(index)
    if i < 0:
        i += size
    if not 0 <= i < size:
        raise IndexError(
            f"index {index} is out of bounds for axis {axis} with size {size}"
        )
    return i


def _dim_for_int(i: int, size: int, chunk: int) -> DimPlan:
    k = i // chunk
    in_chunk = min(chunk, size - k * chunk)
    return DimPlan((k,), ((i - k * chunk, 1, 0, 1),), 1, True, (in_chunk == 1,))


def _dim_for_slice(sl: slice, size: int, chunk: int) -> DimPlan:
    start, stop, step = sl.indices(size)
    count = len(range(start, stop, step))
    ids: list[int] = []
    rows: list[tuple[int, int, int, int]] = []
    covers: list[bool] = []
    j = 0
    while j < count:
        p = start + j * step
        k = p // chunk
        lo = k * chunk
        if step > 0:
            j_end = min(count, -(-((k + 1) * chunk - start) // step))
        else:
            j_end = min(count, (start - lo) // -step + 1)
        n = j_end - j
        ids.append(k)
        rows.append((p - lo, step, j, n))
        covers.append(abs(step) == 1 and n == min(chunk, size - lo))
        j = j_end
    return DimPlan(tuple(ids), tuple(rows), count, False, tuple(covers))


def expand_selection(selection: Any, ndim: int) -> tuple[list[Any], list[int]]:
    """Replace Ellipsis, pad with full slices, and pull out None (new axes).

    Returns the per-dimension selection and the result positions of new axes.
    """
    if not isinstance(selection, tuple):
        selection = (selection,)
    n_ellipsis = sum(1 for s in selection if s is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    real = sum(1 for s in selection if s is not None and s is not Ellipsis)
    if real > ndim:
        raise IndexError(
            f"too many indices for array: array is {ndim}-dimensional, but {real} were indexed"
        )
    expanded: list[Any] = []
    for s in selection:
        if s is Ellipsis:
            expanded.extend([slice(None)] * (ndim - real))
        else:
            expanded.append(s)
    if n_ellipsis == 0:
        expanded.extend([slice(None)] * (ndim - real))
    per_dim: list[Any] = []
    new_axes: list[int] = []
    out_pos = 0
    for s in expanded:
        if s is None:
            new_axes.append(out_pos)
            out_pos += 1
            continue
        per_dim.append(s)
        if isinstance(s, slice):
            out_pos += 1
    return per_dim, new_axes


def plan_selection(selection: Any, shape: tuple[int, ...], chunks: tuple[int, ...]) -> Plan:
    """The plan for ``array[selection]`` on an array of ``shape`` cut into ``chunks``.

    Raises
    ------
    IndexError
        An index is out of bounds, or there are too many indices.
        An index is not an int, slice, Ellipsis or None (as NumPy says; the advanced
        ones, arrays, lists and booleans, go through :func:`fancy_kind` first).
    """
    per_dim, new_axes = expand_selection(selection, len(shape))
    dims: list[DimPlan] = []
    for axis, (s, size, chunk) in enumerate(zip(per_dim, shape, chunks)):
        if isinstance(s, slice):
            dims.append(_dim_for_slice(s, size, chunk))
        elif isinstance(s, (bool, np.bool_)):
            raise IndexError(
                f"a bare boolean index ({s!r}) is not supported; use a boolean array of the "
                "axis's length (a.vindex[mask] or a[mask]), or an int")
        else:
            try:
                i = _normalize_int(s, size, axis)
            except TypeError:
                raise IndexError(
                    f"only integers, slices (:), Ellipsis (...) and None are valid basic "
                    f"indices, not {s!r} (axis {axis}); for integer or boolean arrays use "
                    "a[...], a.oindex[...] or a.vindex[...]"
                ) from None
            dims.append(_dim_for_int(i, size, chunk))
    full_shape = tuple(d.count for d in dims)
    core_shape = [d.count for d in dims if not d.dropped]
    for pos in new_axes:
        core_shape.insert(pos, 1)
    plan = Plan(tuple(dims), tuple(core_shape), full_shape, tuple(new_axes))
    if 0 in full_shape:
        # Nothing to move: an empty plan.
        empty = tuple(DimPlan((), (), d.count, d.dropped, ()) for d in dims)
        plan = Plan(empty, tuple(core_shape), full_shape, tuple(new_axes))
    return plan


# --------------------------------------------------------------------------------------
# Orthogonal and coordinate selections (zarr-python's oindex / vindex)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkSlots:
    """Whole chunks, each moved to or from its own slot of a stacked buffer.

    The buffer has shape ``(n * chunks[0], *chunks[1:])``: chunk ``j`` of ``coords``
    fills rows ``j * chunks[0]`` on. Orthogonal and coordinate selections decode the
    chunks they touch into such a buffer with one batched core call (and encode them
    back from it), and pick or place their elements there with NumPy. Quacks like a
    :class:`Plan` for the array's chunk readers and writers.
    """

    coords: tuple[tuple[int, ...], ...]
    chunks: tuple[int, ...]

    @property
    def nchunks(self) -> int:
        return len(self.coords)

    def chunk_coords(self) -> list[tuple[int, ...]]:
        return list(self.coords)

    def regions(self) -> np.ndarray:
        n, ndim = len(self.coords), len(self.chunks)
        r = np.zeros((n, ndim, 4), dtype=np.int64)
        r[:, :, 1] = 1
        r[:, :, 3] = self.chunks
        if ndim:
            r[:, 0, 2] = np.arange(n, dtype=np.int64) * self.chunks[0]
        return r

    def covered(self) -> list[bool]:
        return [True] * len(self.coords)

    def partial(self) -> np.ndarray:
        return np.zeros(len(self.coords), dtype=np.uint8)


def _is_index_array(s: Any) -> bool:
    return isinstance(s, (list, np.ndarray)) and not (isinstance(s, np.ndarray) and s.ndim == 0)


def _positions(s: Any, size: int, axis: int) -> np.ndarray:
    """An index array (integers, negative ones too, or a boolean mask) as positions."""
    arr = np.asarray(s)
    if arr.dtype == bool:
        if arr.shape != (size,):
            raise IndexError(f"boolean index of shape {arr.shape} does not match axis {axis} "
                             f"of size {size}")
        return np.flatnonzero(arr)
    return _normalize_ints(arr, size, axis)


def _normalize_ints(arr: np.ndarray, size: int, axis: int) -> np.ndarray:
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"index arrays must hold integers or booleans; axis {axis} got "
                         f"dtype {arr.dtype}")
    bad = arr[(arr >= size) | (arr < -size)] if arr.dtype.kind == "i" else arr[arr >= size]
    if bad.size:
        raise IndexError(f"index {bad.flat[0]} is out of bounds for axis {axis} with size {size}")
    out = arr.astype(np.int64)
    out[out < 0] += size
    return out


def orthogonal_positions(selection: Any, shape: tuple[int, ...]) -> list[tuple[np.ndarray, bool]]:
    """Per dimension: the positions an orthogonal selection takes, and whether an
    integer dropped the dimension.

    Each dimension is selected on its own, by an integer, a slice, an integer array or
    list (any order, repeats and negative values allowed) or a boolean mask of the
    dimension's length; the result is their outer product, as ``numpy.ix_`` makes it.

    Raises
    ------
    IndexError
        Out-of-bounds indices, a mask of the wrong length, multi-dimensional index
        arrays, None (new axes) or too many indices.
    """
    per_dim, new_axes = expand_selection(selection, len(shape))
    if new_axes:
        raise IndexError("None (a new axis) is not supported in orthogonal selections")
    dims: list[tuple[np.ndarray, bool]] = []
    for axis, (s, size) in enumerate(zip(per_dim, shape)):
        if isinstance(s, slice):
            dims.append((np.arange(*s.indices(size), dtype=np.int64), False))
        elif _is_index_array(s):
            arr = np.asarray(s)
            if arr.ndim != 1:
                raise IndexError(f"orthogonal index arrays are one-dimensional; axis {axis} "
                                 f"got shape {arr.shape}")
            dims.append((_positions(arr, size, axis), False))
        elif isinstance(s, (bool, np.bool_)):
            raise IndexError("a boolean scalar is not an index; use a boolean array")
        else:
            try:
                i = _normalize_int(s, size, axis)
            except TypeError:
                raise IndexError(f"unsupported index {s!r} for axis {axis}: use ints, slices, "
                                 "integer arrays or boolean masks") from None
            dims.append((np.array([i], dtype=np.int64), True))
    return dims


def coordinate_positions(selection: Any, shape: tuple[int, ...]) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """The points of a coordinate selection: one flat position array per dimension,
    and the result's shape (the index arrays broadcast together, as NumPy does).

    Raises
    ------
    IndexError
        Not one integer array (or integer) per dimension, arrays that do not
        broadcast, or out-of-bounds coordinates.
    """
    items = selection if isinstance(selection, tuple) else (selection,)
    if not shape:
        raise IndexError("a 0-dimensional array has no coordinates to select; use a[()]")
    if len(items) != len(shape):
        raise IndexError(f"a coordinate selection needs one index array per dimension: "
                         f"{len(shape)}, not {len(items)}")
    arrays: list[np.ndarray] = []
    for axis, s in enumerate(items):
        if isinstance(s, (slice, type(Ellipsis))) or s is None:
            raise IndexError("coordinate selections take integer arrays, not slices, Ellipsis "
                             "or None; use oindex for slices")
        arr = np.asarray(s)
        if arr.dtype == bool:
            raise IndexError("boolean masks select through get_mask_selection (a.vindex[mask])")
        arrays.append(_normalize_ints(arr, shape[axis], axis))
    try:
        together = np.broadcast_arrays(*arrays)
    except ValueError:
        raise IndexError("the coordinate arrays do not broadcast to one shape: "
                         f"{[a.shape for a in arrays]}") from None
    out_shape = tuple(together[0].shape) if together else ()
    return [np.ascontiguousarray(a).reshape(-1) for a in together], out_shape


def chunk_groups(positions: np.ndarray, chunk: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Split one dimension's positions by chunk: (chunk index, where in the result,
    where in the chunk) for every chunk the positions touch, in chunk order."""
    cid = positions // chunk
    order = np.argsort(cid, kind="stable")
    ids, starts = np.unique(cid[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    return [(int(k), order[s:e], positions[order[s:e]] - int(k) * chunk)
            for k, s, e in zip(ids, starts, ends)]


def fancy_kind(selection: Any, ndim: int) -> str | None:
    """How ``array[selection]`` indexes, as zarr-python reads it: None for basic
    indexing, ``"orthogonal"`` for one 1-d index array among ints and slices,
    ``"coordinate"`` for index arrays and ints only, ``"mask"`` for a boolean array of
    the array's shape. (NumPy agrees, except that it moves the array's dimension to
    the front when an int and the array are separated by a slice; zarr does not.)

    Raises
    ------
    IndexError
        Several index arrays mixed with slices: NumPy's and zarr's meanings differ;
        say which with ``oindex`` or ``vindex``.
    """
    items = selection if isinstance(selection, tuple) else (selection,)
    is_array = [_is_index_array(s) for s in items]
    if not any(is_array):
        return None
    if (len(items) == 1 and ndim > 1 and isinstance(items[0], np.ndarray)
            and items[0].dtype == bool and items[0].ndim == ndim):
        return "mask"
    one_flat_array = sum(is_array) == 1 and all(
        np.ndim(s) == 1 for s, a in zip(items, is_array) if a)
    if one_flat_array and all(a or isinstance(s, (slice, type(Ellipsis))) or
                                  (not isinstance(s, (bool, np.bool_)) and s is not None
                                   and _is_int(s)) for s, a in zip(items, is_array)):
        return "orthogonal"
    if all(a or (_is_int(s) and not isinstance(s, (bool, np.bool_))) for s, a in zip(items, is_array)):
        return "coordinate"
    raise IndexError("index arrays mixed with slices or None: use a.oindex[...] for an "
                     "orthogonal (outer) selection or a.vindex[...] for coordinates")


def _is_int(s: Any) -> bool:
    try:
        operator.index(s)
    except TypeError:
        return False
    return True
