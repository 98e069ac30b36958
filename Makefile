# Every target bootstraps its own virtual environment on first use (and when
# pyproject.toml changes), so a fresh machine needs only Python, make and git.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit demo run bench bench-full migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,worker]'
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
