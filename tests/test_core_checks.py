"""The core refuses malformed arguments with an error, never a crash or lost data.

Each call runs in a child process: before these checks several of them crashed the
interpreter (a plan whose arithmetic overflowed 64 bits, an object-dtype output).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PRELUDE = """
import numpy as np, exzarr._core as C
P = C.Pipeline([], None)
pl = lambda *e: np.array([[list(e)]], np.int64)
try:
{call}
except {error} as exc:
    print("refused:", exc)
else:
    print("accepted")
"""

CASES = {
    "count overflowing the array": ("C.decode_into(P, [b'abcd'], np.zeros(4, 'u1'), "
                                    "pl(0, 1, 2**63 - 1, 1), (4,), False, b'\\0')", "ValueError"),
    "step overflowing the chunk": ("C.decode_into(P, [b'abcd'], np.zeros(3, 'u1'), "
                                   "pl(0, -2**63 + 1, 0, 3), (4,), False, b'\\0')", "ValueError"),
    "write overflowing the array": ("C.encode_from(P, np.zeros(4, 'u1'), pl(0, 1, 2**63 - 1, 1), "
                                    "[None], (4,), False, b'\\0', True)", "ValueError"),
    "object output": ("C.decode_into(P, [b'\\x01' * 8], np.empty(1, object), pl(0, 1, 0, 1), "
                      "(1,), False, b'\\0' * 8)", "TypeError"),
    "object value": ("C.encode_from(P, np.empty(1, object), pl(0, 1, 0, 1), [None], (1,), False, "
                     "b'\\0' * 8, True)", "TypeError"),
    "negative shuffle": ("C.Pipeline([{'kind': 'shuffle', 'param': -1}], None)", "ValueError"),
    "negative bitround": ("C.Pipeline([{'kind': 'bitround', 'param': -9, 'elem': 'f4'}], None)",
                          "ValueError"),
    "bitround past the mantissa": ("C.Pipeline([{'kind': 'bitround', 'param': 53, 'elem': 'f8'}], "
                                   "None)", "ValueError"),
    "nan_kind of another width": ("C.encode_from(P, np.array([1, 2, 3], 'u1'), pl(0, 1, 0, 3), "
                                  "[None], (3,), False, b'\\0', False, nan_kind=8)", "ValueError"),
    "path with a NUL": ("C.decode_into(P, [None], np.zeros(4, 'u1'), pl(0, 1, 0, 4), (4,), False, "
                        "b'\\0', [b'/tmp/x\\0junk'], np.zeros(1, np.uint8), None)", "ValueError"),
    "path that is not bytes": ("C.decode_into(P, [None], np.zeros(4, 'u1'), pl(0, 1, 0, 4), (4,), "
                               "False, b'\\0', [3], np.zeros(1, np.uint8), None)", "ValueError"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_core_calls_are_refused(name):
    call, error = CASES[name]
    code = PRELUDE.format(call="    " + call, error=error)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"crashed (exit {r.returncode}): {r.stderr[-800:]}"
    assert r.stdout.startswith("refused:"), r.stdout + r.stderr


def test_a_chunk_is_never_replaced_by_itself(tmp_path):
    import numpy as np

    from exzarr import _core

    f = tmp_path / "chunk"
    f.write_bytes(b"keep")
    with pytest.raises(OSError):
        _core.replace_file(str(f), str(f))
    path = str(f).encode()
    with pytest.raises(ValueError, match="temporary path"):
        _core.encode_from(_core.Pipeline([], None), np.arange(4, dtype="u1"),
                          np.array([[[0, 1, 0, 4]]], np.int64), [None], (4,), False, b"\0",
                          True, paths=[path], tmp_paths=[path])
    assert f.read_bytes() == b"keep"


def test_plans_at_the_edges_still_work():
    import numpy as np

    from exzarr import _core

    out = np.zeros(3, "u1")
    _core.decode_into(_core.Pipeline([], None), [b"abcd"], out,
                      np.array([[[3, -1, 0, 3]]], np.int64), (4,), False, b"\0")
    assert out.tobytes() == b"dcb"  # a negative step from the chunk's last element
    out = np.zeros(2, "u1")
    _core.decode_into(_core.Pipeline([], None), [b"abcd"], out,
                      np.array([[[0, 3, 0, 2]]], np.int64), (4,), False, b"\0")
    assert out.tobytes() == b"ad"  # a step of chunk length - 1


def test_two_spellings_of_a_chunk_path_keep_the_chunk(tmp_path):
    """A temporary name that is the chunk's own path spelled otherwise: the rename is a
    no-op and the new chunk must stay (it was unlinked as "the old file")."""
    import numpy as np

    from exzarr import _core

    f = tmp_path / "chunk"
    other = str(tmp_path) + "//chunk"
    _core.encode_from(_core.Pipeline([], None), np.arange(4, dtype="u1"),
                      np.array([[[0, 1, 0, 4]]], np.int64), [None], (4,), False, b"\0",
                      True, paths=[str(f).encode()], tmp_paths=[other.encode()])
    assert f.read_bytes() == bytes(range(4))
    f.write_bytes(b"old!")  # and over an existing chunk: refused (EEXIST), the old one kept
    from exzarr.errors import _ChunkFailure

    with pytest.raises(_ChunkFailure):
        _core.encode_from(_core.Pipeline([], None), np.arange(4, dtype="u1"),
                          np.array([[[0, 1, 0, 4]]], np.int64), [None], (4,), False, b"\0",
                          True, paths=[str(f).encode()], tmp_paths=[other.encode()])
    assert f.read_bytes() == b"old!"
