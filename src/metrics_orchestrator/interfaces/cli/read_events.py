"""`events list [--status]` and `events replay KEY`: the event log, at a terminal."""

from __future__ import annotations

import typer

from metrics_orchestrator.application.ports.events import EventStatus, LoggedEvent
from metrics_orchestrator.interfaces.cli.reading import (
    JSON_OPTION,
    jsonable,
    print_json,
    print_table,
    read_container,
)

events_app = typer.Typer(
    help="Read the event log; replay or dismiss rejected events.", no_args_is_help=True
)


@events_app.command("list")
def list_events_command(
    status: EventStatus | None = typer.Option(None, help="Only events with this outcome."),
    limit: int = typer.Option(50, min=1, max=500, help="At most this many events."),
    cursor: str | None = typer.Option(None, help="The next-page cursor of a previous list."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The event log, newest first (what GET /events shows)."""
    with read_container() as container:
        page = container.queries.list_events(status=status, limit=limit, cursor=cursor)
    if as_json:
        items = [event_dict(e) for e in page.events]
        print_json({"items": items, "next_cursor": page.next_cursor})
        return
    count = len(page.events)
    print_table(
        f"{count} event{'' if count == 1 else 's'}",
        ["key", "type", "status", "source", "received", "error", "inbox"],
        [
            [e.event_key, e.event_type, e.status, e.source, e.received_at, e.error, _inbox(e)]
            for e in page.events
        ],
    )
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}")


def _inbox(event: LoggedEvent) -> str | None:
    """Where a rejected event stands: dismissed (why), replayed (when), or tried again."""
    if event.dismiss_reason is not None:
        return f"dismissed: {event.dismiss_reason}"
    if event.replayed_at is not None:
        return f"replayed {event.replayed_at:%Y-%m-%d %H:%M:%S%z}"
    if event.replay_attempts:
        return f"rejected again {event.replay_attempts}x"
    return None


def event_dict(event: LoggedEvent) -> dict[str, object]:
    # The raw body can be large and is in `payload` already when it decoded.
    data: dict[str, object] = jsonable(event)
    data.pop("raw_body", None)
    return data


@events_app.command("dismiss")
def dismiss_event_command(
    event_key: str = typer.Argument(..., metavar="KEY", help="The rejected event's key."),
    reason: str = typer.Option(
        ..., "--reason", help="Why it will never be valid (1-500 characters); kept in the log."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Take a rejected event that can never be valid out of the inbox (kept in the log)."""
    with read_container() as container:
        dismissed = container.router.dismiss(event_key, reason)
    if as_json:
        print_json(event_dict(dismissed))
        return
    typer.echo(f"dismissed {dismissed.event_key}: {dismissed.dismiss_reason}")


@events_app.command("replay")
def replay_event_command(
    event_key: str = typer.Argument(..., metavar="KEY", help="The rejected event's key."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-run a rejected event through intake (e.g. once the catalog knows its dataset)."""
    with read_container() as container:
        routed = container.router.replay(event_key)
    intake = routed.intake
    result = {
        "event_key": intake.event_key if intake is not None else event_key,
        "status": routed.status,
        "error": routed.error,
        "queued_runs": list(intake.queued_runs) if intake else [],
        "pending_runs": list(intake.pending_runs) if intake else [],
    }
    if as_json:
        print_json(result)
    else:
        typer.echo(f"replayed {result['event_key']}: {routed.status.value}")
        if routed.error:
            typer.echo(f"  error: {routed.error}")
        for kind in ("queued_runs", "pending_runs"):
            runs = result[kind]
            assert isinstance(runs, list)
            if runs:
                typer.echo(f"  {kind.replace('_', ' ')}: {', '.join(str(r) for r in runs)}")
    if routed.status is EventStatus.REJECTED:
        raise typer.Exit(2)
