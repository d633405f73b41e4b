"""fsspec store: S3, GCS, HTTP, memory:// and every other fsspec filesystem.

Needs the optional dependency fsspec (``pip install exzarr[fsspec]``), plus the
filesystem's own package for remote protocols (``pip install exzarr[s3]`` for s3fs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from exzarr.errors import InvalidArgumentError, MissingDependencyError, PathNotFoundError
from exzarr.storage.base import Store, check_key, is_valid_key, storage_error


class FsspecStore(Store):
    """Keys as files below a URL, through an fsspec filesystem.

    A batch of chunks is fetched with one ``cat`` call, which asynchronous filesystems
    (s3fs, gcsfs, HTTP) run concurrently; batches of writes go through one ``pipe``.

    Parameters
    ----------
    url : str
        ``s3://bucket/path``, ``gs://...``, ``https://...``, ``memory://...``...
    storage_options : dict, optional
        Passed to the filesystem (``endpoint_url``, ``key``, ``secret``, ``anon``...).
    read_only : bool
        Refuse writes.
    """

    backend = "fsspec"
    batch_chunks = 64  # requests in flight per worker thread on asynchronous filesystems

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None, *,
                 read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.url = url
        try:
            import fsspec
        except ImportError:
            raise MissingDependencyError(
                f"opening {url!r} needs fsspec: pip install 'exzarr[fsspec]' "
                "(or 'exzarr[s3]' for S3)") from None
        options = dict(storage_options or {})
        protocol = fsspec.utils.get_protocol(url)
        if protocol in ("file", "local"):
            options.setdefault("auto_mkdir", True)  # writes make their folders, as elsewhere
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        except ImportError as exc:
            raise MissingDependencyError(f"opening {url!r} needs a package fsspec names: {exc}") from exc
        except ValueError as exc:  # "Protocol not known: foo"
            raise InvalidArgumentError(f"cannot open {url!r}: {exc}") from exc
        except TypeError as exc:  # an option the filesystem does not take
            raise InvalidArgumentError(
                f"storage_options {sorted(options)} do not suit {protocol!r} URLs: {exc}") from exc
        self.root = root.rstrip("/")
        # fsspec shares one filesystem instance per options, listing cache included: a
        # store opened now lists what is there now, not what an earlier open saw.
        invalidate = getattr(self.fs, "invalidate_cache", None)
        if invalidate is not None:
            invalidate(self.root or None)

    @contextmanager
    def _errors(self, writing: bool = False) -> Iterator[None]:
        """fsspec's and the filesystem packages' errors, with the URL and what to do."""
        try:
            yield
        except PermissionError as exc:
            raise PermissionError(
                f"access to {self.url!r} was denied ({exc}); check the credentials "
                "(storage_options key/secret/token, or the environment)") from exc
        except FileNotFoundError as exc:
            if not writing:
                raise
            raise PathNotFoundError(
                f"cannot write below {self.url!r}: {exc}; does the bucket or container "
                "exist?") from exc
        except (IsADirectoryError, NotADirectoryError):
            raise  # a folder where a key is looked up: the callers' "absent"
        except OSError as exc:
            from exzarr.errors import ExZarrError

            if isinstance(exc, ExZarrError):
                raise
            raise storage_error(exc.errno, exc.strerror or str(exc) or type(exc).__name__,
                                f"{'writing to' if writing else 'reading'} {self.url!r}",
                                exc.filename) from exc

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self.root}/{key}" if self.root else key

    def get(self, key: str) -> bytes | None:
        try:
            with self._errors():
                return self.fs.cat_file(self._path(key))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def get_many(self, keys: Iterable[str]) -> list[bytes | None]:
        keys = list(keys)
        if len(keys) <= 1:
            return [self.get(k) for k in keys]
        paths = [self._path(k) for k in keys]
        # cat_ranges, unlike cat(list), takes paths literally (no glob expansion) and
        # returns results in order; async filesystems still fetch concurrently.
        with self._errors():
            found = self.fs.cat_ranges(paths, None, None, on_error="return")
        out: list[bytes | None] = []
        for v in found:
            if isinstance(v, (bytes, bytearray)):
                out.append(bytes(v))
            elif v is None or isinstance(v, (FileNotFoundError, IsADirectoryError, KeyError)):
                out.append(None)
            else:
                with self._errors():  # a real failure (network, permission): not fill
                    raise v
        return out

    def set(self, key: str, value: bytes) -> None:
        self._check_writable()
        with self._errors(writing=True):
            self.fs.pipe_file(self._path(key), bytes(value))

    def set_many(self, items: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        self._check_writable()
        pairs = items.items() if isinstance(items, Mapping) else items
        batch = {self._path(k): bytes(v) for k, v in pairs}
        if batch:
            with self._errors(writing=True):
                self.fs.pipe(batch)

    def delete(self, key: str) -> None:
        self._check_writable()
        path = self._path(key)
        with self._errors(writing=True):
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                pass

    def contains(self, key: str) -> bool:
        try:
            return self.fs.info(self._path(key))["type"] == "file"
        except (FileNotFoundError, NotADirectoryError):
            return False

    def getsize(self, key: str) -> int:
        try:
            return int(self.fs.size(self._path(key)) or 0)
        except FileNotFoundError:
            return 0

    def list_prefix(self, prefix: str) -> Iterator[str]:
        head = prefix.rpartition("/")[0]
        base = self._path(head) if head else self.root
        try:
            found = self.fs.find(base, withdirs=False)
        except FileNotFoundError:
            return iter([])
        cut = len(self.root) + 1 if self.root else 0
        # With no root (memory://), filesystems such as memory return "/x/.zarray".
        keys = sorted(p[cut:].lstrip("/") for p in (f.rstrip("/") for f in found))
        return iter([k for k in keys if k.startswith(prefix) and is_valid_key(k)])

    def list_dir(self, prefix: str = "") -> list[str]:
        base = self._path(prefix.strip("/")) if prefix.strip("/") else self.root
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        return sorted({n for n in (e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
                       if is_valid_key(n)})

    def exists(self) -> bool:
        """Whether the root exists: listed as a folder, or serving Zarr metadata (HTTP
        hosts may answer 404 for the folder itself and still serve its ``.zarray``)."""
        try:
            with self._errors():
                if self.fs.exists(self.root) or self.fs.ls(self.root, detail=False):
                    return True
        except (FileNotFoundError, NotADirectoryError):
            pass
        return self.contains(".zarray") or self.contains(".zgroup")

    def __repr__(self) -> str:
        fs = getattr(self, "fs", None)
        return f"<FsspecStore {self.url!r} ({type(fs).__name__ if fs is not None else 'not opened'})>"


def open_fsspec_store(path: Any = None, read_only: bool = False, **storage_options: Any) -> FsspecStore:
    if path is None:
        raise InvalidArgumentError("storage='fsspec' needs path=...: a URL such as s3://bucket/key")
    return FsspecStore(str(path), storage_options, read_only=read_only)
