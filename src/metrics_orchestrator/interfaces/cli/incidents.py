"""`incidents list|show`, `notify channels|test CHANNEL` and `freshness` (SPEC §6.1, §9)."""

from __future__ import annotations

import typer

from metrics_orchestrator.domain.freshness import Freshness
from metrics_orchestrator.domain.incidents import Incident, IncidentKind
from metrics_orchestrator.interfaces.cli.common import EXIT_FAILURE
from metrics_orchestrator.interfaces.cli.reading import (
    JSON_OPTION,
    jsonable,
    print_json,
    print_table,
    read_container,
)

incidents_app = typer.Typer(
    help="Incidents: failures, late data and rejected events (SPEC §9).", no_args_is_help=True
)
notify_app = typer.Typer(
    help="Notification channels: list them, send a test.", no_args_is_help=True
)


@incidents_app.command("list")
def list_incidents_command(
    open_only: bool = typer.Option(False, "--open", help="Only the open ones."),
    kind: IncidentKind | None = typer.Option(None, help="Only incidents of this kind."),
    limit: int = typer.Option(50, min=1, max=500, help="At most this many incidents."),
    before: int | None = typer.Option(None, min=1, help="Older than this incident id (paging)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Incidents, newest first (what GET /incidents shows)."""
    with read_container() as container:
        page = container.incidents.page(open_only=open_only, kind=kind, before=before, limit=limit)
    if as_json:
        items = [jsonable(i) for i in page.incidents]
        print_json({"incidents": items, "next_before": page.next_before})
        return
    count = len(page.incidents)
    print_table(
        f"{count} incident{'' if count == 1 else 's'}",
        ["id", "kind", "subject", "count", "opened", "resolved", "summary"],
        [_row(i) for i in page.incidents],
    )
    if page.next_before:
        typer.echo(f"more: --before {page.next_before}")


def _row(incident: Incident) -> list[object]:
    resolved = incident.resolved_at if incident.resolved_at else "open"
    return [
        incident.id,
        incident.kind,
        incident.subject,
        incident.count,
        incident.opened_at,
        resolved,
        incident.summary,
    ]


@incidents_app.command("show")
def show_incident_command(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, help="The incident's id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """One incident: its facts, each occurrence (the run or event) and its notifications."""
    with read_container() as container:
        detail = container.incidents.detail(incident_id)
    if as_json:
        print_json(jsonable(detail))
        return
    incident = detail.incident
    typer.echo(f"incident {incident.id}: {incident.kind} {incident.subject}")
    typer.echo(f"  {incident.summary}")
    typer.echo(f"  count {incident.count}, opened {incident.opened_at}")
    typer.echo(f"  last seen {incident.last_seen_at}")
    if incident.resolved_at:
        typer.echo(f"  resolved {incident.resolved_at}: {incident.resolution}")
    print_table(
        "occurrences",
        ["#", "when", "run", "event", "detail"],
        [[o.seq, o.occurred_at, o.run_id, o.event_key, o.detail] for o in detail.occurrences],
    )
    print_table(
        "notifications",
        ["channel", "change", "state", "attempts", "last result"],
        [[d.channel, d.change, d.state, d.attempts, d.last_result] for d in detail.deliveries],
    )


@notify_app.command("channels")
def list_channels_command(as_json: bool = JSON_OPTION) -> None:
    """The channels, what they hear, and how their last delivery went (never their secrets)."""
    with read_container() as container:
        channels = container.notifications.channels()
    if as_json:
        print_json([jsonable(c) for c in channels])
        return
    print_table(
        f"{len(channels)} channel{'' if len(channels) == 1 else 's'}",
        [
            "name",
            "format",
            "url",
            "signed",
            "kinds",
            "metrics",
            "enabled",
            "pending",
            "undeliverable",
            "last result",
        ],
        [
            [
                c.name,
                c.format,
                c.url,
                "yes" if c.has_secret else "no",
                ", ".join(c.kinds) if c.kinds else "all",
                ", ".join(c.metrics) if c.metrics else "all",
                c.enabled,
                c.pending,
                c.undeliverable,
                c.last_result,
            ]
            for c in channels
        ],
    )


@notify_app.command("test")
def send_test_command(
    channel: str = typer.Argument(..., metavar="CHANNEL", help="The channel's name."),
) -> None:
    """Post a test notification to CHANNEL now and print what its receiver answered."""
    with read_container() as container:
        result = container.notifications.test(channel)
    if not result.ok:
        typer.echo(f"not delivered: {result.detail}", err=True)
        raise typer.Exit(EXIT_FAILURE)
    typer.echo(f"delivered: {result.detail}")


def freshness_command(as_json: bool = JSON_OPTION) -> None:
    """Every freshness objective judged now: late datasets and overdue metrics first."""
    with read_container() as container:
        board = container.incidents.freshness()
    rows = [("dataset", k, v) for k, v in board.datasets.items()] + [
        ("metric", k, v) for k, v in board.metrics.items()
    ]
    rows.sort(key=lambda r: (not r[2].failing, r[0], r[1]))
    if as_json:
        print_json([_freshness_dict(what, name, f) for what, name, f in rows])
        return
    print_table(
        f"{board.failing} of {len(rows)} failing",
        ["what", "name", "state", "due / since", "why"],
        [[what, name, f.state, f.due_at, f.why] for what, name, f in rows],
    )


def _freshness_dict(what: str, name: str, freshness: Freshness) -> dict[str, object]:
    return {
        "what": what,
        "name": name,
        "state": str(freshness.state),
        "due_at": freshness.due_at.isoformat(),
        "since": freshness.since.isoformat() if freshness.since else None,
        "why": freshness.why,
    }
