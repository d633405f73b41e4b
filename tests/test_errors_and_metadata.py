"""One error family for bad documents, names and codec configs; strict reading of
``.zarray``, ``.zgroup``, ``.zattrs`` and ``.zmetadata``; hostile keys in groups;
checksum codecs as a v2 compressor; a failed ``create`` leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import exzarr
from exzarr.cli import main
from exzarr.errors import (CorruptChunkError, ExZarrError, InvalidArgumentError,
                           InvalidFilterConfigError, InvalidKeyError, InvalidMetadataError,
                           LockNotSupportedError, UnknownCodecError)
from exzarr.storage import MemoryStore

GOOD: dict[str, Any] = {"zarr_format": 2, "shape": [10, 10], "chunks": [5, 5], "dtype": "<f8",
                        "compressor": None, "fill_value": 0, "order": "C", "filters": None}

NESTED = b"[" * 200_000 + b"]" * 200_000  # json's decoder recurses: RecursionError


def _doc(**changes: Any) -> bytes:
    doc = {k: v for k, v in GOOD.items() if k not in changes or changes[k] is not _DROP}
    doc.update({k: v for k, v in changes.items() if v is not _DROP})
    return json.dumps(doc, allow_nan=True).encode()


_DROP = object()

# (id, the bytes of a malformed .zarray)
BAD_ZARRAY: list[tuple[str, bytes]] = [
    ("empty-file", b""),
    ("not-json", b"{"),
    ("non-utf8", b'{"zarr_format": 2, "shape": [10], "dtype": "\xff\xfe"}'),
    ("nested-json", NESTED),
    ("nested-in-field", b'{"zarr_format": 2, "shape": ' + NESTED + b"}"),
    ("json-null", b"null"),
    ("json-list", b"[]"),
    ("json-string", b'"zarray"'),
    ("zarr-format-3", _doc(zarr_format=3)),
    ("zarr-format-string", _doc(zarr_format="2")),
    ("zarr-format-float", _doc(zarr_format=2.5)),
    ("zarr-format-bool", _doc(zarr_format=True)),
    ("missing-shape", _doc(shape=_DROP)),
    ("missing-chunks", _doc(chunks=_DROP)),
    ("missing-dtype", _doc(dtype=_DROP)),
    ("shape-string", _doc(shape="10")),
    ("shape-null", _doc(shape=None)),
    ("shape-object", _doc(shape={"a": 1})),
    ("shape-bool", _doc(shape=[True, 10])),
    ("shape-float", _doc(shape=[10.5, 10])),
    ("shape-nan", _doc(shape=[float("nan"), 10])),
    ("shape-negative", _doc(shape=[-1, 10])),
    ("shape-string-item", _doc(shape=["10", 10])),
    ("shape-2**63", _doc(shape=[2 ** 63, 10])),
    ("shape-huge-int", b'{"zarr_format": 2, "shape": [1' + b"0" * 5000 + b'], "chunks": [1], '
                       b'"dtype": "<f8", "compressor": null, "fill_value": 0, "order": "C", '
                       b'"filters": null}'),
    ("shape-huge-negative", _doc(shape=[-2 ** 70, 10])),
    ("33-dimensions", _doc(shape=[1] * 33, chunks=[1] * 33)),
    ("64-dimensions", _doc(shape=[2] * 64, chunks=[1] * 64)),
    ("chunks-zero", _doc(chunks=[0, 5])),
    ("chunks-negative", _doc(chunks=[-5, 5])),
    ("chunks-too-few", _doc(chunks=[5])),
    ("chunks-empty-list", _doc(chunks=[])),
    ("chunks-bool", _doc(chunks=[True, 5])),
    ("chunks-string", _doc(chunks="5,5")),
    ("chunks-null", _doc(chunks=None)),
    ("chunks-2**63", _doc(chunks=[2 ** 63, 5])),
    ("chunk-bytes-past-limit", _doc(chunks=[2 ** 40, 2 ** 40])),
    ("dtype-null", _doc(dtype=None)),
    ("dtype-int", _doc(dtype=5)),
    ("dtype-unknown", _doc(dtype="<f99")),
    ("dtype-garbage", _doc(dtype="nonsense(")),
    ("dtype-object", _doc(dtype={"a": 1})),
    ("dtype-bad-field", _doc(dtype=[["a"]])),
    ("dtype-empty-list", _doc(dtype=[])),
    ("dtype-huge-itemsize", _doc(dtype="|V99999999999")),
    ("dtype-zero-itemsize", _doc(dtype="|S0")),
    ("dtype-datetime-without-unit", _doc(dtype="<M8")),
    ("compressor-string", _doc(compressor="zstd")),
    ("compressor-list", _doc(compressor=[])),
    ("compressor-no-id", _doc(compressor={"level": 1})),
    ("compressor-int-id", _doc(compressor={"id": 5})),
    ("filters-dict", _doc(filters={"id": "delta", "dtype": "<f8"})),
    ("filters-string", _doc(filters="delta")),
    ("filters-int-item", _doc(filters=[5])),
    ("filters-no-id", _doc(filters=[{"dtype": "<f8"}])),
    ("order-X", _doc(order="X")),
    ("order-int", _doc(order=1)),
    ("order-null", _doc(order=None)),
    ("separator-dash", _doc(dimension_separator="-")),
    ("separator-empty", _doc(dimension_separator="")),
    ("separator-int", _doc(dimension_separator=5)),
    ("fill-nan-for-int", _doc(dtype="<i4", fill_value=float("nan"))),
    ("fill-string-for-int", _doc(dtype="<i4", fill_value="abc")),
    ("fill-float-for-int", _doc(dtype="<i4", fill_value=1.5)),
    ("fill-past-int-range", _doc(dtype="<i8", fill_value=2 ** 70)),
    ("fill-list-for-float", _doc(fill_value=[1, 2])),
    ("fill-object-for-float", _doc(fill_value={"a": 1})),
    ("fill-word-for-float", _doc(fill_value="abc")),
    ("fill-string-for-bool", _doc(dtype="|b1", fill_value="yes")),
    ("fill-bad-base64", _doc(dtype="|S4", fill_value="!!!not base64")),
    ("fill-bad-complex", _doc(dtype="<c16", fill_value=[1, 2, 3])),
    ("fill-bad-datetime", _doc(dtype="<M8[s]", fill_value="not a date")),
    ("fill-object-for-string", _doc(dtype="<U3", fill_value={"a": 1})),
]


@pytest.fixture
def cli_line(capsys: pytest.CaptureFixture[str]):
    """Run ``exzarr info PATH``: its exit status and stderr, which must be one line."""

    def run(path: Path) -> str:
        status = main(["info", str(path)])
        out, err = capsys.readouterr()
        assert status != 0, out
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("exzarr: error: "), err
        return lines[0]

    return run


def _write(path: Path, name: str, raw: bytes) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(raw)


def test_enough_malformed_documents():
    assert len(BAD_ZARRAY) >= 38


@pytest.mark.parametrize("raw", [r for _, r in BAD_ZARRAY], ids=[i for i, _ in BAD_ZARRAY])
def test_malformed_zarray_raises_invalid_metadata(tmp_path: Path, raw: bytes, cli_line) -> None:
    arr = tmp_path / "arr"
    _write(arr, ".zarray", raw)
    with pytest.raises(InvalidMetadataError) as info:
        exzarr.open(arr, mode="r")
    assert ".zarray" in str(info.value)
    # The same document inside a group, read member by member and from the listing.
    root = tmp_path / "root"
    _write(root, ".zgroup", b'{"zarr_format": 2}')
    _write(root / "a", ".zarray", raw)
    g = exzarr.open_group(root, mode="r")
    with pytest.raises(InvalidMetadataError):
        g["a"]
    with pytest.raises(InvalidMetadataError):
        g.members()
    assert "arr" in cli_line(arr) or ".zarray" in cli_line(arr)
    cli_line(root)


def test_malformed_zarray_in_memory_store_and_metadata_api() -> None:
    for _, raw in BAD_ZARRAY:
        store = MemoryStore()
        store.set(".zarray", raw)
        with pytest.raises(InvalidMetadataError):
            exzarr.open(storage=store)
        with pytest.raises(InvalidMetadataError):
            exzarr.metadata.ArrayMeta.decode(raw)


BAD_ZGROUP = [
    ("null", b"null"), ("list", b"[]"), ("zarr-format-3", b'{"zarr_format": 3}'),
    ("missing-zarr-format", b"{}"), ("zarr-format-string", b'{"zarr_format": "2"}'),
    ("zarr-format-bool", b'{"zarr_format": true}'), ("not-json", b"{"), ("empty", b""),
    ("non-utf8", b'{"zarr_format": 2, "\xff": 1}'), ("nested", NESTED),
]


@pytest.mark.parametrize("raw", [r for _, r in BAD_ZGROUP], ids=[i for i, _ in BAD_ZGROUP])
def test_malformed_zgroup_refused(tmp_path: Path, raw: bytes, cli_line) -> None:
    root = tmp_path / "root"
    _write(root, ".zgroup", raw)
    with pytest.raises(InvalidMetadataError, match=r"\.zgroup"):
        exzarr.open_group(root, mode="r")
    with pytest.raises(InvalidMetadataError, match=r"\.zgroup"):
        exzarr.open_group(root, mode="a")
    cli_line(root)
    # A member group holding it.
    outer = tmp_path / "outer"
    _write(outer, ".zgroup", b'{"zarr_format": 2}')
    _write(outer / "sub", ".zgroup", raw)
    g = exzarr.open_group(outer, mode="r")
    with pytest.raises(InvalidMetadataError):
        g["sub"]
    with pytest.raises(InvalidMetadataError):
        g.members(max_depth=None)
    cli_line(outer)


def test_zgroup_message_says_what_was_found(tmp_path: Path) -> None:
    _write(tmp_path, ".zgroup", b'{"zarr_format": 3}')
    with pytest.raises(InvalidMetadataError, match="zarr_format 3"):
        exzarr.open_group(tmp_path, mode="r")
    _write(tmp_path, ".zgroup", b"[]")
    with pytest.raises(InvalidMetadataError, match="list"):
        exzarr.open_group(tmp_path, mode="r")


BAD_ZATTRS = [("list", b"[]"), ("null", b"null"), ("string", b'"x"'), ("not-json", b"{"),
              ("non-utf8", b'{"a": "\xff"}'), ("nested", NESTED)]


@pytest.mark.parametrize("raw", [r for _, r in BAD_ZATTRS], ids=[i for i, _ in BAD_ZATTRS])
def test_malformed_zattrs_refused(tmp_path: Path, raw: bytes, cli_line) -> None:
    arr = tmp_path / "arr"
    exzarr.create(shape=(4,), chunks=(2,), storage="filesystem", path=arr)
    _write(arr, ".zattrs", raw)
    with pytest.raises(InvalidMetadataError, match=r"\.zattrs"):
        exzarr.open(arr, mode="r")
    cli_line(arr)
    root = tmp_path / "root"
    exzarr.open_group(root, mode="w").create_array("a", shape=(4,), chunks=(2,))
    _write(root / "a", ".zattrs", raw)
    with pytest.raises(InvalidMetadataError):
        exzarr.open_group(root, mode="r")["a"].attrs.asdict()
    cli_line(root)
    _write(root, ".zattrs", raw)
    with pytest.raises(InvalidMetadataError, match=r"\.zattrs"):
        exzarr.open_group(root, mode="r+")


def _zmetadata(entries: Any, fmt: Any = 1) -> bytes:
    return json.dumps({"zarr_consolidated_format": fmt, "metadata": entries}).encode()


BAD_ZMETADATA = [
    ("list", b"[]"), ("null", b"null"), ("not-json", b"{"), ("nested", NESTED),
    ("metadata-list", _zmetadata([])),
    ("metadata-missing", b'{"zarr_consolidated_format": 1}'),
    ("format-2", _zmetadata({".zgroup": {"zarr_format": 2}}, fmt=2)),
    ("format-missing", json.dumps({"metadata": {".zgroup": {"zarr_format": 2}}}).encode()),
    ("entry-dotdot", _zmetadata({".zgroup": {"zarr_format": 2}, "a/../b/.zgroup": {"zarr_format": 2}})),
    ("entry-empty-part", _zmetadata({".zgroup": {"zarr_format": 2}, "a//.zgroup": {"zarr_format": 2}})),
    ("entry-nul", _zmetadata({".zgroup": {"zarr_format": 2}, "a\x00/.zgroup": {"zarr_format": 2}})),
    ("entry-not-object", _zmetadata({".zgroup": {"zarr_format": 2}, "a/.zarray": [1, 2]})),
    ("root-zgroup-bad", _zmetadata({".zgroup": {"zarr_format": 3}})),
    ("member-zarray-bad", _zmetadata({".zgroup": {"zarr_format": 2},
                                      "a/.zarray": {**GOOD, "shape": "x"}})),
]


@pytest.mark.parametrize("raw", [r for _, r in BAD_ZMETADATA], ids=[i for i, _ in BAD_ZMETADATA])
def test_malformed_zmetadata_refused(tmp_path: Path, raw: bytes, cli_line) -> None:
    root = tmp_path / "root"
    exzarr.open_group(root, mode="w").create_array("a", shape=(4,), chunks=(2,))
    _write(root, ".zmetadata", raw)
    with pytest.raises(InvalidMetadataError):
        g = exzarr.open_group(root, mode="r")
        g.members(max_depth=None)
        g["a"]
    cli_line(root)


def test_counted_cases_reach_the_issue_figure():
    assert len(BAD_ZARRAY) + len(BAD_ZGROUP) + len(BAD_ZATTRS) + len(BAD_ZMETADATA) >= 38


# ------------------------------------------------------------------ lenient reading kept
def test_lenient_documents_still_open(tmp_path: Path) -> None:
    arr = tmp_path / "arr"
    _write(arr, ".zarray", json.dumps({
        "zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "<i2",
        "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
        "fill_value": None, "order": "C", "filters": [], "extra": {"kept": [1, 2]},
    }).encode())
    _write(arr, ".zattrs", b'{"x": NaN, "t": "\xc3\xa9"}')
    a = exzarr.open(arr, mode="r")
    assert a.fill_value is None and a.filters is None and a.dimension_separator == "."
    assert np.isnan(a.attrs["x"])
    _write(tmp_path / "g", ".zgroup", b'{"zarr_format": 2, "consolidated_metadata": null}')
    assert len(exzarr.open_group(tmp_path / "g", mode="r")) == 0
    # 32 dimensions, the limit, and shapes up to int64's maximum still open.
    _write(tmp_path / "d32", ".zarray", _doc(shape=[1] * 32, chunks=[1] * 32))
    assert exzarr.open(tmp_path / "d32", mode="r").ndim == 32
    _write(tmp_path / "big", ".zarray", _doc(shape=[2 ** 63 - 1], chunks=[2 ** 20]))
    assert exzarr.open(tmp_path / "big", mode="r").shape == (2 ** 63 - 1,)
    _write(tmp_path / "nosep", ".zarray", _doc(dimension_separator=None))
    assert exzarr.open(tmp_path / "nosep", mode="r").dimension_separator == "."
    _write(tmp_path / "void", ".zarray", _doc(dtype="|V4", fill_value=0))  # older writers
    assert exzarr.open(tmp_path / "void", mode="r").fill_value.tobytes() == bytes(4)
    _write(tmp_path / "nofmt", ".zarray", _doc(zarr_format=_DROP, order=_DROP))
    assert exzarr.open(tmp_path / "nofmt", mode="r").order == "C"


def test_more_than_32_dimensions_message(tmp_path: Path) -> None:
    _write(tmp_path, ".zarray", _doc(shape=[1] * 33, chunks=[1] * 33))
    with pytest.raises(InvalidMetadataError, match="32 dimensions"):
        exzarr.open(tmp_path, mode="r")
    with pytest.raises(ExZarrError, match="32 dimensions"):
        exzarr.create(shape=(1,) * 33, chunks=(1,) * 33)


def test_dtype_null_refused_not_float64(tmp_path: Path) -> None:
    _write(tmp_path, ".zarray", _doc(dtype=None))
    with pytest.raises(InvalidMetadataError, match="dtype"):
        exzarr.open(tmp_path, mode="r")


def test_stored_shape_and_chunk_errors_are_both_kinds(tmp_path: Path) -> None:
    # A malformed stored shape is metadata and shape error at once, chunks likewise.
    _write(tmp_path / "s", ".zarray", _doc(shape=[-1, 10]))
    with pytest.raises(exzarr.errors.InvalidShapeError):
        exzarr.open(tmp_path / "s", mode="r")
    _write(tmp_path / "c", ".zarray", _doc(chunks=[0, 5]))
    with pytest.raises(exzarr.errors.InvalidChunksError):
        exzarr.open(tmp_path / "c", mode="r")


def test_cli_shows_huge_virtual_arrays(tmp_path: Path) -> None:
    # Arrays whose element count is past int64 open (their chunk keys are what
    # matters: see test_api's 255-character keys), and info summarises them in integers.
    _write(tmp_path / "a", ".zarray", _doc(shape=[2 ** 62] * 32, chunks=[1] * 32))
    proc = subprocess.run([sys.executable, "-m", "exzarr", "info", str(tmp_path / "a")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc
    assert proc.stderr == ""
    rows = {k.strip(): v for k, v in (line.split(" : ", 1) for line in proc.stdout.splitlines())}
    assert rows["Shape"] == str((2 ** 62,) * 32)
    assert rows["No. bytes"].startswith(f"{2 ** (62 * 32) * 8} (")
    assert rows["Chunks initialized"] == f"0/{2 ** (62 * 32)}"


# ------------------------------------------------------------------ names and keys
@pytest.mark.parametrize("name", ["", "/", "a/../b", "..", "a/./b", ".zarray", "a/.zgroup",
                                  "a\x00b", "a//b", 5, None, b"a"])
def test_invalid_member_names_raise_invalid_key(name: Any) -> None:
    g = exzarr.group()
    g.create_group("a")
    for call in (lambda: g[name], lambda: g.create_group(name),
                 lambda: g.create_array(name, shape=(2,), chunks=(2,)),
                 lambda: g.require_group(name), lambda: g.move("a", name),
                 lambda: g.__delitem__(name)):
        with pytest.raises(InvalidKeyError) as info:
            call()
        assert isinstance(info.value, KeyError) and isinstance(info.value, ExZarrError)
        assert info.value.key == name
    assert name not in g  # membership answers False, as a mapping does


def test_missing_member_still_plain_key_error() -> None:
    g = exzarr.group()
    with pytest.raises(KeyError) as info:
        g["nope"]
    assert not isinstance(info.value, InvalidKeyError)


def test_leading_slash_keys_in_zmetadata_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "root"
    g = exzarr.open_group(root, mode="w")
    g.create_array("a", shape=(4,), chunks=(2,))
    g.create_group("sub")
    g.consolidate()
    doc = json.loads((root / ".zmetadata").read_bytes())
    doc["metadata"]["/.zgroup"] = {"zarr_format": 2}
    doc["metadata"]["/x/.zgroup"] = {"zarr_format": 2}
    (root / ".zmetadata").write_text(json.dumps(doc))
    g = exzarr.open_group(root, mode="r")
    assert [n for n, _ in g.members(max_depth=None)] == ["a", "sub"]
    assert g.tree().splitlines()[1:] == ["├── a (4,) float64", "└── sub"]


class _HostileListing(MemoryStore):
    """A store whose listing also yields keys a well-behaved store never has."""

    def list_prefix(self, prefix: str):
        yield from super().list_prefix(prefix)
        for bad in ("/.zgroup", "/a/.zgroup", "//.zgroup", "x/../.zgroup", "n\x00/.zgroup"):
            if bad.startswith(prefix):
                yield bad

    def list_dir(self, prefix: str = "") -> list[str]:
        return sorted({*super().list_dir(prefix), "", "..", ".", "n\x00"})


def test_hostile_listing_does_not_recurse() -> None:
    store = _HostileListing()
    g = exzarr.open_group(storage=store, mode="w")
    g.create_group("sub").create_array("a", shape=(2,), chunks=(2,))
    assert [n for n, _ in g.members(max_depth=None)] == ["sub", "sub/a"]
    assert g.tree().splitlines() == ["/", "└── sub", "    └── a (2,) float64"]
    assert list(g) == ["sub"]


# ------------------------------------------------------------------ codecs
@pytest.mark.parametrize("codec_id", ["delta", "astype", "quantize", "fixedscaleoffset",
                                      "shuffle", "packbits", "crc32", "crc32c", "zstd", "zlib",
                                      "lz4", "blosc", "bz2", "lzma", "gzip"])
def test_decode_into_wrong_sized_out(codec_id: str) -> None:
    configs = {"delta": {"dtype": "<i4"}, "astype": {"encode_dtype": "<i2", "decode_dtype": "<i4"},
               "quantize": {"digits": 2, "dtype": "<f8"},
               "fixedscaleoffset": {"offset": 0, "scale": 10, "dtype": "<f8", "astype": "<i4"}}
    codec = exzarr.codecs.get_codec({"id": codec_id, **configs.get(codec_id, {})})
    dtype = np.dtype(getattr(codec, "dtype", None) or ("bool" if codec_id == "packbits" else "<i4"))
    data = np.arange(16).astype(dtype)
    enc = codec.encode(data)
    out = np.empty(data.size + 3, dtype=dtype)
    with pytest.raises((InvalidArgumentError, CorruptChunkError)) as info:
        codec.decode(enc, out=out)
    assert "out" in str(info.value)
    right = np.empty_like(data)
    codec.decode(enc, out=right)
    np.testing.assert_array_equal(right, data)


@pytest.mark.parametrize("config", [
    {"id": "zstd", "level": "high"}, {"id": "zstd", "level": 10 ** 30}, {"id": "zlib", "level": 42},
    {"id": "blosc", "cname": "nope"}, {"id": "blosc", "shuffle": 7}, {"id": "lz4", "acceleration": "x"},
    {"id": "delta"}, {"id": "delta", "dtype": "nonsense("}, {"id": "shuffle", "elementsize": -3},
    {"id": "crc32", "location": "middle"}, {"id": "zstd", "bogus": 1}, {"id": "bitround", "keepbits": -1},
    {"id": "quantize", "digits": "x", "dtype": "<f8"}, {1: 2, "id": "zlib"},
])
def test_bad_codec_configs(config: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises((InvalidFilterConfigError, UnknownCodecError)):
        exzarr.codecs.get_codec(config)
    with pytest.raises((InvalidFilterConfigError, UnknownCodecError)):
        exzarr.create(shape=(8,), chunks=(4,), compressor=config)
    if all(isinstance(k, str) for k in config):
        # Stored by another tool: opening it is refused with an exzarr error too.
        _write(tmp_path, ".zarray", _doc(compressor=config))
        with pytest.raises(ExZarrError):
            exzarr.open(tmp_path, mode="r")


def test_unknown_codec_on_open(tmp_path: Path) -> None:
    _write(tmp_path, ".zarray", _doc(compressor={"id": "no-such-codec"}))
    with pytest.raises(UnknownCodecError):
        exzarr.open(tmp_path, mode="r")


# ------------------------------------------------------------------ checksum compressors
@pytest.mark.parametrize("codec_id", ["crc32c", "crc32", "adler32", "fletcher32"])
@pytest.mark.parametrize("filters", [None, [{"id": "delta", "dtype": "<i4"}]])
def test_checksum_codec_as_compressor(tmp_path: Path, codec_id: str, filters: Any) -> None:
    path = tmp_path / "a"
    data = np.arange(60, dtype="<i4").reshape(6, 10)
    a = exzarr.create(shape=data.shape, chunks=(4, 4), dtype="<i4", compressor=codec_id,
                      filters=filters, storage="filesystem", path=path)
    a[...] = data
    b = exzarr.open(path, mode="r")
    assert b.compressor.codec_id == codec_id
    np.testing.assert_array_equal(b[...], data)
    np.testing.assert_array_equal(b[1:5, 3:9], data[1:5, 3:9])
    # Bytes on disk: the filters' output, then the checksum codec, as numcodecs does it.
    import numcodecs

    chain = [numcodecs.get_codec(dict(f)) for f in filters or []]
    chain.append(numcodecs.get_codec({"id": codec_id}))
    chunk = np.ascontiguousarray(data[:4, :4])
    enc: Any = chunk
    for c in chain:
        enc = c.encode(enc)
    assert (path / "0.0").read_bytes() == bytes(enc)
    # A flipped byte fails the checksum.
    raw = bytearray((path / "0.0").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (path / "0.0").write_bytes(bytes(raw))
    with pytest.raises(CorruptChunkError):
        exzarr.open(path, mode="r")[...]


@pytest.mark.parametrize("codec_id", ["crc32c", "crc32", "adler32", "fletcher32"])
def test_checksum_compressor_with_zarr_python_3(tmp_path: Path, codec_id: str) -> None:
    zarr = pytest.importorskip("zarr")
    import numcodecs

    data = np.arange(70, dtype="<f8").reshape(7, 10)
    ours = tmp_path / "ours"
    exzarr.create(shape=data.shape, chunks=(3, 4), dtype="<f8", compressor=codec_id,
                  storage="filesystem", path=ours)[...] = data
    z = zarr.open_array(str(ours), mode="r")
    np.testing.assert_array_equal(z[...], data)
    theirs = tmp_path / "theirs"
    t = zarr.create_array(store=str(theirs), zarr_format=2, shape=data.shape, chunks=(3, 4),
                          dtype="<f8", compressors=numcodecs.get_codec({"id": codec_id}),
                          fill_value=0.0)
    t[...] = data
    np.testing.assert_array_equal(exzarr.open(theirs, mode="r")[...], data)
    assert json.loads((ours / ".zarray").read_bytes())["compressor"] == json.loads(
        (theirs / ".zarray").read_bytes())["compressor"]
    for name in sorted(os.listdir(theirs)):
        if not name.startswith("."):
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


# ------------------------------------------------------------------ failed create
def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("bad", [
    {"attrs": {"x": object()}},
    {"data": np.zeros((3, 3))},
    {"data": np.array(["a", "b", "c", "d", "e", "f", "g", "h"])},
    {"compressor": {"id": "zstd", "level": 10 ** 30}},
    {"filters": [{"id": "delta", "dtype": "<i2"}]},
    {"fill_value": "nope"},
])
def test_failed_create_leaves_nothing_behind(tmp_path: Path, bad: dict[str, Any]) -> None:
    before = _listing(tmp_path)
    kwargs = {"shape": (8,), "chunks": (4,), "dtype": "<i4", **bad}
    with pytest.raises(ExZarrError):
        exzarr.create(storage="filesystem", path=tmp_path / "new", **kwargs)
    assert _listing(tmp_path) == before
    root = tmp_path / "g"
    g = exzarr.open_group(root, mode="w")
    before = _listing(tmp_path)
    with pytest.raises(ExZarrError):
        g.create_array("deep/er/arr", **kwargs)
    assert _listing(tmp_path) == before


def test_failed_overwrite_keeps_the_old_array(tmp_path: Path) -> None:
    path = tmp_path / "a"
    a = exzarr.create(shape=(8,), chunks=(4,), dtype="<i4", storage="filesystem", path=path)
    a[...] = np.arange(8)
    with pytest.raises(ExZarrError):
        exzarr.create(shape=(8,), chunks=(4,), dtype="<i4", storage="filesystem", path=path,
                      overwrite=True, data=np.zeros(5))
    np.testing.assert_array_equal(exzarr.open(path, mode="r")[...], np.arange(8))


def test_plugin_codec_rejecting_options_any_way() -> None:
    from exzarr.codecs import Codec, register_codec

    class Fussy(Codec):
        codec_id = "test-fussy-options"

        def __init__(self, level: int = 1) -> None:
            if level != 1:
                raise RuntimeError("only level 1")

    register_codec(Fussy)
    assert isinstance(exzarr.codecs.get_codec({"id": "test-fussy-options"}), Fussy)
    with pytest.raises(InvalidFilterConfigError, match="only level 1"):
        exzarr.codecs.get_codec({"id": "test-fussy-options", "level": 2})


def test_replacing_on_a_store_that_cannot_lock_keeps_the_old_data(tmp_path):
    """create(overwrite=True, lock=True) and open_group(mode="w") under config lock are
    refused before anything is deleted; a failed create(lock=True) leaves no folder."""
    from exzarr.storage.zip import ZipStore

    zpath = tmp_path / "a.zip"
    with ZipStore(zpath, mode="a") as z:
        old = exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage=z, path="x")
        old[...] = 3
    with ZipStore(zpath, mode="a") as z:
        with pytest.raises(LockNotSupportedError):
            exzarr.create(shape=(4,), chunks=(2,), storage=z, path="x", overwrite=True,
                          lock=True)
        with exzarr.config.set(lock=True), pytest.raises(LockNotSupportedError):
            exzarr.open_group(path="", storage=z, mode="w")
    with ZipStore(zpath, mode="r") as z:
        assert exzarr.open(path="x", storage=z, mode="r")[...].tolist() == [3, 3, 3, 3]
    target = tmp_path / "new" / "deep" / "arr"
    with pytest.raises(exzarr.InvalidArgumentError):
        exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage="filesystem",
                      path=str(target), lock=True, attrs={"bad": object()})
    with pytest.raises(Exception):  # noqa: B017 - any failure after the lock was taken
        exzarr.create(shape=(4,), chunks=(2,), dtype="i4", storage="filesystem",
                      path=str(target), lock=True, data=np.ones((3,)))
    assert not (tmp_path / "new").exists()
