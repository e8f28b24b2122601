# Two commands: `make run` (the whole system, embedded default, demo data) and `make test`.
# `make lock` after changing the dependencies in pyproject.toml (README, Dependencies).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions with their hashes, for every supported Python (3.11-3.13): the dev lock
# is what `make` installs, the runtime lock (the same versions, no dev tools) the image's.
DEV_LOCK := requirements-dev.lock
LOCK := requirements.lock
# Kept pins stay where they are; `make lock LOCK_FLAGS=--upgrade` moves all to the newest.
LOCK_FLAGS ?=
COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock'

.PHONY: run test lint typecheck unit bench clean lock

$(STAMP): $(DEV_LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lock: $(STAMP)
	$(COMPILE) --extra dev $(LOCK_FLAGS) -o $(DEV_LOCK)
	$(COMPILE) --constraint $(DEV_LOCK) -o $(LOCK)

run: $(STAMP)
	$(BIN)/publisher up --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/publisher bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
