"""A committed zip archive as ZipStore reads it, and the file operations its writer uses.

A :class:`Snapshot` holds one open descriptor of the archive: a writer that replaces the
file (by rename) leaves the snapshot reading the archive it opened, whole.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import struct
import zipfile
from typing import Any

from exzarr.errors import CorruptChunkError, InvalidMetadataError
from exzarr.storage._zipfile_format import record_size
from exzarr.storage.base import is_valid_key


class NotAZipArchiveError(InvalidMetadataError, zipfile.BadZipFile):
    """The file at a ZipStore's path is not a zip archive (still a ``BadZipFile``)."""


class Snapshot:
    """The committed archive at ``path`` when it was opened.

    ``members`` maps every key to the newest member of that name; members whose names
    are not keys (folders, names with '..', NULs...) are left out of it, and their
    bytes count in :attr:`dead` with those of older duplicates.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        # O_NONBLOCK: a FIFO at the path must not block the open (refused below).
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                check_regular(path)  # a socket (ENXIO) is refused as what it is
            raise
        try:
            st = os.fstat(fd)
            kind = special_kind(st.st_mode)
            if kind is not None:
                raise _not_a_zip(path, kind)
        except BaseException:
            os.close(fd)
            raise
        self.file = open(fd, "rb")  # noqa: SIM115 -- kept open: it pins the inode
        try:
            self.stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            self.mode = st.st_mode & 0o7777
            try:
                self.zf = zipfile.ZipFile(self.file, mode="r")
            except (zipfile.BadZipFile, OSError) as exc:
                raise _not_a_zip(path, str(exc)) from None
            self.members: dict[str, zipfile.ZipInfo] = {}
            for info in self.zf.infolist():
                if info.orig_filename == info.filename and is_valid_key(info.filename, portable=True):
                    self.members.pop(info.filename, None)  # the newest wins, listed last
                    self.members[info.filename] = info
            self.end = self.zf.start_dir  # where the central directory begins
        except BaseException:
            self.file.close()
            raise
        self._spans: dict[str, tuple[int, int, int]] = {}

    @functools.cached_property
    def dead(self) -> int:
        """Bytes before the central directory that no listed key's member takes
        (about: local extra fields are taken to be as long as the directory's)."""
        return max(0, self.end - sum(record_size(i) for i in self.members.values()))

    def close(self) -> None:
        self.zf.close()
        self.file.close()

    def span(self, fd: int, info: zipfile.ZipInfo) -> tuple[int, int, int] | None:
        """Where a stored member's bytes lie (offset, size, CRC-32), from its local
        header; None when the member needs zipfile (compressed or encrypted)."""
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

    def locate(self, fd: int, info: zipfile.ZipInfo) -> Any:
        """Where member ``info`` is read from: a span of ``fd`` to pread, or its bytes
        read through zipfile (a compressed member)."""
        span = self.span(fd, info)
        return self.zf.read(info) if span is None else span

    def plan(self, keys: list[str]) -> tuple[int, list[Any]]:
        """A descriptor of this archive (the caller closes it) and, per key, None
        (absent), bytes (read through zipfile) or a span to pread."""
        fd = os.dup(self.file.fileno())
        try:
            out: list[Any] = []
            for key in keys:
                info = self.members.get(key)
                if info is None:
                    out.append(None)
                    continue
                out.append(self.locate(fd, info))
            return fd, out
        except BaseException:
            os.close(fd)
            raise


def read_planned(fd: int, keys: list[str], plan: list[Any], path: str) -> list[bytes | None]:
    """The values :meth:`Snapshot.plan` planned: spans read and checked against their
    CRC-32."""
    from exzarr._core import crc32

    out: list[bytes | None] = []
    for key, p in zip(keys, plan):
        if p is None or isinstance(p, bytes):
            out.append(p)
            continue
        offset, size, crc = p
        data = pread_all(fd, size, offset)
        if len(data) != size or crc32(data) != crc:
            raise CorruptChunkError(
                f"zip member {key!r} of {path} does not match its CRC-32 (the archive is "
                "damaged or was changed behind this store); restore the archive, or rewrite "
                "that key", key)
        out.append(data)
    return out


def pread_all(fd: int, size: int, offset: int) -> bytes:
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


def pwrite_all(fd: int, data: Any, offset: int) -> int:
    """Write all of ``data`` at ``offset``; the offset after it."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
    return offset


def copy_range(src: int, dst: int, length: int) -> None:
    """The first ``length`` bytes of ``src`` to the start of ``dst``, in the kernel
    (a shared extent on file systems with reflinks) when it can."""
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < length:
                n = os.copy_file_range(src, dst, length - done, done, done)
                if n == 0:
                    break
                done += n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                 errno.EPERM):
                raise
    while done < length:
        block = os.pread(src, min(length - done, 4 << 20), done)
        if not block:
            break
        pwrite_all(dst, block, done)
        done += len(block)
    if done != length:
        raise OSError(errno.EIO, "the archive ended before its central directory")


def special_kind(mode: int) -> str | None:
    """What a file of ``mode`` is when it is not a regular file, said for an error."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "it is a folder: open a directory store with storage='filesystem'"
    if stat.S_ISFIFO(mode):
        return "it is a FIFO, not a regular file"
    if stat.S_ISSOCK(mode):
        return "it is a socket, not a regular file"
    return "it is a device, not a regular file"


def check_regular(path: str) -> None:
    """Refuse (NotAZipArchiveError) what is at ``path`` unless it is a regular file or
    nothing; a path that cannot be looked at is left to the operation that follows."""
    try:
        st = os.stat(path)
    except OSError:
        return
    kind = special_kind(st.st_mode)
    if kind is not None:
        raise _not_a_zip(path, kind)


def _not_a_zip(path: str, why: str) -> NotAZipArchiveError:
    return NotAZipArchiveError(
        f"{path} is not a zip archive ({why}); open it with the backend of its format, or "
        "pass a new path")
