# The two commands of the README:  `make run` (the platform) and `make test` (the tests).
# Both set up everything they need on a fresh machine first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench system-deps

run: $(STAMP)
	$(BIN)/python -m tasks.cli.runner

# PYTEST_ARGS narrows or adds to the run, e.g. `make test PYTEST_ARGS=tests/schedules`.
# TEST_WORKERS: pytest-xdist workers, each with its own servers (0: one process, no xdist).
# Most of the suite waits on processes (beat, workers, podman), so two workers halve the time
# on two cores; tests sharing a stand-up stay in one worker (--dist loadgroup, tests/conftest.py).
TEST_WORKERS ?= 2
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

# Every benchmark at sizes that finish within 15 minutes; `make bench QUICK=1` is a smoke run.
bench: $(STAMP) system-deps
	$(BIN)/python bench/run_all.py $(if $(QUICK),--quick)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# redis-server and PostgreSQL (required in CI) from the OS packages when missing.
system-deps:
	@bash .ci/system-deps
