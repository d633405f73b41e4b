# exzarr: `make demo` and `make test` install what is missing (Debian packages, the
# virtual environments, the build) and then run.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.12 for the main environment (zarr-python 3.2+ needs it); 3.11 for the
# zarr-python 2.18 peer. Found on PATH or in pyenv.
# pyenv's own builds come first: its shims fail for versions that are not selected.
find_python = $(firstword $(wildcard $(HOME)/.pyenv/versions/$(1)*/bin/python$(1)) $(shell command -v python$(1) 2>/dev/null | grep -v /shims/))
PYTHON312 ?= $(call find_python,3.12)
PYTHON311 ?= $(or $(call find_python,3.11),$(call find_python,3.10))

VENV := .venv
VENV_ZARR2 := .venv-zarr2
PY := $(VENV)/bin/python
DEB_PACKAGES := libzstd-dev liblz4-dev libdeflate-dev libblosc-dev pkg-config gcc strace
PKGCONFIG_MODULES := libzstd liblz4 libdeflate blosc
CORE_SOURCES := setup.py pyproject.toml $(wildcard exzarr/*.pyx exzarr/*.pxi exzarr/*.pxd exzarr/_lib/*.pxd exzarr/_lib/*.h)
PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV)/bin/python -m pip -q

.PHONY: help deps venv build test demo bench bench-extra clean

help:
	@echo "make demo   write a dataset with exzarr, inspect it, read it with zarr-python, compare speed"
	@echo "make test   run the test suite (interop with zarr-python 3 / 2.18 and tensorstore)"
	@echo "make bench  run the benchmarks against the peers"
	@echo "make clean  remove build outputs and virtual environments"

# Debian packages: the compression libraries' headers and pkg-config; strace for a test
# that makes linking files fail (tests/test_chunk_files.py).
deps: .deps.stamp
.deps.stamp:
	@if ! pkg-config --exists $(PKGCONFIG_MODULES) 2>/dev/null || ! command -v strace >/dev/null; then \
	  echo "installing Debian packages: $(DEB_PACKAGES)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	fi
	@pkg-config --exists $(PKGCONFIG_MODULES) || { echo "pkg-config cannot find $(PKGCONFIG_MODULES)"; exit 1; }
	@touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements/test.txt | .deps.stamp
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found (install it, e.g. with pyenv, or set PYTHON312=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PIP) install -r requirements/test.txt
	@touch $@

$(VENV_ZARR2)/.stamp: requirements/zarr2.txt
	@test -n "$(PYTHON311)" || { echo "Python 3.11 or 3.10 not found for zarr-python 2.18 (set PYTHON311=...)"; exit 1; }
	@test -x $(VENV_ZARR2)/bin/python || $(PYTHON311) -m venv $(VENV_ZARR2)
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV_ZARR2)/bin/python -m pip -q install -r requirements/zarr2.txt
	@touch $@

# The compiled core: rebuilt when the Cython sources or the build files change.
build: $(VENV)/.build.stamp
$(VENV)/.build.stamp: $(VENV)/.stamp $(CORE_SOURCES)
	$(PIP) install --no-build-isolation --no-deps -e .
	$(PY) -c "import exzarr._core as c; print('exzarr core built:', c.__file__)"
	@touch $@

test: build $(VENV_ZARR2)/.stamp
	EXZARR_ZARR2_PYTHON=$(CURDIR)/$(VENV_ZARR2)/bin/python $(PY) -m pytest -q -p no:cacheprovider tests

demo: build
	$(PY) bench/demo.py --dir demo_data

bench: build
	$(PY) bench/run.py

bench-extra: build
	$(PY) bench/extra.py

clean:
	rm -rf build *.egg-info exzarr/*.c exzarr/*.so $(VENV) $(VENV_ZARR2) demo_data .deps.stamp .hypothesis
