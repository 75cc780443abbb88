# One word for each habit. Everything runs in a local virtualenv (.venv) so a
# fresh machine needs only Rust and Python 3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo install test test-deps test-rust test-python lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

## install: build and install the package (Rust core and Python bindings)
install: $(PY)
	$(PY) -m pip install --quiet .

## demo: the main job, on the bundled sample data
demo: install
	$(PY) examples/basic_usage.py

test-deps: $(PY)
	$(PY) -m pip install --quiet ".[test]"

## test: every test, Rust and Python
test: test-rust test-python

test-rust:
	cargo test -p mappy-core

test-python: test-deps
	$(PY) -m pytest -q

## lint: formatting and lints, Rust and Python
lint: test-deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: test-deps
	cargo fmt --all
	$(PY) -m ruff format .

## bench: the Rust and Python benchmarks (long; results go to benchmarks/)
bench: test-deps
	cargo bench -p mappy-core --bench maplet
	$(PY) benchmarks/benchmark.py

clean:
	rm -rf $(VENV) target
