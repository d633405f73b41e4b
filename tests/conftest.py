"""Shared fixtures: every test gets its own thread settings reset and temp dirs."""

from __future__ import annotations

import pytest

import exzarr


@pytest.fixture(autouse=True)
def _reset_config():
    # Test arrays are small: share any two chunks between threads, so the threaded
    # paths run as they do on real data (test_small_work_stays_on_the_calling_thread
    # checks the default).
    saved = {k: exzarr.config.get(k) for k in ("threads", "task_bytes")}
    exzarr.config.set(task_bytes=0)
    yield
    exzarr.config.set(**saved)
