# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv it needs (.venv) from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint unit e2e e2e-up e2e-down bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/proxbox-scheduler demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The whole suite: lint, unit, integration, and end-to-end against the real proxbox-api.
test: lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

e2e: $(STAMP)
	$(BIN)/pytest -m e2e

# The real stack of the e2e tests (tests/e2e/stack), for a person at a terminal.
e2e-up: $(STAMP)
	$(BIN)/python -m tests.e2e.stack up

e2e-down: $(STAMP)
	$(BIN)/python -m tests.e2e.stack down

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
