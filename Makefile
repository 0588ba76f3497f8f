# Two commands for a fresh machine that has only python3: `make demo` and `make test`.
# Both create .venv when missing and (re)install only when pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench manifests image helm clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[operator]' --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/entitlement-sidecar demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

# Fetch the pinned helm binary into .tools/ (ignored); chart tests do this by themselves.
helm: $(STAMP)
	$(BIN)/python scripts/fetch_helm.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
