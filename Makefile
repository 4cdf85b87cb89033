# Vigil: `make demo` and `make test` are all a newcomer needs. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.vigil-setup-stamp
DURATION ?=

.PHONY: setup system-deps demo test test-unit test-integration lint typecheck clean

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

$(STAMP): pyproject.toml scripts/install-python-deps.sh
	@bash scripts/install-python-deps.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/vigil demo $(if $(DURATION),--duration $(DURATION),)

test: setup
	$(VENV)/bin/python -m pytest -q -rfEs tests
	$(VENV)/bin/ruff check pipeline workers tests benchmarks
	$(VENV)/bin/mypy

test-unit: setup
	$(VENV)/bin/python -m pytest -q tests/unit

test-integration: setup
	$(VENV)/bin/python -m pytest -q -rfEs tests/integration

lint: setup
	$(VENV)/bin/ruff check pipeline workers tests benchmarks
	$(VENV)/bin/ruff format --check pipeline workers tests

typecheck: setup
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
