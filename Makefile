# Every target bootstraps its own virtual environment on first use (and when
# pyproject.toml changes), so a fresh machine needs only Python, make and git.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit mutation demo run bench bench-full migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict src tests bench

test: lint typecheck
	$(BIN)/pytest --cov --cov-report=term

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# Mutation testing of the domain rules against the unit tests (no database); not part of
# `make test`. Configuration in pyproject.toml [tool.mutmut]; survivors explained in
# docs/mutation.md. A fresh mutants/ each time, so no result is reused from older tests.
MUTATION_FIXTURES ?= $(abspath $(CURDIR)/../shared/fixtures)

mutation: $(STAMP)
	rm -rf mutants
	METRICS_ORCHESTRATOR_FIXTURES=$(MUTATION_FIXTURES) $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

demo: $(STAMP)
	$(BIN)/metrics-orchestrator demo

run: $(STAMP)
	$(BIN)/metrics-orchestrator serve --http-host 127.0.0.1 --http-port 8000 $(SERVE_FLAGS)

migrate: $(STAMP)
	$(BIN)/metrics-orchestrator migrate

bench: $(STAMP)
	$(BIN)/python -m bench --quick

bench-full: $(STAMP)
	$(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
