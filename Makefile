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
# The browser tests (tests/browser) drive Debian's chromium through Playwright; Playwright never
# downloads a browser of its own (README, Testing).
CHROMIUM := /usr/bin/chromium
# Chinese text in the screenshots the browser tests save (Debian's fonts-noto-cjk).
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock'

.PHONY: run test lint typecheck unit bench clean lock chromium

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

test: lint typecheck chromium
	$(BIN)/pytest -q

# Debian's chromium package and CJK fonts, installed when missing. Without apt (not Debian) it
# says so and goes on: the browser tests then skip with the reason, or fail in CI
# (tests/browser/conftest.py).
chromium:
	@if [ -x $(CHROMIUM) ] && [ -e $(CJK_FONT) ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk; \
	else \
		echo "warning: no $(CHROMIUM) and no apt-get to install it: the browser tests" \
			"will be skipped (and fail in CI)" >&2; \
	fi

bench: $(STAMP)
	$(BIN)/publisher bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
