# The venv is created on first use so that `make test` / `make run` work on a fresh machine
# with nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint format run bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --editable . --group dev
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

run: $(STAMP)
	$(BIN)/closecast run

bench: $(STAMP)
	$(BIN)/python bench/bench_presets.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# --- Local Prefect stack (docs/stack.md): server + UI on 127.0.0.1:4200, process work pool,
# the deployments of deployments/prefect.yaml and a worker. Port, storage and source come
# from CLOSECAST_STACK_PORT, CLOSECAST_STORAGE, CLOSECAST_SOURCE (e.g. make stack-up
# CLOSECAST_STACK_PORT=4300); extra flags through STACK_ARGS.
.PHONY: stack-up stack-down stack-status

stack-up: $(STAMP)
	$(BIN)/closecast stack up $(STACK_ARGS)

stack-down: $(STAMP)
	$(BIN)/closecast stack down $(STACK_ARGS)

stack-status: $(STAMP)
	$(BIN)/closecast stack status $(STACK_ARGS)
