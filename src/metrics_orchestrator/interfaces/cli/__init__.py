"""The `metrics-orchestrator` command line (SPEC §6.1). Exit codes: 0 ok, 2 bad input, 1 other."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import typer

from metrics_orchestrator import __version__
from metrics_orchestrator.interfaces.cli import help_format
from metrics_orchestrator.interfaces.cli.catalog import catalog_app
from metrics_orchestrator.interfaces.cli.common import (
    EXIT_OK,
    forget_announcements,
)
from metrics_orchestrator.interfaces.cli.demo import demo_command
from metrics_orchestrator.interfaces.cli.incidents import (
    freshness_command,
    incidents_app,
    notify_app,
)
from metrics_orchestrator.interfaces.cli.ingest import ingest_command
from metrics_orchestrator.interfaces.cli.migrate import migrate_command
from metrics_orchestrator.interfaces.cli.read_catalog import (
    list_datasets_command,
    list_metrics_command,
    show_metric_command,
)
from metrics_orchestrator.interfaces.cli.read_events import events_app
from metrics_orchestrator.interfaces.cli.read_orchestration import datasets_app, metrics_app
from metrics_orchestrator.interfaces.cli.read_runs import runs_app
from metrics_orchestrator.interfaces.cli.runs_actions import (
    cancel_command,
    refresh_command,
    retry_command,
    run_metric_command,
)
from metrics_orchestrator.interfaces.cli.sample_data import sample_data_command
from metrics_orchestrator.interfaces.cli.send_update import send_update_command
from metrics_orchestrator.interfaces.cli.serve import serve_command
from metrics_orchestrator.interfaces.cli.worker import worker_command

help_format.apply()

app = typer.Typer(
    name="metrics-orchestrator",
    help="Reactive control plane for metric computations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"metrics-orchestrator {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    _version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """Reactive control plane for metric computations."""
    forget_announcements()


def _register_commands() -> None:
    # Panels in the order a newcomer meets them: try it, feed it, read it, operate it.
    start, feed, read, operate = "Start here", "Feed it", "Read it", "Operate it"
    app.command("demo", rich_help_panel=start)(demo_command)
    app.command("serve", rich_help_panel=start)(serve_command)
    app.add_typer(catalog_app, name="catalog", rich_help_panel=feed)
    app.command("send-update", rich_help_panel=feed)(send_update_command)
    app.command("ingest", rich_help_panel=feed)(ingest_command)
    app.add_typer(runs_app, name="runs", rich_help_panel=read)
    metrics_app.command("list")(list_metrics_command)
    datasets_app.command("list")(list_datasets_command)
    app.add_typer(metrics_app, name="metrics", rich_help_panel=read)
    app.add_typer(datasets_app, name="datasets", rich_help_panel=read)
    app.add_typer(events_app, name="events", rich_help_panel=read)
    app.add_typer(incidents_app, name="incidents", rich_help_panel=read)
    app.command("freshness", rich_help_panel=read)(freshness_command)
    app.add_typer(notify_app, name="notify", rich_help_panel=operate)
    app.command("sample-data", rich_help_panel=feed)(sample_data_command)
    app.command("migrate", rich_help_panel=operate)(migrate_command)
    app.command("worker", rich_help_panel=operate)(worker_command)
    runs_app.command("retry")(retry_command)
    runs_app.command("cancel")(cancel_command)
    metrics_app.command("run")(run_metric_command)
    metrics_app.command("refresh")(refresh_command)
    metrics_app.command("show")(show_metric_command)


_register_commands()


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_cleanly_on_termination() -> None:
    """SIGTERM and SIGHUP unwind the stack like Ctrl-C does, so cleanups (above all, stopping
    the embedded PostgreSQL) run; their default action would kill the process on the spot.
    `serve` replaces these handlers with its own graceful stop while it runs."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)


def main() -> None:
    exit_cleanly_on_termination()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
