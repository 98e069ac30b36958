# Every target bootstraps its own virtual environment on first use (and when
# pyproject.toml changes), so a fresh machine needs only Python, make and git.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit mutation demo run bench bench-full migrate clean vendor \
	screenshots

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

# The dashboard screenshots in docs/ui/ (docs/ui.md shows them), taken by every browser suite;
# `make test` writes its screenshots to a temporary folder and leaves the checkout clean.
screenshots: $(STAMP)
	UI_SCREENSHOTS_DIR=$(CURDIR)/docs/ui $(BIN)/pytest tests/acceptance/test_web_*browser.py -p no:cacheprovider

# Mutation testing of the domain rules against the unit tests (no database); not part of
# `make test`. Configuration in pyproject.toml [tool.mutmut]; survivors explained in
# docs/mutation.md. A fresh mutants/ each time, so no result is reused from older tests.


mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
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

# The dashboard's JavaScript/CSS, vendored into the package so the UI and /docs work offline.
# Exact versions: bump one here, run `make vendor`, and update docs/ui.md (versions, licences).
WEB_VENDOR := src/metrics_orchestrator/interfaces/web/static/vendor
NPM_PACKAGES := htmx.org@2.0.11 cytoscape@3.35.0 cytoscape-dagre@4.0.1 chart.js@4.6.1 \
	swagger-ui-dist@5.35.0

vendor:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent $(NPM_PACKAGES) >/dev/null) && \
	for tgz in "$$tmp"/*.tgz; do d="$${tgz%.tgz}"; mkdir -p "$$d"; tar xzf "$$tgz" -C "$$d"; done && \
	rm -rf $(WEB_VENDOR) && mkdir -p $(WEB_VENDOR)/htmx $(WEB_VENDOR)/cytoscape \
		$(WEB_VENDOR)/cytoscape-dagre $(WEB_VENDOR)/chartjs $(WEB_VENDOR)/swagger-ui && \
	cp "$$tmp"/htmx.org-*/package/dist/htmx.min.js "$$tmp"/htmx.org-*/package/LICENSE \
		$(WEB_VENDOR)/htmx/ && \
	cp "$$tmp"/cytoscape-[0-9]*/package/dist/cytoscape.min.js \
		"$$tmp"/cytoscape-[0-9]*/package/LICENSE $(WEB_VENDOR)/cytoscape/ && \
	cp "$$tmp"/cytoscape-dagre-*/package/dist/cytoscape-dagre.min.js \
		"$$tmp"/cytoscape-dagre-*/package/LICENSE $(WEB_VENDOR)/cytoscape-dagre/ && \
	cp "$$tmp"/chart.js-*/package/dist/chart.umd.min.js "$$tmp"/chart.js-*/package/LICENSE.md \
		$(WEB_VENDOR)/chartjs/ && \
	cp "$$tmp"/swagger-ui-dist-*/package/swagger-ui-bundle.js \
		"$$tmp"/swagger-ui-dist-*/package/swagger-ui.css \
		"$$tmp"/swagger-ui-dist-*/package/favicon-32x32.png \
		"$$tmp"/swagger-ui-dist-*/package/LICENSE "$$tmp"/swagger-ui-dist-*/package/NOTICE \
		$(WEB_VENDOR)/swagger-ui/ && \
	echo "$(NPM_PACKAGES)" | tr ' ' '\n' > $(WEB_VENDOR)/VERSIONS && \
	echo "vendored into $(WEB_VENDOR): $(NPM_PACKAGES)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
