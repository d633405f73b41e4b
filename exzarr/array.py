"""The Array: metadata, a store and a codec pipeline; ``a[sel]`` becomes a chunk plan."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import operator
import os
import threading
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from typing import Any

import numpy as np

from exzarr import config
from exzarr.cache import ChunkCache
from exzarr.codecs.abc import Codec
from exzarr.codecs.registry import get_codec
from exzarr.errors import ReadOnlyError, _ChunkFailure
from exzarr.indexing import (ChunkSlots, Plan, chunk_groups, coordinate_positions, fancy_kind,
                             orthogonal_positions, plan_selection)
from exzarr.metadata import (ZARRAY, ZATTRS, ArrayMeta, chunk_keys_of, fill_bytes, json_dumps,
                             json_loads)
from exzarr.storage.base import Store

# Below this many chunks per worker (or config's task_bytes of chunk data) a batch runs
# on the calling thread: the pool hop (~200 us on 2 cores) costs more than it shares.
_MIN_CHUNKS_PER_TASK = 2
# Most process locks (an open file each) one write holds at once: a partial write of
# more chunks goes in runs of this many.
_MAX_PROCESS_LOCKS = 256


@functools.lru_cache(maxsize=1)
def raw_pipeline() -> Any:
    """The core pipeline that copies decoded bytes as they are (cache hits, Python codecs)."""
    from exzarr import _core

    return _core.Pipeline([], None)


@functools.lru_cache(maxsize=64)
def _shared_pipeline(spec: str) -> Any:
    from exzarr import _core

    steps, comp = json.loads(spec)
    return _core.Pipeline(steps, comp)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):  # a plugin codec's step may hold NumPy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a codec step value")


def core_pipeline(steps: list[dict[str, Any]], comp: dict[str, Any] | None) -> Any:
    """The core pipeline of ``steps`` and ``comp``, one for all arrays that have them.

    A pipeline keeps what it learns of its chunk sizes (a blosc chunk size's block
    layout, which costs a 1 MiB c-blosc call to learn); shared, that happens once per
    process, not once for every array opened or created, and a new array's first write
    of 64 blosc chunks of 1 MiB starts 120 us sooner. A chain with values JSON cannot
    spell gets a pipeline of its own.
    """
    try:
        spec = json.dumps([steps, comp], sort_keys=True, default=_json_scalar)
    except (TypeError, ValueError):
        from exzarr import _core

        return _core.Pipeline(steps, comp)
    return _shared_pipeline(spec)


def new_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A new, uninitialised array for a read's result.

    Large ones come 2 MiB aligned from the core's huge-page handler: NumPy's own
    allocation leaves about 2 MiB of a big array in small pages, a few percent of a read
    (see exzarr/_lib/hugealloc.h). ``NUMPY_MADVISE_HUGEPAGE=0`` turns it off, as it turns
    off NumPy's own huge-page advice.
    """
    from exzarr import _core

    if (dtype.hasobject or math.prod(shape) * dtype.itemsize < _core.HUGE_MIN
            or os.environ.get("NUMPY_MADVISE_HUGEPAGE") == "0"):
        return np.empty(shape, dtype=dtype)
    return _core.empty_huge(shape, dtype)


class Attributes(MutableMapping[str, Any]):
    """The ``.zattrs`` of an array or group: a dict persisted on every change."""

    def __init__(self, store: Store, key: str, read_only: bool = False,
                 lock: Callable[[], AbstractContextManager[None]] | None = None) -> None:
        self._store = store
        self._key = key
        self._read_only = read_only
        self._cache: dict[str, Any] | None = None
        # With a lock, each change re-reads the document under it: two handles' changes
        # are both kept.
        self._lock = lock

    def _load(self) -> dict[str, Any]:
        if self._cache is None:
            doc = getattr(self._store, "get_document", lambda key: None)(self._key)
            if doc is not None:
                self._cache = dict(doc)
            else:
                raw = self._store.get(self._key)
                doc = json_loads(raw, self._key) if raw else {}
                if not isinstance(doc, dict):
                    from exzarr.errors import InvalidMetadataError

                    raise InvalidMetadataError(
                        f"{self._key} in {self._store!r} holds a JSON {type(doc).__name__}, "
                        "not an object of attributes")
                self._cache = doc
        return self._cache

    def _save(self, data: dict[str, Any]) -> None:
        if self._read_only:
            raise ReadOnlyError("attributes are read-only; open with mode='r+' or 'a'")
        self._store.set(self._key, json_dumps(data))
        self._cache = data

    def __getitem__(self, name: str) -> Any:
        return self._load()[name]

    def _change(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``edit`` to a copy of the attributes and store it (under the lock,
        with the document re-read first, when there is one)."""
        if self._read_only:
            raise ReadOnlyError("attributes are read-only; open with mode='r+' or 'a'")
        if self._lock is None:
            data = dict(self._load())
            edit(data)
            self._save(data)
            return
        with self._lock():
            self._cache = None
            data = dict(self._load())
            edit(data)
            self._save(data)

    def __setitem__(self, name: str, value: Any) -> None:
        self._change(lambda data: data.__setitem__(name, value))

    def __delitem__(self, name: str) -> None:
        self._change(lambda data: data.__delitem__(name))

    def update(self, *args: Any, **kwargs: Any) -> None:  # one write, not one per key
        self._change(lambda data: data.update(*args, **kwargs))

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def asdict(self) -> dict[str, Any]:
        return dict(self._load())

    def refresh(self) -> None:
        self._cache = None

    def __repr__(self) -> str:
        try:
            return f"Attributes({self._load()!r})"
        except Exception as exc:  # a repr must not fail: say what is wrong instead
            return f"<Attributes {self._key!r}: unreadable ({exc})>"


def build_codecs(meta: ArrayMeta) -> tuple[list[Codec], Codec | None]:
    filters = [get_codec(f, kind="filter") for f in meta.filters or []]
    compressor = get_codec(meta.compressor) if meta.compressor else None
    return filters, compressor


def core_steps(dtype: np.dtype, filters: list[Codec],
               compressor: Codec | None) -> tuple[list[Any], Any]:
    """Each codec's core step for data of ``dtype`` (None where it has no C path).

    Walks the dtype through the filters, so each codec sees what the one before it
    produces (blosc's typesize after a narrowing filter, bitround's float width).

    A filter codec in the compressor's place (a checksum codec, which numcodecs and
    zarr-python take as a v2 ``compressor``) comes back as one more filter step after
    the others, with no compressor step: the core's raw compressor stores what the last
    filter step makes, so the bytes are those of the chain.

    Raises
    ------
    InvalidFilterConfigError
        A codec cannot handle the dtype that reaches it.
    """
    from exzarr.errors import InvalidFilterConfigError

    steps = []
    for codec in [*filters, *([compressor] if compressor is not None else [])]:
        try:
            steps.append(codec.core_step(dtype))
            dtype = codec.encoded_dtype(dtype)
        except (ValueError, TypeError) as exc:
            raise InvalidFilterConfigError(codec.codec_id, str(exc)) from None
    from exzarr.codecs.filters import Filter

    if compressor is None or not isinstance(compressor, Filter):
        return steps[:len(filters)], steps[len(filters)] if compressor is not None else None
    return steps, None


# Filters that compute with the values (not only move or wrap their bits): the data must
# be of their dtype, byte order included, for the result to mean anything.
_VALUE_FILTERS = frozenset({"quantize", "fixedscaleoffset", "astype"})


def _dtype_name(dt: np.dtype) -> str:
    """``int32``, or ``>f8`` where the byte order is not the machine's."""
    return str(dt) if dt.isnative else dt.str


def check_filters(dtype: np.dtype, chunks: tuple[int, ...], filters: list[Codec],
                  compressor: Codec | None = None) -> None:
    """Refuse, for a new array, a codec chain that does not fit its dtype and chunks
    (:func:`core_steps` walks the dtype through it first).

    numcodecs views a chunk's bytes as a filter's ``dtype`` whatever the array's is, so
    ``delta(dtype="int64")`` on an int32 array mixes pairs of numbers, and a chunk that
    is not a whole number of the filter's elements fails on its first write. An integer
    filter over floats of its width works on their bits, exactly, and is allowed; one
    that computes with values (quantize, fixedscaleoffset, astype, a float delta) needs
    the data's own dtype. Arrays other tools made are opened as they are; only
    :func:`exzarr.create` checks.

    Raises
    ------
    InvalidFilterConfigError
        Naming the filter, what does not fit and the setting that would.
    """
    from exzarr import _core
    from exzarr.errors import InvalidFilterConfigError

    here = dtype
    for codec in filters:
        want = getattr(codec, "dtype", None)
        if want is not None and not here.hasobject:
            want = np.dtype(want)
            by_value = codec.codec_id in _VALUE_FILTERS or want.kind in "fc"
            if want.itemsize != here.itemsize or (by_value and want != here):
                raise InvalidFilterConfigError(
                    codec.codec_id, f"its dtype {_dtype_name(want)} does not match the "
                    f"{_dtype_name(here)} data that reaches it; give it dtype={here.str!r} "
                    "or change the array's dtype")
        here = codec.encoded_dtype(here)
    steps, _ = core_steps(dtype, filters, compressor)
    if dtype.hasobject or not steps or any(s is None for s in steps):
        return  # codecs that run in Python check their input themselves
    chain = [*filters, *([compressor] if compressor is not None else [])]
    nbytes = math.prod(chunks) * dtype.itemsize
    for k in range(len(steps)):
        try:
            _core.Pipeline(steps[:k + 1], None).encoded_size(nbytes)
        except ValueError:
            raise InvalidFilterConfigError(
                chain[k].codec_id, f"a chunk of {math.prod(chunks)} x {dtype} "
                f"({nbytes} bytes) is not a whole number of the elements it works on; "
                "change its element size or the chunk shape") from None


class Node:
    """What arrays and groups share: a path in a store and attributes."""

    _store: Store
    _path: str
    _attrs: Attributes

    @property
    def attrs(self) -> Attributes:
        """The ``.zattrs`` (a dict-like view; change it with ``attrs[k] = v`` or
        :meth:`update_attributes`)."""
        return self._attrs

    def update_attributes(self, new: dict[str, Any]) -> Attributes:
        """Merge ``new`` into the attributes (one write); returns them."""
        self._attrs.update(new)
        return self._attrs

    @property
    def name(self) -> str:
        """The path from the store's root, with a leading "/" (as zarr's)."""
        return "/" + self._path

    @property
    def basename(self) -> str:
        """The last part of :attr:`name`."""
        return self._path.rsplit("/", 1)[-1]

    def _identity(self) -> tuple[Any, ...]:
        """What makes two of them the same: kind, storage place, path (computed once)."""
        ident = self.__dict__.get("_ident")
        if ident is None:
            from exzarr.storage.base import place

            ident = self.__dict__["_ident"] = (type(self).__name__, place(self._store, ""),
                                               self._path)
        return ident

    def __eq__(self, other: object) -> bool:
        """The same array or group of the same storage (as zarr-python compares them),
        not the same values: compare ``a[...]`` for those."""
        if not isinstance(other, Node):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


class Array(Node):
    """A chunked, compressed N-dimensional array stored in Zarr v2 format.

    Index it like a NumPy array (ints, negative ints, slices with any step, Ellipsis,
    None); reads return ``numpy.ndarray`` and writes take anything NumPy broadcasts to
    the selection. Build one with :func:`exzarr.create` or :func:`exzarr.open`.

    Concurrent writers: every write holds the locks of the chunks it writes, shared
    by every Array object of the same storage in the process, so threads never undo
    each other's writes (a write of part of a chunk reads, changes and rewrites it; one
    of whole chunks replaces them). With ``lock=True`` (or ``exzarr.config`` ``lock``)
    it also holds the store's lock of each chunk across processes. The rule across
    processes: writers that only write whole chunks need no lock; where any process
    writes part of a chunk that another process writes too, whole or in part, every
    one of them needs ``lock=True``, or a partial writer may write back the chunk it
    read over the other's newer write.

    ``append``, ``resize`` and attribute changes re-read the document they change under
    its lock. A write checks its selection against the stored shape when the array may
    have been resized since this object read it: always after a resize by another
    object in this process, and, with ``lock=True``, after one by another process
    (``.zarray`` is re-read before each write and its lock held shared until the write
    ends, so no process resizes the array in between). Without ``lock``, an object
    does not see another process's resize before its next own ``append`` or
    ``resize``: use ``lock=True`` where processes resize an array they all write.
    """

    def __init__(self, store: Store, path: str = "", *, meta: ArrayMeta | None = None,
                 read_only: bool = False, write_empty_chunks: bool = False,
                 cache_bytes: int | None = None, lock: bool | None = None) -> None:
        """
        Parameters
        ----------
        store : Store
            Where the array is.
        path : str
            The array's folder in ``store``.
        meta : ArrayMeta, optional
            Its ``.zarray``, when already read (else it is read from ``store``).
        read_only : bool
            Refuse writes.
        write_empty_chunks : bool
            Store chunks that are all ``fill_value`` (else they are deleted).
        cache_bytes : int, optional
            Size of a decoded-chunk cache (default: ``exzarr.config`` ``cache_bytes``).
        lock : bool, optional
            Also lock across processes (``store.process_lock``) around each chunk
            write and metadata change, and hold ``.zarray``'s lock shared during each
            write; default: ``exzarr.config`` ``lock``. Threads of one process are
            always serialised per chunk.

        Raises
        ------
        LockNotSupportedError
            ``lock`` is on and the store cannot lock across processes.
        """
        self._store = store
        self._path = path.strip("/")
        self._prefix = self._path + "/" if self._path else ""
        self._read_only = read_only or store.read_only
        self._write_empty = write_empty_chunks
        self._lock_processes = False
        self._seen_zarray: bytes | None = None  # the .zarray bytes the metadata came from
        if not self._read_only:
            self._setup_locks(config.get("lock") if lock is None else bool(lock))
        if meta is None:
            # Consolidated stores hand over the parsed document: no JSON round trip.
            from exzarr.errors import InvalidMetadataError, MetadataNotFoundError

            doc = getattr(store, "get_document", lambda key: None)(self._prefix + ZARRAY)
            try:
                if doc is not None:
                    meta = ArrayMeta.from_json(doc)
                else:
                    raw = store.get(self._prefix + ZARRAY)
                    if raw is None:
                        raise MetadataNotFoundError(f"no array at {self._path or '/'!r} in {store!r}")
                    meta = ArrayMeta.decode(raw)
                    self._seen_zarray = raw
            except InvalidMetadataError as exc:
                raise type(exc)(f"{self._prefix + ZARRAY} in {store!r}: {exc}") from None
        self._set_meta(meta)
        self._attrs = Attributes(store, self._prefix + ZATTRS, self._read_only,
                                 None if self._read_only else self._attrs_lock)
        if cache_bytes is None:
            cache_bytes = config.get("cache_bytes")
        self._cache = ChunkCache(cache_bytes) if cache_bytes else None
        self._enable_direct_files()

    def _set_meta(self, meta: ArrayMeta) -> None:
        self._meta = meta
        self._filters, self._compressor = build_codecs(meta)
        self._fill = fill_bytes(meta.fill_value, meta.dtype)
        self._nan_kind = 0
        dt = meta.dtype
        if (dt.kind == "f" and dt.isnative and dt.itemsize in (4, 8)
                and meta.fill_value is not None and math.isnan(meta.fill_value)):
            self._nan_kind = dt.itemsize
        self._pipeline, self._outer, self._inner_dtype = self._build_pipeline()
        self._python_codecs = bool(self._outer)
        self._direct_files = False

    # -- locks (see exzarr/locks.py) -------------------------------------------------
    def _setup_locks(self, across_processes: bool) -> None:
        """Join the locks and state that every handle of this array in the process
        shares; with ``across_processes``, check now that the store can lock."""
        from exzarr import locks
        from exzarr.storage.base import place

        self._lock_ident = place(self._store, self._prefix)
        self._state_pid = os.getpid()
        self._state_of_pid = locks.array_state(self._lock_ident)
        self._generation = self._state_of_pid.generation  # before the metadata is read
        if across_processes:
            # A store that cannot lock says so here, not at the first write (shared:
            # only a shape change in progress holds it back, not other writers).
            with self._store.process_lock(self._prefix + ZARRAY, shared=True):
                pass
            self._lock_processes = True

    @property
    def _state(self) -> Any:
        """The :class:`~exzarr.locks.ArrayState` this array shares in this process."""
        if self._state_pid != os.getpid():
            # A forked child: the parent's state may count writes of threads that are
            # not here, so it joins the child's own (and re-reads the metadata).
            from exzarr import locks

            self._state_of_pid = locks.array_state(self._lock_ident)
            self._state_pid = os.getpid()
            self._generation = -1
        return self._state_of_pid

    def _chunk_locks(self, keys: list[str]) -> AbstractContextManager[None]:
        """Held around every write of the chunks ``keys``, whole or partial (with
        ``lock``, across processes too: a partial writer in another process must not
        write back a chunk it read before this write)."""
        from exzarr import locks

        return locks.chunk_locks(self._lock_ident, keys,
                                 self._store if self._lock_processes else None)

    def _meta_lock(self, name: str) -> AbstractContextManager[None]:
        """Held while metadata document ``name`` (``.zarray``, ``.zattrs``) is re-read
        and changed."""
        from exzarr import locks

        return locks.meta_lock(self._lock_ident, self._prefix + name,
                               self._store if self._lock_processes else None)

    @contextmanager
    def _shape_change(self) -> Iterator[None]:
        """Held while the shape changes (resize, append), with the stored ``.zarray``
        re-read inside: the metadata lock, the write gate exclusive, then with ``lock``
        the store's process lock of ``.zarray`` exclusive (writes hold it shared).

        The gate comes before the process lock, as for writes: a write waiting for the
        process lock holds the gate, so the other order would wait for itself.
        """
        from exzarr import locks

        with locks.meta_lock(self._lock_ident, self._prefix + ZARRAY), self._state.changing():
            with (self._store.process_lock(self._prefix + ZARRAY) if self._lock_processes
                  else nullcontext()):
                self._reload_meta()
                yield
        self._generation = self._state.generation  # our own change: nothing to re-read

    def _attrs_lock(self) -> AbstractContextManager[None]:
        return self._meta_lock(ZATTRS)

    def _writing(self) -> _Writing:
        """Held around a write: no resize deletes chunks meanwhile, and the shape the
        write is checked against is the stored one (see :meth:`_check_meta`)."""
        return _Writing(self)

    def _check_meta(self) -> None:
        """Take the stored metadata when it may have changed since it was read: another
        handle of this process changed it (the shared generation tells, for free) or,
        with cross-process locking, ``.zarray`` is no longer the bytes last seen."""
        if self._state.generation != self._generation:
            self._reload_meta()
        elif self._lock_processes:
            raw = self._store.get(self._prefix + ZARRAY)
            if raw != self._seen_zarray:
                self._reload_meta(raw)

    def _reload_meta(self, raw: bytes | None = None) -> None:
        """Read ``.zarray`` again and take it; chunks cached for the old one are dropped."""
        from exzarr.errors import InvalidMetadataError, MetadataNotFoundError

        generation = self._state.generation
        key = self._prefix + ZARRAY
        if raw is None:
            raw = self._store.get(key)
        if raw is not None and raw == self._seen_zarray:
            self._generation = generation  # the document this object has (wrote or read)
            return
        if raw is None:
            raise MetadataNotFoundError(
                f"the array at {self._path or '/'!r} in {self._store!r} was deleted by "
                "another handle or process; create it again or open another one")
        try:
            meta = ArrayMeta.decode(raw)
        except InvalidMetadataError as exc:
            raise type(exc)(f"{key} in {self._store!r}: {exc}") from None
        old = self._meta
        if meta.to_json() != old.to_json():
            if dataclasses.replace(old, shape=meta.shape).to_json() == meta.to_json():
                self._meta = dataclasses.replace(old, shape=meta.shape)
            else:  # replaced by another array: its codecs too
                self._set_meta(meta)
                self._enable_direct_files()
            if self._cache is not None:
                self._cache.clear()
        self._seen_zarray = raw
        self._generation = generation

    def _enable_direct_files(self) -> None:
        # Directory stores let the core read and write chunk files itself, without the
        # GIL; not when chunks need Python codecs or pass through the cache.
        from exzarr.storage.directory import DirectoryStore

        self._direct_files = (type(self._store) is DirectoryStore and not self._python_codecs
                              and self._cache is None)

    def _build_pipeline(self) -> tuple[Any, list[Codec], np.dtype]:
        """The core pipeline, the codecs that run in Python around it, and the dtype of
        what passes between the two.

        The core runs the longest run of filters next to the data that all have a C
        path (the whole chain when every codec has one). The codecs after them, to the
        compressor, run in Python, each on its own: a bz2 compressor over delta still
        has delta undone by the core, in the batch call, without the GIL.
        """
        dtype = self._meta.dtype
        chain = [*self._filters, *([self._compressor] if self._compressor else [])]
        if dtype.hasobject:
            return raw_pipeline(), chain, dtype
        steps, comp = core_steps(dtype, self._filters, self._compressor)
        if all(s is not None for s in steps) and (self._compressor is None or comp is not None):
            return core_pipeline(steps, comp), [], dtype
        k = next(i for i, s in enumerate(steps + [None]) if s is None)
        inner = dtype
        for f in self._filters[:k]:
            inner = f.encoded_dtype(inner)
        return (core_pipeline(steps[:k], None) if k else raw_pipeline()), chain[k:], inner

    # -- properties -------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        """The array's items along its first axis, read a chunk row at a time."""
        return self.islice()

    @property
    def store(self) -> Store:
        return self._store

    @property
    def path(self) -> str:
        return self._path

    @property
    def meta(self) -> ArrayMeta:
        """The ``.zarray`` document, parsed (shape, chunks, dtype, codecs, fill...)."""
        return self._meta

    @property
    def metadata(self) -> ArrayMeta:
        """The same as :attr:`meta` (zarr-python 3's name): ``a.metadata.chunks``,
        ``.fill_value``, ``.ndim``, ``.zarr_format``, ``.to_dict()`` (the document as a
        dict: the .zarray document)."""
        return self._meta

    @property
    def shape(self) -> tuple[int, ...]:
        return self._meta.shape

    @property
    def chunks(self) -> tuple[int, ...]:
        return self._meta.chunks

    @property
    def dtype(self) -> np.dtype:
        return self._meta.dtype

    @property
    def ndim(self) -> int:
        return len(self._meta.shape)

    @property
    def size(self) -> int:
        return math.prod(self._meta.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def fill_value(self) -> Any:
        return self._meta.fill_value

    @property
    def order(self) -> str:
        return self._meta.order

    @property
    def compressor(self) -> Codec | None:
        return self._compressor

    @property
    def filters(self) -> list[Codec] | None:
        return list(self._filters) or None

    @property
    def dimension_separator(self) -> str:
        return self._meta.dimension_separator

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def write_empty_chunks(self) -> bool:
        return self._write_empty

    @property
    def cdata_shape(self) -> tuple[int, ...]:
        """Number of chunks along each dimension."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks))

    @property
    def nchunks(self) -> int:
        return math.prod(self.cdata_shape)

    def _chunk_keys_stored(self, bounded: bool = True) -> list[str]:
        """The stored chunks' keys: those inside the grid, or with ``bounded`` False
        also those past it (see :func:`~exzarr.metadata.chunk_keys_of`)."""
        return chunk_keys_of(list(self._store.list_prefix(self._prefix)), self._prefix,
                             self._meta, bounded=bounded)

    @property
    def nchunks_initialized(self) -> int:
        """How many chunks are stored (the others read as fill_value)."""
        return len(self._chunk_keys_stored())

    @property
    def nbytes_stored(self) -> int:
        """Bytes stored for this array: metadata, attributes and every chunk."""
        total = self._store.getsize(self._prefix + ZARRAY) + self._store.getsize(self._prefix + ZATTRS)
        return total + sum(self._store.getsize(k) for k in self._chunk_keys_stored())

    @property
    def info(self) -> ArrayInfo:
        """A summary: shape, dtype, chunks, codecs, stored bytes and compression ratio."""
        return ArrayInfo(self)

    # -- chunk keys -------------------------------------------------------------------
    def chunk_key(self, coords: Sequence[int]) -> str:
        """The store key of the chunk at grid position ``coords``."""
        if not coords:
            return self._prefix + "0"
        return self._prefix + self.dimension_separator.join(map(str, coords))

    def _plan_keys(self, plan: Plan | ChunkSlots) -> list[str]:
        """chunk_key of every chunk ``plan`` touches, in its order (for a selection's
        grid of chunks, each index made a string once, not once per chunk)."""
        if not isinstance(plan, Plan):
            return [self.chunk_key(c) for c in plan.chunk_coords()]
        ids = [[str(i) for i in d.chunk_ids] for d in plan.dims]
        if not ids:
            return [self._prefix + "0"]
        prefix, join = self._prefix, self.dimension_separator.join
        return [prefix + join(t) for t in itertools.product(*ids)]

    # -- reading ----------------------------------------------------------------------
    def __getitem__(self, selection: Any) -> Any:
        kind = fancy_kind(selection, self.ndim)
        if kind is None:
            return self.get_basic_selection(selection)
        if kind == "orthogonal":
            return self.get_orthogonal_selection(selection)
        if kind == "mask":
            return self.get_mask_selection(selection)
        return self.get_coordinate_selection(selection)

    def get_basic_selection(self, selection: Any = Ellipsis, out: np.ndarray | None = None) -> Any:
        """Read ``selection`` (NumPy basic indexing) into a new ``numpy.ndarray``.

        Parameters
        ----------
        selection : int, slice, Ellipsis, None or tuple of them
            What to read, as for NumPy basic indexing.
        out : numpy.ndarray, optional
            A writable array of the selection's shape and exactly the array's dtype, any
            memory layout, to read into instead of a new array (zarr-python's ``out``).
            Reading tile after tile into one buffer saves allocating the result and
            the kernel's zeroing of its fresh pages on every read.

        Returns
        -------
        numpy.ndarray or scalar
            The data; ``out`` itself when it was given.

        Raises
        ------
        ValueError
            ``out`` has another shape than the selection, or is read-only.
        TypeError
            ``out`` is not a NumPy array of the array's dtype.
        """
        plan = plan_selection(selection, self.shape, self.chunks)
        buf = self._result_buffer(out, plan.out_shape, plan.full_shape)
        if plan.nchunks:
            if self.dtype.hasobject:
                self._retrieve_objects(plan, buf)
            else:
                self._retrieve(plan, buf)
        return self._result(out, buf, plan.out_shape)

    def _result_buffer(self, out: Any, out_shape: tuple[int, ...],
                       full_shape: tuple[int, ...]) -> np.ndarray:
        """Where a read of ``out_shape`` goes, in ``full_shape`` (the same with dropped
        dimensions kept as 1): a new array, or ``out`` checked and viewed so."""
        if out is None:
            return new_array(full_shape, self.dtype)
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray of dtype {self.dtype}, not a "
                            f"{type(out).__name__} (a 0-d selection needs a 0-d array)")
        if out.dtype != self.dtype:
            raise TypeError(f"out must be of dtype {self.dtype}, not {out.dtype}")
        if out.shape != out_shape:
            raise ValueError(f"out has shape {out.shape}; the selection reads {out_shape}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        return _unit_axes_view(out, full_shape)

    @staticmethod
    def _result(out: Any, buf: np.ndarray, out_shape: tuple[int, ...]) -> Any:
        """What a read returns: ``out`` when given, else ``buf`` in the result's shape
        (a scalar for a 0-d result, as NumPy gives)."""
        if out is not None:
            return out
        if buf.shape == out_shape and buf.ndim:
            return buf  # the array itself, owning its data, not a view of it
        r = buf.reshape(out_shape)
        return r[()] if r.ndim == 0 else r

    def _task_count(self, n: int) -> int:
        """Worker threads worth using for ``n`` chunks: handing work to the pool costs
        a few hundred microseconds, so a task needs enough chunks and enough bytes."""
        tasks = min(config.thread_count(), n // _MIN_CHUNKS_PER_TASK)
        per_task = int(config.get("task_bytes"))
        if per_task > 0:
            tasks = min(tasks, n * math.prod(self.chunks) * self.dtype.itemsize // per_task)
        return max(1, tasks)

    def _run_groups(self, fn: Any, n: int) -> None:
        """Run ``fn(group)`` over ``range(n)`` in groups of the store's ``batch_chunks``.

        Worker threads take the next group from a shared counter until none is left,
        so the work evens out across threads and each holds the encoded bytes of one
        group at a time, never of its whole share. After a failure the others stop at
        their next group; the first failure is raised.
        """
        tasks = self._task_count(n)
        size = max(1, min(int(self._store.batch_chunks), -(-n // tasks)))  # every thread gets some
        if tasks == 1:
            for start in range(0, n, size):
                fn(range(start, min(start + size, n)))
            return
        starts = itertools.count(0, size)
        claim = threading.Lock()  # (next() alone is atomic only with the GIL)
        failed: list[bool] = []

        def worker(_: int) -> None:
            while not failed:
                with claim:
                    start = next(starts)
                if start >= n:
                    return
                try:
                    fn(range(start, min(start + size, n)))
                except BaseException:
                    failed.append(True)
                    raise

        config.run_all(worker, list(range(tasks)))

    def _run_claiming(self, call: Any, keys: list[str]) -> None:
        """Run ``call(cursor)`` on each worker thread at once over all chunks of ``keys``.

        The threads share one :class:`~exzarr._core.WorkCursor` and take chunks one at a
        time, so none waits for a fixed share of a thread the machine slowed down. A
        failure of the core becomes the public error naming its chunk.
        """
        from exzarr import _core

        def named(cursor: Any) -> None:
            try:
                call(cursor)
            except _ChunkFailure as failure:
                raise failure.to_error(keys[failure.index]) from None

        tasks = self._task_count(len(keys))
        if tasks == 1:
            named(None)
        else:
            config.run_all(named, [_core.WorkCursor()] * tasks)

    def _retrieve(self, plan: Plan, out: np.ndarray, cached: bool = True) -> None:
        """Read ``plan``'s chunks into ``out``; through the cache, when there is one,
        unless not ``cached`` (a read-modify-write needs the stored chunk: another
        Array object may have replaced it since it was cached here)."""
        from exzarr import _core

        keys = self._plan_keys(plan)
        regions = plan.regions()
        f_order = self._meta.order == "F"
        partial = plan.partial()

        if self._direct_files:
            # The core reads the files itself, each thread into its reused buffer.
            paths = self._store.file_paths(keys)  # type: ignore[attr-defined]
            nothing: list[Any] = [None] * len(keys)

            def read_files(cursor: Any) -> None:
                _core.decode_into(self._pipeline, nothing, out, regions, self.chunks, f_order,
                                  self._fill, paths, partial, config.workspace(), cursor)

            self._run_claiming(read_files, keys)
            return

        def work(group: range) -> None:
            sl = slice(group.start, group.stop)
            bkeys = keys[sl]
            pipeline = self._pipeline
            if self._cache is not None and cached:
                sources = self._cached_sources(bkeys)
                pipeline = raw_pipeline()
            else:
                sources = self._store.get_many(bkeys)
                if self._python_codecs:
                    sources = [None if s is None else self._decode_python(k, s)
                               for k, s in zip(bkeys, sources)]
            try:
                _core.decode_into(pipeline, sources, out, regions[sl], self.chunks,
                                  f_order, self._fill, None, partial[sl], config.workspace())
            except _ChunkFailure as failure:
                raise failure.to_error(bkeys[failure.index]) from None

        self._run_groups(work, len(keys))

    def _cached_sources(self, keys: list[str]) -> list[bytes | None]:
        """Decoded chunk bytes for ``keys``: from the cache, else fetched, decoded, cached."""
        from exzarr import _core

        cache = self._cache
        assert cache is not None
        sources: list[bytes | None] = [cache.get(k) for k in keys]
        missing = [i for i, s in enumerate(sources) if s is None]
        if not missing:
            return sources
        nbytes = math.prod(self.chunks) * self.dtype.itemsize
        epoch = cache.epoch()  # before the fetch: a write after it keeps these out
        fetched = self._store.get_many([keys[i] for i in missing])
        for i, data in zip(missing, fetched):
            if data is None:
                continue
            key = keys[i]
            if self._python_codecs:
                data = self._decode_python(key, data)
            if self._pipeline is raw_pipeline():
                raw: Any = data
            else:
                buf = bytearray(nbytes)
                try:
                    _core.decode_buffer(self._pipeline, data, buf)
                except _ChunkFailure as failure:
                    raise failure.to_error(key) from None
                raw = buf  # a bytearray: cached as it is, never written again
            cache.put(key, raw, epoch)
            sources[i] = raw
        return sources

    @property
    def cache(self) -> ChunkCache | None:
        """The decoded-chunk cache, when ``cache_bytes`` was given."""
        return self._cache

    def _decode_python(self, key: str, data: bytes) -> bytes:
        """Undo the codecs that run in Python (``_outer``): what the core pipeline decodes."""
        from exzarr.errors import CorruptChunkError

        nbytes = self._pipeline.encoded_size(math.prod(self.chunks) * self.dtype.itemsize)
        try:
            buf: Any = data
            for codec in reversed(self._outer):
                buf = codec.decode(buf)
            raw = np.ascontiguousarray(buf).tobytes() if isinstance(buf, np.ndarray) else bytes(buf)
        except CorruptChunkError as exc:
            raise CorruptChunkError(f"chunk {key!r} is corrupt: {exc}", key) from None
        except Exception as exc:  # a plugin codec may raise anything on bad bytes
            raise CorruptChunkError(
                f"chunk {key!r} could not be decoded ({type(exc).__name__}: {exc}); "
                "rewrite it or delete it to read it as fill_value", key) from exc
        if len(raw) != nbytes:
            raise CorruptChunkError(
                f"chunk {key!r} decodes to {len(raw)} bytes, expected {nbytes}", key)
        return raw

    def _encode_python(self, raw: bytes) -> bytes:
        """Apply the codecs that run in Python to what the core pipeline encoded."""
        buf: Any = np.frombuffer(raw, dtype=self._inner_dtype)
        for codec in self._outer:
            buf = codec.encode(buf)
        return bytes(buf)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:
            raise ValueError("an exzarr array is read into a new NumPy array: it cannot be "
                             "viewed without a copy (use copy=None or True)")
        data = np.asarray(self[...])
        return data.astype(dtype, copy=False) if dtype is not None else data

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    # -- writing ----------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._read_only:
            raise ReadOnlyError("array is read-only; open it with mode='r+' to write")

    def __setitem__(self, selection: Any, value: Any) -> None:
        kind = fancy_kind(selection, self.ndim)
        if kind is None:
            self.set_basic_selection(selection, value)
        elif kind == "orthogonal":
            self.set_orthogonal_selection(selection, value)
        elif kind == "mask":
            self.set_mask_selection(selection, value)
        else:
            self.set_coordinate_selection(selection, value)

    def set_basic_selection(self, selection: Any, value: Any) -> None:
        """Write ``value`` (broadcast NumPy-style, cast to the dtype) into ``selection``.

        The selection is checked against the array's stored shape: after another handle
        (or, with ``lock``, another process) resized the array, this one takes the new
        shape first, so nothing is written past the stored end.
        """
        self._check_writable()
        with self._writing():
            self._set_basic(selection, value)

    def _set_basic(self, selection: Any, value: Any) -> None:
        plan = plan_selection(selection, self.shape, self.chunks)
        if not plan.nchunks:
            self._check_broadcast(value, plan.out_shape)
            return
        arr = self._value_for(value, plan.out_shape).reshape(plan.full_shape)
        if not arr.flags.c_contiguous:  # (ascontiguousarray would make 0-d arrays 1-d)
            arr = arr.copy(order="C")
        if self.dtype.hasobject:
            self._store_objects(plan, arr)
        else:
            self._store_plan(plan, arr)

    def _check_broadcast(self, value: Any, shape: tuple[int, ...]) -> None:
        """Raise as NumPy would when ``value`` cannot fill an (empty) selection."""
        probe = np.asarray(value) if not self.dtype.hasobject else np.empty(np.shape(value))
        while probe.ndim > len(shape) and probe.shape[0] == 1:
            probe = probe.reshape(probe.shape[1:])
        try:
            np.broadcast_to(probe, shape)
        except ValueError:
            raise ValueError(f"could not broadcast input array from shape {np.shape(value)} "
                             f"into shape {shape}") from None

    def _value_for(self, value: Any, shape: tuple[int, ...]) -> np.ndarray:
        """``value`` cast to the dtype and broadcast to ``shape``, as NumPy assigns."""
        arr: np.ndarray
        if self.dtype.hasobject and shape == ():
            # One element takes the value as it is, a list or an array too (as NumPy's
            # object arrays do): a ragged array's items are arrays.
            arr = np.empty((), object)
            arr[()] = value
        elif self.dtype.hasobject:
            arr = np.empty(np.shape(value), dtype=object) if np.ndim(value) else np.empty((), object)
            arr[...] = value
        elif isinstance(value, np.ndarray) or np.isscalar(value) and isinstance(value, np.generic):
            arr = np.asarray(value)  # arrays cast unsafely, as NumPy's assignment does
        else:
            arr = np.asarray(value, dtype=self.dtype)  # Python values: out of range raises
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype, casting="unsafe")
        # NumPy drops leading length-1 axes of the value that the selection does not have.
        # (A reshape, not arr[0]: that makes a 0-d str array a str scalar of its own width.)
        while arr.ndim > len(shape) and arr.shape[0] == 1:
            arr = arr.reshape(arr.shape[1:])
        try:
            return np.broadcast_to(arr, shape)
        except ValueError:
            raise ValueError(
                f"could not broadcast input array from shape {np.shape(value)} into "
                f"shape {shape}") from None

    # -- orthogonal, coordinate and mask selections (zarr-python's oindex / vindex) ------
    @property
    def blocks(self) -> _Blocks:
        """Indexing by chunk: ``a.blocks[2, 0]`` is the chunk at grid position (2, 0)
        (its part inside the array), ``a.blocks[1:3]`` chunk rows 1 and 2; read and
        written, as zarr-python's and dask's ``blocks``."""
        return _Blocks(self)

    def islice(self, start: int | None = None, end: int | None = None) -> Iterator[Any]:
        """The items ``start:end`` along the first axis, read a chunk row at a time."""
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        lo, hi, _ = slice(start, end).indices(self.shape[0])
        step = self.chunks[0]
        for at in range(lo, hi, step):
            yield from self[at:min(at + step, hi)]

    @property
    def oindex(self) -> _OIndex:
        """Orthogonal (outer) indexing: ``a.oindex[[0, 5, 2], 10:20]``; see
        :meth:`get_orthogonal_selection`."""
        return _OIndex(self)

    @property
    def vindex(self) -> _VIndex:
        """Coordinate or mask indexing: ``a.vindex[[0, 5], [3, 1]]`` reads the points
        (0, 3) and (5, 1); ``a.vindex[mask]`` the True positions of a boolean array of
        the array's shape."""
        return _VIndex(self)

    def get_orthogonal_selection(self, selection: Any, out: np.ndarray | None = None) -> Any:
        """Read the outer product of per-dimension selections, as ``numpy.ix_`` does.

        Parameters
        ----------
        selection : tuple
            Per dimension an int, a slice, an integer array or list (any order, repeats
            and negative values allowed) or a boolean mask of the dimension's length.
        out : numpy.ndarray, optional
            Writable array of the result's shape and the array's dtype to read into.

        Returns
        -------
        numpy.ndarray or scalar
            Dimensions selected by an int are dropped, as in NumPy.

        Raises
        ------
        IndexError
            Out-of-bounds indices, a mask of the wrong length, None, or too many indices.
        """
        if not self.ndim:  # nothing to select per dimension: the basic selection
            return self.get_basic_selection(selection, out=out)
        dims, full_shape, out_shape = self._orthogonal(selection)
        result = self._result_buffer(out, out_shape, full_shape)
        if 0 not in full_shape:
            for _, _, picks in self._orthogonal_slots(dims):
                for slot, there, here in picks:
                    result[there] = slot[here]
        return self._result(out, result, out_shape)

    def set_orthogonal_selection(self, selection: Any, value: Any) -> None:
        """Write ``value`` (broadcast to the selection's shape) into an orthogonal
        selection; see :meth:`get_orthogonal_selection`. Where an index repeats, the
        last value written to it wins, as in NumPy."""
        self._check_writable()
        with self._writing():
            if not self.ndim:
                self._set_basic(selection, value)
                return
            dims, full_shape, out_shape = self._orthogonal(selection)
            if 0 in full_shape:
                self._check_broadcast(value, out_shape)
                return
            arr = self._value_for(value, out_shape).reshape(full_shape)
            with closing(self._orthogonal_slots(dims, locked=True)) as runs:
                for coords, slots, picks in runs:
                    for slot, there, here in picks:
                        slot[here] = arr[there]
                    self._write_slots(coords, slots)

    def get_coordinate_selection(self, selection: Any, out: np.ndarray | None = None) -> Any:
        """Read single elements at coordinates: one integer array per dimension, broadcast
        together; the result has their broadcast shape.

        Parameters
        ----------
        selection : tuple of array-like
            One integer array (or int) per dimension; negative values count from the end.
        out : numpy.ndarray, optional
            Writable array of the result's shape and the array's dtype to read into.

        Raises
        ------
        IndexError
            Not one index array per dimension, shapes that do not broadcast, or
            out-of-bounds coordinates.
        """
        points, out_shape = coordinate_positions(selection, self.shape)
        target = self._result_buffer(out, out_shape, out_shape)
        contiguous = target.flags.c_contiguous
        flat = target.reshape(-1) if contiguous else np.empty(target.size, dtype=self.dtype)
        for _, slots, slot_of, where, local in self._point_slots(points):
            flat[where] = slots[(slot_of,) + local]
        if not contiguous:
            target[...] = flat.reshape(out_shape)
        return self._result(out, target, out_shape)

    def set_coordinate_selection(self, selection: Any, value: Any) -> None:
        """Write ``value`` (broadcast to the coordinates' shape) at coordinates; see
        :meth:`get_coordinate_selection`. A repeated coordinate keeps the last value."""
        self._check_writable()
        with self._writing():
            points, out_shape = coordinate_positions(selection, self.shape)
            arr = self._value_for(value, out_shape).reshape(-1)
            with closing(self._point_slots(points, locked=True)) as runs:
                for coords, slots, slot_of, where, local in runs:
                    slots[(slot_of,) + local] = arr[where]
                    self._write_slots(coords, slots)

    def get_mask_selection(self, mask: Any, out: np.ndarray | None = None) -> Any:
        """Read the elements where ``mask`` (a boolean array of the array's shape) is
        True, in C order, as a 1-d array."""
        return self.get_coordinate_selection(self._mask_points(mask), out=out)

    def set_mask_selection(self, mask: Any, value: Any) -> None:
        """Write ``value`` (broadcast to the number of True elements) where ``mask`` is
        True."""
        self.set_coordinate_selection(self._mask_points(mask), value)

    def _mask_points(self, mask: Any) -> tuple[np.ndarray, ...]:
        m = np.asarray(mask)
        if m.dtype != bool or m.shape != self.shape:
            raise IndexError(f"a mask selection takes a boolean array of the array's shape "
                             f"{self.shape}, not {m.dtype} of shape {m.shape}")
        return np.nonzero(m)

    def _slot_batches(self, n: int) -> Iterator[slice]:
        """Runs of the ``n`` touched chunks decoded at once: a few per thread, about
        8 MiB of decoded chunks, so one buffer serves every run while still in cache."""
        chunk_bytes = max(1, math.prod(self.chunks) * self.dtype.itemsize)
        floor = min(2 * config.thread_count(), max(1, (256 << 20) // chunk_bytes))
        per = max(floor, (8 << 20) // chunk_bytes)
        if self._lock_processes:  # a run's chunks are held locked, a file each
            per = min(per, _MAX_PROCESS_LOCKS)
        for start in range(0, n, per):
            yield slice(start, start + per)

    def _orthogonal(self, selection: Any) -> tuple[list[tuple[np.ndarray, bool]], tuple[int, ...], tuple[int, ...]]:
        """An orthogonal selection's positions per dimension, and the result's shape
        with dropped dimensions kept as 1 and without them."""
        dims = orthogonal_positions(selection, self.shape)
        full_shape = tuple(len(p) for p, _ in dims)
        return dims, full_shape, tuple(len(p) for p, dropped in dims if not dropped)

    def _orthogonal_slots(self, dims: list[tuple[np.ndarray, bool]],
                          locked: bool = False) -> Iterator[tuple[Any, ...]]:
        """The touched chunks, decoded in runs as :meth:`_slot_batches` cuts them: per
        run the chunks' coordinates and slots, and per chunk its slot, its index into
        the result (or the value) and its index into the slot.

        ``locked``: each run's chunk locks are held from its read until the next run
        is asked for (the caller writes the run back meanwhile); close the generator
        (``contextlib.closing``) so that a failure releases them.
        """
        groups = [chunk_groups(p, c) for (p, _), c in zip(dims, self.chunks)]
        combos = list(itertools.product(*groups))
        room = None
        for batch in self._slot_batches(len(combos)):
            part = combos[batch]
            coords = [tuple(g[0] for g in combo) for combo in part]
            with self._run_locks(coords, locked):
                room = self._read_slots(coords, room, cached=not locked)
                yield coords, room, [(slot, _outer([g[1] for g in combo]),
                                      _outer([g[2] for g in combo]))
                                     for slot, combo in zip(room, part)]

    def _run_locks(self, coords: list[tuple[int, ...]], locked: bool) -> AbstractContextManager[Any]:
        return self._chunk_locks([self.chunk_key(c) for c in coords]) if locked else nullcontext()

    def _point_slots(self, points: list[np.ndarray],
                     locked: bool = False) -> Iterator[tuple[Any, ...]]:
        """Coordinates grouped by chunk, their chunks decoded in runs as
        :meth:`_slot_batches` cuts them: the chunks and their slots, each point's slot
        among them, its place in the result and its position inside its chunk
        (``locked`` as for :meth:`_orthogonal_slots`)."""
        if not points[0].size:
            return
        grid = tuple(-(-s // c) for s, c in zip(self.shape, self.chunks))
        ids = [p // c for p, c in zip(points, self.chunks)]
        linear = np.ravel_multi_index(ids, grid)
        if math.prod(grid) <= 1 << 16:
            linear = linear.astype(np.uint16)  # NumPy sorts 16-bit keys by radix
        order = np.argsort(linear, kind="stable")
        ordered = linear[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        uniq = ordered[starts].astype(np.int64)
        counts = np.diff(np.append(starts, len(ordered)))
        room = None
        for batch in self._slot_batches(len(uniq)):
            chunk_ids = uniq[batch]
            lo = starts[batch][0]
            hi = lo + int(counts[batch].sum())
            where = order[lo:hi]
            slot_of = np.repeat(np.arange(len(chunk_ids)), counts[batch])
            local = tuple(p[where] - i[where] * c for p, i, c in zip(points, ids, self.chunks))
            coords = [tuple(int(x) for x in c) for c in zip(*np.unravel_index(chunk_ids, grid))]
            with self._run_locks(coords, locked):
                room = self._read_slots(coords, room, cached=not locked)
                yield coords, room, slot_of, where, local

    def _read_slots(self, coords: list[tuple[int, ...]], room: np.ndarray | None = None,
                    cached: bool = True) -> np.ndarray:
        """The chunks at ``coords``, decoded whole (fill where missing): shape
        ``(len(coords), *chunks)``, in ``room`` (an earlier result) when it is large
        enough; ``cached`` as for :meth:`_retrieve`."""
        slots = ChunkSlots(tuple(coords), self.chunks)
        if room is not None and room.shape[0] >= len(coords):
            buf = room.reshape((room.shape[0] * self.chunks[0],) + self.chunks[1:])
            buf = buf[: len(coords) * self.chunks[0]]
        else:
            buf = np.empty((len(coords) * self.chunks[0],) + self.chunks[1:], dtype=self.dtype)
        if self.dtype.hasobject:
            self._retrieve_objects(slots, buf)  # type: ignore[arg-type]
        else:
            self._retrieve(slots, buf, cached)  # type: ignore[arg-type]
        return buf.reshape((len(coords),) + self.chunks)

    def _write_slots(self, coords: list[tuple[int, ...]], slots: np.ndarray) -> None:
        """Store the whole chunks ``slots`` at ``coords`` (the caller holds their
        locks: it read them under those locks)."""
        plan = ChunkSlots(tuple(coords), self.chunks)
        flat = slots.reshape((len(coords) * self.chunks[0],) + self.chunks[1:])
        keys = self._plan_keys(plan)
        if self.dtype.hasobject:
            self._store_object_chunks(plan, keys, flat)  # type: ignore[arg-type]
        else:
            self._store_chunks(keys, plan.regions(), None, flat)

    def _store_plan(self, plan: Plan, value: np.ndarray) -> None:
        """Write ``value`` into the chunks of ``plan``, each held locked meanwhile."""
        keys = self._plan_keys(plan)
        regions = plan.regions()
        covered = None if all(all(d.covers) for d in plan.dims) else plan.covered()
        # Whole chunks are held too: a partial writer that has read one would otherwise
        # write its old contents back over them. Process locks hold a file each, so
        # with them a write of many chunks goes in runs.
        step = _MAX_PROCESS_LOCKS if self._lock_processes else len(keys)
        for at in range(0, len(keys), step):
            sl = slice(at, at + step)
            with self._chunk_locks(keys[sl]):
                self._store_chunks(keys[sl], regions[sl],
                                   None if covered is None else covered[sl], value)

    def _store_chunks(self, keys: list[str], regions: np.ndarray, covered: list[bool] | None,
                      value: np.ndarray) -> None:
        """Write chunks ``keys``: ``regions`` of ``value``, ``covered`` whole or not
        (those not covered are read, changed and written back; None: all whole)."""
        from exzarr import _core

        f_order = self._meta.order == "F"

        if self._direct_files:
            # The core writes each chunk to its file (unnamed and then linked, or under a
            # temporary name and then renamed: see _lib/fileio.h).
            store: Any = self._store
            paths, tmps = store.write_paths(keys)
            nothing: list[Any] = [None] * len(keys)

            def write_files(cursor: Any) -> None:
                _core.encode_from(self._pipeline, value, regions, nothing, self.chunks, f_order,
                                  self._fill, self._write_empty, self._nan_kind, paths, tmps,
                                  config.workspace(), cursor)

            try:
                self._run_claiming(write_files, keys)
            except FileNotFoundError:
                # A chunk directory this store made was removed behind it (another tool,
                # a save() that pruned it): make them again and write once more. Writing
                # the same values twice gives the same chunks.
                store.forget_dirs()
                store.prepare_dirs(keys)
                self._run_claiming(write_files, keys)
            return
        if covered is None:
            covered = [True] * len(keys)

        def work(group: range) -> None:
            sl = slice(group.start, group.stop)
            bkeys = keys[sl]
            need = [k for k, c in zip(bkeys, covered[sl]) if not c]
            fetched = dict(zip(need, self._store.get_many(need))) if need else {}
            existing = [fetched.get(k) for k in bkeys]
            if self._python_codecs:
                existing = [None if e is None else self._decode_python(k, e)
                            for k, e in zip(bkeys, existing)]
            try:
                encoded = _core.encode_from(self._pipeline, value, regions[sl], existing,
                                            self.chunks, f_order, self._fill,
                                            self._write_empty, self._nan_kind,
                                            workspace=config.workspace())
            except _ChunkFailure as failure:
                raise failure.to_error(bkeys[failure.index]) from None
            if self._python_codecs:
                encoded = [None if e is None else self._encode_python(e) for e in encoded]
            try:
                self._store.set_many([(k, e) for k, e in zip(bkeys, encoded) if e is not None])
                empties = [k for k, e in zip(bkeys, encoded) if e is None]
                if empties:
                    self._store.delete_many(empties)
            finally:
                # After the store has the new bytes (see ChunkCache.put), failed or not.
                if self._cache is not None:
                    self._cache.invalidate(bkeys)

        self._run_groups(work, len(keys))

    # -- object arrays (variable-length strings and bytes): chunks handled in Python ----
    def _object_chunk(self, key: str, data: bytes | None) -> np.ndarray:
        """A decoded object chunk at the full chunk shape (fill where missing)."""
        if data is None:
            chunk = np.empty(self.chunks, dtype=object)
            chunk[...] = self.fill_value
            return chunk
        try:
            buf: Any = data
            if self._compressor is not None:
                buf = self._compressor.decode(buf)
            for f in reversed(self._filters):
                buf = f.decode(buf)
            items = np.asarray(buf, dtype=object).reshape(-1)
            return items.reshape(self.chunks, order="F" if self.order == "F" else "C")
        except Exception as exc:
            from exzarr.errors import CorruptChunkError

            raise CorruptChunkError(
                f"chunk {key!r} could not be decoded ({type(exc).__name__}: {exc}); "
                "rewrite it or delete it to read it as fill_value", key) from None

    def _encode_object_chunk(self, chunk: np.ndarray) -> bytes:
        buf: Any = chunk.reshape(-1, order="F" if self.order == "F" else "C")
        for f in self._filters:
            buf = f.encode(buf)
        if self._compressor is not None:
            buf = self._compressor.encode(buf)
        return bytes(np.asarray(buf).reshape(-1).view("u1")) if isinstance(buf, np.ndarray) else bytes(buf)

    def _retrieve_objects(self, plan: Plan, out: np.ndarray) -> None:
        keys = self._plan_keys(plan)
        regions = plan.regions()
        for key, data, region in zip(keys, self._store.get_many(keys), regions):
            chunk_sel, out_sel = _region_slices(region)
            out[out_sel] = self._object_chunk(key, data)[chunk_sel]

    def _store_objects(self, plan: Plan, value: np.ndarray) -> None:
        keys = self._plan_keys(plan)
        with self._chunk_locks(keys):
            self._store_object_chunks(plan, keys, value)

    def _store_object_chunks(self, plan: Plan, keys: list[str], value: np.ndarray) -> None:
        regions = plan.regions()
        covered = plan.covered()
        # Every chunk is encoded before any is stored: an item the codec refuses (a 5 in
        # a str array) fails the write with nothing changed, not half of it done.
        encoded: list[tuple[str, bytes | None]] = []
        for key, region, whole in zip(keys, regions, covered):
            chunk = self._object_chunk(key, None if whole else self._store.get(key))
            chunk_sel, value_sel = _region_slices(region)
            chunk[chunk_sel] = value[value_sel]
            if not self._write_empty and all(_is_fill(v, self.fill_value) for v in chunk.flat):
                encoded.append((key, None))
            else:
                encoded.append((key, self._encode_object_chunk(chunk)))
        try:
            self._store.set_many([(k, e) for k, e in encoded if e is not None])
            empties = [k for k, e in encoded if e is None]
            if empties:
                self._store.delete_many(empties)
        finally:
            if self._cache is not None:
                self._cache.invalidate(keys)

    def _write_meta(self) -> None:
        raw = self._meta.encode()
        self._store.set(self._prefix + ZARRAY, raw)
        self._seen_zarray = raw

    def resize(self, *shape: Any) -> None:
        """Change the shape.

        Chunks wholly outside the new shape are deleted, and the part of an edge chunk
        past the new end is set to ``fill_value``, so growing again reads the fill value
        there, as NumPy would; chunks another writer left wholly past the old end are
        deleted too. The stored ``.zarray`` is re-read first, under a lock (and with
        ``lock``, the store's process lock, which writes of every process hold shared):
        shape changes from other handles and processes are not undone. A waiting
        resize goes before writes that start after it.
        """
        self._check_writable()
        from exzarr.metadata import normalize_shape

        new_shape = normalize_shape(shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)
        if len(new_shape) != self.ndim:
            raise ValueError(f"resize keeps the number of dimensions ({self.ndim}), got {new_shape}")
        with self._shape_change():
            self._resize_to(new_shape)

    def _resize_to(self, new_shape: tuple[int, ...]) -> None:
        """Resize to ``new_shape`` (the caller holds :meth:`_shape_change`): chunks cut
        away are cleared before the new shape is stored, so a crash between the two
        leaves the old shape with fill in the cut part, never the new shape with stale
        values past the end."""
        old_shape = self.shape
        new_grid = [-(-s // c) for s, c in zip(new_shape, self.chunks)]
        doomed: list[str] = []
        edges: list[tuple[int, ...]] = []
        sep = self.dimension_separator
        for key in self._chunk_keys_stored(bounded=False):
            rest = key[len(self._prefix):]
            coords = tuple(int(p) for p in rest.split(sep)) if self.ndim else ()
            # Past the new grid, or wholly past the old end (a stale writer or another
            # tool left it: the array must not grow over it).
            if any(k >= g or k * c >= o for k, g, c, o
                   in zip(coords, new_grid, self.chunks, old_shape)):
                doomed.append(key)
            elif any(n < o and (k + 1) * c > n for k, c, n, o
                     in zip(coords, self.chunks, new_shape, old_shape)):
                edges.append(coords)
        if edges:
            self._clear_past(edges, new_shape)
        self._store.delete_many(doomed)
        if self._cache is not None:
            self._cache.invalidate(doomed)
        self._meta.shape = new_shape
        self._write_meta()

    def _clear_past(self, coords: list[tuple[int, ...]], shape: tuple[int, ...]) -> None:
        """Set every element of the chunks at ``coords`` that lies past ``shape`` to
        the fill value (a chunk left all fill is deleted, as writes do)."""
        fill: Any = (self.fill_value if self.dtype.hasobject
                     else np.frombuffer(self._fill, dtype=self.dtype)[0])
        for batch in self._slot_batches(len(coords)):
            part = coords[batch]
            with self._run_locks(part, True):
                slots = self._read_slots(part, cached=False)
                for slot, at in zip(slots, part):
                    for d, (k, c, n) in enumerate(zip(at, self.chunks, shape)):
                        if (k + 1) * c > n:
                            slot[(slice(None),) * d + (slice(n - k * c, None),)] = fill
                self._write_slots(part, slots)

    def append(self, data: Any, axis: int = 0) -> tuple[int, ...]:
        """Grow along ``axis`` and write ``data`` at the end; returns the new shape.

        The stored shape is re-read and grown under a lock held until ``data`` is
        written (with ``lock``, the store's process lock too): appends from several
        handles, threads or processes are all kept, each in one piece.
        """
        self._check_writable()
        data = np.asarray(data)
        if self.ndim == 0:
            raise ValueError("a 0-d array has no axis to append along")
        if data.ndim != self.ndim:
            raise ValueError(f"data has {data.ndim} dimensions, the array {self.ndim}")
        if not -self.ndim <= axis < self.ndim:
            raise np.exceptions.AxisError(axis, self.ndim)
        axis = axis % self.ndim
        with self._shape_change():
            for d in range(self.ndim):
                if d != axis and data.shape[d] != self.shape[d]:
                    raise ValueError(
                        f"data shape {data.shape} does not match array shape {self.shape} "
                        f"outside axis {axis}")
            old = self.shape[axis]
            new_shape = list(self.shape)
            new_shape[axis] = old + data.shape[axis]
            self._resize_to(tuple(new_shape))
            sel = tuple(slice(old, None) if d == axis else slice(None) for d in range(self.ndim))
            # Written inside the shape change (its gate held exclusive: not through
            # _writing, which would wait for it).
            self._set_basic(sel, data)
        return self.shape

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its store, path, metadata and options (for dask, multiprocessing):
        the copy builds its own codec pipeline and, with ``cache_bytes``, an empty cache."""
        return (_unpickle_array, (self._store, self._path, self._meta.to_json(),
                                  self._read_only, self._write_empty,
                                  self._cache.max_bytes if self._cache is not None else 0,
                                  self._lock_processes))

    def __repr__(self) -> str:
        where = f" {self._path!r}" if self._path else ""
        comp = self._compressor.codec_id if self._compressor else "none"
        return (f"<exzarr.Array{where} shape={self.shape} chunks={self.chunks} "
                f"dtype={self.dtype.str} compressor={comp} store={self._store!r}>")


class ArrayInfo:
    """A printable summary of an :class:`Array` (``exzarr info`` prints it)."""

    def __init__(self, array: Array) -> None:
        self.array = array

    def items(self) -> list[tuple[str, str]]:
        a = self.array
        stored = a.nbytes_stored
        ratio = _ratio(a.nbytes, stored) if stored else "-"
        comp = repr(a.compressor) if a.compressor else "None"
        filters = ", ".join(repr(f) for f in a.filters or []) or "None"
        return [
            ("Type", "exzarr.Array"),
            ("Path", a.path or "/"),
            ("Shape", str(a.shape)),
            ("Chunk shape", str(a.chunks)),
            ("Order", a.order),
            ("Data type", f"{a.dtype} ({a.dtype.str})"),
            ("Fill value", repr(a.fill_value)),
            ("Filters", filters),
            ("Compressor", comp),
            ("Store", repr(a.store)),
            ("No. bytes", f"{a.nbytes} ({_human(a.nbytes)})"),
            ("No. bytes stored", f"{stored} ({_human(stored)})"),
            ("Storage ratio", ratio),
            ("Chunks initialized", f"{a.nchunks_initialized}/{a.nchunks}"),
        ]

    def __repr__(self) -> str:
        rows = self.items()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)

    __str__ = __repr__


def _unpickle_array(store: Store, path: str, meta: dict[str, Any], read_only: bool,
                    write_empty: bool, cache_bytes: int, lock: bool = False) -> Array:
    return Array(store, path, meta=ArrayMeta.from_json(meta), read_only=read_only,
                 write_empty_chunks=write_empty, cache_bytes=cache_bytes, lock=lock)


def _unit_axes_view(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` seen as ``shape``, which differs from its shape only by axes of length 1:
    a view over the same memory whatever ``a``'s strides (a reshape promises no view,
    and setting ``.shape`` is deprecated since NumPy 2.5)."""
    if a.shape == shape:
        return a.view()
    kept = [(n, st) for n, st in zip(a.shape, a.strides) if n != 1]
    if [n for n in shape if n != 1] != [n for n, _ in kept]:
        raise ValueError(f"shape {shape} is not {a.shape} with unit axes added or removed")
    strides = [0] * len(shape)
    following = a.itemsize  # a unit axis steps over what follows it, as in a C layout
    for i in range(len(shape) - 1, -1, -1):
        if shape[i] == 1:
            strides[i] = following
        else:
            strides[i] = kept.pop()[1]
            following = strides[i] * shape[i]
    return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides, subok=True)


def _is_fill(item: Any, fill: Any) -> bool:
    """Whether one item of an object array is the fill value (items may be arrays)."""
    if isinstance(item, np.ndarray) or isinstance(fill, np.ndarray):
        return False
    return bool(item == fill)


def _region_slices(region: np.ndarray) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """NumPy slices of one plan entry: (inside the chunk, inside the output)."""
    chunk_sel = []
    out_sel = []
    for start, step, out_start, count in region.tolist():
        stop = start + step * count
        chunk_sel.append(slice(start, stop if stop >= 0 else None, step))
        out_sel.append(slice(out_start, out_start + count))
    return tuple(chunk_sel), tuple(out_sel)


def _human(n: int) -> str:
    """``n`` bytes in the largest binary unit up to PiB, to one decimal (integer maths:
    the byte count of a huge virtual array overflows a float)."""
    if n < 1024:
        return f"{n} B"
    for i, unit in enumerate(("KiB", "MiB", "GiB", "TiB"), 1):
        if n < 1024 ** (i + 1):
            return f"{_ratio(n, 1024 ** i, 1)} {unit}"
    return f"{_ratio(n, 1024 ** 5, 1)} PiB"


def _ratio(a: int, b: int, digits: int = 2) -> str:
    """``a / b`` rounded to ``digits`` decimals, exactly, for integers of any size."""
    scale = 10 ** digits
    q = (a * scale * 2 + b) // (b * 2)
    return f"{q // scale}.{q % scale:0{digits}d}"


class _Writing:
    """What :meth:`Array._writing` returns: the array's write gate, held shared, then
    with ``lock`` the store's process lock of ``.zarray`` shared (a resize in another
    process waits for the write), and the metadata checked against the stored one
    once inside. Never nested (see :class:`~exzarr.locks.ArrayState`)."""

    __slots__ = ("array", "state", "held")

    def __init__(self, array: Array) -> None:
        self.array = array
        self.state: Any = None
        self.held: AbstractContextManager[None] | None = None

    def __enter__(self) -> None:
        array = self.array
        state = self.state = array._state
        state.enter_write()
        try:
            if array._lock_processes:
                held = array._store.process_lock(array._prefix + ZARRAY, shared=True)
                held.__enter__()
                self.held = held
            array._check_meta()
        except BaseException:
            self._release()
            raise

    def __exit__(self, *exc: Any) -> None:
        self._release()

    def _release(self) -> None:
        try:
            if self.held is not None:
                held, self.held = self.held, None
                held.__exit__(None, None, None)
        finally:
            self.state.exit_write()


class _View:
    """``array.blocks``, ``.oindex``, ``.vindex``: an array seen through another kind of
    index; subclasses turn it into the array's own selections."""

    __slots__ = ("array",)
    _label = ""

    def __init__(self, array: Array) -> None:
        self.array = array

    def __repr__(self) -> str:
        return f"<{self._label} of {self.array!r}>"


class _Blocks(_View):
    """``array.blocks[...]``: chunk-grid positions (ints, slices of step 1) to the part
    of the array they cover."""

    __slots__ = ()
    _label = "blocks"

    def _selection(self, key: Any) -> tuple[slice, ...]:
        a = self.array
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (a.ndim - len(key) + 1) + key[at + 1:]
        if len(key) > a.ndim:
            raise IndexError(f"too many block indices: {len(key)} for {a.ndim} dimensions")
        key = key + (slice(None),) * (a.ndim - len(key))
        out = []
        for d, k in enumerate(key):
            n, c = a.shape[d], a.chunks[d]
            grid = -(-n // c)
            if isinstance(k, slice):
                lo, hi, step = k.indices(grid)
                if step != 1:
                    raise IndexError("block slices take step 1 only")
                out.append(slice(lo * c, min(max(hi, lo) * c, n)))
            else:
                try:
                    i = operator.index(k)
                except TypeError:
                    raise IndexError(f"block indices are ints or slices, not {k!r}") from None
                if not -grid <= i < grid:
                    raise IndexError(f"block {i} is out of bounds for axis {d} with {grid} blocks")
                i %= grid
                out.append(slice(i * c, min((i + 1) * c, n)))
        return tuple(out)

    def __getitem__(self, key: Any) -> Any:
        return self.array[self._selection(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.array[self._selection(key)] = value



class _OIndex(_View):
    """``array.oindex[...]``: orthogonal selections, read and written."""

    __slots__ = ()
    _label = "oindex"

    def __getitem__(self, selection: Any) -> Any:
        return self.array.get_orthogonal_selection(selection)

    def __setitem__(self, selection: Any, value: Any) -> None:
        self.array.set_orthogonal_selection(selection, value)



class _VIndex(_View):
    """``array.vindex[...]``: coordinate selections, or a boolean mask of the array's shape."""

    __slots__ = ()
    _label = "vindex"

    @staticmethod
    def _is_mask(selection: Any) -> bool:
        return isinstance(selection, np.ndarray) and selection.dtype == bool

    def __getitem__(self, selection: Any) -> Any:
        if self._is_mask(selection):
            return self.array.get_mask_selection(selection)
        return self.array.get_coordinate_selection(selection)

    def __setitem__(self, selection: Any, value: Any) -> None:
        if self._is_mask(selection):
            self.array.set_mask_selection(selection, value)
        else:
            self.array.set_coordinate_selection(selection, value)



def _outer(positions: list[np.ndarray]) -> tuple[Any, ...]:
    """An index for the outer product of per-dimension positions, as ``numpy.ix_``
    gives, with runs of consecutive positions as slices: with at most one array left,
    NumPy takes the fast path and keeps the dimensions in place."""
    index: list[Any] = []
    for p in positions:
        n = len(p)
        if n and int(p[-1]) - int(p[0]) == n - 1 and (n < 3 or bool((np.diff(p) == 1).all())):
            index.append(slice(int(p[0]), int(p[0]) + n))
        else:
            index.append(p)
    if sum(not isinstance(i, slice) for i in index) <= 1:
        return tuple(index)
    return np.ix_(*positions)
