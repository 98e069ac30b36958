"""`metrics-orchestrator demo`."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from metrics_orchestrator.bootstrap import configure_logging
from metrics_orchestrator.interfaces.cli.common import (
    EXIT_FAILURE,
    fail,
    say_database,
    settings_or_exit,
)
from metrics_orchestrator.interfaces.demo import DemoFailed, run_demo


def demo_command() -> None:
    """Run a scripted story on an embedded stack: real computations, scripted faults (<1 min)."""

    settings = settings_or_exit()
    # The story is told on stdout; only errors go to the log.
    configure_logging("ERROR", settings.log_format)
    # Piped output (CI, tests) gets a table wide enough for the dataset versions and values.
    console = Console(width=None if sys.stdout.isatty() else 180)
    try:
        run_demo(console, settings, announce=say_database)
    except DemoFailed as exc:
        raise fail(f"demo failed: {exc}", EXIT_FAILURE) from None
    raise typer.Exit(0)
