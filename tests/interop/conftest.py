"""Fixtures of the interoperability tests: where the zarr-python 2.18 interpreter is."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def zarr2_interpreter() -> Path:
    return zarr2_python()
