"""The CLI as a person runs it, in-process (typer's runner), against a test database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from metrics_orchestrator.bootstrap import bootstrap
from metrics_orchestrator.infrastructure.settings import load_settings
from metrics_orchestrator.interfaces.cli import app
from tests.integration.intake_helpers import update_body

runner = CliRunner()


def load_multi_dataset_world(
    database_url: str, catalogs_dir: Path, *updates: tuple[str, str]
) -> str:
    """The multi-dataset catalog, then each (dataset, version) update through intake."""
    document = yaml.safe_load((catalogs_dir / "multi_dataset_catalog.yaml").read_text())
    settings = load_settings(env={"DATABASE_URL": database_url})
    with bootstrap(settings) as container:
        container.catalog.load_catalog(document)
        for dataset, version in updates:
            container.router.handle(update_body(dataset, version), source="test")
    return database_url


def cli(database_url: str, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"DATABASE_URL": database_url, "LOG_LEVEL": "ERROR"})


def cli_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
