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
        ndim = len(self.dims)
        n = self.nchunks
        if n == 0 or ndim == 0:
            return np.empty((n, ndim, 4), dtype=np.int64)
        rows = list(itertools.product(*(d.entries for d in self.dims)))
        return np.array(rows, dtype=np.int64).reshape(n, ndim, 4)

    def covered(self) -> list[bool]:
        """Per chunk: whether the selection overwrites every in-bounds element."""
        return [all(c) for c in itertools.product(*(d.covers for d in self.dims))]


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
    TypeError
        The selection uses advanced indexing (arrays, lists, booleans), which exzarr
        does not support; NumPy basic indexing only.
    """
    per_dim, new_axes = expand_selection(selection, len(shape))
    dims: list[DimPlan] = []
    for axis, (s, size, chunk) in enumerate(zip(per_dim, shape, chunks)):
        if isinstance(s, slice):
            dims.append(_dim_for_slice(s, size, chunk))
        elif isinstance(s, (bool, np.bool_)):
            raise TypeError("boolean indices are advanced indexing, which exzarr does not support")
        else:
            try:
                i = _normalize_int(s, size, axis)
            except TypeError:
                raise TypeError(
                    f"unsupported index {s!r} for axis {axis}: use ints, slices, "
                    "Ellipsis or None (NumPy basic indexing)"
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
