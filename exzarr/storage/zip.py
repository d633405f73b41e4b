"""Zip store: a whole hierarchy in one archive, readable by zarr-python's ZipStore."""

from __future__ import annotations

import os
import struct
import threading
import warnings
import weakref
import zipfile
from collections.abc import Iterator
from typing import Any

from exzarr.errors import InvalidMetadataError
from exzarr.storage.base import Store


# Writable stores still open, finished when the interpreter exits: __del__ runs too late
# then (zipfile cannot even look up its cp437 codec), so the archive would keep its
# stale members. Registered with atexit on the first writable store.
_unfinished: weakref.WeakSet[ZipStore] = weakref.WeakSet()
_atexit_registered = False


def _finish_all() -> None:
    for store in list(_unfinished):  # (emptied in a forked child: see _forget_in_child)
        try:
            store.flush()
        except Exception:  # exiting: one archive failing must not stop the others
            pass


def _forget_in_child() -> None:
    """After fork, in the child: the parent's open archives are not the child's to
    write. Their ZipFile objects are cut from the shared file, so that closing them
    (or their __del__) never writes an end record into the parent's archive."""
    for store in list(_unfinished):
        zf = store._zf
        if zf is not None and zf.mode != "r":
            zf.fp = None  # ZipFile.close() then returns at once
        store._zf = None
    _unfinished.clear()


def _track(store: ZipStore) -> None:
    global _atexit_registered
    if not _atexit_registered:
        import atexit

        atexit.register(_finish_all)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_in_child)
        _atexit_registered = True
    _unfinished.add(store)


class NotAZipArchiveError(InvalidMetadataError, zipfile.BadZipFile):
    """The file at a ZipStore's path is not a zip archive (still a ``BadZipFile``)."""


class ZipStore(Store):
    """Keys as members of a zip archive (stored, not compressed: chunks already are).

    Reading opens single members on demand, never the whole archive: the bytes of a
    stored member are read with one ``pread`` at its offset, outside the store's lock,
    so worker threads read in parallel, and checked against the member's CRC-32.
    Writing appends members; a key written twice or deleted leaves a stale member behind until
    :meth:`close` (or :meth:`compact`) rewrites the archive without them, so the file
    never keeps duplicate entries once closed.

    Parameters
    ----------
    path : str or os.PathLike
        The archive; created on the first write in a writable mode.
    mode : {"r", "a", "w"}
        Read-only, read-write (create if missing), or truncate.
    """

    backend = "zip"

    def __init__(self, path: str | os.PathLike[str], mode: str = "a", *,
                 read_only: bool = False) -> None:
        if read_only:
            mode = "r"
        if mode not in ("r", "a", "w"):
            raise ValueError(f"mode must be 'r', 'a' or 'w', not {mode!r}")
        super().__init__(read_only=(mode == "r"))
        self.path = os.path.abspath(os.fspath(path))
        self.mode = mode
        self._pid = os.getpid()  # a forked child never finishes (rewrites) the archive
        self._lock = threading.RLock()
        self._zf: zipfile.ZipFile | None = None
        self._stale = False
        self._deleted: set[str] = set()
        # name -> (offset of its data, size, CRC-32) of the newest member of that name
        self._spans: dict[str, tuple[int, int, int]] = {}
        if mode == "w" and os.path.exists(self.path):
            os.unlink(self.path)
        if mode != "r":
            _track(self)

    # -- the archive handle, opened lazily ------------------------------------------------
    def _archive(self, write: bool = False) -> zipfile.ZipFile | None:
        if self._zf is None or (write and self._zf.mode == "r"):
            if self._zf is not None:
                self._zf.close()
                self._zf = None
            try:
                if write:
                    self._zf = zipfile.ZipFile(self.path, mode="a", compression=zipfile.ZIP_STORED,
                                               allowZip64=True)
                elif os.path.exists(self.path):
                    self._zf = zipfile.ZipFile(self.path, mode="r")
                else:
                    return None
            except (zipfile.BadZipFile, IsADirectoryError) as exc:
                raise NotAZipArchiveError(
                    f"{self.path} is not a zip archive ({exc}); open it with the backend of "
                    "its format, or pass a new path") from None
        return self._zf

    def _info(self, key: str) -> zipfile.ZipInfo | None:
        zf = self._archive()
        if zf is None or key in self._deleted:
            return None
        try:
            return zf.getinfo(key)  # the last member of that name: the newest
        except KeyError:
            return None

    def _span(self, zf: zipfile.ZipFile, fd: int, info: zipfile.ZipInfo) -> tuple[int, int, int] | None:
        """Where a stored member's bytes lie, from its local header; None when the
        member needs zipfile (compressed or encrypted)."""
        span = self._spans.get(info.filename)
        if span is not None:
            return span
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            return None
        head = os.pread(fd, 30, info.header_offset)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for member {info.filename!r} in {self.path}")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        name = os.pread(fd, name_len, info.header_offset + 30)
        if info.orig_filename not in (name.decode("utf-8", "replace"), name.decode("cp437")):
            raise zipfile.BadZipFile(f"member {info.filename!r} of {self.path}: the names in "
                                     "its local header and the central directory differ")
        span = (info.header_offset + 30 + name_len + extra_len, info.file_size, info.CRC)
        self._spans[info.filename] = span
        return span

    def get(self, key: str) -> bytes | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Any) -> list[bytes | None]:
        from exzarr._core import crc32

        keys = list(keys)
        with self._lock:
            # Offsets and a descriptor of this very file are taken under the lock, so a
            # compaction (which replaces the file) cannot come between them.
            zf = self._archive()
            if zf is None:
                return [None] * len(keys)
            if zf.fp is not None and zf.mode != "r":
                zf.fp.flush()  # members written so far reach the file
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                infos = [self._info(k) for k in keys]
                spans = [None if i is None else self._span(zf, fd, i) for i in infos]
                slow = {k: zf.read(i) for k, i, sp in zip(keys, infos, spans)
                        if i is not None and sp is None}
            except BaseException:
                os.close(fd)
                raise
        try:
            out: list[bytes | None] = []
            for key, info, span in zip(keys, infos, spans):
                if info is None:
                    out.append(None)
                elif span is None:
                    out.append(slow[key])
                else:
                    offset, size, crc = span
                    data = _pread_all(fd, size, offset)
                    if len(data) != size or crc32(data) != crc:
                        from exzarr.errors import CorruptChunkError

                        raise CorruptChunkError(
                            f"zip member {key!r} of {self.path} does not match its CRC-32 "
                            "(the archive is damaged or was changed behind this store); "
                            "restore the archive, or rewrite that key", key)
                    out.append(data)
            return out
        finally:
            os.close(fd)

    def set(self, key: str, value: bytes) -> None:
        self._check_writable()
        with self._lock:
            zf = self._archive(write=True)
            assert zf is not None
            if key in zf.NameToInfo:
                self._stale = True
            self._deleted.discard(key)
            self._spans.pop(key, None)
            info = zipfile.ZipInfo(key, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with warnings.catch_warnings():  # a rewritten key: compacted away on close
                warnings.simplefilter("ignore", UserWarning)
                zf.writestr(info, bytes(value))

    def delete(self, key: str) -> None:
        self._check_writable()
        with self._lock:
            if self._info(key) is not None:
                self._deleted.add(key)
                self._stale = True

    def contains(self, key: str) -> bool:
        with self._lock:
            return self._info(key) is not None

    def getsize(self, key: str) -> int:
        with self._lock:
            info = self._info(key)
            return 0 if info is None else info.file_size

    def list_prefix(self, prefix: str) -> Iterator[str]:
        with self._lock:
            zf = self._archive()
            if zf is None:
                return iter([])
            names = {n for n in zf.NameToInfo if n.startswith(prefix) and not n.endswith("/")}
            return iter(sorted(names - self._deleted))

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def compact(self) -> None:
        """Rewrite the archive without stale (overwritten or deleted) members."""
        with self._lock:
            if not self._stale or self._zf is None:
                return
            zf = self._zf
            tmp = self.path + ".compact.partial"
            latest: dict[str, zipfile.ZipInfo] = {}
            for info in zf.infolist():
                latest[info.filename] = info  # later members win
            try:
                with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED,
                                     allowZip64=True) as out:
                    for name, info in latest.items():
                        if name in self._deleted:
                            continue
                        # A fresh ZipInfo: writestr() rewrites header_offset & co of the
                        # one it is given, which must stay valid for the live archive.
                        new = zipfile.ZipInfo(name, date_time=info.date_time)
                        new.compress_type = info.compress_type
                        new.external_attr = info.external_attr
                        out.writestr(new, zf.read(info))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            zf.close()
            os.replace(tmp, self.path)
            self._zf = None
            self._stale = False
            self._deleted.clear()
            self._spans.clear()

    def flush(self) -> None:
        """Make the archive complete on disk (central directory written, no stale members)."""
        with self._lock:
            self.compact()
            if self._zf is not None:
                self._zf.close()
                self._zf = None

    def close(self) -> None:
        self.flush()

    def __del__(self) -> None:  # a store dropped without close() still leaves a valid file
        if getattr(self, "_pid", None) != os.getpid():
            return  # inherited through fork: the parent finishes its archive
        try:
            self.flush()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for another process (dask, multiprocessing): the archive is made
        # complete on disk first, and the copy opens it afresh, never truncating it.
        if not self.read_only:
            self.flush()
        return {"path": self.path, "mode": "r" if self.read_only else "a"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["mode"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"<ZipStore {self.path!r} mode={self.mode!r}>"


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` (fewer only at the end of the file): one pread
    returns at most about 2 GiB on Linux."""
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def open_zip_store(path: Any = None, read_only: bool = False, mode: str = "a", **_: Any) -> ZipStore:
    if path is None:
        from exzarr.errors import InvalidArgumentError

        raise InvalidArgumentError("storage='zip' needs path=...: the archive file")
    return ZipStore(path, mode=mode, read_only=read_only)
