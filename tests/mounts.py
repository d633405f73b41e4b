"""Small file systems for tests of full and read-only disks: a tmpfs of a given size
mounted in the test's folder, and remounted read-only on request. Tests that need one
skip, with the reason, where mounting is not allowed (not root, no mount namespace)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's syntax: "1m") at ``where`` (made here), unmounted
    afterwards."""
    where.mkdir()
    try:
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(where)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small file system for this test")
    if run.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here ({run.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def remount_ro(mnt: Path) -> None:
    """Make the tmpfs at ``mnt`` read-only."""
    run = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True,
                         text=True)
    if run.returncode != 0:
        pytest.skip(f"remounting read-only is not allowed here ({run.stderr.strip()})")
