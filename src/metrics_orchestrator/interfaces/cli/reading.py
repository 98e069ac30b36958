"""What the read commands share: a container, one-line errors, tables or JSON (SPEC §6.1)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import structlog
import typer
from rich.console import Console
from rich.table import Table

from metrics_orchestrator.bootstrap import Container, SettingsError, bootstrap
from metrics_orchestrator.domain.errors import Conflict, NotFound, ValidationError
from metrics_orchestrator.interfaces.cli.common import (
    EXIT_FAILURE,
    fail,
    say_database,
    settings_or_exit,
)

logger = structlog.get_logger(__name__)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON (for scripts) instead of a table.")


@contextmanager
def read_container() -> Iterator[Container]:
    """The application built from settings (the embedded database when none is configured);
    every expected failure ends the command with one line on stderr."""
    settings = settings_or_exit(quiet=True)
    try:
        container = bootstrap(settings, announce=say_database)
    except SettingsError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # no traceback for a database that cannot be opened
        raise fail(f"cannot open the database: {_first_line(exc)}", EXIT_FAILURE) from None
    with container:
        try:
            yield container
        except (NotFound, ValidationError) as exc:
            raise fail(str(exc)) from None
        except Conflict as exc:
            raise fail(str(exc), EXIT_FAILURE) from None
        except Exception as exc:  # the database's own errors: one line; LOG_LEVEL=DEBUG has more
            logger.debug("read command failed", exc_info=True)
            raise fail(f"{type(exc).__name__}: {_first_line(exc)}", EXIT_FAILURE) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, UUIDs and datetimes as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2, sort_keys=False))


def console() -> Console:
    # Piped output gets a fixed width so lines are not cut at 80 columns; wide enough for the
    # metrics list (state, runs, data time, staleness, objective) to keep a reason on one line.
    return Console(width=None if sys.stdout.isatty() else 240)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(cell_text(cell) for cell in row))
    console().print(table)


def cell_text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def print_fields(title: str, fields: Sequence[tuple[str, object]]) -> None:
    """A two-column table: one named value per line."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in fields:
        table.add_row(name, cell_text(value))
    console().print(table)
