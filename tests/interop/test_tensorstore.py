"""exzarr <-> tensorstore (driver "zarr", file kvstore), both directions.

Cases tensorstore's zarr driver documentedly cannot do are left out of the
parametrization (cases.tensorstore_supports): any non-null ``filters`` ("Currently,
filters are not supported"), compressors other than zlib/gzip/blosc/bz2/zstd (so no lz4),
and zstd members other than ``level`` (so no ``checksum``).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorstore as ts

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
    native,
    region_slices,
    same_int_fill,
    stored_chunks,
    tensorstore_supports,
    write_value,
    zarray,
)

TS_CASES = [c for c in CASES if tensorstore_supports(c)]
LEFT_OUT = [c for c in CASES if not tensorstore_supports(c)]


def ts_spec(path) -> dict:
    # No fsync after each write: these are throwaway files.
    return {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)},
            "context": {"file_io_sync": False}}


def ts_case(case):
    """The case as tensorstore writes it: it cannot create a 0-d or 1-D array with order
    "F" (open fails with 'Expected "order" of "F" but received: "C"'; for one dimension
    the two orders lay out the same bytes), so those are written and expected as "C"."""
    return dict(case, order="C") if len(case["shape"]) <= 1 else case


def ts_write(case, path, data=None, write_empty=None):
    """The case written by tensorstore."""
    case = ts_case(case)
    if data is None:
        data = make_data(case)
    metadata = {
        "zarr_format": 2, "shape": case["shape"], "chunks": case["chunks"],
        "dtype": case["dtype"], "compressor": case["compressor"], "fill_value": case["fill"],
        "order": case["order"], "filters": None, "dimension_separator": case["sep"],
    }
    spec = dict(ts_spec(path), metadata=metadata,
                store_data_equal_to_fill_value=case["write_empty"] if write_empty is None else write_empty)
    t = ts.open(spec, create=True).result()
    for write in case["writes"]:
        t[region_slices(write["region"])].write(native(write_value(case, data, write))).result()
    return t


def check_ts_reads(case, path, data=None):
    """tensorstore reads what exzarr wrote: parsed metadata and values."""
    t = ts.open(ts_spec(path), open=True, read=True).result()
    meta = t.spec().to_json()["metadata"]
    assert meta["dtype"] == case["dtype"], meta["dtype"]
    assert meta["shape"] == case["shape"] and meta["chunks"] == case["chunks"]
    assert meta["order"] == case["order"]
    assert meta.get("dimension_separator", ".") == case["sep"]
    assert meta.get("filters") is None
    assert codec_equal(meta["compressor"], case["compressor"]), (meta["compressor"], case["compressor"])
    assert same_int_fill(fill_python(meta["fill_value"], case["dtype"]),
                         fill_python(case["fill"], case["dtype"])), (meta["fill_value"], case["fill"])
    assert t.shape == tuple(case["shape"])
    values = t.read().result()
    assert values.dtype == np.dtype(case["dtype"]).newbyteorder("="), values.dtype
    np.testing.assert_array_equal(values, expected_array(case, data))


def test_left_out_cases_are_only_documented_limits():
    """The matrix minus tensorstore's cases: lz4 and zstd with checksum, nothing else."""
    ids = {c["compressor"]["id"] + ("-checksum" if "checksum" in c["compressor"] else "")
           for c in LEFT_OUT}
    assert ids == {"lz4", "zstd-checksum"}, ids
    # And tensorstore does refuse them.
    for cfg in ({"id": "lz4", "acceleration": 1}, {"id": "zstd", "level": 3, "checksum": True}):
        with pytest.raises(ValueError):
            ts.open({"driver": "zarr", "kvstore": {"driver": "memory"},
                     "metadata": {"shape": [4], "chunks": [2], "dtype": "<i4", "compressor": cfg}},
                    create=True).result()


@pytest.mark.parametrize("case", TS_CASES, ids=case_ids(TS_CASES))
def test_exzarr_writes_tensorstore_reads(case, tmp_path):
    data = make_data(case)
    path = tmp_path / "a.zarr"
    exzarr_write(case, path, data)
    check_exzarr_wrote(case, path, data)
    check_ts_reads(case, path, data)


@pytest.mark.parametrize("case", TS_CASES, ids=case_ids(TS_CASES))
def test_tensorstore_writes_exzarr_reads(case, tmp_path):
    data = make_data(case)
    path = tmp_path / "a.zarr"
    ts_write(case, path, data)
    check_exzarr_reads(ts_case(case), path, data, codec_equal=codec_equal)


UPDATE_CASES = [c for c in TS_CASES if updatable(c)][1::4]


@pytest.mark.parametrize("case", UPDATE_CASES, ids=case_ids(UPDATE_CASES))
def test_exzarr_updates_tensorstore_array(case, tmp_path):
    """tensorstore writes, exzarr rewrites parts (some chunks back to fill), tensorstore
    reads."""
    data = make_data(case)
    path = tmp_path / "a.zarr"
    ts_write(case, path, data)
    updated = exzarr_update(ts_case(case), path, data)
    check_ts_reads(updated, path, data)
    if case["fill"] is not None:  # tensorstore stores zero chunks when fill is null
        assert stored_chunks(path, case["sep"], len(case["shape"])) == expected_chunks(updated, data)


# ---------------------------------------------------------------------------------------
# Outside the matrix
# ---------------------------------------------------------------------------------------

def test_delta_filter_is_refused_by_tensorstore(tmp_path):
    """Not an exzarr limit: tensorstore rejects any filters (documented); exzarr's .zarray
    with a delta filter gets the same clear refusal, not a misread."""
    case = DELTA_CASES[0]
    exzarr_write(case, tmp_path / "a")
    with pytest.raises(ValueError, match="filters"):
        ts.open(ts_spec(tmp_path / "a"), open=True).result()


@pytest.mark.parametrize("write_empty", [False, True], ids=["write_empty_false", "write_empty_true"])
@pytest.mark.parametrize("case", EMPTY_CHUNK_CASES, ids=case_ids(EMPTY_CHUNK_CASES))
def test_write_empty_chunks_stores_what_tensorstore_stores(case, write_empty, tmp_path):
    """exzarr's write_empty_chunks against tensorstore's store_data_equal_to_fill_value."""
    case = dict(case, write_empty=write_empty)
    data = make_data(case)
    exzarr_write(case, tmp_path / "ex", data)
    ts_write(case, tmp_path / "ts", data)
    ex = stored_chunks(tmp_path / "ex", case["sep"], 2)
    tsc = stored_chunks(tmp_path / "ts", case["sep"], 2)
    assert ex == expected_chunks(case, data)
    if case["fill"] is not None or write_empty:
        assert ex == tsc, f"exzarr stored {sorted(ex)}, tensorstore stored {sorted(tsc)}"
    else:
        # tensorstore treats fill_value null as "no fill value": it stores every chunk.
        assert ex <= tsc, f"exzarr stored {sorted(ex)}, tensorstore stored {sorted(tsc)}"
    check_ts_reads(case, tmp_path / "ex", data)
    check_exzarr_reads(case, tmp_path / "ts", data, codec_equal=codec_equal)


@pytest.mark.parametrize("case", TS_CASES[::7], ids=case_ids(TS_CASES[::7]))
def test_zarray_written_by_exzarr_is_accepted_by_tensorstore_as_given(case, tmp_path):
    """Opening with exzarr's own .zarray as the expected metadata: tensorstore checks
    each member against what it parses from disk."""
    exzarr_write(dict(case, writes=[]), tmp_path / "a")
    doc = zarray(tmp_path / "a")
    t = ts.open(dict(ts_spec(tmp_path / "a"), metadata=doc), open=True).result()
    assert t.shape == tuple(case["shape"])
