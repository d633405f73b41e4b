"""The zip records ZipStore writes itself: local headers of stored members, central
directory entries and the end records (zip64 where a count, size or offset needs it).

Only what APPNOTE 6.3 section 4.3 requires for stored members is written: no data
descriptors, no encryption, fixed 1980-01-01 timestamps.
"""

from __future__ import annotations

import struct
import zipfile
from typing import NamedTuple

LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # 30 bytes
CENTRAL_RECORD = struct.Struct("<4s6H3I5HII")  # 46 bytes
END_RECORD = struct.Struct("<4s4H2IH")  # 22 bytes
END_RECORD64 = struct.Struct("<4sQ2H2I4Q")  # 56 bytes
END_LOCATOR64 = struct.Struct("<4sIQI")  # 20 bytes

_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
_UTF8 = 0x800  # general purpose flag bit 11: the name is UTF-8
_ZIP64_ID = 0x0001
_DOS_DATE_1980 = (0 << 9) | (1 << 5) | 1
_MADE_BY_UNIX = 3 << 8
_FILE_ATTR = 0o100644 << 16  # a regular file, rw-r--r--


class Member(NamedTuple):
    """What the central directory says of one member."""

    name: bytes
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc: int
    compressed: int
    size: int
    offset: int  # of its local header
    made_by: int = _MADE_BY_UNIX | 20
    needed: int = 20
    internal_attr: int = 0
    external_attr: int = _FILE_ATTR
    extra: bytes = b""  # without any zip64 field: added here when needed
    comment: bytes = b""


def encode_name(key: str) -> tuple[bytes, int]:
    """The bytes of a member name and the flags they need (UTF-8 marked when not ASCII)."""
    if key.isascii():
        return key.encode("ascii"), 0
    return key.encode("utf-8"), _UTF8


def stored_member(key: str, size: int, crc: int, offset: int) -> tuple[Member, bytes]:
    """A stored member written at ``offset``: its directory entry and local header."""
    name, flags = encode_name(key)
    big = size >= _MAX32
    extra = struct.pack("<HHQQ", _ZIP64_ID, 16, size, size) if big else b""
    needed = 45 if big else 20
    small = _MAX32 if big else size
    header = LOCAL_HEADER.pack(b"PK\x03\x04", needed, flags, zipfile.ZIP_STORED, 0,
                               _DOS_DATE_1980, crc, small, small, len(name), len(extra))
    member = Member(name, flags, zipfile.ZIP_STORED, 0, _DOS_DATE_1980, crc, size, size, offset,
                    made_by=_MADE_BY_UNIX | needed, needed=needed)
    return member, header + name + extra


def from_zipinfo(info: zipfile.ZipInfo) -> Member:
    """The directory entry of a member another archive lists, at the same offset."""
    flags = info.flag_bits
    name = info.orig_filename.encode("utf-8" if flags & _UTF8 else "cp437")
    y, mo, d, h, mi, s = info.date_time
    return Member(name, flags, info.compress_type, (h << 11) | (mi << 5) | (s // 2),
                  ((y - 1980) << 9) | (mo << 5) | d, info.CRC, info.compress_size, info.file_size,
                  info.header_offset, (info.create_system << 8) | info.create_version,
                  info.extract_version, info.internal_attr, info.external_attr,
                  _without_zip64(info.extra), info.comment)


def _without_zip64(extra: bytes) -> bytes:
    """``extra`` less its zip64 field (rewritten for the member's new directory entry)."""
    out = []
    i = 0
    while i + 4 <= len(extra):
        tag, n = struct.unpack_from("<HH", extra, i)
        if tag != _ZIP64_ID:
            out.append(extra[i:i + 4 + n])
        i += 4 + n
    return b"".join(out)


def central_directory(members: list[Member], start: int) -> bytes:
    """The central directory of ``members`` followed by the end records, for a
    directory written at offset ``start``."""
    parts = []
    for m in members:
        wide = [m.size] if m.size >= _MAX32 else []
        wide += [m.compressed] if m.compressed >= _MAX32 else []
        wide += [m.offset] if m.offset >= _MAX32 else []
        extra = m.extra
        needed = m.needed
        if wide:
            extra = struct.pack(f"<HH{len(wide)}Q", _ZIP64_ID, 8 * len(wide), *wide) + extra
            needed = max(needed, 45)
        made_by = (m.made_by & 0xFF00) | max(m.made_by & 0xFF, needed)
        parts.append(CENTRAL_RECORD.pack(
            b"PK\x01\x02", made_by, needed, m.flags, m.method, m.dos_time, m.dos_date, m.crc,
            min(m.compressed, _MAX32), min(m.size, _MAX32), len(m.name), len(extra),
            len(m.comment), 0, m.internal_attr, m.external_attr, min(m.offset, _MAX32)))
        parts += (m.name, extra, m.comment)
    body = b"".join(parts)
    count, size = len(members), len(body)
    tail = b""
    if count >= _MAX16 or size >= _MAX32 or start >= _MAX32:
        at = start + size
        tail = (END_RECORD64.pack(b"PK\x06\x06", END_RECORD64.size - 12, _MADE_BY_UNIX | 45, 45,
                                  0, 0, count, count, size, start)
                + END_LOCATOR64.pack(b"PK\x06\x07", 0, at, 1))
    tail += END_RECORD.pack(b"PK\x05\x06", 0, 0, min(count, _MAX16), min(count, _MAX16),
                            min(size, _MAX32), min(start, _MAX32), 0)
    return body + tail


def record_size(info: zipfile.ZipInfo) -> int:
    """About how many bytes a listed member takes before the central directory (its
    local extra field is taken to be as long as its directory one)."""
    return LOCAL_HEADER.size + len(info.orig_filename.encode("utf-8")) + len(info.extra) \
        + info.compress_size
