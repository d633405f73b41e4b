"""Zip store: a whole hierarchy in one archive, readable by zarr-python's ZipStore."""

from __future__ import annotations

import os
import threading
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

from exzarr.storage.base import Store


class ZipStore(Store):
    """Keys as members of a zip archive (stored, not compressed: chunks already are).

    Reading opens single members on demand, never the whole archive. Writing appends
    members; a key written twice or deleted leaves a stale member behind until
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
        self._lock = threading.RLock()
        self._zf: zipfile.ZipFile | None = None
        self._stale = False
        self._deleted: set[str] = set()
        if mode == "w" and os.path.exists(self.path):
            os.unlink(self.path)

    # -- the archive handle, opened lazily ------------------------------------------------
    def _archive(self, write: bool = False) -> zipfile.ZipFile | None:
        if self._zf is None or (write and self._zf.mode == "r"):
            if self._zf is not None:
                self._zf.close()
                self._zf = None
            if write:
                self._zf = zipfile.ZipFile(self.path, mode="a", compression=zipfile.ZIP_STORED,
                                           allowZip64=True)
            elif os.path.exists(self.path):
                self._zf = zipfile.ZipFile(self.path, mode="r")
            else:
                return None
        return self._zf

    def _info(self, key: str) -> zipfile.ZipInfo | None:
        zf = self._archive()
        if zf is None or key in self._deleted:
            return None
        try:
            return zf.getinfo(key)  # the last member of that name: the newest
        except KeyError:
            return None

    def get(self, key: str) -> bytes | None:
        with self._lock:
            info = self._info(key)
            if info is None:
                return None
            return self._archive().read(info)  # type: ignore[union-attr]

    def set(self, key: str, value: bytes) -> None:
        self._check_writable()
        with self._lock:
            zf = self._archive(write=True)
            assert zf is not None
            if key in zf.NameToInfo:
                self._stale = True
            self._deleted.discard(key)
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
        try:
            self.flush()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<ZipStore {self.path!r} mode={self.mode!r}>"


def open_zip_store(path: Any = None, read_only: bool = False, mode: str = "a", **_: Any) -> ZipStore:
    if path is None:
        from exzarr.errors import ExZarrError

        raise ExZarrError("storage='zip' needs path=...: the archive file")
    return ZipStore(path, mode=mode, read_only=read_only)
