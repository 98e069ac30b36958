"""Runs and orchestration views (SPEC §5.5, §5.6, §6.3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from metrics_orchestrator.application.outputs import (
    MAX_OUTPUT_PAGE,
    ExportUnsupported,
    OutputUnavailable,
)
from metrics_orchestrator.application.pagination import decode_offset_cursor
from metrics_orchestrator.application.refresh import refresh_stale
from metrics_orchestrator.application.run_batches import MAX_BATCH, act_on_runs
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.domain.run_files import MAX_RUN_LOG_BYTES
from metrics_orchestrator.interfaces.http.batch_models import RunBatchIn, RunBatchOut
from metrics_orchestrator.interfaces.http.dependencies import (
    AUTHENTICATED,
    DEFAULT_PAGE_SIZE,
    ClockDep,
    Cursor,
    IntakeDep,
    Limit,
    OutputsDep,
    QueriesDep,
    RunLogsDep,
    RunsDep,
)
from metrics_orchestrator.interfaces.http.models import (
    MAX_KEY,
    NO_NUL,
    CancelIn,
    ImpactOut,
    Problem,
    ReadinessOut,
    RefreshOut,
    RunDetailOut,
    RunOut,
    RunPage,
    StaleRefreshOut,
)
from metrics_orchestrator.interfaces.http.output_files import (
    CSV_MEDIA_TYPE,
    PARQUET_MEDIA_TYPE,
    attachment,
    csv_lines,
)
from metrics_orchestrator.interfaces.http.output_models import RunLogOut, RunOutputOut
from metrics_orchestrator.interfaces.http.problems import ApiProblem, problem_responses
from metrics_orchestrator.interfaces.http.routes_catalog import DatasetId, MetricCode
from metrics_orchestrator.interfaces.http.views import impact_view, readiness_view

T = TypeVar("T")

router = APIRouter(responses=problem_responses(422, 503))


@router.get("/runs", tags=["runs"], summary="List runs, newest first")
def list_runs(
    runs: RunsDep,
    status: Annotated[
        list[RunStatus] | None,
        Query(
            description="Only runs in this status; repeat it for several "
            "(`status=failed&status=timed_out`: runs in any of them).",
            max_length=len(RunStatus),
        ),
    ] = None,
    metric: Annotated[
        str | None, Query(max_length=MAX_KEY, pattern=NO_NUL, description="A metric code.")
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Only runs created at or after this time.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Only runs created before this time.")
    ] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> RunPage:
    page, next_cursor = runs.list_runs(
        statuses=status or (),
        metric_code=metric,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return RunPage(items=[RunOut.of(r) for r in page], next_cursor=next_cursor)


@router.get(
    "/runs/{run_id}",
    tags=["runs"],
    summary="One run: status, timings, what it waits for, lineage, attempts, request",
    responses=problem_responses(404),
)
def get_run(run_id: UUID, runs: RunsDep) -> RunDetailOut:
    return RunDetailOut.of_detail(runs.get_run(run_id))


@router.get(
    "/runs/{run_id}/output",
    tags=["runs"],
    summary="The values a succeeded run wrote, a page at a time, with its manifest",
    description="Read from S3 through the run's output manifest (SPEC §4.4). 404 when the run "
    "has no output; 502 when S3 cannot be read.",
    responses=problem_responses(404, 502),
)
def get_run_output(
    run_id: UUID,
    outputs: OutputsDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_OUTPUT_PAGE, description=f"Rows per page (max {MAX_OUTPUT_PAGE}).")
    ] = 500,
    cursor: Cursor = None,
) -> RunOutputOut:
    try:
        output = outputs.read(run_id, offset=decode_offset_cursor(cursor), limit=limit)
    except OutputUnavailable as exc:
        detail = f"the run's output cannot be read: {exc}"
        raise ApiProblem(502, "output-unavailable", detail) from exc
    return RunOutputOut.of(output)


@router.get(
    "/runs/{run_id}/output.csv",
    tags=["runs"],
    summary="A succeeded run's whole output as CSV (obs_time, value)",
    description="Streamed as it is read from S3, a chunk at a time (docs/api.md). 404 when the "
    "run has no output; 502 when S3 cannot be read.",
    response_class=StreamingResponse,
    responses={
        **problem_responses(404, 502),
        200: {"content": {"text/csv": {}}, "description": "`obs_time,value` lines"},
    },
)
def download_output_csv(run_id: UUID, outputs: OutputsDep) -> StreamingResponse:
    export = _readable(lambda: outputs.export(run_id))
    return StreamingResponse(
        csv_lines(export.chunks()),
        media_type=CSV_MEDIA_TYPE,
        headers=attachment(run_id, "csv"),
    )


@router.get(
    "/runs/{run_id}/output.parquet",
    tags=["runs"],
    summary="A succeeded run's whole output as one Parquet file (obs_time, value)",
    description="Re-encoded with polars whatever the worker wrote (Parquet or JSON lines). "
    "501 when this installation has no polars (the `[worker]` extra); 404 when the run has no "
    "output; 502 when S3 cannot be read.",
    response_class=Response,
    responses={
        **problem_responses(404, 502),
        501: {"model": Problem, "description": "This installation cannot write Parquet."},
        200: {"content": {PARQUET_MEDIA_TYPE: {}}, "description": "A Parquet file"},
    },
)
def download_output_parquet(run_id: UUID, outputs: OutputsDep) -> Response:
    try:
        body = _readable(lambda: outputs.parquet(run_id))
    except ExportUnsupported as exc:
        raise ApiProblem(501, "export-unsupported", f"no Parquet download here: {exc}") from exc
    return Response(body, media_type=PARQUET_MEDIA_TYPE, headers=attachment(run_id, "parquet"))


@router.get(
    "/runs/{run_id}/logs",
    tags=["runs"],
    summary="A run's log, as its worker wrote it beside the output",
    description="Read from `{basePath}runs/{runId}-{attempt}.log` (docs/worker.md): the "
    f"reference worker writes it on its heartbeats and when the run ends, at most "
    f"{MAX_RUN_LOG_BYTES:,} bytes; no more than that of any worker's log is read. A run whose "
    "worker wrote none answers 200 with `found: false` and a `note` saying why. 404 for an "
    "unknown run; 502 when S3 cannot be read.",
    responses=problem_responses(404, 502),
)
def get_run_log(run_id: UUID, run_logs: RunLogsDep) -> RunLogOut:
    try:
        return RunLogOut.of(run_logs.read(run_id))
    except OutputUnavailable as exc:
        raise ApiProblem(502, "log-unavailable", f"the run's log cannot be read: {exc}") from exc


def _readable(read: Callable[[], T]) -> T:
    """`read()`, with S3 failing to read the output reported as a 502 problem."""
    try:
        return read()
    except OutputUnavailable as exc:
        detail = f"the run's output cannot be read: {exc}"
        raise ApiProblem(502, "output-unavailable", detail) from exc


@router.post(
    "/runs/bulk",
    tags=["runs"],
    summary="Retry or cancel several runs at once",
    description="Each run goes through the same use case and domain checks as when it is "
    "acted on alone (`POST /runs/{id}/retry`, `/cancel`), in its own transaction: one refusal "
    "never undoes the others. 200 with each run's outcome (done, or why not); 422 for a body "
    f"that is not `{{action, run_ids (1 to {MAX_BATCH}), reason?}}`.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 422),
)
def act_on_many_runs(body: RunBatchIn, runs: RunsDep) -> RunBatchOut:
    return RunBatchOut.of(act_on_runs(runs, body.action, body.run_ids, cancel_reason=body.reason))


@router.post(
    "/runs/{run_id}/cancel",
    tags=["runs"],
    summary="Cancel a run that has not ended",
    description="Allowed from pending_dependencies, queued, dispatched and running (SPEC §5.5); "
    "409 from any other status.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404, 409),
)
def cancel_run(run_id: UUID, runs: RunsDep, body: CancelIn | None = None) -> RunDetailOut:
    runs.cancel(run_id, body.reason if body else None)
    return RunDetailOut.of_detail(runs.get_run(run_id))


@router.post(
    "/runs/{run_id}/retry",
    tags=["runs"],
    status_code=201,
    summary="Re-run a failed, timed out or canceled run",
    description="A new run with the same inputs and lineage, `attempt + 1` and `retry_of` "
    "pointing at this run. Only the latest attempt of a chain can be retried: for an older "
    "one the 409 names the latest attempt's id (SPEC §5.6).",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404, 409),
)
def retry_run(run_id: UUID, runs: RunsDep, response: Response) -> RunDetailOut:
    new_run = runs.retry(run_id)
    response.headers["Location"] = f"/runs/{new_run.id}"
    return RunDetailOut.of_detail(runs.get_run(new_run.id))


@router.post(
    "/metrics/{code}/runs",
    tags=["metrics"],
    status_code=201,
    summary="Run a metric now on the freshest update of each input",
    description="`trigger = manual`: freshness and the once-per-input-set rule do not apply. "
    "409 when an input has never had an update.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404, 409),
)
def request_manual_run(
    code: MetricCode, intake: IntakeDep, runs: RunsDep, response: Response
) -> RunDetailOut:
    run_id = intake.request_manual_run(code)
    response.headers["Location"] = f"/runs/{run_id}"
    return RunDetailOut.of_detail(runs.get_run(run_id))


@router.get(
    "/metrics/{code}/readiness",
    tags=["metrics"],
    summary="Why not yet: each input's freshest update and freshness, and the verdict",
    responses=problem_responses(404),
)
def readiness(
    code: MetricCode, clock: ClockDep, intake: IntakeDep, queries: QueriesDep
) -> ReadinessOut:
    now = clock.now()
    inputs, evaluation = intake.readiness(code)
    upstream = queries.upstream_states(inputs.metric.required_datasets)
    return readiness_view(inputs, evaluation, now, upstream)


@router.get(
    "/datasets/{dataset_id}/impact",
    tags=["datasets"],
    summary="Dry run: what a new version of this dataset arriving now would do",
    responses=problem_responses(404),
)
def impact(
    dataset_id: DatasetId, clock: ClockDep, intake: IntakeDep, queries: QueriesDep
) -> ImpactOut:
    now = clock.now()
    results = intake.impact(dataset_id)
    downstream = queries.downstream_of(mi.metric.code for mi, _ in results)
    return impact_view(dataset_id, results, now, downstream)


@router.post(
    "/metrics/refresh",
    tags=["metrics"],
    status_code=202,
    summary="Refresh the stale part of the graph: a manual run of each of its roots",
    description="With `stale=true` (required): a manual run, on the freshest inputs, of every "
    "stale metric none of whose upstream metrics is stale (SPEC §8); their outputs bring the "
    "rest of the chain up to date. A root that cannot run is listed in `refused` with why.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401),
)
def refresh_stale_metrics(
    intake: IntakeDep,
    queries: QueriesDep,
    stale: Annotated[bool, Query(description="Must be true: refresh the stale metrics.")],
) -> StaleRefreshOut:
    if not stale:
        raise ApiProblem(422, "validation-error", "only stale=true is supported")
    return StaleRefreshOut.of(refresh_stale(queries, intake))


@router.post(
    "/metrics/{code}/refresh",
    tags=["metrics"],
    status_code=202,
    summary="Refresh a metric: a manual run on the freshest version of each input",
    description="The same run as POST /metrics/{code}/runs (SPEC §8); 409 when the metric is "
    "disabled or an input has never had a version.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404, 409),
)
def refresh_metric(code: MetricCode, intake: IntakeDep, response: Response) -> RefreshOut:
    run_id = intake.request_manual_run(code)
    response.headers["Location"] = f"/runs/{run_id}"
    return RefreshOut(metric_code=code, run_id=run_id)
