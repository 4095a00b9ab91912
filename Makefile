# The venv is created on first use so that `make test` / `make run` work on a fresh machine
# with nothing but Python 3.11+ and make. It holds exactly the set locked in uv.lock (the
# tested versions): `make lock` after changing dependencies in pyproject.toml, `make upgrade`
# to move every dependency to its newest allowed release.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# uv installs the lock. It lives beside the environment, not in it, so that an exact sync
# (which removes whatever the lock does not list) never removes uv itself.
UV_VERSION ?= 0.13.9
UV_HOME := $(VENV)/uv-tool
UV := $(UV_HOME)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install test test-fast lint format run bench clean lock upgrade

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet --target $(UV_HOME) "uv==$(UV_VERSION)"

# --compile-bytecode: every process the suite and the CLI start (xdist workers, Prefect's
# server, flow-run children, Dask workers) imports TensorFlow and Prefect. Without .pyc files
# (uv writes none by default; with PYTHONDONTWRITEBYTECODE set Python never writes them) each
# of those imports recompiles the sources: 17 CPU-s for `import tensorflow` instead of 6.
$(STAMP): pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --locked --group dev --compile-bytecode
	touch $(STAMP)

lock: | $(UV)
	$(UV) lock

upgrade: | $(UV)
	$(UV) lock --upgrade

install: $(STAMP)

# The suite runs on every core (pytest-xdist; TEST_WORKERS=1 for one process). --dist loadfile
# keeps each test file on one worker, so a module's fixtures (trained models) are built once;
# --no-loadscope-reorder hands the files out in the order tests/conftest.py sorts them (the
# costliest first), not xdist's default of the files with the most tests first, which left
# the few long ones (the stack, child processes) to run last.
TEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

# The inner loop: everything but the flow runs (tests on the Prefect test API) and the tests
# marked slow (child processes, the local stack, a browser, multi-day replays).
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow and not flow"

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
