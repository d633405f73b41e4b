"""exzarr <-> zarr-python 3 (Zarr format 2), both directions, over the whole matrix."""

from __future__ import annotations

import json

import numcodecs
import numpy as np
import pytest
import zarr

from tests.interop.cases import (
    CASES,
    DELTA_CASES,
    EMPTY_CHUNK_CASES,
    case_ids,
    check_exzarr_reads,
    check_exzarr_wrote,
    codec_equal,
    expected_array,
    expected_chunks,
    exzarr_update,
    updatable,
    exzarr_write,
    fill_python,
    make_data,
    numcodecs_supports,
    NUMCODECS_BLOSC_CNAMES,
    region_slices,
    same_int_fill,
    stored_chunks,
    write_value,
    zarray,
)


# zarr-python 3 codecs are numcodecs': no blosc-snappy (see NUMCODECS_BLOSC_CNAMES).
ZARR3_CASES = [c for c in CASES if numcodecs_supports(c)]


def test_numcodecs_blosc_lacks_snappy():
    """Why the blosc-snappy cases are left out here (tensorstore covers them)."""
    import numcodecs.blosc

    assert sorted(numcodecs.blosc.list_compressors()) == sorted(NUMCODECS_BLOSC_CNAMES)


def zarr3_write(case, path, data=None, write_empty=None):
    """The case written by zarr-python 3 as a Zarr format 2 array."""
    if data is None:
        data = make_data(case)
    cfg = case["compressor"]
    filters = [numcodecs.get_codec(dict(f)) for f in case["filters"]] if case.get("filters") else None
    z = zarr.create_array(
        store=str(path), zarr_format=2, shape=tuple(case["shape"]), chunks=tuple(case["chunks"]),
        dtype=case["dtype"], compressors=numcodecs.get_codec(dict(cfg)) if cfg else None,
        filters=filters, fill_value=fill_python(case["fill"], case["dtype"]), order=case["order"],
        chunk_key_encoding={"name": "v2", "separator": case["sep"]},
        config={"write_empty_chunks": case["write_empty"] if write_empty is None else write_empty},
    )
    for write in case["writes"]:
        z[region_slices(write["region"])] = write_value(case, data, write)
    return z


def check_zarr3_reads(case, path, data=None):
    """zarr-python 3 reads what exzarr wrote: metadata, values, stored chunks."""
    z = zarr.open_array(str(path), mode="r")
    meta = z.metadata
    assert meta.zarr_format == 2
    assert z.dtype == np.dtype(case["dtype"]), z.dtype
    assert z.shape == tuple(case["shape"])
    assert z.chunks == tuple(case["chunks"])
    assert meta.order == case["order"]
    assert meta.dimension_separator == case["sep"]
    assert same_int_fill(z.fill_value, fill_python(case["fill"], case["dtype"])), \
        (z.fill_value, case["fill"])
    want = numcodecs.get_codec(dict(case["compressor"])) if case["compressor"] else None
    assert meta.compressor == want, (meta.compressor, want)
    if case.get("filters"):
        assert list(meta.filters) == [numcodecs.get_codec(dict(f)) for f in case["filters"]]
    else:
        assert not meta.filters
    values = z[...]
    if case["shape"]:  # a 0-d read gives a NumPy scalar, always native-endian
        assert values.dtype == np.dtype(case["dtype"])
    np.testing.assert_array_equal(values, expected_array(case, data))
    assert z.nchunks_initialized == len(expected_chunks(case, data))


@pytest.mark.parametrize("case", ZARR3_CASES, ids=case_ids(ZARR3_CASES))
def test_exzarr_writes_zarr3_reads(case, tmp_path):
    data = make_data(case)
    path = tmp_path / "a.zarr"
    exzarr_write(case, path, data)
    check_exzarr_wrote(case, path, data)
    check_zarr3_reads(case, path, data)


@pytest.mark.parametrize("case", ZARR3_CASES, ids=case_ids(ZARR3_CASES))
def test_zarr3_writes_exzarr_reads(case, tmp_path):
    data = make_data(case)
    path = tmp_path / "a.zarr"
    zarr3_write(case, path, data)
    check_exzarr_reads(case, path, data, codec_equal=codec_equal)


UPDATE_CASES = [c for c in ZARR3_CASES if updatable(c)][::4]


@pytest.mark.parametrize("case", UPDATE_CASES, ids=case_ids(UPDATE_CASES))
def test_exzarr_updates_zarr3_array(case, tmp_path):
    """zarr-python 3 writes, exzarr rewrites parts (some chunks back to fill), zarr-python
    3 reads: exzarr decodes, merges and re-encodes the peer's chunks."""
    data = make_data(case)
    path = tmp_path / "a.zarr"
    zarr3_write(case, path, data)
    updated = exzarr_update(case, path, data)
    check_zarr3_reads(updated, path, data)
    assert stored_chunks(path, case["sep"], len(case["shape"])) == expected_chunks(updated, data)


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_zarray_document_matches_zarr3(case, tmp_path):
    """exzarr's .zarray says what zarr-python 3's says for the same array (codecs compared
    as numcodecs codecs, fill values by value)."""
    exzarr_write(dict(case, writes=[]), tmp_path / "ex")
    zarr3_write(dict(case, writes=[]), tmp_path / "z3")
    ex, z3 = zarray(tmp_path / "ex"), zarray(tmp_path / "z3")
    assert set(ex) == set(z3), (sorted(ex), sorted(z3))
    for key in ("zarr_format", "shape", "chunks", "dtype", "order", "dimension_separator"):
        assert ex.get(key, ".") == z3.get(key, "."), key
    assert ex["filters"] is None and z3["filters"] is None
    assert codec_equal(ex["compressor"], z3["compressor"]), (ex["compressor"], z3["compressor"])
    if ex["compressor"] and ex["compressor"]["id"] == "zstd":
        assert ex["compressor"].get("checksum", True) is not False  # breaks tensorstore
    assert type(ex["fill_value"]) is type(z3["fill_value"]) or case["fill"] is None or \
        {type(ex["fill_value"]), type(z3["fill_value"])} <= {int, float}, (ex["fill_value"], z3["fill_value"])
    assert same_int_fill(fill_python(ex["fill_value"], case["dtype"]),
                         fill_python(z3["fill_value"], case["dtype"])), (ex["fill_value"], z3["fill_value"])


# ---------------------------------------------------------------------------------------
# Outside the matrix
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", DELTA_CASES, ids=case_ids(DELTA_CASES))
def test_delta_filter_exzarr_writes_zarr3_reads(case, tmp_path):
    data = make_data(case)
    exzarr_write(case, tmp_path / "a", data)
    check_exzarr_wrote(case, tmp_path / "a", data)
    check_zarr3_reads(case, tmp_path / "a", data)


@pytest.mark.parametrize("case", DELTA_CASES, ids=case_ids(DELTA_CASES))
def test_delta_filter_zarr3_writes_exzarr_reads(case, tmp_path):
    data = make_data(case)
    zarr3_write(case, tmp_path / "a", data)
    check_exzarr_reads(case, tmp_path / "a", data, codec_equal=codec_equal)
    import exzarr

    filters = exzarr.open(str(tmp_path / "a"), mode="r").filters
    assert [codec_equal(f.get_config(), w) for f, w in zip(filters, case["filters"])] == [True]


@pytest.mark.parametrize("write_empty", [False, True], ids=["write_empty_false", "write_empty_true"])
@pytest.mark.parametrize("case", EMPTY_CHUNK_CASES, ids=case_ids(EMPTY_CHUNK_CASES))
def test_write_empty_chunks_stores_what_zarr3_stores(case, write_empty, tmp_path):
    """The same writes through exzarr and zarr-python 3: the same chunk files exist."""
    case = dict(case, write_empty=write_empty)
    data = make_data(case)
    exzarr_write(case, tmp_path / "ex", data)
    zarr3_write(case, tmp_path / "z3", data)
    ex = stored_chunks(tmp_path / "ex", case["sep"], 2)
    z3 = stored_chunks(tmp_path / "z3", case["sep"], 2)
    assert ex == z3, f"exzarr stored {sorted(ex)}, zarr-python 3 stored {sorted(z3)}"
    assert ex == expected_chunks(case, data)
    check_zarr3_reads(case, tmp_path / "ex", data)
    check_exzarr_reads(case, tmp_path / "z3", data, codec_equal=codec_equal)


def test_matrix_covers_every_axis_value_with_every_dtype():
    """The covering design holds: each dtype meets every compressor config of the issue,
    every blosc cname; and every order, separator, fill value of its family, write
    pattern, write_empty_chunks value, and 1-, 2- and 3-D shapes; every blosc
    (cname, shuffle) meets every item size."""
    from tests.interop.cases import (
        BLOSC_CNAMES, BLOSC_SHUFFLES, DTYPES, ORDERS, PATTERNS, PLAIN_COMPRESSORS, SEPS,
        ZSTD_CHECKSUM, family, fill_choices,
    )

    assert 300 <= len(CASES) <= 500, len(CASES)
    for dt in DTYPES:
        mine = [c for c in CASES if c["dtype"] == dt and not c["id"].startswith("zero")]
        comps = [c["compressor"] for c in mine]
        for _, cfg in PLAIN_COMPRESSORS:
            assert cfg in comps, (dt, cfg)
        assert {c["cname"] for c in comps if c and c["id"] == "blosc"} >= set(BLOSC_CNAMES), dt
        assert {c["order"] for c in mine} == set(ORDERS), dt
        assert {c["sep"] for c in mine} == set(SEPS), dt
        assert {(c["order"], c["sep"]) for c in mine} == {(o, s) for o in ORDERS for s in SEPS}, dt
        assert {json.dumps(c["fill"]) for c in mine} == {json.dumps(f) for f in fill_choices(dt)}, dt
        assert {c["pattern"] for c in mine} == set(PATTERNS), dt
        assert {c["write_empty"] for c in mine} == {False, True}, dt
        assert {len(c["shape"]) for c in mine} == {1, 2, 3}, dt
        assert any(s % c for c_ in mine for s, c in zip(c_["shape"], c_["chunks"])), dt  # edge chunks
    assert {family(c["dtype"]) for c in CASES if c["compressor"] == ZSTD_CHECKSUM[1]} == \
        {"int", "uint", "float", "complex", "bool"}
    for size in {np.dtype(dt).itemsize for dt in DTYPES}:
        got = {(c["compressor"]["cname"], c["compressor"]["shuffle"]) for c in CASES
               if c["compressor"] and c["compressor"]["id"] == "blosc"
               and np.dtype(c["dtype"]).itemsize == size}
        assert got >= {(n, s) for n in BLOSC_CNAMES for s in BLOSC_SHUFFLES}, size
