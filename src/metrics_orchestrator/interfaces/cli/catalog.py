"""`metrics-orchestrator catalog ...` commands."""

from __future__ import annotations

import typer

catalog_app = typer.Typer(help="Manage the catalog of datasets, series and metrics.")
