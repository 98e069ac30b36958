"""`runs retry ID...`, `runs cancel ID...`, `metrics run CODE` and `metrics refresh CODE |
--stale` (SPEC §6.1, §8): the actions a person takes at a terminal, through the same use cases
as the API and the dashboard.

Exit codes: 0 done; 2 the action was refused (unknown or ambiguous id, a conflict such as a
run that already ended, or retrying an attempt that is not its chain's latest) with a one-line
reason; 1 anything else (the database unreachable). Several ids act on each run through its own
use case (`POST /runs/bulk`) and print each outcome; exit 2 when any was refused. An id that
matches no run, or several, ends the command before any run is acted on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

import typer

from metrics_orchestrator.application.refresh import StaleRefresh, refresh_stale
from metrics_orchestrator.application.run_batches import MAX_BATCH, BatchAction, act_on_runs
from metrics_orchestrator.application.runs import RunDetail
from metrics_orchestrator.bootstrap import Container
from metrics_orchestrator.domain.errors import DomainError
from metrics_orchestrator.interfaces.cli.common import fail
from metrics_orchestrator.interfaces.cli.read_runs import detail_dict, print_run_fields
from metrics_orchestrator.interfaces.cli.reading import (
    JSON_OPTION,
    print_json,
    print_table,
    read_container,
)
from metrics_orchestrator.interfaces.http.batch_models import RunBatchOut

RUN_IDS_ARGUMENT = typer.Argument(
    ...,
    metavar="ID...",
    help="Run ids, or unique prefixes of them (4+ hex digits); several act on each "
    f"(at most {MAX_BATCH}).",
)

# What an action's confirmation prints of the run it made or changed (labels of run_fields).
_CONFIRMED = ("id", "metric", "status", "reason", "trigger", "attempt", "retry of", "not before")


@contextmanager
def acting() -> Iterator[Container]:
    """The application for one action; a refusal by the domain ends the command with exit 2
    (read_container turns the remaining failures into one line and exit 1)."""
    refusal: DomainError | None = None
    with read_container() as container:
        try:
            yield container
        except DomainError as exc:
            refusal = exc
    if refusal is not None:
        raise fail(str(refusal))


def _act(action: Callable[[Container], UUID], title: str, as_json: bool) -> None:
    with acting() as container:
        detail = container.runs.get_run(action(container))
    _print(detail, title, as_json)


def _print(detail: RunDetail, title: str, as_json: bool) -> None:
    if as_json:
        print_json(detail_dict(detail))
        return
    print_run_fields(detail, f"run {title}", _CONFIRMED)


def retry_command(run_ids: list[str] = RUN_IDS_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """Re-run the latest attempt of a failed, timed out or canceled run (POST /runs/{id}/retry;
    several: POST /runs/bulk)."""
    if len(run_ids) > 1:
        _act_on_many(BatchAction.RETRY, run_ids, None, as_json)
        return

    def retry(container: Container) -> UUID:
        return container.runs.retry(container.queries.resolve_run_id(run_ids[0])).id

    _act(retry, "queued", as_json)


def cancel_command(
    run_ids: list[str] = RUN_IDS_ARGUMENT,
    reason: str | None = typer.Option(None, "--reason", help="Why (kept on the run)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel a run that has not ended (POST /runs/{id}/cancel; several: POST /runs/bulk)."""
    if len(run_ids) > 1:
        _act_on_many(BatchAction.CANCEL, run_ids, reason, as_json)
        return

    def cancel(container: Container) -> UUID:
        return container.runs.cancel(container.queries.resolve_run_id(run_ids[0]), reason).id

    _act(cancel, "canceled", as_json)


def _act_on_many(
    action: BatchAction, run_ids: list[str], reason: str | None, as_json: bool
) -> None:
    with acting() as container:
        ids = [container.queries.resolve_run_id(text) for text in run_ids]
        report = act_on_runs(container.runs, action, ids, cancel_reason=reason)
    if as_json:
        print_json(RunBatchOut.of(report).model_dump(mode="json"))
    else:
        print_table(
            f"{action}: {report.done} done, {report.refused} refused",
            ["run", "outcome", "what happened"],
            [
                [o.run_id, "done" if o.done else f"refused ({o.refusal})", o.message]
                for o in report.outcomes
            ],
        )
    if report.refused:
        raise typer.Exit(2)


def run_metric_command(
    code: str = typer.Argument(..., metavar="CODE", help="The metric's code."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a metric now on the freshest update of each input (POST /metrics/{code}/runs)."""
    _act(lambda container: container.intake.request_manual_run(code), "queued", as_json)


def refresh_command(
    code: str | None = typer.Argument(None, metavar="[CODE]", help="The metric's code."),
    stale: bool = typer.Option(
        False,
        "--stale",
        help="Refresh every stale metric none of whose upstream metrics is stale; "
        "the chain brings the rest up to date.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a metric on the freshest version of each input (POST /metrics/{code}/refresh), or
    with --stale the roots of what is stale (POST /metrics/refresh?stale=true)."""
    if (code is None) == (not stale):
        raise fail("give a metric CODE or --stale (not both)")
    if code is not None:
        _act(lambda container: container.intake.request_manual_run(code), "queued", as_json)
        return
    with acting() as container:
        refreshed = refresh_stale(container.queries, container.intake)
    _print_refresh(refreshed, as_json)


def _print_refresh(refreshed: StaleRefresh, as_json: bool) -> None:
    if as_json:
        print_json({"runs": refreshed.runs, "refused": refreshed.refused})
        return
    if not refreshed.runs and not refreshed.refused:
        typer.echo("nothing is stale")
        return
    print_table(
        f"refreshed {len(refreshed.runs)} stale metric{'' if len(refreshed.runs) == 1 else 's'}",
        ["metric", "run queued"],
        [[code, ", ".join(str(r) for r in runs)] for code, runs in refreshed.runs.items()],
    )
    if refreshed.refused:
        print_table(
            "stale but not run",
            ["metric", "why"],
            [[code, why] for code, why in refreshed.refused.items()],
        )
