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
VENV_NPLATEST := .venv-numpy-latest
PY := $(VENV)/bin/python
DEB_PACKAGES := libzstd-dev liblz4-dev libdeflate-dev libblosc-dev pkg-config gcc strace
PKGCONFIG_MODULES := libzstd liblz4 libdeflate blosc
CORE_SOURCES := setup.py pyproject.toml $(wildcard exzarr/*.pyx exzarr/*.pxi exzarr/*.pxd exzarr/_lib/*.pxd exzarr/_lib/*.h)
PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV)/bin/python -m pip -q

.PHONY: help deps venv build test test-numpy-latest fuzz demo bench bench-extra clean

help:
	@echo "make demo   write a dataset with exzarr, inspect it, read it with zarr-python, compare speed"
	@echo "make test   run the test suite (interop with zarr-python 3 / 2.18 and tensorstore)"
	@echo "            and the core, codec and indexing tests against the newest NumPy"
	@echo "make fuzz   long corrupted-chunk fuzz and 100 SIGKILLed writers per store, with figures"
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

# A DeprecationWarning raised from exzarr's own modules fails the run (numpy's warnings
# name the calling module). `-o filterwarnings` because that ini form is a regular
# expression matched at the start of the module name; `-W` matches one module exactly.
DEPRECATION_ERRORS := -o 'filterwarnings=error::DeprecationWarning:exzarr(\.|$$)'

test: build $(VENV_ZARR2)/.stamp
	EXZARR_ZARR2_PYTHON=$(CURDIR)/$(VENV_ZARR2)/bin/python $(PY) -m pytest -q -p no:cacheprovider $(DEPRECATION_ERRORS) tests
	$(MAKE) --no-print-directory test-numpy-latest

# The core, codec and indexing tests against the newest NumPy on PyPI, in a second
# environment holding an installed (not in-place) exzarr built from a copy of the
# sources, so neither build touches the other's files. The tests run from a copy too:
# pytest puts a test package's parent folder first on sys.path, and that must not be
# this checkout, whose exzarr/ holds the main environment's build.
NPLATEST_TESTS := test_codecs.py test_filters.py test_fancy_indexing.py \
  test_indexing_properties.py test_core_checks.py test_big_reads.py test_edge_cases.py
NPLATEST_PY := $(VENV_NPLATEST)/bin/python
NPLATEST_RUN := $(VENV_NPLATEST)/run
COPY_SOURCES = rm -rf $(1) && mkdir -p $(1) && tar -c --exclude='*.so' --exclude='*.c' \
  --exclude=__pycache__ $(2) | tar -x -C $(1)

$(VENV_NPLATEST)/.stamp: requirements/numpy-latest.txt | .deps.stamp
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found (install it, e.g. with pyenv, or set PYTHON312=...)"; exit 1; }
	@test -x $(NPLATEST_PY) || $(PYTHON312) -m venv $(VENV_NPLATEST)
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(NPLATEST_PY) -m pip -q install --upgrade -r requirements/numpy-latest.txt
	@touch $@

$(VENV_NPLATEST)/.build.stamp: $(VENV_NPLATEST)/.stamp $(CORE_SOURCES) $(wildcard exzarr/*.py exzarr/*/*.py)
	$(call COPY_SOURCES,$(VENV_NPLATEST)/src,setup.py pyproject.toml README.md exzarr)
	cd $(VENV_NPLATEST)/src && PIP_DISABLE_PIP_VERSION_CHECK=1 ../bin/python -m pip -q install --no-build-isolation --no-deps --force-reinstall .
	@touch $@

test-numpy-latest: $(VENV_NPLATEST)/.build.stamp $(VENV_ZARR2)/.stamp
	$(call COPY_SOURCES,$(NPLATEST_RUN),tests)
	cd $(NPLATEST_RUN) && ../bin/python -P -c "import exzarr, numpy; print('exzarr', exzarr.__file__, '| numpy', numpy.__version__)"
	cd $(NPLATEST_RUN) && EXZARR_ZARR2_PYTHON=$(CURDIR)/$(VENV_ZARR2)/bin/python ../bin/python -P -m pytest -q -p no:cacheprovider \
	  $(DEPRECATION_ERRORS) $(addprefix tests/,$(NPLATEST_TESTS))

# Long runs, not part of `make test`: EXZARR_FUZZ_INPUTS corrupted chunks (or
# EXZARR_FUZZ_SECONDS of them) through every C codec chain, then EXZARR_CRASH_RUNS
# SIGKILLed writers per store; both print their figures, and inputs that crashed or
# hung a decoder are kept in fuzz-failures/. Fails if either found a fault.
EXZARR_FUZZ_INPUTS ?= 200000
EXZARR_FUZZ_SECONDS ?= 0
EXZARR_CRASH_RUNS ?= 100
fuzz: build
	@status=0; \
	EXZARR_FUZZ_SECONDS=$(EXZARR_FUZZ_SECONDS) $(PY) tests/fuzz_driver.py --exhaustive \
	  --inputs $(EXZARR_FUZZ_INPUTS) --save fuzz-failures || status=1; \
	$(PY) tests/test_crash.py report --runs $(EXZARR_CRASH_RUNS) || status=1; \
	exit $$status

demo: build
	$(PY) bench/demo.py --dir demo_data

bench: build
	$(PY) bench/run.py

bench-extra: build
	$(PY) bench/extra.py

clean:
	rm -rf build *.egg-info exzarr/*.c exzarr/*.so $(VENV) $(VENV_ZARR2) $(VENV_NPLATEST) demo_data fuzz-failures .deps.stamp .hypothesis
