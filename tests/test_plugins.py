"""Third-party codecs and storage backends, installed as a package with entry points."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import exzarr
from exzarr.codecs import Codec, get_codec, register_codec

PLUGIN = Path(__file__).parent / "plugins" / "exzarr_plugin_demo"


@pytest.fixture(scope="module")
def plugin_installed():
    """pip-install the demo plugin package into this environment (idempotent)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", str(PLUGIN)],
        check=True, capture_output=True, text=True,
    )
    importlib.invalidate_caches()
    yield


def test_codec_plugin_from_entry_point_round_trips(plugin_installed, tmp_path):
    codec = get_codec({"id": "xor-demo", "key": 7})
    assert type(codec).__module__ == "exzarr_plugin_demo"
    path = str(tmp_path / "a")
    a = exzarr.create(shape=(20, 9), chunks=(6, 4), dtype="<i4", compressor={"id": "xor-demo"},
                      storage="filesystem", path=path)
    data = np.arange(180, dtype="<i4").reshape(20, 9)
    a[...] = data
    raw = (Path(path) / "0.0").read_bytes()
    assert raw == bytes(b ^ 0x5A for b in data[:6, :4].tobytes())
    np.testing.assert_array_equal(exzarr.load(path=path), data)


def test_plugin_codec_as_filter_next_to_core_codecs(plugin_installed):
    a = exzarr.create(shape=(100,), chunks=(30,), dtype="i8",
                      filters=[("delta", {"dtype": "int64"}), ("xor-demo", {"key": 3})],
                      compressor="zstd")
    a[...] = np.arange(100) ** 2
    np.testing.assert_array_equal(a[...], np.arange(100) ** 2)
    np.testing.assert_array_equal(a[::-7], (np.arange(100) ** 2)[::-7])


def test_storage_plugin_from_entry_point(plugin_installed, tmp_path):
    db = str(tmp_path / "db")
    a = exzarr.create(shape=(10, 10), chunks=(4, 4), dtype="f4", storage="dbm-demo", path=db)
    a[2:8, 3:] = 1.5
    a.store.close()
    b = exzarr.open(path=db, storage="dbm-demo", mode="r")
    assert b.store.backend == "dbm-demo"
    expected = np.zeros((10, 10), "f4")
    expected[2:8, 3:] = 1.5
    np.testing.assert_array_equal(b[...], expected)


def test_register_codec_in_process():
    @register_codec
    class Negate(Codec):
        codec_id = "negate-test"

        def encode(self, buf):
            return (-np.frombuffer(buf, dtype="i2")).tobytes()

        def decode(self, buf, out=None):
            return (-np.frombuffer(buf, dtype="i2")).tobytes()

    a = exzarr.create(shape=(9,), chunks=(4,), dtype="i2", filters=[{"id": "negate-test"}])
    a[...] = np.arange(9)
    assert a.store.get("0") is not None
    np.testing.assert_array_equal(a[...], np.arange(9))


def test_plugin_core_steps_with_numpy_values_and_shared_pipelines(tmp_path):
    # A plugin codec's core step may hold NumPy scalars (and values JSON has no word
    # for): the array still gets a core pipeline. Arrays with one chain share one.
    from exzarr.codecs.compressors import Zstd

    @register_codec
    class NumpyLevelZstd(Zstd):
        codec_id = "zstd-numpy-level-test"

        def _step(self, typesize):
            return {"kind": "zstd", "level": np.int32(self.level), "checksum": np.bool_(False)}

    @register_codec
    class OddValueZstd(Zstd):
        codec_id = "zstd-odd-value-test"

        def _step(self, typesize):
            return {"kind": "zstd", "level": self.level, "note": object()}

    arrays = []
    for k, compressor in enumerate([NumpyLevelZstd(3), NumpyLevelZstd(3), OddValueZstd(3),
                                    {"id": "zstd", "level": 3}, {"id": "zstd", "level": 4}]):
        a = exzarr.create(shape=(10,), chunks=(5,), dtype="i4", compressor=compressor,
                          storage="filesystem", path=str(tmp_path / f"a{k}"))
        a[:] = np.arange(10)
        np.testing.assert_array_equal(a[:], np.arange(10))
        arrays.append(a)
    # Chunks are plain zstd frames at the level asked for, whichever codec made them.
    want = get_codec({"id": "zstd", "level": 3}).encode(np.arange(5, dtype="i4").tobytes())
    assert all(a.store.get("0") == want for a in arrays[:4])
    pipes = [a._pipeline for a in arrays]
    assert pipes[0] is pipes[1] is pipes[3]  # the same chain: one pipeline
    assert pipes[2] is not pipes[0] and pipes[4] is not pipes[0]
