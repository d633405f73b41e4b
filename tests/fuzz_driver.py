"""Corrupted-chunk fuzzing of every C codec chain, each decode in a worker process.

Valid chunks of one array are made by exzarr and by numcodecs (and zstandard), mutated
(bit flips, truncations, extensions, splices, zero fills, edits of header fields:
sizes, block starts, stream sizes, flags, blosc typesize/blocksize/cbytes), stored as
the first chunk of a two-chunk array and read back by a full read, four partial reads
of that chunk and the codec API (``exzarr.codecs`` objects' ``decode``); every other
input goes to a directory store (whose files the core reads itself), the rest to
memory. Every read must end in a ``CorruptChunkError`` naming the key or in data of
the right shape; in a chain with a checksum (zlib, gzip, zstd with its checksum, the
CRC-32, CRC-32C and Adler-32 filters) that data must be the original. A worker that dies is a crash, one that stops answering a hang;
both are counted and the worker is restarted, so one bad input cannot end the run.

Run long: ``python tests/fuzz_driver.py --inputs 200000`` (or ``make fuzz``); the
figures are printed and, with ``--save DIR``, the inputs behind any failure kept.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SHAPE = (80, 24)  # two chunks of CHUNKS; the first is the one corrupted
CHUNKS = (40, 24)
# Chunks past zstd's 128 KiB block size, so a prefix read can stop before the last block.
BIG_SHAPE = (80, 2048)
BIG_CHUNKS = (40, 2048)
KEY = "0.0"
# Inputs that make a worker started with EXZARR_FUZZ_PROBES=1 crash or hang, to test
# that the parent counts both and carries on.
CRASH_PROBE = b"exzarr fuzz probe: crash"
HANG_PROBE = b"exzarr fuzz probe: hang"
BIG = {"zstd-big", "zstd-big-checksum", "lz4-big"}

# name -> (dtype, filters, compressor). Blosc uses a small blocksize so that a chunk
# holds several blocks, each with its own start and stream sizes to corrupt.
CHAINS: dict[str, tuple[str, list[dict[str, Any]], dict[str, Any] | None]] = {
    "none": ("<i4", [], None),
    "zlib": ("<i4", [], {"id": "zlib", "level": 1}),
    "gzip": ("<f8", [], {"id": "gzip", "level": 6}),
    "zstd": ("<i4", [], {"id": "zstd", "level": 1}),
    "zstd-19": ("<u2", [], {"id": "zstd", "level": 19}),
    "zstd-checksum": ("<i4", [], {"id": "zstd", "level": 3, "checksum": True}),
    "lz4": ("<i4", [], {"id": "lz4", "acceleration": 1}),
    "lz4-u1": ("|u1", [], {"id": "lz4", "acceleration": 4}),
    "blosc-lz4-noshuffle": ("<i4", [], {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 0,
                                        "blocksize": 512}),
    "blosc-lz4-shuffle": ("<f8", [], {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1,
                                      "blocksize": 1024}),
    "blosc-lz4hc-bitshuffle": ("<i4", [], {"id": "blosc", "cname": "lz4hc", "clevel": 9,
                                           "shuffle": 2, "blocksize": 512}),
    "blosc-zstd-shuffle": ("<u2", [], {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1,
                                       "blocksize": 256}),
    "blosc-zstd-bitshuffle": ("<f8", [], {"id": "blosc", "cname": "zstd", "clevel": 1,
                                          "shuffle": 2, "blocksize": 0}),
    "blosc-zlib-shuffle": ("<i4", [], {"id": "blosc", "cname": "zlib", "clevel": 1, "shuffle": 1,
                                       "blocksize": 512}),
    "blosc-blosclz-shuffle": ("<i4", [], {"id": "blosc", "cname": "blosclz", "clevel": 9,
                                          "shuffle": 1, "blocksize": 512}),
    "blosc-blosclz-u1": ("|u1", [], {"id": "blosc", "cname": "blosclz", "clevel": 5,
                                     "shuffle": 0, "blocksize": 0}),
    "zstd-big": ("<u2", [], {"id": "zstd", "level": 1}),
    "zstd-big-checksum": ("<u2", [], {"id": "zstd", "level": 1, "checksum": True}),
    "lz4-big": ("<u2", [], {"id": "lz4", "acceleration": 1}),
    "delta-zstd": ("<i4", [{"id": "delta", "dtype": "<i4"}], {"id": "zstd", "level": 1}),
    "delta-lz4": ("<i2", [{"id": "delta", "dtype": "<i2"}], {"id": "lz4", "acceleration": 1}),
    "shuffle-zlib": ("<i4", [{"id": "shuffle", "elementsize": 4}], {"id": "zlib", "level": 1}),
    "delta-blosc-lz4": ("<i4", [{"id": "delta", "dtype": "<i4"}],
                        {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 512}),
    "crc32-zstd": ("<i4", [{"id": "crc32"}], {"id": "zstd", "level": 1}),
    "crc32c-lz4": ("<i4", [{"id": "crc32c"}], {"id": "lz4", "acceleration": 1}),
    "adler32-blosc-lz4": ("<f8", [{"id": "adler32"}],
                          {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 512}),
    "fletcher32-none": ("<i4", [{"id": "fletcher32"}], None),
    "delta-crc32c-zstd": ("<i4", [{"id": "delta", "dtype": "<i4"}, {"id": "crc32c"}],
                          {"id": "zstd", "level": 3}),
}
# Fletcher-32 is left out: its sums cannot tell 0x0000 words from 0xFFFF ones, so a
# zero-filled chunk (checksum included) decodes as zeros, in numcodecs as here.
CHECKSUM_FILTERS = {"crc32", "crc32c", "adler32"}
ALL_CHECKSUM_FILTERS = CHECKSUM_FILTERS | {"fletcher32"}

# Partial reads of the corrupted chunk: a prefix row, a window, the last row, oindex.
# Each as (label, read from the array, the same selection of a NumPy array).
_ROWS, _COLS = [0, 5, 39], [1, 20, 23]
PARTIALS: list[tuple[str, Any, Any]] = [
    ("a[0:1]", lambda a: a[0:1], lambda d: d[0:1]),
    ("a[3:7, 5:9]", lambda a: a[3:7, 5:9], lambda d: d[3:7, 5:9]),
    ("a[39:40]", lambda a: a[39:40], lambda d: d[39:40]),
    ("a.oindex[[0, 5, 39], [1, 20, 23]]", lambda a: a.oindex[_ROWS, _COLS],
     lambda d: d[np.ix_(_ROWS, _COLS)]),
]


def geometry(name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The array's shape and chunks for chain ``name``."""
    return (BIG_SHAPE, BIG_CHUNKS) if name in BIG else (SHAPE, CHUNKS)


def original_data(name: str) -> np.ndarray:
    """The array's content: compressible but not trivially (runs, ramps and noise)."""
    dtype = CHAINS[name][0]
    shape = geometry(name)[0]
    rng = np.random.default_rng(2024)
    n = shape[0] * shape[1]
    dt = np.dtype(dtype)
    base = np.cumsum(rng.integers(-3, 4, n)) + np.repeat(rng.integers(0, 50, n // 8), 8)
    if dt.kind == "f":
        values = base * 0.25 + rng.normal(0, 1e-3, n) * (np.arange(n) % 5 == 0)
    else:
        info = np.iinfo(dt)
        values = np.mod(base, int(info.max) - int(info.min) + 1) + int(info.min)
    return values.astype(dt).reshape(shape)


def is_checksummed(name: str) -> bool:
    """Whether the chain detects any change of the decoded bytes (bar collisions)."""
    _, filters, compressor = CHAINS[name]
    if any(f["id"] in CHECKSUM_FILTERS for f in filters):
        return True
    if compressor is None:
        return False
    return compressor["id"] in ("zlib", "gzip") or bool(compressor.get("checksum"))


def input_checksummed(name: str, data: bytes) -> bool:
    """Whether this input still carries the chain's checksum: a zstd frame whose
    checksum flag was cleared is a valid frame without one."""
    if not is_checksummed(name):
        return False
    _, filters, compressor = CHAINS[name]
    if any(f["id"] in CHECKSUM_FILTERS for f in filters):
        return True
    if compressor is not None and compressor["id"] == "zstd":
        return len(data) > 4 and bool(data[4] & 0x04)
    return True


def zstd_structure_ok(data: bytes, expected: int) -> bool:
    """Whether ``data`` is zstd frames whose headers, block headers and sizes are sound
    to the end and whose content sizes add up to ``expected``: all a prefix read checks
    of a frame without a checksum before it decodes only what the selection needs."""
    at, total = 0, 0
    while at < len(data):
        if len(data) - at < 6 or _u32(data, at) != 0xFD2FB528:
            return False
        fhd = data[at + 4]
        if fhd & 0x08 or fhd & 0x04:  # reserved bit; a checksum means a whole decode
            return False
        single = (fhd >> 5) & 1
        fcs_size = [1 if single else 0, 2, 4, 8][fhd >> 6]
        if fcs_size == 0:
            return False  # no content size: decoded whole
        at += 5 + (0 if single else 1) + [0, 1, 2, 4][fhd & 3]
        if at + fcs_size > len(data):
            return False
        fcs = int.from_bytes(data[at:at + fcs_size], "little") + (256 if fcs_size == 2 else 0)
        total += fcs
        at += fcs_size
        while True:
            if at + 3 > len(data):
                return False
            bh = int.from_bytes(data[at:at + 3], "little")
            last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
            if btype == 3 or bsize > 1 << 17:
                return False
            at += 3 + (1 if btype == 1 else bsize)
            if at > len(data):
                return False
            if last:
                break
    return total == expected and at == len(data)


# --------------------------------------------------------------------------------------
# Valid chunks and their mutations (in the parent: deterministic from the seed)
# --------------------------------------------------------------------------------------

def source_chunks(name: str) -> dict[str, bytes]:
    """Valid encodings of the first chunk: exzarr's, and the oracles' where they have
    the codec (numcodecs; zstandard for zstd frames without a content size)."""
    import exzarr

    dtype, filters, compressor = CHAINS[name]
    shape, chunks = geometry(name)
    a = exzarr.create(shape=shape, chunks=chunks, dtype=dtype, filters=filters or None,
                      compressor=compressor, storage="memory", fill_value=0)
    data = original_data(name)
    a[...] = data
    out = {"exzarr": bytes(a.store.get(KEY))}
    chunk = np.ascontiguousarray(data[: chunks[0]])
    try:
        import numcodecs

        x: Any = chunk
        for f in filters:
            x = numcodecs.get_codec(dict(f)).encode(x)
        if compressor is not None:
            x = numcodecs.get_codec(dict(compressor)).encode(x)
        out["numcodecs"] = bytes(np.asarray(x).tobytes() if isinstance(x, np.ndarray) else x)
    except Exception:  # noqa: BLE001 - an oracle without this codec adds no source
        pass
    if compressor is not None and compressor["id"] == "zstd" and not filters:
        try:
            import zstandard

            zc = zstandard.ZstdCompressor(level=3, write_content_size=False,
                                          write_checksum=bool(compressor.get("checksum")))
            out["zstandard"] = zc.compress(chunk.tobytes())
        except ImportError:
            pass
    return out


def _u32(b: bytes, at: int) -> int:
    return struct.unpack_from("<I", b, at)[0]


def _put(b: bytes, at: int, fmt: str, value: int) -> bytes:
    size = struct.calcsize(fmt)
    if at < 0 or at + size > len(b):
        return b
    value &= (1 << (8 * size)) - 1
    return b[:at] + struct.pack(fmt, value) + b[at + size:]


def blosc_edits(g: bytes) -> Iterator[tuple[str, bytes]]:
    """Edits of a blosc frame's header fields, block starts and stream sizes."""
    if len(g) < 16:
        return
    nbytes, blocksize, cbytes = struct.unpack_from("<III", g, 4)
    ts = g[3]
    for v in (0, 1, 2, 3, 4, 255):
        yield "blosc.version", bytes([v]) + g[1:]
    for v in (0, 2, 255):
        yield "blosc.versionlz", g[:1] + bytes([v]) + g[2:]
    for bit in range(8):
        yield "blosc.flags", g[:2] + bytes([g[2] ^ (1 << bit)]) + g[3:]
    for v in (0, 1, 2, 3, 4, 7, 8, 16, 255):
        if v != ts:
            yield "blosc.typesize", g[:3] + bytes([v]) + g[4:]
    for v in (0, 1, nbytes - 1, nbytes + 1, nbytes // 2, 2 * nbytes, nbytes + ts,
              0x7FFFFFEF, 0xFFFFFFFF):
        yield "blosc.nbytes", _put(g, 4, "<I", v)
    for v in (0, 1, ts, blocksize - 1, blocksize + 1, blocksize // 2, 2 * blocksize,
              nbytes, nbytes + 1, 0x7FFFFFFF, 0xFFFFFFFF):
        yield "blosc.blocksize", _put(g, 8, "<I", v)
    for v in (0, 15, 16, cbytes - 1, cbytes + 1, 2 * cbytes, 0xFFFFFFFF):
        yield "blosc.cbytes", _put(g, 12, "<I", v)
    if g[2] & 0x02 or blocksize == 0:  # memcpyed: no block starts
        return
    nblocks = min((nbytes + blocksize - 1) // blocksize, (len(g) - 16) // 4)
    starts = [_u32(g, 16 + 4 * k) for k in range(nblocks)]
    for k, s in enumerate(starts[:8]):
        at = 16 + 4 * k
        for v in (0, 15, 16, s - 1, s + 1, len(g) - 1, len(g), 0x7FFFFFFF, 0xFFFFFFFF,
                  starts[k - 1] if k else 16 + 4 * nblocks):
            yield "blosc.bstart", _put(g, at, "<I", v)
        if 0 <= s <= len(g) - 4:  # the block's first stream size
            cs = struct.unpack_from("<i", g, s)[0]
            for v in (0, 1, -1, cs - 1, cs + 1, blocksize, blocksize + 1, len(g), 0x7FFFFFFF):
                yield "blosc.csize", _put(g, s, "<I", v)


def zstd_edits(g: bytes) -> Iterator[tuple[str, bytes]]:
    """Edits of a zstd frame's magic, header descriptor, content size and block headers."""
    if len(g) < 6:
        return
    for at in range(4):
        yield "zstd.magic", g[:at] + bytes([g[at] ^ 0x01]) + g[at + 1:]
    fhd = g[4]
    for bit in range(8):
        yield "zstd.fhd", g[:4] + bytes([fhd ^ (1 << bit)]) + g[5:]
    single = (fhd >> 5) & 1
    fcs_size = [1 if single else 0, 2, 4, 8][fhd >> 6]
    did_size = [0, 1, 2, 4][fhd & 3]
    fcs_at = 5 + (0 if single else 1) + did_size
    if not single:
        for v in (0, 0xFF, g[5] ^ 0x08):
            yield "zstd.window", g[:5] + bytes([v]) + g[6:]
    if fcs_size:
        fmt = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[fcs_size]
        if fcs_at + fcs_size <= len(g):
            fcs = struct.unpack_from(fmt, g, fcs_at)[0] + (256 if fcs_size == 2 else 0)
            for v in (0, 1, fcs - 1, fcs + 1, 2 * fcs, (1 << (8 * fcs_size)) - 1):
                yield "zstd.content_size", _put(g, fcs_at, fmt, v - (256 if fcs_size == 2 else 0))
    at = fcs_at + fcs_size
    for _ in range(64):  # block headers
        if at + 3 > len(g):
            break
        bh = int.from_bytes(g[at:at + 3], "little")
        last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
        for nb in (bh ^ 1, (bh & ~6) | (((btype + 1) % 4) << 1), (bh & 7) | ((bsize + 1) << 3),
                   (bh & 7) | (max(bsize - 1, 0) << 3), (bh & 7), (bh & 7) | (0x1FFFFF << 3)):
            yield "zstd.block_header", g[:at] + (nb & 0xFFFFFF).to_bytes(3, "little") + g[at + 3:]
        at += 3 + (1 if btype == 1 else bsize)
        if last:
            break


def lz4_edits(g: bytes) -> Iterator[tuple[str, bytes]]:
    """Edits of numcodecs' lz4 size prefix and of the first tokens."""
    if len(g) < 4:
        return
    n = _u32(g, 0)
    for v in (0, 1, n - 1, n + 1, n // 2, 2 * n, 0x7E000000, 0xFFFFFFFF):
        yield "lz4.size", _put(g, 0, "<I", v)
    for at in range(4, min(len(g), 12)):
        for v in (0x00, 0xFF, 0xF0, 0x0F):
            yield "lz4.token", g[:at] + bytes([v]) + g[at + 1:]


def deflate_edits(g: bytes, gzip: bool) -> Iterator[tuple[str, bytes]]:
    """Edits of a zlib/gzip header and trailer (CRC, Adler-32, ISIZE)."""
    if len(g) < 10:
        return
    head = range(10) if gzip else range(2)
    for at in head:
        for v in (0x00, 0xFF, g[at] ^ 0x01, g[at] ^ 0x20):
            yield "deflate.header", g[:at] + bytes([v]) + g[at + 1:]
    trailer = 8 if gzip else 4
    for at in range(len(g) - trailer, len(g)):
        yield "deflate.trailer", g[:at] + bytes([g[at] ^ 0x80]) + g[at + 1:]
    if gzip:
        isize = _u32(g, len(g) - 4)
        for v in (0, isize - 1, isize + 1, 0xFFFFFFFF):
            yield "gzip.isize", _put(g, len(g) - 4, "<I", v)


def header_edits(name: str, g: bytes) -> Iterator[tuple[str, bytes]]:
    compressor = CHAINS[name][2]
    cid = compressor["id"] if compressor else None
    if cid == "blosc":
        yield from blosc_edits(g)
    elif cid == "zstd":
        yield from zstd_edits(g)
    elif cid == "lz4":
        yield from lz4_edits(g)
    elif cid in ("zlib", "gzip"):
        yield from deflate_edits(g, cid == "gzip")
    if CHAINS[name][1] and CHAINS[name][1][-1]["id"] in ALL_CHECKSUM_FILTERS and cid is None:
        for at in range(len(g) - 4, len(g)):  # the stored checksum itself
            yield "checksum", g[:at] + bytes([g[at] ^ 0x10]) + g[at + 1:]


def interesting_lengths(name: str, g: bytes) -> list[int]:
    """Truncation points: the first and last bytes, and each blosc block start."""
    n = len(g)
    points = set(range(min(n, 24))) | set(range(max(0, n - 24), n)) | {n // 2, n // 3}
    compressor = CHAINS[name][2]
    if compressor is not None and compressor["id"] == "blosc" and n >= 16 and not g[2] & 0x02:
        nbytes, blocksize = struct.unpack_from("<II", g, 4)
        if blocksize:
            for k in range(min((nbytes + blocksize - 1) // blocksize, (n - 16) // 4)):
                s = _u32(g, 16 + 4 * k)
                points |= {s - 1, s, s + 1, s + 4, s + 5}
    return sorted(p for p in points if 0 <= p < n)


def random_mutation(rng: np.random.Generator, g: bytes, others: list[bytes]) -> tuple[str, bytes]:
    """One random mutation of ``g`` (another source of the same data may be spliced in)."""
    n = len(g)
    kind = int(rng.integers(0, 9))
    if n == 0:
        return "extend", bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    if kind <= 1:  # 1-3 bit flips, half of them in the first 32 bytes
        b = bytearray(g)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, min(n, 32))) if rng.random() < 0.5 else int(rng.integers(0, n))
            b[at] ^= 1 << int(rng.integers(0, 8))
        return "bitflip", bytes(b)
    if kind == 2:  # bytes set to 0x00, 0xFF or random
        b = bytearray(g)
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(0, n))] = int(rng.choice([0, 255, int(rng.integers(0, 256))]))
        return "byte", bytes(b)
    if kind == 3:
        return "truncate", g[: int(rng.integers(0, n))]
    if kind == 4:  # extension: junk, zeros, a copy of itself
        choice = int(rng.integers(0, 3))
        tail = (bytes(rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8)) if choice == 0
                else bytes(int(rng.integers(1, 65))) if choice == 1 else g)
        return "extend", g + tail
    if kind == 5:  # a range replaced by random bytes of another length
        i = int(rng.integers(0, n))
        j = min(n, i + int(rng.integers(0, 33)))
        junk = bytes(rng.integers(0, 256, int(rng.integers(0, 33)), dtype=np.uint8))
        return "splice", g[:i] + junk + g[j:]
    if kind == 6:  # a range of another valid encoding of the same data, or of itself
        src = others[int(rng.integers(0, len(others)))] if others else g
        if not src:
            return "splice", g[:-1]
        i, k = int(rng.integers(0, n)), int(rng.integers(0, len(src)))
        length = int(rng.integers(1, 65))
        return "splice-valid", g[:i] + src[k:k + length] + g[i + length:]
    if kind == 7:  # zero fill: all of it, or a range (a torn or unwritten page)
        if rng.random() < 0.3:
            return "zero", bytes(n)
        i = int(rng.integers(0, n))
        j = min(n, i + int(rng.integers(1, 257)))
        return "zero", g[:i] + bytes(j - i) + g[j:]
    i = int(rng.integers(0, n))  # a range repeated or deleted
    j = min(n, i + int(rng.integers(1, 65)))
    return ("duplicate", g[:j] + g[i:]) if rng.random() < 0.5 else ("delete", g[:i] + g[j:])


def generate(name: str, budget: int, seed: int, exhaustive: bool) -> Iterator[tuple[str, bytes]]:
    """Up to ``budget`` mutated chunks of chain ``name``: the systematic ones first
    (header edits, interesting truncations or, if ``exhaustive``, every truncation),
    then random mutations."""
    sources = list(source_chunks(name).values())
    count = 0
    systematic: list[tuple[str, bytes]] = []
    for g in sources:
        systematic.extend(header_edits(name, g))
        # Every length of the small chunks; the big ones' would be gigabytes of inputs.
        lengths = range(len(g)) if exhaustive and len(g) <= 16384 else interesting_lengths(name, g)
        systematic.extend(("truncate", g[:n]) for n in lengths)
        systematic.append(("extend", g + b"\x00"))
        systematic.append(("zero", bytes(len(g))))
    chunks = geometry(name)[1]
    systematic.append(("zero", bytes(chunks[0] * chunks[1] * np.dtype(CHAINS[name][0]).itemsize)))
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if len(systematic) > budget // 2 and not exhaustive:  # leave room for random ones
        keep = rng.choice(len(systematic), budget // 2, replace=False)
        systematic = [systematic[k] for k in sorted(keep)]
    for item in systematic:
        if count >= budget:
            return
        count += 1
        yield item
    while count < budget:
        g = sources[int(rng.integers(0, len(sources)))]
        kind, bad = random_mutation(rng, g, sources)
        if rng.random() < 0.15:  # a second mutation on top
            kind2, bad = random_mutation(rng, bad, sources)
            kind = f"{kind}+{kind2}"
        count += 1
        yield kind, bad


# --------------------------------------------------------------------------------------
# The worker: decodes inputs, one JSON line of outcomes per input
# --------------------------------------------------------------------------------------

def _outcome(fn, expected: np.ndarray) -> str:
    """"E" CorruptChunkError naming the key, "K" one naming another key, "=" the
    expected data, "~" other data of the right shape, "S" the wrong shape,
    "X:<type>: <message>" any other exception."""
    from exzarr.errors import CorruptChunkError

    try:
        got = fn()
    except CorruptChunkError as exc:
        return "E" if exc.key == KEY else f"K:{exc.key!r}"
    except Exception as exc:  # noqa: BLE001 - any other type is what this counts
        return f"X:{type(exc).__name__}: {str(exc)[:160]}"
    got = np.asarray(got)
    if got.shape != expected.shape:
        return "S"
    return "=" if np.array_equal(got, expected) else "~"


def _codec_outcome(name: str, codecs: list[Any], bad: bytes, raw: bytes) -> str:
    """The codec API on ``bad``: the compressor's decode, then each filter's decode in
    reverse order, as numcodecs users chain them."""
    from exzarr.errors import CorruptChunkError, ExZarrError

    try:
        x: Any = bad
        for codec in reversed(codecs):
            x = codec.decode(x)
        got = np.asarray(x).reshape(-1).view(np.uint8).tobytes() if isinstance(x, np.ndarray) else bytes(x)
    except CorruptChunkError:
        return "E"
    except ExZarrError as exc:
        return f"Z:{type(exc).__name__}: {str(exc)[:160]}"
    except Exception as exc:  # noqa: BLE001
        return f"X:{type(exc).__name__}: {str(exc)[:160]}"
    if len(got) != len(raw):
        return "L"  # the codec API decodes whatever size the stream holds
    return "=" if got == raw else "~"


class _Arrays:
    """Two two-chunk arrays per chain, made on first use: one in memory, one in a
    directory (whose chunk files the core reads itself)."""

    def __init__(self, folder: str | None) -> None:
        self.folder = folder
        self.arrays: dict[tuple[str, bool], tuple[Any, np.ndarray, list[Any], bytes]] = {}

    def get(self, name: str, on_disk: bool = False) -> tuple[Any, np.ndarray, list[Any], bytes]:
        on_disk = on_disk and self.folder is not None
        if (name, on_disk) not in self.arrays:
            import exzarr
            from exzarr.codecs import get_codec

            dtype, filters, compressor = CHAINS[name]
            shape, chunks = geometry(name)
            where = dict(storage="filesystem", path=os.path.join(self.folder, name + ".zarr"),
                         overwrite=True) if on_disk else dict(storage="memory")
            a = exzarr.create(shape=shape, chunks=chunks, dtype=dtype, filters=filters or None,
                              compressor=compressor, fill_value=0, **where)
            data = original_data(name)
            a[...] = data
            codecs = [get_codec(dict(f)) for f in filters]
            if compressor is not None:
                codecs.append(get_codec(dict(compressor)))
            raw = np.ascontiguousarray(data[: chunks[0]]).tobytes()
            self.arrays[name, on_disk] = (a, data, codecs, raw)
        return self.arrays[name, on_disk]


def worker_main() -> None:
    """Read pickled batches of (index, chain, bytes) on stdin; answer one line each."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything printed by accident goes to stderr, not into the answers
    arrays = _Arrays(os.environ.get("EXZARR_FUZZ_DIR"))
    for name in CHAINS:  # warm up (thread pool, contexts) before capping memory
        for on_disk in (False, True):
            arrays.get(name, on_disk)[0][...]
    vm = int([ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmSize")][0]) * 1024
    cap = vm + (1 << 30)  # a decoder allocating what a forged header claims: MemoryError
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    stdin = sys.stdin.buffer
    probes = os.environ.get("EXZARR_FUZZ_PROBES") == "1"
    while True:
        head = stdin.read(8)
        if len(head) < 8:
            return
        batch = pickle.loads(stdin.read(struct.unpack("<Q", head)[0]))
        for index, name, bad in batch:
            if probes and bad == CRASH_PROBE:
                os.kill(os.getpid(), signal.SIGSEGV)
            if probes and bad == HANG_PROBE:
                time.sleep(3600)
            a, data, codecs, raw = arrays.get(name, on_disk=index % 2 == 1)
            a.store.set(KEY, bad)
            full = _outcome(lambda: a[...], data)
            partials = [_outcome(lambda read=read: read(a), expect(data))
                        for _, read, expect in PARTIALS]
            codec = _codec_outcome(name, codecs, bad, raw)
            line = json.dumps({"i": index, "full": full, "partials": partials, "codec": codec})
            os.write(out_fd, line.encode() + b"\n")


# --------------------------------------------------------------------------------------
# The parent: runs workers, restarts them after a crash or a hang, counts
# --------------------------------------------------------------------------------------

@dataclass
class Figures:
    """What a fuzz run found; ``failures`` keeps a few examples of each kind."""

    inputs: int = 0
    full: collections.Counter = field(default_factory=collections.Counter)
    partial: collections.Counter = field(default_factory=collections.Counter)
    codec: collections.Counter = field(default_factory=collections.Counter)
    crashes: int = 0
    hangs: int = 0
    full_error_partial_data: int = 0
    # The same, for zstd frames without a checksum whose structure is sound to the end:
    # damage inside a block past the selection is documented to go unseen by a prefix read.
    full_error_partial_data_zstd_blocks: int = 0
    partial_error_full_data: int = 0
    by_chain: dict[str, collections.Counter] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    seconds: float = 0.0

    def note(self, kind: str, text: str) -> None:
        if len(self.failures[kind]) < 8:
            self.failures[kind].append(text)

    def count_of(self, counter: collections.Counter, prefix: str) -> int:
        return sum(v for k, v in counter.items() if k.startswith(prefix))

    def summary(self) -> dict[str, Any]:
        """The figures as one JSON-able dict."""
        def cats(c: collections.Counter) -> dict[str, int]:
            return {
                "clean_errors": c["E"], "correct_data": c["="],
                "wrong_data_without_checksum": c["~"], "wrong_data_with_checksum": c["~!"],
                "wrong_shape": c["S"], "wrong_key": self.count_of(c, "K"),
                "other_exzarr_errors": self.count_of(c, "Z"), "foreign_exceptions": self.count_of(c, "X"),
                "other_length": c["L"],
            }
        return {
            "inputs": self.inputs, "seconds": round(self.seconds, 1),
            "full_read": cats(self.full), "partial_reads": cats(self.partial),
            "codec_api": cats(self.codec), "crashes": self.crashes, "hangs": self.hangs,
            "full_error_partial_data": self.full_error_partial_data,
            "full_error_partial_data_zstd_blocks": self.full_error_partial_data_zstd_blocks,
            "partial_error_full_data": self.partial_error_full_data,
        }

    def report(self) -> str:
        """The figures and examples of each failure, for a person."""
        s = self.summary()
        lines = [f"inputs {s['inputs']} in {s['seconds']} s; crashes {s['crashes']}, hangs {s['hangs']}; "
                 f"partial-vs-full disagreements: full error but partial data {s['full_error_partial_data']} "
                 f"(and {s['full_error_partial_data_zstd_blocks']} more from damage inside the "
                 f"blocks of sound zstd frames without a checksum), "
                 f"partial error but full data {s['partial_error_full_data']}"]
        for part in ("full_read", "partial_reads", "codec_api"):
            lines.append(f"  {part}: " + ", ".join(f"{k} {v}" for k, v in s[part].items()))
        for chain, c in sorted(self.by_chain.items()):
            lines.append(f"  {chain}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
        for kind, examples in self.failures.items():
            lines.append(f"  examples of {kind}:")
            lines.extend(f"    {e}" for e in examples)
        return "\n".join(lines)


class _Worker:
    def __init__(self, folder: str, probes: bool = False) -> None:
        env = {**os.environ, "EXZARR_THREADS": os.environ.get("EXZARR_THREADS", "2"),
               "EXZARR_FUZZ_PROBES": "1" if probes else "0", "EXZARR_FUZZ_DIR": folder}
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.buf = b""

    def failed_itself(self) -> str | None:
        """The traceback of a worker that exited with an error of its own (not a
        signal): a fault of the harness or the environment, not of a decoder."""
        if self.proc.poll() is None or self.proc.returncode <= 0:
            return None
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-3000:]

    def send(self, batch: list[tuple[int, str, bytes]]) -> None:
        blob = pickle.dumps(batch)
        try:
            self.proc.stdin.write(struct.pack("<Q", len(blob)) + blob)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def line(self, timeout: float) -> str | None:
        """The next answer; "" if the worker died, None if it gave none in time."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return ""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                f.close()
            except OSError:
                pass


def _classify(fig: Figures, name: str, bad: bytes, kind: str, answer: dict[str, Any]) -> None:
    checksum = input_checksummed(name, bad)
    chain = fig.by_chain.setdefault(name, collections.Counter())
    desc = f"{name} {kind} len={len(bad)} head={bad[:24].hex()}"

    def norm(code: str) -> str:
        return "~!" if code == "~" and checksum else code

    full = norm(answer["full"])
    fig.full[full[:1] if full[0] in "KXZ" else full] += 1
    chain[f"full{full[:2] if full == '~!' else full[:1]}"] += 1
    if full[0] in "KXS" or full == "~!":
        fig.note(f"full read {full[:40]}", f"{desc}: {full}")
    partial_data = False
    for (expr, _, _), code in zip(PARTIALS, answer["partials"]):
        code = norm(code)
        fig.partial[code[:1] if code[0] in "KXZ" else code] += 1
        partial_data |= code[0] in "=~"
        if code[0] in "KXS" or code == "~!":
            fig.note(f"partial read {code[:40]}", f"{desc} {expr}: {code}")
    if full == "E" and partial_data:
        _, filters, compressor = CHAINS[name]
        chunks = geometry(name)[1]
        nbytes = chunks[0] * chunks[1] * np.dtype(CHAINS[name][0]).itemsize
        if (not filters and compressor is not None and compressor["id"] == "zstd"
                and zstd_structure_ok(bad, nbytes)):
            fig.full_error_partial_data_zstd_blocks += 1
            chain["full error, partial data (zstd blocks)"] += 1
        else:
            fig.full_error_partial_data += 1
            chain["full error, partial data"] += 1
            fig.note("full error but partial data", f"{desc}: partials {answer['partials']}")
    if full[0] in "=~" and any(c[0] in "EK" for c in answer["partials"]):
        fig.partial_error_full_data += 1
        fig.note("partial error but full data", f"{desc}: partials {answer['partials']}")
    codec = answer["codec"]
    codec = "~!" if codec == "~" and checksum else codec
    fig.codec[codec[:1] if codec[0] in "KXZ" else codec] += 1
    if codec[0] in "XZ" or codec == "~!":
        fig.note(f"codec API {codec[:40]}", f"{desc}: {codec}")


def run_fuzz(inputs: int, seed: int = 0, seconds: float | None = None, workers: int = 2,
             timeout: float = 20.0, exhaustive: bool = False, save: str | None = None,
             chains: list[str] | None = None, batch: int = 64,
             extra: list[tuple[str, str, bytes]] = (), probes: bool = False) -> Figures:
    """Fuzz ``inputs`` mutated chunks spread over ``chains`` (all by default), or stop
    after ``seconds``. A worker silent for ``timeout`` seconds on one input is a hang.
    ``extra`` inputs (chain, kind, bytes) go first; ``probes`` arms the probe inputs."""
    names = chains or list(CHAINS)
    per = max(1, inputs // len(names))
    def labelled(name: str) -> Iterator[tuple[str, str, bytes]]:
        for kind, bad in generate(name, per, seed, exhaustive):
            yield name, kind, bad
    streams = [labelled(name) for name in names]

    def interleaved() -> Iterator[tuple[str, str, bytes]]:
        yield from extra
        live = list(streams)
        while live:
            for s in list(live):
                item = next(s, None)
                if item is None:
                    live.remove(s)
                else:
                    yield item
    source = interleaved()
    fig = Figures()
    start = time.monotonic()
    scratch = tempfile.TemporaryDirectory(prefix="exzarr-fuzz-")
    folders = [os.path.join(scratch.name, str(w)) for w in range(max(1, workers))]
    pool = [_Worker(folders[w], probes) for w in range(max(1, workers))]
    pending: list[list[tuple[int, str, str, bytes]]] = [[] for _ in pool]
    index = 0
    exhausted = False

    def refill(w: int) -> None:
        nonlocal index, exhausted
        if exhausted or (seconds is not None and time.monotonic() - start > seconds):
            exhausted = True
            return
        items = []
        for _ in range(batch):
            item = next(source, None)
            if item is None:
                exhausted = True
                break
            name, kind, bad = item
            items.append((index, name, kind, bad))
            index += 1
        if items:
            pending[w].extend(items)
            pool[w].send([(i, n, b) for i, n, _, b in items])

    def keep(kind: str, item: tuple[int, str, str, bytes]) -> None:
        if save:
            os.makedirs(save, exist_ok=True)
            with open(os.path.join(save, f"{kind}-{item[1]}-{item[0]}.bin"), "wb") as f:
                f.write(item[3])

    for w in range(len(pool)):
        refill(w)
    while any(pending):
        for w, worker in enumerate(pool):
            if not pending[w]:
                continue
            line = worker.line(timeout)
            if not line:  # died ("") or silent (None): the first unanswered input did it
                item = pending[w].pop(0)
                if line is None:
                    fig.hangs += 1
                    fig.note("hang", f"{item[1]} {item[2]} len={len(item[3])} head={item[3][:24].hex()}")
                else:
                    worker.proc.wait()
                    own = worker.failed_itself()
                    if own is not None:
                        for wk in pool:
                            wk.kill()
                        raise RuntimeError(f"a fuzz worker failed by itself:\n{own}")
                    fig.crashes += 1
                    fig.note("crash", f"{item[1]} {item[2]} len={len(item[3])} "
                             f"signal={-worker.proc.returncode} head={item[3][:24].hex()}")
                keep("hang" if line is None else "crash", item)
                fig.inputs += 1
                worker.kill()
                pool[w] = _Worker(folders[w], probes)
                rest, pending[w] = pending[w], []
                if rest:
                    pending[w] = rest
                    pool[w].send([(i, n, b) for i, n, _, b in rest])
                continue
            answer = json.loads(line)
            item = pending[w].pop(0)
            assert answer["i"] == item[0], (answer["i"], item[0])
            fig.inputs += 1
            _classify(fig, item[1], item[3], item[2], answer)
            if not pending[w]:
                refill(w)
    for worker in pool:
        worker.kill()
    scratch.cleanup()
    fig.seconds = time.monotonic() - start
    return fig


def main(argv: list[str] | None = None) -> int:
    """Command line: run the fuzz and print the figures (exit 1 on any failure)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--inputs", type=int, default=int(os.environ.get("EXZARR_FUZZ_INPUTS", 200_000)))
    p.add_argument("--seconds", type=float, default=float(os.environ.get("EXZARR_FUZZ_SECONDS", 0)) or None,
                   help="stop after this long")
    p.add_argument("--seed", type=int, default=int(os.environ.get("EXZARR_FUZZ_SEED", 0)))
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--exhaustive", action="store_true",
                   help="every truncation of every source chunk up to 16 KiB")
    p.add_argument("--save", default=None, help="folder for the inputs that crashed or hung")
    p.add_argument("--chains", default=None, help="comma-separated chain names")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    fig = run_fuzz(args.inputs, seed=args.seed, seconds=args.seconds, workers=args.workers,
                   exhaustive=args.exhaustive, save=args.save,
                   chains=args.chains.split(",") if args.chains else None)
    print(fig.report())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fig.summary(), f, indent=1)
    s = fig.summary()
    bad = (s["crashes"] + s["hangs"] + s["full_error_partial_data"]
           + sum(s[p]["foreign_exceptions"] + s[p]["wrong_key"] + s[p]["wrong_data_with_checksum"]
                 for p in ("full_read", "partial_reads")))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
