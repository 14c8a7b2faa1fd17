# The two commands of a fresh Debian machine with Python 3.11:
#   make run    run the worker (embedded PostgreSQL when nothing is configured)
#   make test   lint, type-check and run the whole test suite (installs what it needs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# .venv's Python (major.minor) picks its lock, requirements/dev-py$(PY).txt (see scripts/lock.sh).
PY := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# The versions the package declares; `make test` runs the unit and contract suites on each of
# them besides .venv's (a version this machine lacks is reported, see scripts/test-versions.sh).
PYTHONS := 3.11 3.12 3.13
EXTRA_PYTHONS ?= $(filter-out $(PY),$(PYTHONS))
TOOLS := .tools

.PHONY: run test lint unit integration faults services tools versions bench lock lock-upgrade \
	clean

# A virtual environment holding exactly a lock's files (hash-checked), then the package itself,
# editable, built by the locked setuptools. Made anew when the lock or pyproject.toml changes.
# $(1): folder, $(2): interpreter, $(3): lock. `pip check` catches a pyproject.toml that asks
# for something its lock lacks (run `make lock`).
define make_venv
	rm -rf $(1)
	$(2) -m venv $(1)
	$(1)/bin/pip install --quiet --require-hashes -r $(3)
	# setuptools warns on every editable install with a package-dir mapping that folders named
	# like the package may shadow it; the mapping is the layout (DESIGN §2), so the notice goes.
	PYTHONWARNINGS="ignore:Editable installation" \
		$(1)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	$(1)/bin/pip check >/dev/null || { $(1)/bin/pip check; \
		echo "$(3) does not hold what pyproject.toml asks for: run make lock" >&2; exit 1; }
	touch $(1)/.installed
endef

$(STAMP): pyproject.toml requirements/dev-py$(PY).txt
	$(call make_venv,$(VENV),$(PYTHON),requirements/dev-py$(PY).txt)

# `$(PYTHON)` is a version with no lock: say which ones have one.
requirements/dev-py%.txt:
	@echo "no lock for Python $* ($(PYTHON)): supported versions are $(PYTHONS);" \
		"run with PYTHON=python3.11 (or 3.12, 3.13)" >&2; exit 1

# The unit suite's venv for another version: make .venv-3.12/.installed
.venv-%/.installed: pyproject.toml requirements/dev-py%.txt
	@python="$$(scripts/find-python.sh $*)" || { echo "no Python $* on this machine" >&2; exit 1; }; \
		echo "Python $*: $$python"
	$(call make_venv,.venv-$*,"$$(scripts/find-python.sh $*)",requirements/dev-py$*.txt)

run: $(STAMP)
	$(BIN)/financial worker

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# Type-checked for each declared version (typeshed's stubs differ between them).
	$(foreach v,$(PYTHONS),$(BIN)/mypy --python-version $(v) -p financial -p tests -p benchmarks &&) true

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The unit and contract suites on the other declared versions (each on asyncio and uvloop).
versions:
	./scripts/test-versions.sh $(EXTRA_PYTHONS)

services:
	./scripts/ensure-services.sh

tools:
	./scripts/ensure-test-tools.sh

integration: $(STAMP) services tools
	$(BIN)/pytest -q tests/integration

faults: $(STAMP) services
	$(BIN)/pytest -q tests/integration/faults

# The other versions first (quick), then the whole suite, whose summary is the last line.
test: $(STAMP) services tools lint versions
	$(BIN)/pytest -q tests

# Side by side with APScheduler, about 15 minutes; not part of `make test`. BENCH_ARGS=--quick
bench: $(STAMP)
	./scripts/ensure-bench-tools.sh
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

$(TOOLS)/.installed: requirements/tools.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --require-hashes -r requirements/tools.txt
	touch $@

# Regenerate requirements/*.txt from pyproject.toml, keeping the pins that still fit (after adding
# a dependency, say); lock-upgrade takes the newest versions the ranges allow. See scripts/lock.sh.
lock: $(TOOLS)/.installed
	UV=$(TOOLS)/bin/uv ./scripts/lock.sh

lock-upgrade: $(TOOLS)/.installed
	LOCK_UPGRADE=1 UV=$(TOOLS)/bin/uv ./scripts/lock.sh

clean:
	rm -rf $(VENV) .venv-3.* $(TOOLS) .data .mypy_cache .ruff_cache .pytest_cache
