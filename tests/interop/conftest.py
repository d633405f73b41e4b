"""Fixtures of the interoperability tests: where the zarr-python 2.18 interpreter is."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ZARR2_ENV = "EXZARR_ZARR2_PYTHON"


def zarr2_python() -> Path:
    """The interpreter with zarr-python 2.18 (``make test`` sets EXZARR_ZARR2_PYTHON)."""
    configured = os.environ.get(ZARR2_ENV)
    path = Path(configured) if configured else REPO / ".venv-zarr2" / "bin" / "python"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"the zarr-python 2.18 interpreter {str(path)!r} does not exist or is not "
            f"executable: set {ZARR2_ENV} to its absolute path, or run `make test`, which "
            f"creates {REPO / '.venv-zarr2'} and sets it", pytrace=False)
    return path


def run_zarr2_worker(worker: Path, mode: str, jobs: list[dict], workdir: Path,
                     timeout: float = 600) -> dict:
    """Run one batch of jobs through a zarr-python 2.18 worker script; its results."""
    python = zarr2_python()
    jobs_path = workdir / f"{mode}-jobs.json"
    results_path = workdir / f"{mode}-results.json"
    jobs_path.write_text(json.dumps(jobs, allow_nan=True), encoding="utf-8")
    try:
        proc = subprocess.run(
            [str(python), str(worker), mode, str(jobs_path), str(results_path)],
            capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{worker.name} {mode} took longer than {timeout:.0f} s", pytrace=False)
    if proc.returncode != 0 or not results_path.exists():
        pytest.fail(f"{worker.name} {mode} under {python} failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-2000:]}\n{proc.stderr[-5000:]}", pytrace=False)
    return json.loads(results_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def zarr2_interpreter() -> Path:
    return zarr2_python()
