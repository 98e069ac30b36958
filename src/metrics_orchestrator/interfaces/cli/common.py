"""What every CLI command shares: exit codes, `fail`, settings with logging, and the one line
per command that names the database. Command modules import it; the package's `__init__`
(the typer app) imports the command modules, so no import has to hide inside a function."""

from __future__ import annotations

import typer

from metrics_orchestrator.bootstrap import (
    Settings,
    SettingsError,
    configure_logging,
    load_settings,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_announced: set[str] = set()


def say_database(description: str) -> None:
    """Which database the command uses (`bootstrap`'s `announce`): once per command, on
    stderr (stdout stays for the command's own output)."""
    if description not in _announced:
        _announced.add(description)
        typer.echo(f"database: {description}", err=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


# What a command for a person at a terminal logs unless LOG_LEVEL says otherwise: its own
# output already tells the outcome, so INFO lines (event replayed, run queued) are noise there.
QUIET_LOG_LEVEL = "ERROR"


def settings_or_exit(*, quiet: bool = False) -> Settings:
    """Settings from the environment, logging configured (to stderr). `quiet`: a command whose
    output is for a person logs errors only, unless LOG_LEVEL is set explicitly."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise fail(str(exc)) from None
    explicit = "log_level" in settings.model_fields_set
    level = settings.log_level if explicit or not quiet else QUIET_LOG_LEVEL
    configure_logging(level, settings.log_format)
    return settings


def forget_announcements() -> None:
    """A new command (or a test's new invocation) names its database again."""
    _announced.clear()
