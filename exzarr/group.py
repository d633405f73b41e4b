"""Groups: the Zarr v2 hierarchy of arrays and groups, attributes and consolidated metadata."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from exzarr import config, locks
from exzarr.array import Array, Attributes, Node
from exzarr.errors import (ContainsArrayError, ContainsGroupError, IncompatibleArrayError,
                           InvalidArgumentError, InvalidKeyError, InvalidMetadataError,
                           MetadataNotFoundError, PathNotFoundError)
from exzarr.metadata import (ZARRAY, ZATTRS, ZGROUP, ZMETADATA, clear_prefix,
                             ensure_parent_groups, group_document, group_from_json,
                             json_dumps, json_loads, listed_keys)
from exzarr.storage.base import Store, bad_key_reason
from exzarr.storage.registry import open_store

_META_SUFFIXES = (ZARRAY, ZGROUP, ZATTRS)


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _normalize_name(name: Any) -> str:
    """A member's path below its group: parts joined by "/" (one leading or trailing
    "/" is dropped, as zarr drops it).

    Raises
    ------
    InvalidKeyError
        ``name`` is not a string, is empty, or has an empty, ``.``, ``..``, NUL or
        metadata-document part.
    """
    if not isinstance(name, str):
        raise InvalidKeyError(f"a member name is a string such as 'a' or 'a/b', not "
                              f"{type(name).__name__} {name!r}", name)
    parts = name.strip("/").split("/")
    bad = next((p for p in parts if not _plain_part(p)), None)
    if bad is not None:
        raise InvalidKeyError(
            f"invalid member name {name!r}: " + ("it is empty or has an empty part" if not bad
                                                 else f"{bad!r} cannot be part of a name"),
            name)
    return "/".join(parts)


def _plain_part(part: str) -> bool:
    """Whether ``part`` may name a node: not empty, ``.``, ``..``, a metadata document,
    and without NUL (nor "/", which separates parts)."""
    return bool(part) and part not in (".", "..", ZMETADATA, *_META_SUFFIXES) and not (
        "\0" in part or "/" in part)


def _safe_entry(key: Any, where: str) -> bool:
    """Whether a ``.zmetadata`` entry is kept: keys with a leading "/" are dropped (no
    member can be named by an empty part); other malformed keys are refused.

    Raises
    ------
    InvalidMetadataError
        A key that is not a string, or has an empty, ``.`` or ``..`` part or a NUL.
    """
    if isinstance(key, str) and key.startswith("/"):
        return False
    problem = bad_key_reason(key)
    if problem is not None:
        raise InvalidMetadataError(
            f"{where} has an entry {key!r} that is not a store key ({problem}); fix or "
            "delete the file, or call Group.consolidate() again")
    return True


class _LazyDocs(dict):
    """key -> parsed document, encoded to bytes on first read."""

    def get(self, key, default=None):
        v = dict.get(self, key, default)
        if v is not None and not isinstance(v, bytes):
            v = json.dumps(v, allow_nan=True, ensure_ascii=False).encode()
            self[key] = v
        return v


def _move_in_consolidated(store: Store, meta_prefix: str, src: str, dst: str) -> None:
    """Rename the entries under ``src`` to ``dst`` (full paths ending in "/") in the
    ``.zmetadata`` at ``meta_prefix``, if there is one, adding the groups made above
    ``dst``; its other entries stay as they were."""
    raw = store.get(meta_prefix + ZMETADATA)
    if raw is None:
        return
    doc = json_loads(raw, meta_prefix + ZMETADATA)
    docs = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(docs, dict):
        return
    rel_src, rel_dst = src[len(meta_prefix):], dst[len(meta_prefix):]
    moved = {(rel_dst + k[len(rel_src):] if k.startswith(rel_src) else k): v
             for k, v in docs.items()}
    parts = rel_dst.rstrip("/").split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        key = "/".join(parts[:depth]) + "/" + ZGROUP
        if key not in moved:
            raw_group = store.get(meta_prefix + key)
            if raw_group is not None:
                moved[key] = json_loads(raw_group, meta_prefix + key)
    doc["metadata"] = dict(sorted(moved.items()))
    store.set(meta_prefix + ZMETADATA, json_dumps(doc))


class ConsolidatedStore(Store):
    """A read-through view that serves metadata documents from ``.zmetadata``.

    Chunks still come from the underlying store; metadata keys (``.zarray``,
    ``.zgroup``, ``.zattrs``) are answered from the consolidated document, so a whole
    hierarchy opens with one read. Writes go to the underlying store and update the
    in-memory view.
    """

    backend = "consolidated"

    def __init__(self, store: Store, metadata: dict[str, Any], prefix: str = "") -> None:
        super().__init__(read_only=store.read_only)
        self.base = store
        self.batch_chunks = store.batch_chunks
        self.prefix = prefix + "/" if prefix else ""
        where = f"{self.prefix}{ZMETADATA} in {store!r}"
        self._meta = _LazyDocs({self.prefix + k: v for k, v in metadata.items()
                                if _safe_entry(k, where)})

    def _is_meta(self, key: str) -> bool:
        return key.rsplit("/", 1)[-1] in _META_SUFFIXES and key.startswith(self.prefix)

    def get(self, key: str) -> bytes | None:
        if self._is_meta(key):
            return self._meta.get(key)
        return self.base.get(key)

    def get_document(self, key: str) -> Any:
        """The parsed metadata document under ``key`` (no JSON round trip), or None."""
        value = dict.get(self._meta, key) if self._is_meta(key) else None
        if isinstance(value, bytes):
            return json_loads(value, key)
        return value

    def get_many(self, keys: Any) -> list[bytes | None]:
        keys = list(keys)
        chunk_keys = [k for k in keys if not self._is_meta(k)]
        chunks = dict(zip(chunk_keys, self.base.get_many(chunk_keys)))
        return [self._meta.get(k) if self._is_meta(k) else chunks[k] for k in keys]

    def set(self, key: str, value: bytes) -> None:
        self.base.set(key, value)
        if self._is_meta(key):
            self._meta[key] = bytes(value)

    def set_many(self, items: Any) -> None:
        from collections.abc import Mapping

        pairs = list(items.items() if isinstance(items, Mapping) else items)
        self.base.set_many(pairs)
        for k, v in pairs:
            if self._is_meta(k):
                self._meta[k] = bytes(v)

    def delete(self, key: str) -> None:
        self.base.delete(key)
        self._meta.pop(key, None)

    def delete_many(self, keys: Any) -> None:
        keys = list(keys)
        self.base.delete_many(keys)
        for k in keys:
            self._meta.pop(k, None)

    def move_prefix(self, src: str, dst: str) -> None:
        """Move the keys in the underlying store, then this view's entries (Group.move
        updates the ``.zmetadata`` files on disk)."""
        self.base.move_prefix(src, dst)
        for k in [k for k in self._meta if k.startswith(src)]:
            self._meta[dst + k[len(src):]] = dict.pop(self._meta, k)

    def contains(self, key: str) -> bool:
        if self._is_meta(key):
            return key in self._meta
        return self.base.contains(key)

    def getsize(self, key: str) -> int:
        return self.base.getsize(key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        return self.base.list_prefix(prefix)

    def list_dir(self, prefix: str = "") -> list[str]:
        # Members come from the consolidated keys: no listing of the base store.
        p = prefix.strip("/")
        p = p + "/" if p else ""
        names = {k[len(p):].split("/", 1)[0] for k in self._meta if k.startswith(p)}
        return sorted(n for n in names if n)

    def member_names(self, prefix: str) -> list[str]:
        return self.list_dir(prefix)

    def exists(self) -> bool:
        return self.base.exists()

    def close(self) -> None:
        self.base.close()

    def __repr__(self) -> str:
        return f"<ConsolidatedStore over {self.base!r}>"


class Group(Node):
    """A Zarr v2 group: a node holding arrays and other groups, with attributes.

    ``g["a/b"]`` reaches members by path; iteration yields member names;
    ``create_group`` and ``create_array`` add members; ``tree()`` prints the
    hierarchy; ``consolidate()`` writes ``.zmetadata`` so the tree opens in one read.
    """

    def __init__(self, store: Store, path: str = "", *, read_only: bool = False) -> None:
        self._store = store
        self._path = path.strip("/")
        self._prefix = self._path + "/" if self._path else ""
        self._read_only = read_only or store.read_only
        key = self._prefix + ZGROUP
        doc = getattr(store, "get_document", lambda key: None)(key)
        if doc is None:
            raw = store.get(key)
            if raw is None:
                if store.contains(self._prefix + ZARRAY):
                    raise ContainsArrayError(
                        f"{self._path or '/'!r} is an array, not a group; open it with exzarr.open()")
                raise MetadataNotFoundError(f"no group at {self._path or '/'!r} in {store!r}")
            doc = json_loads(raw, f"{key} in {store!r}")
        group_from_json(doc, f"{key} in {store!r}")
        self._attrs = Attributes(store, self._prefix + ZATTRS, self._read_only,
                                 None if self._read_only else self._attrs_lock())

    def _attrs_lock(self) -> Callable[[], AbstractContextManager[None]]:
        """What attribute changes hold: the document's lock shared by every handle of
        this group in the process, and with ``exzarr.config`` ``lock`` its
        ``process_lock`` too (a store that cannot lock says so here, at open)."""
        from exzarr.storage.base import place

        ident, key = place(self._store, self._prefix), self._prefix + ZATTRS
        store = self._store if config.get("lock") else None
        if store is not None:
            with store.process_lock(key):
                pass
        return lambda: locks.meta_lock(ident, key, store)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def path(self) -> str:
        return self._path


    @property
    def read_only(self) -> bool:
        return self._read_only

    # -- members ----------------------------------------------------------------------
    def _kind(self, path: str) -> str | None:
        prefix = path + "/" if path else ""
        if self._store.contains(prefix + ZARRAY):
            return "array"
        if self._store.contains(prefix + ZGROUP):
            return "group"
        return None

    def __getitem__(self, name: str) -> Array | Group:
        path = _join(self._path, _normalize_name(name))
        kind = self._kind(path)
        if kind is None:
            raise KeyError(name)
        return self._member(path, kind)

    def _member(self, path: str, kind: str) -> Array | Group:
        cls = Array if kind == "array" else Group
        return cls(self._store, path, read_only=self._read_only)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return self._kind(_join(self._path, _normalize_name(name))) is not None
        except KeyError:
            return False

    def _member_kinds(self) -> list[tuple[str, str]]:
        """(name, "array" or "group") of each member, sorted by name; nothing opened."""
        found = []
        for name in self._store.list_dir(self._path):
            # Hidden names, and names a hostile listing may hold ("" would be this group
            # again, and members() would recurse into it forever).
            if name.startswith(".") or not _plain_part(name):
                continue
            kind = self._kind(_join(self._path, name))
            if kind is not None:
                found.append((name, kind))
        return sorted(found)

    def _member_names(self) -> list[str]:
        return [name for name, _ in self._member_kinds()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._member_names())

    def __len__(self) -> int:
        return len(self._member_names())

    def keys(self) -> list[str]:
        return self._member_names()

    def members(self, max_depth: int | None = 0) -> list[tuple[str, Array | Group]]:
        """(name, member) pairs, sorted by name.

        ``max_depth`` (as zarr 3's): 0 lists this group's own members; n also those of
        its groups down to n levels below, None all of them. Deeper members are named by
        their path from this group (``"sub/a"``), each after its group.
        """
        if max_depth is not None and (isinstance(max_depth, bool)
                                      or not isinstance(max_depth, (int, np.integer))
                                      or max_depth < 0):
            raise InvalidArgumentError(f"max_depth must be an int >= 0 or None, not {max_depth!r}")
        out: list[tuple[str, Array | Group]] = []
        for n, kind in self._member_kinds():
            member = self._member(_join(self._path, n), kind)
            out.append((n, member))
            if isinstance(member, Group) and (max_depth is None or max_depth > 0):
                deeper = member.members(None if max_depth is None else max_depth - 1)
                out.extend((f"{n}/{m}", sub) for m, sub in deeper)
        return out

    def items(self) -> list[tuple[str, Array | Group]]:
        """The same as :meth:`members` (a Group reads like a mapping)."""
        return self.members()

    def values(self) -> list[Array | Group]:
        return [m for _, m in self.members()]

    def array_keys(self) -> list[str]:
        """Names of the arrays in this group, sorted (without opening them)."""
        return [n for n, kind in self._member_kinds() if kind == "array"]

    def group_keys(self) -> list[str]:
        """Names of the groups in this group, sorted."""
        return [n for n, kind in self._member_kinds() if kind == "group"]

    @property
    def nmembers(self) -> int:
        return len(self)

    def arrays(self) -> list[tuple[str, Array]]:
        return [(n, m) for n, m in self.members() if isinstance(m, Array)]

    def groups(self) -> list[tuple[str, Group]]:
        return [(n, m) for n, m in self.members() if isinstance(m, Group)]

    def _real_store(self) -> Store:
        """The store holding the files: below a consolidated view, the one it reads through."""
        return self._store.base if isinstance(self._store, ConsolidatedStore) else self._store

    # -- creating members -------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._read_only:
            from exzarr.errors import ReadOnlyError

            raise ReadOnlyError("group is read-only; open it with mode='a' or 'r+' to write")

    def _ensure_parents(self, path: str) -> None:
        """Create any missing intermediate groups between this group and ``path``."""
        ensure_parent_groups(self._store, path, len(self._path.split("/")) + 1 if self._path else 1)

    def create_group(self, name: str, *, overwrite: bool = False, attrs: dict[str, Any] | None = None,
                     exist_ok: bool = False) -> Group:
        """Create the group ``name`` (intermediate groups too) and return it."""
        self._check_writable()
        path = _join(self._path, _normalize_name(name))
        kind = self._kind(path)
        if kind == "group" and (exist_ok and not overwrite):
            return Group(self._store, path)
        if kind is not None:
            if not overwrite:
                raise (ContainsGroupError if kind == "group" else ContainsArrayError)(
                    f"{path!r} already exists; pass overwrite=True to replace it")
            clear_prefix(self._store, path + "/")
        self._ensure_parents(path)
        self._store.set(path + "/" + ZGROUP, group_document())
        if attrs:
            self._store.set(path + "/" + ZATTRS, json_dumps(attrs))
        return Group(self._store, path)

    def require_array(self, name: str, **kwargs: Any) -> Array:
        """The array ``name`` if it exists (with the ``shape`` and ``dtype`` given, when
        given), else one created with ``kwargs`` (those of :func:`exzarr.create`).

        Raises
        ------
        IncompatibleArrayError
            It exists with another shape or dtype (a ContainsArrayError and a TypeError).
        ContainsGroupError
            A group is at ``name``.
        """
        return self._require(name, kwargs.get("shape"), kwargs.get("dtype"), True, kwargs)

    def _require(self, name: str, shape: Any, dtype: Any, exact: bool,
                 create_kwargs: dict[str, Any]) -> Array:
        """The existing array ``name``, checked against ``shape`` and ``dtype`` (None:
        not checked; exactly, or that ``dtype`` casts to it safely), or a new one."""
        from exzarr.metadata import normalize_dtype, normalize_shape

        path = _join(self._path, _normalize_name(name))
        kind = self._kind(path)
        if kind is None:
            return self.create_array(name, **create_kwargs)
        if kind == "group":
            raise ContainsGroupError(f"{path!r} is a group, not an array")
        a = Array(self._store, path, read_only=self._read_only)
        if shape is not None and normalize_shape(shape) != a.shape:
            raise IncompatibleArrayError(
                f"{path!r} exists with shape {a.shape}, not {normalize_shape(shape)}")
        if dtype is not None:
            want = normalize_dtype(dtype)
            if want != a.dtype if exact else not np.can_cast(want, a.dtype):
                raise IncompatibleArrayError(
                    f"{path!r} exists with dtype {a.dtype}, "
                    + (f"not {want}" if exact else f"which {want} does not cast to safely"))
        return a

    def require_group(self, name: str) -> Group:
        """The group ``name``, created if missing."""
        return self.create_group(name, exist_ok=True)

    def create_array(self, name: str, **kwargs: Any) -> Array:
        """Create the array ``name``; takes every option of :func:`exzarr.create`."""
        self._check_writable()
        from exzarr.api import create

        path = _join(self._path, _normalize_name(name))
        if self._kind(path) == "group" and not kwargs.get("overwrite"):
            raise ContainsGroupError(f"{path!r} is a group; pass overwrite=True to replace it")
        # create() writes the missing groups above the array, and removes them again if
        # it fails.
        return create(storage=self._store, path=path, **kwargs)

    # zarr's shortcuts: the same calls as exzarr.zeros(...) etc., with the member's name
    # first (positional, as zarr 2 takes it, or name=..., as zarr 3 does).
    def zeros(self, name: str, **kwargs: Any) -> Array:
        """Create the array ``name`` whose unwritten chunks read as 0."""
        return self.create_array(name, fill_value=0, **kwargs)

    def ones(self, name: str, **kwargs: Any) -> Array:
        """Create the array ``name`` whose unwritten chunks read as 1."""
        return self.create_array(name, fill_value=1, **kwargs)

    def full(self, name: str, fill_value: Any, **kwargs: Any) -> Array:
        """Create the array ``name`` whose unwritten chunks read as ``fill_value``."""
        return self.create_array(name, fill_value=fill_value, **kwargs)

    def empty(self, name: str, **kwargs: Any) -> Array:
        """Create the array ``name``; no chunks are written."""
        return self.create_array(name, **kwargs)

    def array(self, name: str, data: Any, **kwargs: Any) -> Array:
        """Create the array ``name`` holding ``data``."""
        return self.create_array(name, data=data, **kwargs)

    def create_dataset(self, name: str, **kwargs: Any) -> Array:
        """zarr 2's name for :meth:`create_array` (``data=`` included)."""
        return self.create_array(name, **kwargs)

    def require_dataset(self, name: str, shape: Any, dtype: Any = None, exact: bool = False,
                        **kwargs: Any) -> Array:
        """The array ``name`` if it exists, as zarr 2's ``require_dataset``: with this
        ``shape``, and a dtype that ``dtype`` (default float64) casts to safely, or
        exactly ``dtype`` with ``exact=True``; else a new one made with ``kwargs``.

        Raises
        ------
        IncompatibleArrayError
            It exists with another shape or dtype (a ``TypeError``, as in zarr).
        ContainsGroupError
            A group is at ``name``.
        """
        create_kwargs = {**kwargs, "shape": shape, **({} if dtype is None else {"dtype": dtype})}
        return self._require(name, shape, "float64" if dtype is None else dtype, exact,
                             create_kwargs)

    def move(self, source: str, dest: str) -> None:
        """Move the member ``source`` (an array or group, with all it holds) to ``dest``,
        both paths relative to this group; groups missing above ``dest`` are created.

        Raises
        ------
        KeyError
            Nothing is at ``source``.
        ContainsArrayError, ContainsGroupError
            Something is at ``dest`` already (nothing is moved).
        InvalidArgumentError
            ``dest`` lies inside ``source``.
        """
        self._check_writable()
        src = _join(self._path, _normalize_name(source))
        dst = _join(self._path, _normalize_name(dest))
        if self._kind(src) is None:
            raise KeyError(source)
        if dst == src or dst.startswith(src + "/"):
            raise InvalidArgumentError(f"cannot move {src!r} into itself ({dst!r})")
        kind = self._kind(dst)
        if kind is not None or bool(listed_keys(self._store, dst + "/")):
            raise (ContainsGroupError if kind == "group" else ContainsArrayError)(
                f"{dst!r} exists already; delete it first (del group[{dest!r}])")
        self._ensure_parents(dst)
        self._store.move_prefix(src + "/", dst + "/")
        # Consolidated metadata of this group or a group above: its readers (open_group
        # mode="r" uses it by default) must find the nodes where they now are.
        base = self._real_store()
        parts = self._path.split("/") if self._path else []
        for depth in range(len(parts) + 1):
            meta_prefix = "/".join(parts[:depth]) + "/" if depth else ""
            _move_in_consolidated(base, meta_prefix, src + "/", dst + "/")

    def __setitem__(self, name: str, value: Any) -> None:
        self.create_array(name, data=value, overwrite=True)

    def __delitem__(self, name: str) -> None:
        self._check_writable()
        path = _join(self._path, _normalize_name(name))
        if self._kind(path) is None:
            raise KeyError(name)
        clear_prefix(self._store, path + "/")

    # -- views ------------------------------------------------------------------------
    def tree(self) -> Tree:
        """The hierarchy as indented text, arrays with shape and dtype (a ``str`` that
        shows itself drawn at the prompt)."""
        lines = [self.name if self._path else "/"]

        def walk(group: Group, indent: str) -> None:
            members = group.members()
            for i, (name, member) in enumerate(members):
                last = i == len(members) - 1
                branch = "└── " if last else "├── "
                if isinstance(member, Array):
                    lines.append(f"{indent}{branch}{name} {member.shape} {member.dtype}")
                else:
                    lines.append(f"{indent}{branch}{name}")
                    walk(member, indent + ("    " if last else "│   "))

        walk(self, "")
        return Tree("\n".join(lines))

    def consolidate(self) -> dict[str, Any]:
        """Write ``.zmetadata``: every metadata document below this group, in one file."""
        self._check_writable()
        docs: dict[str, Any] = {}
        base = self._real_store()
        for key in listed_keys(base, self._prefix):
            rel = key[len(self._prefix):]
            if rel.rsplit("/", 1)[-1] in _META_SUFFIXES:
                raw = base.get(key)
                if raw is not None:
                    docs[rel] = json_loads(raw, key)
        doc = {"zarr_consolidated_format": 1, "metadata": dict(sorted(docs.items()))}
        base.set(self._prefix + ZMETADATA, json_dumps(doc))
        return doc

    @property
    def info(self) -> str:
        """One line on the group: its name, members and store (a property, as zarr's)."""
        return f"Group {self.name}: {len(self)} members, store {self._store!r}"

    def __repr__(self) -> str:
        mode = " read-only" if self._read_only else ""
        return f"<exzarr.Group {self.name!r}{mode} store={self._store!r}>"


class Tree(str):
    """The text of :meth:`Group.tree`; its repr is the drawing itself."""

    def __repr__(self) -> str:
        return str(self)


def open_consolidated_store(store: Store, path: str = "") -> Store:
    """Wrap ``store`` with the consolidated metadata at ``path`` (or return it as is)."""
    prefix = path.strip("/") + "/" if path.strip("/") else ""
    raw = store.get(prefix + ZMETADATA)
    if raw is None:
        return store
    where = f"{prefix}{ZMETADATA} in {store!r}"
    doc = json_loads(raw, where)
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        raise InvalidMetadataError(
            f"{where} is not consolidated metadata (an object with a 'metadata' object); "
            "call Group.consolidate() again or delete it")
    fmt = doc.get("zarr_consolidated_format")
    if isinstance(fmt, bool) or fmt != 1:
        raise InvalidMetadataError(
            f"{where} has zarr_consolidated_format {fmt!r}; exzarr reads format 1")
    for key, value in doc["metadata"].items():
        if (isinstance(key, str) and key.rsplit("/", 1)[-1] in _META_SUFFIXES
                and not isinstance(value, dict)):
            raise InvalidMetadataError(
                f"{where}: entry {key!r} holds a JSON {type(value).__name__}, not a document "
                "(an object)")
    return ConsolidatedStore(store, doc["metadata"], path.strip("/"))


def open_group(path: Any = None, *, mode: str = "a", storage: Any = "filesystem",
               storage_options: dict[str, Any] | None = None,
               consolidated: bool | None = None) -> Group:
    """Open (or create) a group.

    Parameters
    ----------
    path : str or os.PathLike
        The group's directory, archive, database or URL; with a Store as ``storage``,
        the group's path inside it.
    mode : {"r", "r+", "a", "w", "w-"}
        ``r`` read-only; ``r+`` must exist; ``a`` create if missing; ``w`` replace;
        ``w-`` create, failing if something is there.
    storage : str or Store
        ``"filesystem"`` (default), ``"memory"``, ``"zip"``, ``"sqlite"``, a registered
        backend, or a Store. A URL path selects fsspec.
    storage_options : dict, optional
        Passed to the backend (for example fsspec's ``endpoint_url``).
    consolidated : bool, optional
        Read metadata from ``.zmetadata`` (one read for the whole tree). ``None`` uses it
        when it exists and the group is opened read-only.

    Raises
    ------
    PathNotFoundError
        ``mode`` is ``r`` or ``r+`` and nothing exists at ``path``.
    ContainsArrayError
        ``path`` holds an array, not a group.
    """
    if mode not in ("r", "r+", "a", "w", "w-"):
        raise InvalidArgumentError(f"mode must be one of r, r+, a, w, w-; not {mode!r}")
    if isinstance(storage, Store):
        store, inner = storage, ("" if path is None else str(path).strip("/"))
    else:
        if path is None and storage != "memory":
            raise InvalidArgumentError("open_group() needs path=...")
        store = open_store(storage, path, read_only=(mode == "r"), storage_options=storage_options)
        inner = ""
    prefix = inner + "/" if inner else ""
    has_group = store.contains(prefix + ZGROUP)
    if store.contains(prefix + ZARRAY) and mode != "w":
        raise ContainsArrayError(f"{path!s} holds a Zarr array, not a group; open it with exzarr.open()")
    if mode in ("r", "r+") and not has_group:
        if not store.exists():
            raise PathNotFoundError(f"no such path: {os.fspath(path) if path is not None else '/'!r}")
        from exzarr.errors import MetadataNotFoundError

        raise MetadataNotFoundError(f"{path!s} exists but has no .zgroup: it is not a Zarr group")
    if mode == "w-" and (has_group or store.contains(prefix + ZARRAY)):
        raise ContainsGroupError(f"{path!s} already holds Zarr data; use mode='a' or 'w'")
    if consolidated and (mode in ("w", "w-") or not store.contains(prefix + ZMETADATA)):
        from exzarr.errors import MetadataNotFoundError

        raise MetadataNotFoundError(f"{path!s} has no .zmetadata; call Group.consolidate() first")
    if mode == "w":
        if config.get("lock"):  # a store that cannot lock says so before anything goes
            with store.process_lock(prefix + ZATTRS):
                pass
        clear_prefix(store, prefix)
        has_group = False
    if not has_group:
        ensure_parent_groups(store, inner)
        store.set(prefix + ZGROUP, group_document())
    if consolidated or (consolidated is None and mode == "r"):
        wrapped = open_consolidated_store(store, inner)
        if consolidated and wrapped is store:
            from exzarr.errors import MetadataNotFoundError

            raise MetadataNotFoundError(f"{path!s} has no .zmetadata; call Group.consolidate() first")
        store = wrapped
    g = Group(store, inner, read_only=(mode == "r"))
    len(g.attrs)  # a malformed .zattrs is refused at open, as a malformed .zgroup is
    return g


def group(*, storage: Any = "memory", path: Any = None, overwrite: bool = False,
          attrs: dict[str, Any] | None = None) -> Group:
    """Create a new root group (in memory by default)."""
    g = open_group(path, mode="w" if overwrite else "a", storage=storage)
    if attrs:
        g.attrs.update(attrs)
    return g
