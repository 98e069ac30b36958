"""Dashboard pages about runs: the overview, the live runs list, one run, cancel and retry (of
one run, or of several selected on the list)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metrics_orchestrator.application.ports.outputs import OutputUnavailable
from metrics_orchestrator.application.ports.runs import RunSummary
from metrics_orchestrator.application.queries import MetricData, RunOverview
from metrics_orchestrator.application.run_batches import MAX_BATCH, BatchAction, act_on_runs
from metrics_orchestrator.domain.errors import (
    Conflict,
    FieldError,
    IllegalTransition,
    NotFound,
    ValidationError,
)
from metrics_orchestrator.domain.metric_state import MetricState
from metrics_orchestrator.domain.model import MetricRun, RunStatus
from metrics_orchestrator.domain.run_ids import parse_run_id_prefix
from metrics_orchestrator.domain.status_reasons import CANCELED_FROM_DASHBOARD
from metrics_orchestrator.interfaces.http.guards import read_body
from metrics_orchestrator.interfaces.web.deps import (
    ApiToken,
    ClockDep,
    Incidents,
    Outputs,
    Queries,
    RunLogs,
    Runs,
)
from metrics_orchestrator.interfaces.web.incident_views import (
    FRESHNESS_CLASSES,
    failing_freshness,
    incident_rows,
)
from metrics_orchestrator.interfaces.web.output import input_markers, run_output
from metrics_orchestrator.interfaces.web.presenters import (
    STATE_CLASSES,
    STATUS_CLASSES,
    action_button,
    cancel_button,
    newer_attempt,
    retry_button,
    run_timeline,
)
from metrics_orchestrator.interfaces.web.rendering import render, render_error
from metrics_orchestrator.interfaces.web.run_filters import RunFilters, parse_run_filters
from metrics_orchestrator.interfaces.web.run_rows import timed_run, timed_runs, usual_run_times
from metrics_orchestrator.interfaces.web.security import (
    check_button,
    is_signed_in,
    redirect_with_notice,
)

router = APIRouter(include_in_schema=False)

RUNS_PAGE_SIZE = 50
RECENT_FAILURES = 8
STALE_SHOWN = 20  # stale metrics listed on the overview; the metrics list filters the rest
OPEN_INCIDENTS_SHOWN = 20  # the overview's first row; /ui/incidents lists them all
FAILING_FRESHNESS_SHOWN = 20  # late and overdue subjects under them; their incidents list the rest
LIVE_INTERVAL = "2s"
HOURS_CHARTED = 24
MAX_FORM_BYTES = 8192  # a selection of MAX_BATCH run ids is about 4 KiB


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request, runs: Runs, queries: Queries, incidents: Incidents, token: ApiToken
) -> HTMLResponse:
    snapshot = queries.run_overview()
    failures = [
        summary
        for status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
        for summary in runs.list_runs(status=status, limit=RECENT_FAILURES)[0]
    ]
    failures.sort(key=lambda s: s.run.completed_at or s.run.created_at, reverse=True)
    states = Counter(verdict.state for verdict in queries.metric_states().values())
    data = queries.metric_data()
    stale = sorted((code, d) for code, d in data.items() if d.staleness.stale)
    context = {
        "stale": stale[:STALE_SHOWN],
        "stale_count": len(stale),
        "oldest_data": _oldest_data(data),
        "refresh_stale": action_button(is_signed_in(request, token)),
        "metric_states": [(state, states[state]) for state in MetricState],
        "state_classes": STATE_CLASSES,
        "title": "Overview",
        "overview": snapshot,
        "statuses": list(RunStatus),
        "status_classes": STATUS_CLASSES,
        "chart": _hourly_chart(snapshot),
        "failures": failures[:RECENT_FAILURES],
        "now": snapshot.generated_at,
        **_incidents_first(incidents),
    }
    return render(request, "overview.html", context, token=token, active="/")


def _incidents_first(incidents: Incidents) -> dict[str, Any]:
    """The overview's first row (SPEC §9): the newest open incidents, then what is late or
    overdue now. Two reads: a page of open incidents, and every objective judged at once."""
    open_page = incidents.page(open_only=True, limit=OPEN_INCIDENTS_SHOWN)
    board = incidents.freshness()
    failing = failing_freshness(board)
    return {
        "open_incidents": incident_rows(open_page.incidents),
        "more_open": open_page.next_before is not None,
        "failing_freshness": failing[:FAILING_FRESHNESS_SHOWN],
        "failing_count": len(failing),
        "objectives": len(board.datasets) + len(board.metrics),
        "freshness_classes": FRESHNESS_CLASSES,
    }


def _oldest_data(data: dict[str, MetricData]) -> tuple[str, MetricData] | None:
    """The metric whose latest success rests on the oldest raw data (SPEC §8), if any ran."""
    with_data = [(code, d) for code, d in data.items() if d.data_time is not None]
    return min(with_data, key=lambda item: (item[1].data_time, item[0]), default=None)


def _hourly_chart(snapshot: RunOverview) -> dict[str, Any]:
    """Chart.js data: a bar per hour of the last 24 h (UTC), stacked by status.

    `rows` is the same for the table under the chart, which lists only hours with runs.
    """
    now = snapshot.generated_at.astimezone(UTC)
    current = now.replace(minute=0, second=0, microsecond=0)
    hours = [current - timedelta(hours=back) for back in range(HOURS_CHARTED - 1, -1, -1)]
    counts = {(row.hour.astimezone(UTC), row.status): row.count for row in snapshot.last_24h}
    present = [s for s in RunStatus if any(row.status is s for row in snapshot.last_24h)]
    labels = [h.strftime("%H:00") for h in hours]
    series = [[counts.get((h, s), 0) for h in hours] for s in present]
    return {
        "labels": labels if present else [],
        "datasets": [
            {"label": str(s), "status": str(s), "data": data}
            for s, data in zip(present, series, strict=True)
        ],
        "rows": [
            (label, [data[i] for data in series])
            for i, label in enumerate(labels)
            if any(data[i] for data in series)
        ],
    }


@router.get("/ui/runs", response_class=HTMLResponse)
def runs_page(
    request: Request, runs: Runs, queries: Queries, clock: ClockDep, token: ApiToken
) -> HTMLResponse:
    filters = _run_filters(request)
    cursor = request.query_params.get("cursor") or None
    problem = filters.problem
    try:
        page, next_cursor = _list(runs, filters, cursor)
    except ValidationError as exc:
        page, next_cursor, problem = [], None, str(exc)
    query = filters.query()
    context = {
        "title": "Runs",
        "rows": timed_runs(page, usual_run_times(queries, _codes(page)), clock.now()),
        "filters": filters,
        "statuses": list(RunStatus),
        "status_classes": STATUS_CLASSES,
        "problem": problem,
        "bulk": action_button(is_signed_in(request, token)),
        "max_batch": MAX_BATCH,
        "next_url": _runs_url("/ui/runs", [*query, ("cursor", next_cursor)])
        if next_cursor
        else None,
        "live_url": _runs_url("/ui/runs/rows", query) if cursor is None else None,
        "newest_url": _runs_url("/ui/runs", query) if cursor is not None else None,
        "live_interval": LIVE_INTERVAL,
    }
    return render(request, "runs.html", context, token=token, active="/ui/runs")


@router.get("/ui/runs/rows", response_class=HTMLResponse)
def runs_rows(
    request: Request, runs: Runs, queries: Queries, clock: ClockDep, token: ApiToken
) -> HTMLResponse:
    """The first page's rows only: what the live list polls (one keyset query, and one for
    the usual run times of the metrics on it)."""
    filters = _run_filters(request)
    try:
        page, _next = _list(runs, filters, None)
    except ValidationError:
        page = []
    context = {
        "rows": timed_runs(page, usual_run_times(queries, _codes(page)), clock.now()),
        "status_classes": STATUS_CLASSES,
        "live_url": _runs_url("/ui/runs/rows", filters.query()),
        "live_interval": LIVE_INTERVAL,
    }
    return render(request, "_run_rows.html", context, token=token)


def _run_filters(request: Request) -> RunFilters:
    params = request.query_params
    return parse_run_filters(
        params.getlist("status"),
        metric=params.get("metric", ""),
        since=params.get("since", ""),
        until=params.get("until", ""),
    )


def _runs_url(path: str, query: list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(query)}"


def _codes(page: list[RunSummary]) -> set[str]:
    return {summary.metric_code for summary in page}


def _list(
    runs: Runs, filters: RunFilters, cursor: str | None
) -> tuple[list[RunSummary], str | None]:
    page, next_cursor = runs.list_runs(
        limit=RUNS_PAGE_SIZE, cursor=cursor, **filters.service_args()
    )
    return list(page), next_cursor


@router.post("/ui/runs/bulk")
async def bulk(request: Request, runs: Runs, token: ApiToken) -> Response:
    """Retry or cancel the runs selected on the list, each through the single-run use case;
    the answer is the page of outcomes itself (one per run does not fit a notice)."""
    check_button(request, token)
    form = parse_qs((await read_body(request, MAX_FORM_BYTES)).decode("utf-8", "replace"))
    try:
        action = _bulk_action(form.get("action", [""])[0])
        report = act_on_runs(
            runs, action, _run_ids(form.get("run", [])), cancel_reason=CANCELED_FROM_DASHBOARD
        )
    except ValidationError as exc:
        return render_error(request, 422, str(exc), token)
    heading = BULK_TITLES[report.action]
    context = {"title": heading, "heading": heading, "report": report}
    return render(request, "runs_bulk.html", context, token=token, active="/ui/runs")


BULK_TITLES = {BatchAction.RETRY: "Retry selected", BatchAction.CANCEL: "Cancel selected"}


def _bulk_action(text: str) -> BatchAction:
    try:
        return BatchAction(text)
    except ValueError:
        choices = ", ".join(BatchAction)
        raise ValidationError([FieldError("action", f"must be one of {choices}")]) from None


def _run_ids(texts: list[str]) -> list[UUID]:
    """The selected runs (the form body's limit bounds them); ValidationError naming a value
    that is not a run id."""
    ids = []
    for text in texts:
        try:
            ids.append(UUID(text))
        except ValueError:
            raise ValidationError([FieldError("run", f"{text[:40]!r} is not a run id")]) from None
    return ids


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    run_id: str,
    runs: Runs,
    queries: Queries,
    outputs: Outputs,
    run_logs: RunLogs,
    clock: ClockDep,
    token: ApiToken,
) -> Response:
    try:
        detail = runs.get_run(UUID(run_id))
    except ValueError:
        return _run_by_prefix(request, run_id, queries, token)
    except NotFound:
        return render_error(request, 404, f"unknown run {run_id}", token)
    run = detail.run
    signed_in = is_signed_in(request, token)
    pending = run.status is RunStatus.PENDING_DEPENDENCIES
    newer = newer_attempt(run, detail.attempts)
    context = {
        "title": f"Run {run.id}",
        "detail": detail,
        "run": run,
        "status_classes": STATUS_CLASSES,
        "timeline": run_timeline(run),
        "waiting_for": [p.dataset_id for p in detail.pending if p.update is None]
        if pending
        else [],
        "waiting_since": run.created_at if pending else None,
        "cancel": cancel_button(run, signed_in),
        "retry": retry_button(run, signed_in, newer),
        "retry_instead": newer,
        "output": run_output(outputs, run.id, detail.metric_code),
        "markers": input_markers(detail.lineage),
        **_run_log(run_logs, run),
        "timed": timed_run(
            run,
            detail.metric_code,
            usual_run_times(queries, [detail.metric_code]).get(detail.metric_code),
            clock.now(),
        ),
        "data_age": (clock.now() - detail.data_time).total_seconds() if detail.data_time else None,
        "now": clock.now(),
    }
    return render(request, "run.html", context, token=token, active="/ui/runs")


def _run_by_prefix(request: Request, text: str, queries: Queries, token: str | None) -> Response:
    """`/ui/runs/02b2542c`: a unique prefix of a run id (as `runs list` shows it) goes to the
    run; an ambiguous one lists the candidates (SPEC §6.1)."""
    unknown = f"unknown run {text}"
    try:
        parse_run_id_prefix(text)
    except ValidationError:
        return render_error(request, 404, unknown, token)
    try:
        run_id = queries.resolve_run_id(text)
    except NotFound:
        return render_error(request, 404, unknown, token)
    except ValidationError as ambiguous:
        return render_error(request, 404, "; ".join(e.message for e in ambiguous.errors), token)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.post("/ui/runs/{run_id}/cancel")
def cancel(request: Request, run_id: UUID, runs: Runs, token: ApiToken) -> Response:
    check_button(request, token)
    try:
        runs.cancel(run_id, CANCELED_FROM_DASHBOARD)
    except NotFound:
        return render_error(request, 404, f"unknown run {run_id}", token)
    except (Conflict, IllegalTransition) as exc:
        return _back_to_run(run_id, f"not canceled: {exc}", token)
    return _back_to_run(run_id, "run canceled", token)


@router.post("/ui/runs/{run_id}/retry")
def retry(request: Request, run_id: UUID, runs: Runs, token: ApiToken) -> Response:
    check_button(request, token)
    try:
        new_run = runs.retry(run_id)
    except NotFound:
        return render_error(request, 404, f"unknown run {run_id}", token)
    except (Conflict, IllegalTransition) as exc:
        return _back_to_run(run_id, f"not retried: {exc}", token)
    return _back_to_run(new_run.id, f"retry queued (attempt {new_run.attempt})", token)


def _run_log(run_logs: RunLogs, run: MetricRun) -> dict[str, Any]:
    """The run's log for its page: `log` (a RunLog), or `log_unavailable` when S3 cannot be
    read (the rest of the page is still shown). The page has loaded the run already."""
    try:
        return {"log": run_logs.of_run(run), "log_unavailable": None}
    except OutputUnavailable as exc:
        return {"log": None, "log_unavailable": str(exc)}


def _back_to_run(run_id: UUID, notice: str, token: str | None) -> RedirectResponse:
    return redirect_with_notice(f"/ui/runs/{run_id}", notice, token)
