"""The `metrics-orchestrator` command line (SPEC §6.1). Exit codes: 0 ok, 2 bad input, 1 other."""

from __future__ import annotations

import sys
from contextlib import ExitStack

import typer

from metrics_orchestrator.bootstrap import (
    MigrationError,
    Settings,
    SettingsError,
    configure_logging,
    load_settings,
    migrate,
    resolve_database_url,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="metrics-orchestrator",
    help="Reactive control plane for metric computations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise fail(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending database migrations (safe to run twice, or from two processes)."""
    settings = settings_or_exit()
    with ExitStack() as resources:
        url = resolve_database_url(settings, resources, auto_migrate=False)
        try:
            applied = migrate(url)
        except MigrationError as exc:
            raise fail(str(exc), EXIT_FAILURE) from None
    if applied:
        for migration in applied:
            typer.echo(f"applied {migration.version}_{migration.name}")
    else:
        typer.echo("database is up to date; nothing to apply")


def _register_subcommands() -> None:
    # Imported here so each command module can import helpers from this one.
    from metrics_orchestrator.interfaces.cli.catalog import catalog_app
    from metrics_orchestrator.interfaces.cli.demo import demo_command
    from metrics_orchestrator.interfaces.cli.ingest import ingest_command
    from metrics_orchestrator.interfaces.cli.sample_data import sample_data_command
    from metrics_orchestrator.interfaces.cli.send_update import send_update_command
    from metrics_orchestrator.interfaces.cli.serve import serve_command
    from metrics_orchestrator.interfaces.cli.worker import worker_command

    app.add_typer(catalog_app, name="catalog")
    app.command("ingest")(ingest_command)
    app.command("serve")(serve_command)
    app.command("send-update")(send_update_command)
    app.command("demo")(demo_command)
    app.command("worker")(worker_command)
    app.command("sample-data")(sample_data_command)


_register_subcommands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
