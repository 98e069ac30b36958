"""`migrate`: apply (or roll back) the database migrations."""

from __future__ import annotations

from contextlib import ExitStack

import typer

from metrics_orchestrator.bootstrap import (
    MigrationError,
    migrate,
    resolve_database_url,
    rollback_last,
)
from metrics_orchestrator.interfaces.cli.common import (
    EXIT_FAILURE,
    fail,
    say_database,
    settings_or_exit,
)


def migrate_command(
    rollback: bool = typer.Option(
        False,
        "--rollback",
        help="Undo the newest applied migration with its rollback script, instead.",
    ),
) -> None:
    """Apply pending database migrations (safe to run twice, or from two processes)."""
    settings = settings_or_exit()
    with ExitStack() as resources:
        url = resolve_database_url(settings, resources, auto_migrate=False, announce=say_database)
        try:
            if rollback:
                undone = rollback_last(url)
                typer.echo(
                    f"rolled back {undone.version}_{undone.name}"
                    if undone
                    else "no migration is applied; nothing to roll back"
                )
                return
            applied = migrate(url)
        except MigrationError as exc:
            raise fail(str(exc), EXIT_FAILURE) from None
    if applied:
        for migration in applied:
            typer.echo(f"applied {migration.version}_{migration.name}")
    else:
        typer.echo("database is up to date; nothing to apply")
