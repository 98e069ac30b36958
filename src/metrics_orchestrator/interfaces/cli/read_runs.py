"""`metrics-orchestrator runs list`, `runs show ID` and `runs logs ID`: the API's run views, at
a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import typer

from metrics_orchestrator.application.ports.runs import PendingInput, RunSummary
from metrics_orchestrator.application.runs import RunDetail
from metrics_orchestrator.domain.model import DatasetUpdate, RunStatus
from metrics_orchestrator.interfaces.cli.reading import (
    JSON_OPTION,
    jsonable,
    print_fields,
    print_json,
    print_table,
    read_container,
)
from metrics_orchestrator.interfaces.http.output_models import RunLogOut

runs_app = typer.Typer(help="Read runs (what ran, what waits, what failed).", no_args_is_help=True)


def _aware(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-01-31T00:00:00Z")
    return parsed


@runs_app.command("list")
def list_runs_command(
    status: list[RunStatus] = typer.Option(
        [], help="Only runs in this status; repeat it for several (runs in any of them)."
    ),
    metric: str | None = typer.Option(None, help="Only runs of this metric code."),
    since: str | None = typer.Option(
        None, help="Only runs created at or after this ISO-8601 time (with a zone)."
    ),
    until: str | None = typer.Option(
        None, help="Only runs created before this ISO-8601 time (with a zone)."
    ),
    limit: int = typer.Option(50, min=1, max=500, help="At most this many runs."),
    cursor: str | None = typer.Option(None, help="The next-page cursor of a previous list."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List runs, newest first (the filters of GET /runs)."""
    created_since, created_until = _aware(since), _aware(until)
    with read_container() as container:
        if metric is not None:
            # a mistyped code is said, not answered with an empty table (exit 2)
            container.catalog.get_metric(metric)
        runs, next_cursor = container.runs.list_runs(
            statuses=status,
            metric_code=metric,
            since=created_since,
            until=created_until,
            limit=limit,
            cursor=cursor,
        )
    if as_json:
        print_json({"items": [summary_dict(r) for r in runs], "next_cursor": next_cursor})
        return
    print_table(
        f"{len(runs)} run{'' if len(runs) == 1 else 's'}",
        ["id", "metric", "status", "trigger", "attempt", "created", "completed"],
        [_run_row(r) for r in runs],
    )
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


@runs_app.command("show")
def show_run_command(
    run_id: str = typer.Argument(
        ..., metavar="ID", help="The run's id, or a unique prefix of it (4+ hex digits)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """One run in full: status, timings, what it waits for, lineage, attempts, request."""
    with read_container() as container:
        detail = container.runs.get_run(container.queries.resolve_run_id(run_id))
    if as_json:
        print_json(detail_dict(detail))
        return
    print_run_fields(detail, f"run {detail.run.id}", _SHOWN)
    if detail.pending:
        print_table(
            "inputs it waited for",
            ["dataset", "held update", "received"],
            [
                [
                    p.dataset_id,
                    *(
                        (p.update.version_manifest_path, p.update.received_at)
                        if p.update
                        else (None, None)
                    ),
                ]
                for p in detail.pending
            ],
        )
    print_table(
        "lineage (dataset versions used)",
        ["dataset", "version manifest", "effective"],
        [[e.dataset_id, e.version_manifest_path, e.effective_at] for e in detail.lineage],
    )
    print_table(
        "attempts",
        ["id", "attempt", "trigger", "status", "created", "completed"],
        [
            [a.id, a.attempt, a.trigger, a.status, a.created_at, a.completed_at]
            for a in detail.attempts
        ],
    )


@runs_app.command("logs")
def run_logs_command(
    run_id: str = typer.Argument(
        ..., metavar="ID", help="The run's id, or a unique prefix of it (4+ hex digits)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """The run's log as its worker wrote it beside the output (GET /runs/{id}/logs).

    The lines go to stdout as they are; a note (no log, or only its newest part shown) goes to
    stderr. With the embedded setup, S3 is the running `serve`'s."""
    with read_container() as container:
        log = container.run_logs.read(container.queries.resolve_run_id(run_id))
    if as_json:
        print_json(RunLogOut.of(log).model_dump(mode="json"))
        return
    if log.text is None:
        typer.echo(log.absence, err=True)
        return
    if log.truncated:
        typer.echo(f"(the last {log.shown_bytes:,} of {log.size:,} bytes)", err=True)
    typer.echo(log.text, nl=not log.text.endswith("\n"))


# The fields `runs show` prints, in order (labels of run_fields).
_SHOWN = (
    "metric",
    "status",
    "reason",
    "error",
    "retryable",
    "trigger",
    "attempt",
    "retry of",
    "created",
    "queued",
    "dispatched",
    "started",
    "last heartbeat",
    "completed",
    "progress",
    "output",
    "rows",
    "data time",
    "definition",
)


def run_fields(detail: RunDetail) -> dict[str, object]:
    """Each field of a run a terminal shows, by its label: `runs show` and the actions'
    confirmations each print the labels they name, so a label means one thing everywhere."""
    run = detail.run
    return {
        "id": run.id,
        "metric": detail.metric_code,
        "status": run.status,
        "reason": run.status_reason,
        "error": run.error,
        "retryable": run.retryable,
        "trigger": run.trigger,
        "attempt": run.attempt,
        "retry of": run.retry_of,
        "not before": run.not_before,
        "created": run.created_at,
        "queued": run.queued_at,
        "dispatched": run.dispatched_at,
        "started": run.started_at,
        "last heartbeat": run.last_heartbeat_at,
        "completed": run.completed_at,
        "progress": run.progress,
        "output": run.output_manifest,
        "rows": run.row_count,
        "data time": detail.data_time,
        "definition": detail.definition_version,
    }


def print_run_fields(detail: RunDetail, title: str, labels: Sequence[str]) -> None:
    values = run_fields(detail)
    print_fields(title, [(label, values[label]) for label in labels])


def _run_row(r: RunSummary) -> list[object]:
    run = r.run
    return [
        run.id,
        r.metric_code,
        run.status,
        run.trigger,
        run.attempt,
        run.created_at,
        run.completed_at,
    ]


def summary_dict(summary: RunSummary) -> dict[str, object]:
    run: dict[str, object] = jsonable(summary.run)
    return {"id": run.pop("id"), "metric_code": summary.metric_code} | run


def _pending_item(pending: PendingInput) -> dict[str, object]:
    update = pending.update
    return {
        "dataset_id": pending.dataset_id,
        "update_id": jsonable(update.id) if update else None,
        "received_at": jsonable(update.received_at) if update else None,
        "version_manifest_path": update.version_manifest_path if update else None,
    }


def _lineage_item(update: DatasetUpdate) -> dict[str, object]:
    return {
        "dataset_id": update.dataset_id,
        "update_id": str(update.id),
        "event_key": update.event_key,
        "bucket": update.bucket,
        "version_manifest_path": update.version_manifest_path,
        "projections_path": update.projections_path,
        "occurred_at": jsonable(update.occurred_at),
        "received_at": jsonable(update.received_at),
        "effective_at": jsonable(update.effective_at),
    }


def detail_dict(detail: RunDetail) -> dict[str, object]:
    return summary_dict(RunSummary(detail.run, detail.metric_code)) | {
        "pending": [_pending_item(p) for p in detail.pending],
        "lineage": [_lineage_item(u) for u in detail.lineage],
        "attempts": jsonable(detail.attempts),
        "data_time": jsonable(detail.data_time),
        "definition_version": detail.definition_version,
    }
