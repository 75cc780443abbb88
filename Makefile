# One word for each habit. Everything runs in a local virtualenv (.venv) so a
# fresh machine needs only Rust and Python 3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo install test test-deps test-rust test-python test-pythons test-wheel wheel lint format bench clean
.PHONY: bench-rust bench-python bench-mmap bench-load bench-kmers bench-kmers-query bench-kmers-kmc bench-dask docs docs-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

## install: build and install the package (Rust core and Python bindings)
install: $(PY)
	$(PY) -m pip install --quiet .

DEMO_OUT ?= $(VENV)/sample_kmers.maplet

## demo: the main job: count the k-mers of the bundled sample reads, query a few
# It installs as `make install` does, but says so first and shows pip's progress.
demo: $(PY)
	@echo "Building and installing the package into $(VENV) (Rust, release mode: a few minutes the first time)..."
	$(PY) -m pip install .
	@echo "Counting the 21-mers of examples/data/sample_reads.fa into $(DEMO_OUT)..."
	$(VENV)/bin/mappy kmers count -k 21 --rate 0.001 --expected-items 120000 -o $(DEMO_OUT) examples/data/sample_reads.fa
	@echo "The counts of three 21-mers of the sample:"
	sed -n '2p;4p;6p' examples/data/sample_reads.fa | cut -c1-21 | $(VENV)/bin/mappy kmers query $(DEMO_OUT)
	@echo "What the maplet holds, and its size:"
	$(VENV)/bin/mappy stats $(DEMO_OUT)
	@echo "The Python API (examples/basic_usage.py):"
	$(PY) examples/basic_usage.py

test-deps: $(PY)
	$(PY) -m pip install --quiet ".[test]"

## test: every test, Rust and Python
test: test-rust test-python

test-rust:
	cargo test -p mappy-core

test-python: test-deps
	$(PY) -m pytest -q
	$(PY) tests/test_integration.py

# Every supported CPython (pyproject.toml's requires-python), each found
# under pyenv (newest patch release) or as pythonX.Y on PATH.
# `make test-pythons PYTHONS="3.9 3.13"` runs some of them.
PYTHONS ?= 3.9 3.10 3.11 3.12 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
python_for = $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).[0-9]*/bin/python$(1)))),$(shell command -v python$(1)),$(error no Python $(1): install it with `pyenv install $(1)`, or choose others with PYTHONS="..."))
MATURIN := $(VENV)/bin/maturin

$(MATURIN): $(PY)
	$(PY) -m pip install --quiet "maturin>=1.9.3,<2"

## wheel: one wheel for each supported Python (PYTHONS) and an sdist, into dist/
wheel: $(MATURIN)
	rm -rf dist
	$(MATURIN) build --release --quiet --out dist $(foreach v,$(PYTHONS),--interpreter $(call python_for,$(v)))
	$(MATURIN) sdist --out dist

## test-wheel: each wheel installs and runs the quick start without Rust; the sdist builds
test-wheel: wheel
	$(PY) tests/wheel_check.py dist --build-sdist $(foreach v,$(PYTHONS),--python $(call python_for,$(v)))

## test-pythons: the Python tests on each supported Python, from its wheel, in .venv-X.Y
test-pythons: $(foreach v,$(PYTHONS),test-on-$(v))

test-on-%: test-wheel
	test -x .venv-$*/bin/python || $(call python_for,$*) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-$*/bin/python -m pip install --quiet --force-reinstall --no-deps dist/mappy_python-*-cp$(subst .,,$*)-*.whl
	.venv-$*/bin/python -m pip install --quiet "$$(echo dist/mappy_python-*-cp$(subst .,,$*)-*.whl)[test]"
	.venv-$*/bin/python -m pytest -q
	.venv-$*/bin/python tests/test_integration.py

## lint: formatting and lints, Rust and Python
lint: test-deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: test-deps
	cargo fmt --all
	$(PY) -m ruff format .

## bench: every benchmark (long); each script writes its results file in benchmarks/
bench: bench-rust bench-python bench-mmap bench-load bench-kmers bench-kmers-query bench-kmers-kmc bench-dask

bench-rust: test-deps
	$(PY) benchmarks/rust_bench.py

bench-python: test-deps
	$(PY) benchmarks/benchmark.py 1000000 5

bench-mmap: test-deps
	$(PY) benchmarks/mmap_open.py 50000000

# Needs Jellyfish 2 (Debian: apt-get install jellyfish).
bench-load: test-deps
	$(PY) benchmarks/load.py

## bench-dask: the sharded Dask build against the tree merge and one process (50M keys)
bench-dask: test-deps
	$(PY) benchmarks/dask/build.py

bench-kmers-query: test-deps
	@command -v jellyfish > /dev/null || { echo "bench-kmers-query needs jellyfish (Debian: apt-get install jellyfish)"; exit 1; }
	PYTHON=$(PY) bash benchmarks/kmers/query.sh

bench-kmers: test-deps
	@command -v jellyfish > /dev/null || { echo "bench-kmers needs jellyfish (Debian: apt-get install jellyfish)"; exit 1; }
	PYTHON=$(PY) bash benchmarks/kmers/run.sh

# Needs KMC 3, Jellyfish 2 and ART (Debian:
# apt-get install -y art-nextgen-simulation-tools kmc jellyfish); the genome
# comes from the Debian package ragout-examples (apt-get download).
bench-kmers-kmc: test-deps
	@for t in kmc kmc_tools jellyfish art_illumina; do command -v $$t > /dev/null || { echo "bench-kmers-kmc needs $$t (Debian: apt-get install -y art-nextgen-simulation-tools kmc jellyfish)"; exit 1; }; done
	$(PY) benchmarks/kmers/kmc.py --k 21 31 --threads 2 1

docs-deps: test-deps
	$(PY) -m pip install --quiet -r docs/requirements.txt

## docs: the user guide and API reference, built into site/ (warnings are errors)
docs: docs-deps
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
	$(PY) tests/test_site.py site

clean:
	rm -rf $(VENV) $(VENV)-* target dist site
