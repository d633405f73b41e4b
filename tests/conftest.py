"""Shared fixtures: every test gets its own thread count reset and temp dirs."""

from __future__ import annotations

import pytest

import exzarr


@pytest.fixture(autouse=True)
def _reset_config():
    threads = exzarr.config.get("threads")
    yield
    exzarr.config.set(threads=threads)
