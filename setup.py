"""Build the exzarr Cython core against the system compression libraries.

The libraries (libzstd, liblz4, libdeflate, libblosc) are located with pkg-config,
as a conda recipe or a Debian build would. Conda-style prefixes and unusual layouts
override the lookup with environment variables:

``EXZARR_PREFIX``
    A prefix holding ``include/`` and ``lib/`` (for example ``$CONDA_PREFIX``).
``EXZARR_INCLUDE_DIRS`` / ``EXZARR_LIBRARY_DIRS``
    ``os.pathsep``-separated directories added to the compiler and linker search path.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# pkg-config module name -> library name passed to the linker when pkg-config is absent.
LIBRARIES = {"libzstd": "zstd", "liblz4": "lz4", "libdeflate": "deflate", "blosc": "blosc"}


def _pkg_config(*args: str) -> list[str] | None:
    try:
        out = subprocess.run(
            ["pkg-config", *args], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def _split_dirs(var: str) -> list[str]:
    return [d for d in os.environ.get(var, "").split(os.pathsep) if d]


def library_flags() -> dict[str, list[str]]:
    """Compiler and linker flags for the four compression libraries."""
    include_dirs = _split_dirs("EXZARR_INCLUDE_DIRS")
    library_dirs = _split_dirs("EXZARR_LIBRARY_DIRS")
    prefix = os.environ.get("EXZARR_PREFIX")
    if prefix:
        include_dirs.append(os.path.join(prefix, "include"))
        library_dirs.append(os.path.join(prefix, "lib"))
    libraries: list[str] = []
    for module, fallback in LIBRARIES.items():
        flags = None if prefix else _pkg_config("--cflags", "--libs", module)
        if flags is None:
            libraries.append(fallback)
            continue
        for flag in flags:
            if flag.startswith("-I"):
                include_dirs.append(flag[2:])
            elif flag.startswith("-L"):
                library_dirs.append(flag[2:])
            elif flag.startswith("-l"):
                libraries.append(flag[2:])
    return {
        "include_dirs": list(dict.fromkeys(include_dirs)),
        "library_dirs": list(dict.fromkeys(library_dirs)),
        "libraries": list(dict.fromkeys(libraries)),
    }


flags = library_flags()
extensions = [
    Extension(
        "exzarr._core",
        ["exzarr/_core.pyx"],
        include_dirs=[numpy.get_include(), *flags["include_dirs"]],
        library_dirs=flags["library_dirs"],
        libraries=flags["libraries"],
        # The oldest NumPy the package supports (pyproject.toml): its C-API is what the
        # core may call, whatever the NumPy it is built with (PyDataMem_SetHandler is
        # hidden below 1.22 by NumPy 2's headers otherwise).
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("NPY_TARGET_VERSION", "NPY_1_25_API_VERSION")],
        # A call to an undeclared function must fail the build, not the import.
        extra_compile_args=["-O3", "-Werror=implicit-function-declaration"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
