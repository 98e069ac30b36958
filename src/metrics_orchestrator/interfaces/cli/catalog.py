"""`metrics-orchestrator catalog ...` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml

from metrics_orchestrator.application.catalog_plan import CatalogLoadResult
from metrics_orchestrator.application.ports.catalog import UpsertOutcome
from metrics_orchestrator.bootstrap import bootstrap
from metrics_orchestrator.domain.errors import Conflict, FieldError, ValidationError
from metrics_orchestrator.interfaces.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    fail,
    say_database,
    settings_or_exit,
)

catalog_app = typer.Typer(help="Manage the catalog of datasets, series and metrics.")

DRY_RUN_LABELS = {
    UpsertOutcome.CREATED: "would create",
    UpsertOutcome.UPDATED: "would change",
    UpsertOutcome.UNCHANGED: "would leave alone",
}


class CatalogFileError(Exception):
    """The file cannot be read as a catalog at all (missing, unreadable, not YAML/JSON)."""


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise ValueError(f"duplicate key {key!r}")
        mapping[key] = value
    return mapping


def read_catalog_file(path: Path) -> object:
    """Parse a catalog file: JSON when it is named `*.json`, YAML otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogFileError("file not found") from None
    except IsADirectoryError:
        raise CatalogFileError("is a directory, not a catalog file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFileError(f"cannot read file: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_json_object)
        except ValueError as exc:
            raise CatalogFileError(f"not valid JSON: {exc}") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise CatalogFileError(yaml_problem(exc)) from None
    if document is None:
        raise CatalogFileError(
            "file is empty; expected keys series, datasets, metrics, notifications"
        )
    return document


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one readable line: where, what, and in which construct.

    Its own str() names the input `<unicode string>` and repeats positions; the path is
    printed by the caller already, so only line and column (1-based) are kept.
    """
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"not valid YAML: {_one_line(str(exc))}"
    mark = exc.problem_mark
    message = f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    context, where = exc.context, exc.context_mark
    if context and where is not None and (where.line, where.column) != (mark.line, mark.column):
        message += f" ({context} that starts at line {where.line + 1}, column {where.column + 1})"
    elif context:
        message += f" ({context})"
    return message


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _print_errors(file: Path, errors: tuple[FieldError, ...]) -> None:
    for error in errors:
        where = error.path or str(file)
        typer.echo(f"error: {where}: {_one_line(error.message)}", err=True)


def _print_summary(file: Path, result: CatalogLoadResult) -> None:
    typer.echo(f"loaded catalog {file}")
    typer.echo(f"  series:   {result.series}")
    typer.echo(f"  datasets: {result.datasets}")
    typer.echo(f"  metrics:  {result.metrics}")
    if result.canceled_runs:
        ids = ", ".join(result.canceled_runs)
        typer.echo(f"  canceled the pending run of changed metrics: {ids}")


def _print_dry_run(file: Path, result: CatalogLoadResult) -> None:
    typer.echo(f"dry run of catalog {file}: nothing was written")
    for kind, counts in (
        ("series", result.series),
        ("datasets", result.datasets),
        ("metrics", result.metrics),
    ):
        typer.echo(f"  {kind + ':':<10}{counts}")
        for outcome, label in DRY_RUN_LABELS.items():
            keys = [i.key for i in result.items if i.kind == kind and i.outcome is outcome]
            if keys:
                typer.echo(f"    {label}: {', '.join(keys)}")
    if result.canceled_runs:
        ids = ", ".join(result.canceled_runs)
        typer.echo(f"  would cancel the pending run of these changed metrics (by id): {ids}")
    else:
        typer.echo("  would cancel no pending run")


def _result_json(result: CatalogLoadResult, *, dry_run: bool) -> dict[str, object]:
    by_kind: dict[str, object] = {}
    for kind in ("series", "datasets", "metrics"):
        by_kind[kind] = {
            outcome.value: [i.key for i in result.items if i.kind == kind and i.outcome is outcome]
            for outcome in DRY_RUN_LABELS
        }
    return {"dry_run": dry_run, **by_kind, "canceled_pending_runs_of": list(result.canceled_runs)}


@catalog_app.command("load")
def load_command(
    file: Path = typer.Argument(..., help="Catalog file, YAML or JSON (*.json)."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print what would be created, changed or left alone, and which pending runs "
        "would be canceled; write nothing.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """Create or update series, datasets and metrics from FILE, all or nothing.

    Loading the same file again changes nothing.

    On bad input nothing is written and every problem is printed at once (exit code 2).

    Each problem is one line: `error: <path>: <message>`.
    """
    settings = settings_or_exit(quiet=dry_run)
    try:
        document = read_catalog_file(file)
    except CatalogFileError as exc:
        raise fail(f"{file}: {exc}") from None
    try:
        with bootstrap(settings, announce=say_database) as container:
            catalog = container.catalog
            result = (
                catalog.preview_catalog(document) if dry_run else catalog.load_catalog(document)
            )
    except ValidationError as exc:
        _print_errors(file, exc.errors)
        raise typer.Exit(EXIT_USAGE) from None
    except Conflict as exc:
        raise fail(f"{file}: {exc}") from None
    except Exception as exc:
        raise fail(f"catalog load failed: {_one_line(str(exc))}", EXIT_FAILURE) from None
    if as_json:
        typer.echo(json.dumps(_result_json(result, dry_run=dry_run), indent=2))
    elif dry_run:
        _print_dry_run(file, result)
    else:
        _print_summary(file, result)
