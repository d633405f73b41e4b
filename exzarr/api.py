"""The top-level functions: create, open, save, load, and zarr's shortcuts (zeros, array...)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from exzarr import config
from exzarr.array import Array
from exzarr.codecs.abc import Codec
from exzarr.codecs.registry import get_codec
from exzarr.errors import (
    ChunksRequiredError,
    ContainsArrayError,
    ContainsGroupError,
    ExZarrError,
    InvalidArgumentError,
    InvalidFilterConfigError,
    MetadataNotFoundError,
    PathNotFoundError,
    ShapeRequiredError,
)
from exzarr.metadata import (
    ZARRAY,
    ZATTRS,
    ZGROUP,
    ArrayMeta,
    chunk_keys_of,
    clear_prefix,
    ensure_parent_groups,
    integer_in_range,
    json_dumps,
    listed_keys,
    normalize_chunks,
    normalize_dtype,
    normalize_shape,
)
from exzarr.storage._locks import remove_lock_files
from exzarr.storage.base import Store, place
from exzarr.storage.memory import MemoryStore
from exzarr.storage.registry import open_store

_MISSING: Any = object()


def normalize_compressor(compressor: Any) -> Codec | None:
    """A Codec (or None) from a name, a numcodecs config dict, a Codec, or None/"none"."""
    if compressor is None or (isinstance(compressor, str) and compressor.lstrip(":") in ("none", "")):
        return None
    if isinstance(compressor, Codec):
        return compressor
    if isinstance(compressor, str):
        return get_codec({"id": compressor.lstrip(":")})
    if isinstance(compressor, dict):
        return get_codec(compressor)
    if hasattr(compressor, "get_config"):  # a numcodecs codec object
        return get_codec(compressor.get_config())
    raise InvalidFilterConfigError(repr(compressor), "compressor must be a name, a config dict or a Codec")


def normalize_filters(filters: Any) -> list[Codec]:
    """Codecs from the original's tuples ``("delta", {"dtype": "int64"})``, dicts or Codecs."""
    if not filters:
        return []
    out: list[Codec] = []
    for f in filters:
        if isinstance(f, Codec):
            out.append(f)
        elif isinstance(f, (tuple, list)) and len(f) == 2 and isinstance(f[0], str):
            # The original's option values may be atoms too: (":delta", {"dtype": ":int64"}).
            opts = {k: v[1:] if isinstance(v, str) and v.startswith(":") else v
                    for k, v in dict(f[1] or {}).items()}
            out.append(get_codec({"id": f[0].lstrip(":"), **opts}, kind="filter"))
        elif isinstance(f, str):
            out.append(get_codec({"id": f.lstrip(":")}, kind="filter"))
        elif isinstance(f, dict):
            out.append(get_codec(f, kind="filter"))
        elif hasattr(f, "get_config"):
            out.append(get_codec(f.get_config(), kind="filter"))
        else:
            raise InvalidFilterConfigError(repr(f), "a filter is a (name, options) tuple, a config dict or a Codec")
    return out


def _split_path(storage: Any, path: Any, storage_options: Any = None) -> tuple[Store, str]:
    """The store and the array's path inside it."""
    if isinstance(storage, Store):
        return storage, "" if path is None else str(path).strip("/")
    return open_store(storage, path, storage_options=storage_options), ""


def _fill_for(value: Any, dt: np.dtype) -> Any:
    """``value`` as the fill value of a new array of ``dt``: one element, cast to the
    dtype (``"NaN"`` and ``1.5`` into float, 1.5 into int as 1), and given back as a
    reopened array gives it (the JSON round trip).

    Raises
    ------
    InvalidArgumentError
        It is not one element or does not convert; nothing has been written.
    """
    from exzarr.metadata import decode_fill_value, encode_fill_value, fill_bytes

    try:
        if np.ndim(value) != 0:
            if np.size(value) != 1 or isinstance(value, (str, bytes)):
                raise ValueError("a fill value is one element, not a sequence")
            value = np.asarray(value).reshape(())[()]  # np.array([1.5]), as zarr takes it
        if dt.kind == "V":
            if isinstance(value, (int, np.integer)) and value == 0:
                return decode_fill_value(encode_fill_value(0, dt), dt)
            raw = bytes(value) if isinstance(value, (bytes, np.void)) else None
            if raw is None or len(raw) > dt.itemsize:
                raise ValueError(f"a fill of a {dt.itemsize}-byte void dtype is bytes of at "
                                 "most that length, or 0")
            return decode_fill_value(encode_fill_value(raw.ljust(dt.itemsize, b"\0"), dt), dt)
        if dt.kind in "iu" and not isinstance(value, (str, bytes)):
            integer_in_range(value, dt)
        with np.errstate(over="ignore"):  # 1e10 in float16 is inf, as NumPy casts it
            cast = np.array(value, dtype=dt)[()]
        if dt.kind in "iu":
            integer_in_range(cast, dt)
        fill = decode_fill_value(encode_fill_value(cast, dt), dt)
        fill_bytes(fill, dt)
        return fill
    except (TypeError, ValueError, OverflowError, ExZarrError) as exc:
        raise InvalidArgumentError(f"fill_value {value!r} does not fit dtype {dt}: {exc}") from None


def create(
    *,
    shape: Any = _MISSING,
    chunks: Any = _MISSING,
    dtype: Any = None,
    compressor: Any = "zstd",
    filters: Any = None,
    fill_value: Any = 0,
    order: str = "C",
    dimension_separator: str = ".",
    storage: Any = "memory",
    path: str | os.PathLike[str] | None = None,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    write_empty_chunks: bool = False,
    cache_bytes: int | None = None,
    lock: bool | None = None,
    storage_options: dict[str, Any] | None = None,
    data: Any = None,
) -> Array:
    """Create a new Zarr v2 array.

    Parameters
    ----------
    shape : tuple of int
        Array dimensions (required).
    chunks : tuple of int
        Chunk dimensions, one per dimension of ``shape`` (required).
    dtype : str or numpy.dtype
        ``"int8"`` .. ``"float64"`` (the default, or ``data``'s dtype), ``"bool"``,
        ``"complex128"``, or any NumPy dtype string with byte order (``"<f8"``, ``">i4"``).
    compressor : str, dict, Codec or None
        ``"zstd"`` (default), ``"zlib"``, ``"gzip"``, ``"lz4"``, ``"blosc"``, ``None``;
        or a numcodecs config such as ``{"id": "zstd", "level": 3}``.
    filters : list, optional
        ``[("delta", {"dtype": "int64"})]``, config dicts or Codec objects.
    fill_value : scalar or None
        Value of chunks never written (default 0).
    order : {"C", "F"}
        Element order inside each chunk.
    dimension_separator : {".", "/"}
        Separator of chunk indices in keys.
    storage : str or Store
        ``"memory"`` (default), ``"filesystem"``, ``"zip"``, ``"sqlite"``, a registered
        backend, or a Store.
    path : str, optional
        Directory for ``"filesystem"``, archive for ``"zip"``, database for ``"sqlite"``;
        a URL (``s3://bucket/key``, ``memory://x``) selects fsspec; with a Store, the
        array's path inside it.
    attrs : dict, optional
        Initial attributes.
    overwrite : bool
        Replace an array or group already at the location.
    write_empty_chunks : bool
        Store chunks that equal ``fill_value`` everywhere (default: delete them).
    cache_bytes : int, optional
        Keep up to this many bytes of decoded chunks, so repeated and overlapping
        reads do not decode again (default: ``exzarr.config`` ``cache_bytes``, 0).
    lock : bool, optional
        Also lock across processes around each chunk write and metadata change,
        holding ``.zarray`` shared while writing (file locks on directory stores,
        beside the database on SQLite), for writers in several processes that write
        parts of the same chunks; default: ``exzarr.config`` ``lock`` (False). Threads
        of one process are always serialised per chunk; processes that only write whole
        chunks need no lock unless another writes parts of the same chunks. A store
        that cannot lock (zip, fsspec) raises LockNotSupportedError.
    storage_options : dict, optional
        Passed to the backend (fsspec: ``endpoint_url``, ``key``, ``secret``...).
    data : array_like, optional
        Values to write once created (as zarr-python's ``create_array(data=...)``):
        ``shape`` and ``dtype`` default to its own, ``chunks`` to a guess of about
        1 MiB per chunk.

    Returns
    -------
    Array

    Raises
    ------
    ShapeRequiredError, ChunksRequiredError, InvalidShapeError, InvalidChunksError
        ``shape`` or ``chunks`` is missing or malformed.
    UnknownCodecError, UnknownFilterError, InvalidFilterConfigError
        A codec is unknown or badly configured; nothing has been written.
    ContainsArrayError
        Something is stored at the location and ``overwrite`` is false.
    """
    if data is not None:
        from exzarr.metadata import guess_chunks

        if (chunks is _MISSING or chunks is None) and (shape is _MISSING or shape is None):
            chunks = _chunks_of(data)  # a zarr array's own chunks, as zarr takes them
        data = np.asarray(data)
        if shape is _MISSING or shape is None:
            shape = data.shape
        if dtype is None:
            dtype = data.dtype
        if chunks is _MISSING or chunks is None:
            chunks = guess_chunks(normalize_shape(shape), normalize_dtype(dtype).itemsize)
    if dtype is None:
        dtype = "float64"
    if shape is _MISSING or shape is None:
        raise ShapeRequiredError("create() needs shape=..., e.g. shape=(1000, 1000)")
    if chunks is _MISSING or chunks is None:
        raise ChunksRequiredError("create() needs chunks=..., e.g. chunks=(100, 100)")
    shape_t = normalize_shape(shape)
    chunks_t = normalize_chunks(chunks, shape_t)
    dt = normalize_dtype(dtype)
    if order not in ("C", "F"):
        raise InvalidArgumentError(f"order must be 'C' or 'F', not {order!r}")
    if dimension_separator not in (".", "/"):
        raise InvalidArgumentError(f"dimension_separator must be '.' or '/', not {dimension_separator!r}")
    comp = normalize_compressor(compressor)
    filts = normalize_filters(filters)
    if dt.hasobject:
        # Variable-length data needs an object codec first in the filters, as in zarr v2.
        wants = "vlen-bytes" if dtype is bytes or dtype == "bytes" else "vlen-utf8"
        if not any(getattr(f, "is_object_codec", False) for f in filts):
            filts.insert(0, get_codec({"id": wants}))
        empty = {"vlen-bytes": b"", "vlen-utf8": ""}.get(filts[0].codec_id)
        if empty is not None and fill_value == 0 and not isinstance(fill_value, bool):
            fill_value = empty
        want = {"vlen-bytes": (bytes,), "vlen-utf8": (str,)}.get(filts[0].codec_id)
        if want is not None and fill_value is not None and not isinstance(fill_value, want):
            raise InvalidArgumentError(
                f"fill_value {fill_value!r} is not a {want[0].__name__}, as the items of this "
                f"{filts[0].codec_id} array are; pass one, or None")
    elif dt.kind in "SU" and isinstance(fill_value, (int, float)) and fill_value == 0:
        # The default 0 means empty strings, as in zarr-python ('0' would be a digit).
        fill_value = np.zeros((), dtype=dt)[()]
    elif fill_value is not None:
        fill_value = _fill_for(fill_value, dt)
    meta = ArrayMeta(
        shape=shape_t,
        chunks=chunks_t,
        dtype=dt,
        compressor=comp.get_config() if comp else None,
        fill_value=fill_value,
        order=order,
        filters=[f.get_config() for f in filts] or None,
        dimension_separator=dimension_separator,
    )
    # Check the whole pipeline against the dtype before anything is written.
    from exzarr.array import build_codecs, check_filters

    check_filters(dt, chunks_t, *build_codecs(meta))
    # Everything that can be checked is checked before the store is touched.
    attrs_doc = None
    if attrs:
        try:
            attrs_doc = json_dumps(dict(attrs))
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidArgumentError(f"attrs cannot be stored as JSON: {exc}; nothing has "
                                       "been written") from None
    if data is not None:
        try:
            fits = np.broadcast_shapes(data.shape, shape_t) == shape_t
        except ValueError:
            fits = False
        if not fits:
            raise InvalidArgumentError(
                f"data of shape {data.shape} does not fit an array of shape {shape_t}; "
                "nothing has been written")
    store, inner = _split_path(storage, path, storage_options)
    prefix = inner + "/" if inner else ""
    replacing = store.contains(prefix + ZARRAY) or store.contains(prefix + ZGROUP)
    if replacing and not overwrite:
        raise ContainsArrayError(
            f"an array or group already exists at {path!s}; pass overwrite=True to replace it")
    groups = _missing_groups(store, inner)
    new_dirs = _missing_dirs(store, inner)
    if lock if lock is not None else config.get("lock"):
        try:  # a store that cannot lock says so now, before anything is replaced
            with store.process_lock(prefix + ZARRAY):
                pass
        except BaseException:
            _remove_new_dirs(store, new_dirs)  # the folders the lock made
            raise
    if replacing:
        clear_prefix(store, prefix)
    try:
        if inner:
            ensure_parent_groups(store, inner)
        store.set(prefix + ZARRAY, meta.encode())
        if attrs_doc is not None:
            store.set(prefix + ZATTRS, attrs_doc)
        array = Array(store, inner, meta=meta, write_empty_chunks=write_empty_chunks,
                      cache_bytes=cache_bytes, lock=lock)
        if data is not None:
            try:
                array[...] = data
            except (TypeError, ValueError, OverflowError) as exc:
                if isinstance(exc, ExZarrError):
                    raise
                raise InvalidArgumentError(
                    f"data of dtype {data.dtype} cannot be written to a {dt} array: {exc}; "
                    "nothing has been left behind") from exc
    except BaseException:
        _undo_create(store, inner, meta, groups, new_dirs)
        raise
    return array


def _missing_groups(store: Store, inner: str) -> list[str]:
    """The ``.zgroup`` keys :func:`ensure_parent_groups` would write above ``inner``."""
    parts = inner.split("/") if inner else []
    keys = [("/".join(parts[:i]) + "/" if i else "") + ZGROUP for i in range(len(parts))]
    return [k for k in keys if not store.contains(k)]


def _missing_dirs(store: Store, inner: str) -> list[str]:
    """The folders of a directory store, from its root down to ``inner``, that do not
    exist yet (deepest first); [] for other stores."""
    from exzarr.storage.directory import DirectoryStore

    if type(store) is not DirectoryStore:
        return []
    parts = inner.split("/") if inner else []
    dirs = [os.path.join(store.root, *parts[:i]) for i in range(len(parts) + 1)]
    return [d for d in reversed(dirs) if not os.path.isdir(d)]


def _undo_create(store: Store, inner: str, meta: ArrayMeta, groups: list[str],
                 new_dirs: list[str]) -> None:
    """Remove what a failed :func:`create` wrote: the array's documents and chunks, the
    groups it added above it and the folders it made. Best effort: the caller re-raises
    the error that stopped it, which is the one to report."""
    prefix = inner + "/" if inner else ""
    try:
        listed = listed_keys(store, prefix)
        keys = [k for k in listed if k[len(prefix):] in (ZARRAY, ZATTRS)]
        keys += chunk_keys_of(listed, prefix, meta)
        store.delete_many(keys + groups)
        _remove_new_dirs(store, new_dirs)
    except Exception:  # noqa: BLE001 - the original error matters more than this one
        pass


def _remove_new_dirs(store: Store, new_dirs: list[str]) -> None:
    """Remove the folders a failed :func:`create` made (deepest first), where nothing
    but its own chunks' empty folders and lock file is left in them."""
    for folder in new_dirs:
        for dirpath, _, _ in os.walk(folder, topdown=False):
            try:
                remove_lock_files(dirpath)  # this call's own, unless someone holds it now
                os.rmdir(dirpath)
            except OSError:
                pass  # not empty: something else was written there meanwhile
    if new_dirs:
        store.forget_dirs()  # type: ignore[attr-defined]  # a DirectoryStore's


# --------------------------------------------------------------------------- zarr-style shortcuts
# zarr.zeros(shape, chunks=...), zarr.array(data), zarr.zeros_like(a): the same calls work
# here. Every other keyword is create()'s; chunks stay required (ChunksRequiredError),
# except for array(), whose data gives a guess, as create(data=...) does.


def zeros(shape: Any, **kwargs: Any) -> Array:
    """A new array whose unwritten chunks read as 0 (:func:`create` with ``fill_value=0``)."""
    return create(shape=shape, fill_value=0, **kwargs)


def ones(shape: Any, **kwargs: Any) -> Array:
    """A new array whose unwritten chunks read as 1. Nothing is written until you write."""
    return create(shape=shape, fill_value=1, **kwargs)


def full(shape: Any, fill_value: Any, **kwargs: Any) -> Array:
    """A new array whose unwritten chunks read as ``fill_value``."""
    return create(shape=shape, fill_value=fill_value, **kwargs)


def empty(shape: Any, **kwargs: Any) -> Array:
    """A new array (as zarr's ``empty``: no chunks are written; they read as the fill
    value, 0 unless ``fill_value`` is given)."""
    return create(shape=shape, **kwargs)


def _chunks_of(a: Any) -> tuple[int, ...] | None:
    """The regular chunk shape of a chunked array (exzarr's, zarr-python's...), or None
    (NumPy arrays; dask's per-block chunk tuples)."""
    chunks = getattr(a, "chunks", None)
    if (isinstance(chunks, tuple) and len(chunks) == np.ndim(a)
            and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in chunks)):
        return tuple(int(c) for c in chunks)
    return None


def array(data: Any, **kwargs: Any) -> Array:
    """A new array holding ``data``: shape and dtype from it, and chunks too unless
    given (those of a chunked array such as a zarr one, else a guess)."""
    return create(data=data, **kwargs)


def _codecs_of(a: Any) -> dict[str, Any] | None:
    """The compressor and filters of a Zarr v2 array (exzarr's, zarr-python 2's, or
    zarr-python 3's v2 arrays: numcodecs configs), or None when they are not that."""
    many = None if isinstance(a, Array) else getattr(a, "compressors", None)
    if isinstance(many, tuple):  # zarr-python 3 (its .compressor is deprecated)
        if len(many) > 1:
            return None
        comp = many[0] if many else None
    else:
        try:
            comp = a.compressor
        except Exception:
            return None
    filters = getattr(a, "filters", None) or ()
    if not all(hasattr(c, "get_config") for c in (comp, *filters) if c is not None):
        return None
    return {"compressor": comp.get_config() if comp is not None else None,
            "filters": [f.get_config() for f in filters] or None}


def _like(a: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """create()'s keywords for an array like ``a``: its shape and dtype; for a chunked
    array (exzarr's, zarr-python's) its chunks, order and fill value too, and for a
    Zarr v2 one its codecs (and exzarr's its key separator)."""
    like: dict[str, Any] = {"shape": tuple(np.shape(a)), "dtype": getattr(a, "dtype", None)}
    if like["dtype"] is None:
        like["dtype"] = np.asarray(a).dtype
    chunks = _chunks_of(a)
    if chunks is not None:
        like["chunks"] = chunks
        if getattr(a, "order", None) in ("C", "F"):
            like["order"] = a.order
        if hasattr(a, "fill_value"):
            like["fill_value"] = a.fill_value
        codecs = _codecs_of(a)
        if codecs is not None:
            like.update(codecs)
    if isinstance(a, Array):
        like["dimension_separator"] = a.dimension_separator
    like.update(kwargs)
    return like


def zeros_like(a: Any, **kwargs: Any) -> Array:
    """:func:`zeros` shaped like ``a``; keywords override what is taken from it."""
    return create(**{**_like(a, kwargs), "fill_value": 0})


def ones_like(a: Any, **kwargs: Any) -> Array:
    """:func:`ones` shaped like ``a``."""
    return create(**{**_like(a, kwargs), "fill_value": 1})


def full_like(a: Any, fill_value: Any, **kwargs: Any) -> Array:
    """:func:`full` shaped like ``a``."""
    return create(**{**_like(a, kwargs), "fill_value": fill_value})


def empty_like(a: Any, **kwargs: Any) -> Array:
    """:func:`empty` shaped like ``a`` (with its fill value, when it is a Zarr array)."""
    return create(**_like(a, kwargs))


def _open_store_for(path: Any, storage: Any, mode: str, storage_options: Any) -> tuple[Store, str]:
    if isinstance(storage, Store):
        return storage, "" if path is None else str(path).strip("/")
    if path is None:
        raise InvalidArgumentError("open() needs path=...")
    store = open_store(storage, path, read_only=(mode == "r"), storage_options=storage_options)
    if not store.exists():
        if isinstance(path, (str, os.PathLike)) and os.path.exists(path):
            if os.path.isfile(path):
                raise MetadataNotFoundError(
                    f"{os.fspath(path)!r} is a file; open the directory that holds .zarray, "
                    "or pass the storage of the file's format (zip, sqlite)")
            raise MetadataNotFoundError(
                f"{os.fspath(path)!r} is a directory, not a "
                f"{getattr(store, 'backend', 'this')} store; open it with storage='filesystem'")
        raise PathNotFoundError(f"no such path: {os.fspath(path)!r}")
    return store, ""


def open(  # noqa: A001 - the original's name
    path: Any = None,
    *,
    mode: str = "r+",
    storage: Any = "filesystem",
    storage_options: dict[str, Any] | None = None,
    write_empty_chunks: bool = False,
    cache_bytes: int | None = None,
    lock: bool | None = None,
) -> Array:
    """Open an existing Zarr v2 array.

    Parameters
    ----------
    path : str or os.PathLike
        The array's directory (or its path inside ``storage`` when that is a Store).
    mode : {"r", "r+", "a"}
        ``"r"`` read-only; ``"r+"`` and ``"a"`` read and write.
    storage : str or Store
        ``"filesystem"`` (default), another backend name, or a Store.
    storage_options : dict, optional
        Passed to the backend.
    write_empty_chunks : bool
        Store chunks that equal ``fill_value`` everywhere (default: delete them).
    cache_bytes : int, optional
        Size of the decoded-chunk cache in bytes (see :func:`create`).
    lock : bool, optional
        Also lock across processes (see :func:`create`).

    Raises
    ------
    PathNotFoundError
        Nothing exists at ``path``.
    MetadataNotFoundError
        ``path`` exists but holds no ``.zarray`` (a group, or not Zarr at all).
    """
    if mode not in ("r", "r+", "a"):
        raise InvalidArgumentError(f"mode must be 'r', 'r+' or 'a' to open an array, not {mode!r}; "
                          "use exzarr.create() to make a new one")
    store, inner = _open_store_for(path, storage, mode, storage_options)
    prefix = inner + "/" if inner else ""
    if not store.contains(prefix + ZARRAY):
        if not inner and not store.exists():
            raise PathNotFoundError(f"no such path: {path!s}")
        if store.contains(prefix + ZGROUP):
            raise MetadataNotFoundError(
                f"{path!s} holds a Zarr group, not an array; open it with exzarr.open_group()")
        raise MetadataNotFoundError(f"{path!s} exists but has no .zarray: it is not a Zarr array")
    array = Array(store, inner, read_only=(mode == "r"),
                  write_empty_chunks=write_empty_chunks, cache_bytes=cache_bytes, lock=lock)
    len(array.attrs)  # a malformed .zattrs is refused at open, as a malformed .zarray is
    return array


_OPEN_ONLY = ("write_empty_chunks", "cache_bytes", "lock")


def open_array(store: Any = None, *, mode: str = "a", path: Any = None,
               storage: Any = "filesystem", storage_options: dict[str, Any] | None = None,
               **kwargs: Any) -> Array:
    """Open an array, creating it first if the mode asks, as zarr's ``open_array``.

    Parameters
    ----------
    store : str, os.PathLike or Store
        Where the array is (a directory, URL...; or a Store, with ``path`` inside it).
    mode : {"r", "r+", "a", "w", "w-", "x"}
        ``r`` read-only and ``r+`` read-write, both of an existing array (the creation
        keywords are then ignored, as zarr ignores them); ``a`` (default) opens it, or
        creates it when nothing is there; ``w`` creates it, replacing what is there;
        ``w-``/``x`` creates it, failing if something is there.
    path : str, optional
        The array's path below ``store``.
    storage, storage_options
        As for :func:`open` (``storage`` is ignored when ``store`` is a Store).
    **kwargs
        :func:`create`'s (``shape``, ``chunks``, ``dtype``...) and :func:`open`'s
        (``write_empty_chunks``, ``cache_bytes``, ``lock``).

    Raises
    ------
    ContainsGroupError
        A group is there (mode ``a``).
    """
    if store is None and path is None:
        storage, store = "memory", MemoryStore()  # as zarr: a new array in memory
    if isinstance(store, Store):
        storage, where = store, path
    elif store is None:
        where = path
    elif path:  # a path inside the store (a directory, a zip archive, a database...)
        storage = open_store(storage, store, read_only=(mode == "r"),
                             storage_options=storage_options)
        where = path
    else:
        where = store
    opening = {k: kwargs[k] for k in _OPEN_ONLY if k in kwargs}
    if mode in ("r", "r+"):
        return open(where, mode=mode, storage=storage, storage_options=storage_options, **opening)
    if mode not in ("a", "w", "w-", "x"):
        raise InvalidArgumentError(f"mode must be one of r, r+, a, w, w-, x; not {mode!r}")
    if mode == "a":
        try:
            found, inner = _open_store_for(where, storage, mode, storage_options)
        except PathNotFoundError:
            found = None
        if found is not None:  # opened once: the array is opened, or created, in it
            prefix = inner + "/" if inner else ""
            if found.contains(prefix + ZARRAY):
                return open(inner, mode="a", storage=found, **opening)
            if found.contains(prefix + ZGROUP):
                raise ContainsGroupError(f"{where!s} holds a group; open it with exzarr.open_group()")
            return create(storage=found, path=inner, **kwargs)
    return create(storage=storage, path=where, storage_options=storage_options,
                  overwrite=(mode == "w"), **kwargs)


_COPY_BATCH = 256  # chunks held in memory at once while save() copies


def _array_keys(store: Store, prefix: str, meta: ArrayMeta | None) -> set[str]:
    """The keys of the array at ``prefix``: its metadata and its chunks (see
    :func:`~exzarr.metadata.chunk_keys_of`), nothing nested below it."""
    keys = listed_keys(store, prefix)
    return ({k for k in keys if k[len(prefix):] in (ZARRAY, ZATTRS)}
            | set(chunk_keys_of(keys, prefix, meta)))


def _where(store: Store, prefix: str) -> str:
    return f"{prefix.rstrip('/')!r} in {store!r}" if prefix else repr(store)


def _under_any(key: str, parents: set[str]) -> bool:
    """Whether a "/"-ancestor of ``key`` is in ``parents`` (it would be a directory)."""
    cut = key.find("/")
    while cut != -1:
        if key[:cut] in parents:
            return True
        cut = key.find("/", cut + 1)
    return False


def save(array: Array | np.ndarray, path: Any = None, *, storage: Any = "filesystem",
         storage_options: dict[str, Any] | None = None) -> None:
    """Write ``array`` (metadata, attributes and every stored chunk) to ``path``.

    A NumPy array is accepted too: it is stored with default chunks and compressor. An
    array already at ``path`` is replaced: its metadata and chunks, not what else is
    there (arrays or groups inside it, other files). The copy holds a few hundred chunks
    in memory at a time. While it runs, readers find no array at ``path``; the old
    array's chunks that the new one does not overwrite are deleted last.

    Parameters
    ----------
    array : Array or numpy.ndarray
        What to save.
    path : str or os.PathLike
        Where: a directory, a URL (see :func:`create`), or a path inside ``storage``
        when that is a Store.
    storage : str or Store
        ``"filesystem"`` (default), another backend name, or a Store.
    storage_options : dict, optional
        Passed to the backend (an fsspec URL's endpoint, keys...).

    Raises
    ------
    ContainsGroupError
        A Zarr group is at ``path``.
    ContainsArrayError
        The array being saved lies inside ``path``, or something at ``path`` that is not
        the array being replaced would be overwritten.
    """
    if not isinstance(array, Array):
        array = create(data=array)
    target, inner = _split_path(storage, path, storage_options)
    try:
        _save(array, target, inner + "/" if inner else "")
    finally:
        if not isinstance(storage, Store):
            target.close()  # zip archives get their central directory, databases their commit


def _save(array: Array, target: Store, dst: str) -> None:
    src = array.path + "/" if array.path else ""
    (there, src_at), (here, dst_at) = place(array.store, src), place(target, dst)
    if there == here and src_at == dst_at:
        array._write_meta()  # already there: just make sure the metadata is current
        return
    if target.contains(dst + ZGROUP):
        raise ContainsGroupError(
            f"{_where(target, dst)} is a Zarr group; save into a path inside it, or remove "
            "the group first")
    if there == here and src_at.startswith(dst_at):
        raise ContainsArrayError(
            f"cannot save {array!r} to {_where(target, dst)}: the array itself lies inside "
            "that path; save it somewhere else")
    replacing = target.contains(dst + ZARRAY)
    old: ArrayMeta | None = None
    if replacing:
        try:
            old = ArrayMeta.decode(target.get(dst + ZARRAY) or b"")
        except ExZarrError:
            pass  # a broken array: replaced all the same, its chunk keys guessed
    stale = _array_keys(target, dst, old) if replacing else set()
    keys = sorted(_array_keys(array.store, src, array.meta))
    chunk_keys = [k for k in keys if k[len(src):] not in (ZARRAY, ZATTRS)]
    new = {dst + k[len(src):] for k in keys} | {dst + ZARRAY}
    # Nothing but the old array may be overwritten, or lie below a new key (a chunk file
    # cannot replace a directory). This is checked before anything is changed.
    others = [k for k in listed_keys(target, dst) if k not in stale]
    taken = [k for k in others if k in new or _under_any(k, new)]
    if taken:
        raise ContainsArrayError(
            f"{_where(target, dst)} holds {len(taken)} key(s) that are not part of the array "
            f"being replaced but would be overwritten (e.g. {min(taken)!r}); save to an "
            "empty path")
    if replacing:
        target.delete(dst + ZARRAY)
        in_the_way = {k for k in stale if _under_any(k, new)}  # nested chunks of another layout
        if in_the_way:
            target.delete_many(sorted(in_the_way))
            prune = getattr(target, "remove_empty_dirs", None)
            if prune is not None:
                prune(dst)
            stale -= in_the_way
    for start in range(0, len(chunk_keys), _COPY_BATCH):
        batch = chunk_keys[start:start + _COPY_BATCH]
        target.set_many([(dst + k[len(src):], v)
                         for k, v in zip(batch, array.store.get_many(batch)) if v is not None])
    attrs = array.store.get(src + ZATTRS)
    if attrs is not None:
        target.set(dst + ZATTRS, attrs)
    target.set(dst + ZARRAY, array.meta.encode())
    target.delete_many(sorted(stale - new))


def load(path: Any = None, *, storage: Any = "filesystem",
         storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """Read a whole array into memory as a ``numpy.ndarray``.

    ``load(path).tobytes()`` is the array's C-order binary in its dtype, as the original
    returns it. ``storage`` and ``storage_options`` are those of :func:`open`.
    """
    return np.asarray(open(path, mode="r", storage=storage, storage_options=storage_options)[...])
