# One entry point for every job. Each target creates .venv when missing.
# The interpreter is Debian's own python3 so that what we test is what the .deb ships.
PYTHON ?= /usr/bin/python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: paper test lint typecheck layers unit integration system deb bench soak clean

$(STAMP): pyproject.toml requirements/all.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/all.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The main job: the daemon in the foreground, paper trading against the built-in simulated exchange.
paper: $(STAMP)
	$(BIN)/trendbotd run --paper --foreground --config examples/paper.toml $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check trendbotd tests bench
	$(BIN)/ruff format --check trendbotd tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The import-linter contracts in pyproject.toml: core stays pure, only the composition root
# imports adapters/ and sim/, and the layers import downwards only.
layers: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

system: $(STAMP)
	packaging/install-build-deps.sh
	$(BIN)/pytest -q tests/system

# The whole suite: lint, strict type check, the layer contracts, unit, integration (real daemon
# + simulated exchange) and system tests (real systemd in systemd-nspawn, the built .deb).
test: $(STAMP)
	$(BIN)/ruff check trendbotd tests bench
	$(BIN)/ruff format --check trendbotd tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	packaging/install-build-deps.sh
	$(BIN)/pytest tests

deb:
	packaging/install-build-deps.sh
	packaging/build-deb.sh

bench: $(STAMP)
	$(BIN)/python -m bench

# Minutes: >= 10,000 engine ticks on an accelerated clock with random exchange faults,
# invariants checked after every tick. ARGS="--ticks N --seed S" to vary it.
soak: $(STAMP)
	$(BIN)/python bench/bench_soak.py $(ARGS)

clean:
	rm -rf $(VENV) dist build .mypy_cache .ruff_cache .pytest_cache var
