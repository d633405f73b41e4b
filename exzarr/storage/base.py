"""The Store interface: a synchronous mapping of string keys to bytes."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from exzarr.errors import ReadOnlyError


class Store:
    """Byte-level key/value storage under which Zarr hierarchies live.

    Keys are ``/``-separated strings such as ``"a/b/.zarray"`` or ``"a/b/0.1"``.
    Subclasses implement :meth:`get`, :meth:`set`, :meth:`delete` and
    :meth:`list_prefix`; the batch and listing helpers have generic versions that a
    backend overrides when it can do better (one round trip, one syscall).
    """

    #: Short name of the backend, as registered (``"memory"``, ``"filesystem"``...).
    backend: str = ""
    #: Chunks an array hands to one :meth:`get_many` / :meth:`set_many` call per worker
    #: thread: larger for backends whose batches run concurrently over a network.
    batch_chunks: int = 8

    def __init__(self, *, read_only: bool = False) -> None:
        self.read_only = read_only

    # -- required -------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or None when there are none."""
        raise NotImplementedError

    def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""
        raise NotImplementedError

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Every key that starts with ``prefix`` (full keys)."""
        raise NotImplementedError

    # -- generic --------------------------------------------------------------------
    def contains(self, key: str) -> bool:
        return self.get(key) is not None

    def get_many(self, keys: Iterable[str]) -> list[bytes | None]:
        """The values of ``keys``, in order; None for absent keys."""
        return [self.get(k) for k in keys]

    def set_many(self, items: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        for k, v in pairs:
            self.set(k, v)

    def delete_many(self, keys: Iterable[str]) -> None:
        for k in keys:
            self.delete(k)

    def list_dir(self, prefix: str = "") -> list[str]:
        """Names one level below ``prefix`` (a directory-like listing, sorted)."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        names = {k[len(prefix):].split("/", 1)[0] for k in self.list_prefix(prefix)}
        return sorted(names)

    def getsize(self, key: str) -> int:
        """Size in bytes of the value under ``key`` (0 when absent)."""
        value = self.get(key)
        return 0 if value is None else len(value)

    def size_prefix(self, prefix: str) -> int:
        """Total bytes stored under ``prefix``."""
        return sum(self.getsize(k) for k in self.list_prefix(prefix))

    def move_prefix(self, src: str, dst: str) -> None:
        """Move every key under ``src`` (ending in "/") to the same key under ``dst``.

        All keys are copied before any is deleted, a few hundred at a time: if a copy
        fails the source is whole (and what was copied is removed again). Only keys
        copied are deleted.
        """
        self._check_move(src, dst)
        keys = sorted(self.list_prefix(src))
        done: list[str] = []  # source keys copied, or being copied (a batch may fail halfway)
        try:
            for i in range(0, len(keys), 256):
                batch = keys[i:i + 256]
                found = [(k, v) for k, v in zip(batch, self.get_many(batch)) if v is not None]
                done.extend(k for k, _ in found)
                self.set_many([(dst + k[len(src):], v) for k, v in found])
        except BaseException:
            self.delete_many([dst + k[len(src):] for k in done])
            raise
        self.delete_many(done)

    def _check_move(self, src: str, dst: str) -> None:
        """What every move_prefix checks first: writable, and given two prefixes."""
        self._check_writable()
        if not (src.endswith("/") and dst.endswith("/")):
            raise ValueError(f"move_prefix takes prefixes ending in '/', not {src!r}, {dst!r}")

    def exists(self) -> bool:
        """Whether the store's location exists at all."""
        return True

    def remove_leftovers(self, prefix: str = "") -> int:
        """Remove what killed writers left below ``prefix`` (temporary files of stores
        that make them: see :meth:`DirectoryStore.remove_leftovers`); how many. Stores
        that leave nothing behind remove nothing."""
        base = getattr(self, "base", None)  # a view over another store (consolidated)
        return base.remove_leftovers(prefix) if isinstance(base, Store) else 0

    def process_lock(self, key: str, *,
                     shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """A lock on ``key``, seen by other processes and other Store objects on the
        same storage, held for a ``with`` block: exclusive, or with ``shared=True`` one
        that many holders hold at once and that excludes every exclusive holder (a
        waiting exclusive holder does not hold back new shared ones).

        Take one key's lock at a time (or several in sorted order): two holders waiting
        for each other's keys wait forever. Not re-entrant: a holder that takes its
        key's lock again exclusively waits for itself.

        Raises
        ------
        LockNotSupportedError
            This store cannot lock across processes (the base class: memory, zip,
            fsspec stores).
        """
        from exzarr.errors import LockNotSupportedError

        base = getattr(self, "base", None)  # a view over another store (consolidated)
        if isinstance(base, Store):
            return base.process_lock(key, shared=shared)
        raise LockNotSupportedError(
            f"{self!r} cannot lock across processes; directory and SQLite stores can. "
            "Chunk-aligned writes need no lock: write whole chunks and open the array "
            "with lock=False (or exzarr.config.set(lock=False))")

    def close(self) -> None:
        """Release resources (files, connections)."""

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self!r} is read-only; open it with mode='r+' or 'a' to write")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# "C:", "c:x": a drive on Windows extractors.
_DRIVE = re.compile(r"[A-Za-z]:")


def bad_key_reason(key: object, *, portable: bool = False) -> str | None:
    """Why ``key`` is not a store key, or None when it is one: a key is a non-empty
    string of ``/``-separated parts, none empty, ``.`` or ``..``, with no NUL.

    ``portable`` also refuses what an extracting tool on Windows reads as a path out
    of its folder (zip archives): a drive letter, or an empty, ``.`` or ``..`` part
    between backslashes.
    """
    if type(key) is not str:
        return "it is not a string"
    if not key:
        return "it is empty"
    if key[0] == "/":
        return "it starts with '/'"
    if "\0" in key:
        return "it holds a NUL character (readers cut names there, so two keys would merge)"
    if "//" in key or key[-1] == "/":
        return "it has an empty part"
    if "." in key:
        wrapped = f"/{key}/"
        if "/./" in wrapped or "/../" in wrapped:
            return "it has a '.' or '..' part"
    if portable:
        if _DRIVE.match(key):
            return "it starts with a drive letter (an absolute path on Windows)"
        if any(p in (".", "..", "") for part in key.split("/") if "\\" in part
               for p in part.split("\\")):
            return "it has a '.', '..' or empty part between backslashes (a path on Windows)"
    return None


def _plain(key: Any, portable: bool) -> bool:
    """The common case of a valid key, in a few string tests (as bad_key_reason)."""
    return (type(key) is str and key != "" and key[0] not in "./" and "//" not in key
            and key[-1] != "/" and "\0" not in key and "/." not in key
            and not (portable and ("\\" in key or key[1:2] == ":")))


def check_key(key: Any, *, portable: bool = False, what: str = "store key") -> str:
    """``key``, checked: an :class:`~exzarr.errors.InvalidKeyError` naming it unless it
    is a valid store key (see :func:`bad_key_reason`); ``what`` names it in the error
    (a listing's prefix, say)."""
    if _plain(key, portable):
        return key
    reason = bad_key_reason(key, portable=portable)
    if reason is not None:
        from exzarr.errors import InvalidKeyError

        raise InvalidKeyError(f"invalid {what} {key!r}: {reason}; keys are '/'-separated "
                              "names, none empty, '.' or '..', with no NUL", key)
    return key


# Keys joined by newlines with one of these in them may not all be valid (see _plain).
_SUSPECT = ("//", "/.", "\n.", "/\n", "\n/", "\n\n", "\0")
_SUSPECT_PORTABLE = (*_SUSPECT, "\\", ":")


def all_plain(keys: list[str], *, portable: bool = False) -> bool:
    """Whether the strings ``keys`` are all plain valid keys (no part empty or starting
    with a dot, no NUL), in a few string tests over them joined (a batch of chunk keys);
    False sends the caller to the full check of each."""
    joined = "\n" + "\n".join(keys) + "\n"
    return not any(bad in joined for bad in (_SUSPECT_PORTABLE if portable else _SUSPECT))


def check_keys(keys: Any, *, portable: bool = False) -> list[Any]:
    """``keys`` as a list, checked as :func:`check_key` checks one, in a few string
    tests when all are plain (a batch of chunk keys)."""
    keys = list(keys)
    if all(type(k) is str for k in keys) and all_plain(keys, portable=portable):
        return keys
    for key in keys:
        check_key(key, portable=portable)
    return keys


def is_valid_key(key: object, *, portable: bool = False) -> bool:
    """Whether a listed key is one a store may return (listings skip the others)."""
    return _plain(key, portable) or bad_key_reason(key, portable=portable) is None


def storage_error(err: int | None, reason: str, doing: str,
                  filename: str | None = None) -> Exception:
    """The :class:`~exzarr.errors.StorageError` for a failed ``doing`` (which names the
    store and key), keeping ``err`` (an errno, or None) and saying what to do next."""
    import errno as _errno

    from exzarr.errors import StorageError

    hint = {
        _errno.ENOSPC: "free space on that disk and write again (what was written before "
                       "is intact)",
        _errno.EDQUOT: "raise the disk quota or free space, and write again",
        _errno.EROFS: "the file system is read-only: open the store with mode='r' to read it",
        _errno.EACCES: "check the permissions of the store's files and folders",
        _errno.EPERM: "check the permissions of the store's files and folders",
        _errno.EIO: "the device reported an error: check the disk",
        _errno.EFBIG: "the file would pass a size limit (ulimit -f, or the file system's): "
                      "write less or raise the limit",
    }.get(err or 0, "")
    message = f"{doing} failed: {reason}" + (f"; {hint}" if hint else "")
    return StorageError(err, message, filename)


def sync_folder(path: str) -> None:
    """Sync the folder ``path``'s entries (files and folders made, renamed or removed in
    it) to disk: the package's one folder sync, the core's too. A file system that
    cannot sync folders (EINVAL) is left as it is; other failures raise OSError."""
    from exzarr._core import sync_folder as core_sync_folder

    core_sync_folder(path)


def make_folders(folder: str) -> list[str]:
    """Make ``folder`` and the parents it lacks; the folders that were missing,
    outermost first (each one's entry is in its parent: a durable write syncs those
    parents). One another writer made meanwhile counts as missing too: its parent may
    not be synced yet."""
    missing: list[str] = []
    path = folder
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    missing.reverse()
    for path in missing:
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
    return missing


def _is_local(fs: Any) -> bool:
    """Whether an fsspec filesystem is the local one (its paths are this machine's)."""
    protocol = getattr(fs, "protocol", ())
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return bool({"file", "local"} & set(protocols))


def place(store: Store, prefix: str) -> tuple[Any, str]:
    """Where ``prefix`` of ``store`` is: an identity for the storage and the path in it,
    ending in "/", the same for two Store objects of one directory, file or dict."""
    while isinstance(getattr(store, "base", None), Store):  # consolidated views
        store = store.base  # type: ignore[attr-defined]
    root = getattr(store, "root", None)
    fs = getattr(store, "fs", None)
    if isinstance(root, str) and os.path.isabs(root) and (fs is None or _is_local(fs)):
        return ("path",), os.path.realpath(os.path.join(root, prefix)) + "/"
    if isinstance(root, str):  # a bucket, or memory:// (whose roots look absolute)
        return ("fs", id(fs)), root.rstrip("/") + "/" + prefix
    path = getattr(store, "path", None)
    if isinstance(path, str) and path != ":memory:":
        return ("file", os.path.realpath(path)), "/" + prefix
    data = getattr(store, "_data", None)
    return ("object", id(store if data is None else data)), "/" + prefix
