# The two commands of a fresh Debian machine with Python 3.11:
#   make run    run the worker (embedded PostgreSQL when nothing is configured)
#   make test   lint, type-check and run the whole test suite (installs what it needs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run test lint unit integration faults services tools bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# setuptools warns on every editable install with a package-dir mapping that folders named
	# like the package may shadow it; the mapping is the layout (DESIGN §2), so the notice goes.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/financial worker

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p financial -p tests -p benchmarks

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

services:
	./scripts/ensure-services.sh

tools:
	./scripts/ensure-test-tools.sh

integration: $(STAMP) services tools
	$(BIN)/pytest -q tests/integration

faults: $(STAMP) services
	$(BIN)/pytest -q tests/integration/faults

test: $(STAMP) services tools lint
	$(BIN)/pytest -q tests

$(BENCH_STAMP): $(STAMP)
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[dev,embedded,bench]'
	touch $(BENCH_STAMP)

# Side by side with APScheduler, about 12 minutes; not part of `make test`. BENCH_ARGS=--quick
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
