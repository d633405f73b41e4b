"""The ``exzarr`` command line: ``exzarr info`` on arrays, groups and bad paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import exzarr
from exzarr.cli import find_arrays, main


def _array(path: Path, **kwargs) -> exzarr.Array:
    opts = {"shape": (100, 80), "chunks": (30, 30), "dtype": "float32",
            "compressor": {"id": "zstd", "level": 1}}
    opts.update(kwargs)
    a = exzarr.create(storage="filesystem", path=path, **opts)
    a[...] = np.arange(a.size, dtype=a.dtype).reshape(a.shape)
    return a


def _group(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ (group): temperature, sub/ (group): counts, and a non-Zarr folder."""
    root = tmp_path / "root"
    _group(root)
    _array(root / "temperature")
    _group(root / "sub")
    _array(root / "sub" / "counts", shape=(1000,), chunks=(100,), dtype="int64",
           filters=[("delta", {"dtype": "int64"})])
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not zarr")
    return root


def test_info_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _array(tmp_path / "a")
    assert main(["info", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.strip() == str(exzarr.open(tmp_path / "a", mode="r").info)
    for label, value in [("Shape", "(100, 80)"), ("Chunk shape", "(30, 30)"),
                         ("Order", "C"), ("Data type", "float32"), ("Filters", "None"),
                         ("Compressor", "Zstd(level=1)"), ("Chunks initialized", "12/12")]:
        line = next(ln for ln in out.splitlines() if ln.startswith(label + " "))
        assert value in line, line
    stored = a.nbytes_stored
    assert f"No. bytes stored   : {stored} " in out
    assert f"Storage ratio      : {a.nbytes / stored:.2f}" in out


def test_info_group_tree(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tree)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"{tree}: Zarr group, 2 arrays\n")
    lines = out.splitlines()
    # Each array under its path in the group, underlined, in sorted order.
    i = lines.index("sub/counts")
    j = lines.index("temperature")
    assert i < j
    assert lines[i + 1] == "-" * len("sub/counts")
    assert lines[j + 1] == "-" * len("temperature")
    assert "Filters            : Delta(dtype='<i8', astype='<i8')" in lines[i:j]
    assert "Shape              : (1000,)" in lines[i:j]
    assert "Shape              : (100, 80)" in lines[j:]
    assert "notes" not in out


def test_info_group_without_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _group(tmp_path / "g")
    assert main(["info", str(tmp_path / "g")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'g'}: Zarr group, 0 arrays\n"


def test_find_arrays_skips_chunk_directories(tmp_path: Path) -> None:
    _group(tmp_path)
    _array(tmp_path / "nested", dimension_separator="/")  # chunks in subdirectories
    assert [p.name for p in find_arrays(tmp_path)] == ["nested"]


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert main(["info", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("exzarr: error: ")
    assert "no such path" in err and str(missing) in err
    assert "Traceback" not in err


def test_not_zarr_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data.bin").write_bytes(b"\0" * 10)
    assert main(["info", str(tmp_path / "plain")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("exzarr: error: ")
    assert "not a Zarr array or group" in err
    assert "Traceback" not in err


def test_file_instead_of_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _array(tmp_path / "a")
    assert main(["info", str(tmp_path / "a" / ".zarray")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_corrupt_metadata_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _array(tmp_path / "a")
    (tmp_path / "a" / ".zarray").write_text("{not json")
    assert main(["info", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("exzarr: error: ") and "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"exzarr {exzarr.__version__}"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["info"], ["frobnicate"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "usage: exzarr" in capsys.readouterr().err


def test_console_script(tree: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "exzarr"
    assert script.exists(), f"console script not installed at {script}: pip install -e ."
    ok = subprocess.run([str(script), "info", str(tree / "temperature")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "Shape              : (100, 80)" in ok.stdout
    bad = subprocess.run([str(script), "info", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("exzarr: error: no such path")
    assert "Traceback" not in bad.stderr


def test_python_dash_m(tree: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "exzarr", "info", str(tree)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "sub/counts" in proc.stdout
