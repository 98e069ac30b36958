"""Dashboard pages about the catalog: metrics (readiness), datasets (impact), the graph."""

from __future__ import annotations

from urllib.parse import quote, urlencode
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metrics_orchestrator.application.pagination import keyset_page
from metrics_orchestrator.application.queries import DURATION_RUNS
from metrics_orchestrator.application.refresh import refresh_stale
from metrics_orchestrator.domain.errors import Conflict, NotFound, ValidationError
from metrics_orchestrator.domain.metric_outputs import output_metric_code
from metrics_orchestrator.domain.metric_state import MetricState
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.http.views import impact_view, readiness_view
from metrics_orchestrator.interfaces.web.deps import (
    ApiToken,
    Catalog,
    ClockDep,
    Incidents,
    Orchestration,
    Outputs,
    Queries,
    Runs,
)
from metrics_orchestrator.interfaces.web.graph import (
    DAGRE_MAX_NODES,
    build_graph,
    downstream_metrics,
    upstream_metrics,
)
from metrics_orchestrator.interfaces.web.incident_views import FRESHNESS_CLASSES
from metrics_orchestrator.interfaces.web.output import run_output
from metrics_orchestrator.interfaces.web.presenters import (
    STATE_CLASSES,
    STATUS_CLASSES,
    action_button,
    expression_tree,
    formula,
    refresh_notice,
)
from metrics_orchestrator.interfaces.web.rendering import render, render_error
from metrics_orchestrator.interfaces.web.security import (
    check_button,
    is_signed_in,
    redirect_with_notice,
)

router = APIRouter(include_in_schema=False)

CATALOG_PAGE_SIZE = 50
METRIC_HISTORY = 20
# Where "Refresh stale metrics" returns to: a fixed set of pages, so the form cannot redirect
# anywhere else.
REFRESH_RETURNS = {"overview": "/", "metrics": "/ui/metrics"}
# a consuming run in one of these produced all it ever will ("nothing" when it has no output)
ENDED_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELED}
)


@router.get("/ui/metrics", response_class=HTMLResponse)
def metrics_page(
    request: Request,
    catalog: Catalog,
    queries: Queries,
    incidents: Incidents,
    clock: ClockDep,
    token: ApiToken,
) -> HTMLResponse:
    cursor = request.query_params.get("cursor") or None
    state_filter = request.query_params.get("state", "").strip()
    stale_only = request.query_params.get("stale", "").strip() == "yes"
    if state_filter and state_filter not in set(MetricState):
        return render_error(request, 422, f"unknown metric state {state_filter!r}", token)
    metrics = catalog.list_metrics()
    # One set-based read of the states (docs/ui.md), never a query per metric: of the page's
    # metrics, or of all of them when the list is filtered by state.
    states = queries.metric_states() if state_filter else {}
    if state_filter:
        metrics = [m for m in metrics if states[m.code].state == state_filter]
    # Staleness is judged over the whole graph (one read of every metric's facts), so the
    # page and the stale filter share that one read.
    data = queries.metric_data()
    if stale_only:
        metrics = [m for m in metrics if data[m.code].staleness.stale]
    try:
        page, next_cursor = keyset_page(metrics, lambda m: m.code, CATALOG_PAGE_SIZE, cursor)
    except ValidationError:
        return render_error(request, 422, "that page cursor is not one this dashboard made", token)
    if not state_filter:
        states = queries.metric_states([m.code for m in page])
    # the page's newest runs, latest successes and median durations: one read for the page
    summaries = queries.run_summaries([m.code for m in page])
    query = {"state": state_filter} if state_filter else {}
    if stale_only:
        query["stale"] = "yes"
    context = {
        "title": "Metrics",
        "rows": [(m, states[m.code], data[m.code], summaries[m.code]) for m in page],
        # SPEC §9: the page's metrics with a max_data_age, judged in one read
        "freshness": incidents.freshness(datasets=(), metrics=[m.code for m in page]).metrics,
        "freshness_classes": FRESHNESS_CLASSES,
        "status_classes": STATUS_CLASSES,
        "duration_runs": DURATION_RUNS,
        "now": clock.now(),
        "state_classes": STATE_CLASSES,
        "state_filter": state_filter,
        "stale_only": stale_only,
        "stale_count": sum(1 for d in data.values() if d.staleness.stale),
        "refresh_stale": action_button(is_signed_in(request, token)),
        "states": list(MetricState),
        "next_url": f"/ui/metrics?{urlencode({**query, 'cursor': next_cursor})}"
        if next_cursor
        else None,
    }
    return render(request, "metrics.html", context, token=token, active="/ui/metrics")


@router.get("/ui/metrics/{code:path}", response_class=HTMLResponse)
def metric_page(
    request: Request,
    code: str,
    catalog: Catalog,
    intake: Orchestration,
    runs: Runs,
    outputs: Outputs,
    queries: Queries,
    incidents: Incidents,
    clock: ClockDep,
    token: ApiToken,
) -> HTMLResponse:
    try:
        metric = catalog.get_metric(code)
        inputs, evaluation = intake.readiness(code)
        state = queries.metric_state(code)
    except NotFound:
        return render_error(request, 404, f"unknown metric {code!r}", token)
    now = clock.now()
    # for each input that is another metric's output, what that metric is doing (SPEC §8)
    upstream_states = queries.upstream_states(inputs.metric.required_datasets)
    history, _next = runs.list_runs(metric_code=code, limit=METRIC_HISTORY)
    latest_success = next((s for s in history if str(s.run.status) == "succeeded"), None)
    context = {
        "title": f"Metric {code}",
        "metric": metric,
        "upstream": upstream_metrics(metric),
        "downstream": downstream_metrics(code, catalog.list_metrics()),
        "formula": formula(metric.expression_json),
        "tree": expression_tree(metric.expression_json),
        "readiness": readiness_view(inputs, evaluation, now, upstream_states),
        "state": state,
        "data": queries.metric_data([code])[code],
        "state_classes": STATE_CLASSES,
        "history": history,
        "status_classes": STATUS_CLASSES,
        "output": run_output(outputs, latest_success.run.id, code) if latest_success else None,
        "refresh": action_button(is_signed_in(request, token)),
        "now": now,
        # SPEC §9: overdue or not, by its max_data_age (None: it has none)
        "freshness": incidents.freshness(datasets=(), metrics=[code]).metrics.get(code),
        "freshness_classes": FRESHNESS_CLASSES,
    }
    return render(request, "metric.html", context, token=token, active="/ui/metrics")


@router.post("/ui/metrics/refresh-stale")
def refresh_stale_metrics(
    request: Request, queries: Queries, intake: Orchestration, token: ApiToken
) -> Response:
    """A manual run of every stale metric none of whose upstream metrics is stale (the same
    use case as `POST /metrics/refresh?stale=true`); the notice says what ran and what not."""
    check_button(request, token)
    back = REFRESH_RETURNS.get(request.query_params.get("back", ""), "/ui/metrics")
    return redirect_with_notice(back, refresh_notice(refresh_stale(queries, intake)), token)


@router.post("/ui/metrics/{code:path}/run")
def run_now(request: Request, code: str, intake: Orchestration, token: ApiToken) -> Response:
    """The metric page's "Refresh": a manual run on the freshest version of each input (the
    same use case as `POST /metrics/{code}/runs` and `POST /metrics/{code}/refresh`)."""
    check_button(request, token)
    try:
        run_id = intake.request_manual_run(code)
    except NotFound:
        return render_error(request, 404, f"unknown metric {code!r}", token)
    except Conflict as exc:
        return redirect_with_notice(f"/ui/metrics/{quote(code)}", f"not run: {exc}", token)
    return redirect_with_notice(f"/ui/runs/{run_id}", "manual run queued", token)


@router.get("/ui/datasets", response_class=HTMLResponse)
def datasets_page(
    request: Request,
    catalog: Catalog,
    queries: Queries,
    incidents: Incidents,
    clock: ClockDep,
    token: ApiToken,
) -> HTMLResponse:
    cursor = request.query_params.get("cursor") or None
    try:
        page, next_cursor = keyset_page(
            catalog.list_datasets(), lambda d: d.id, CATALOG_PAGE_SIZE, cursor
        )
    except ValidationError:
        return render_error(request, 422, "that page cursor is not one this dashboard made", token)
    # each dataset's freshest version: one read for every dataset (datasets.freshest_update_id)
    freshest = queries.freshest_update_by_dataset()
    context = {
        "title": "Datasets",
        "rows": [(d, freshest.get(d.id)) for d in page],
        "now": clock.now(),
        "next_url": f"/ui/datasets?{urlencode({'cursor': next_cursor})}" if next_cursor else None,
        # SPEC §9: the page's datasets with an expected_every, judged in one read
        "freshness": incidents.freshness(datasets=[d.id for d in page], metrics=()).datasets,
        "freshness_classes": FRESHNESS_CLASSES,
    }
    return render(request, "datasets.html", context, token=token, active="/ui/datasets")


# Before `/ui/datasets/{dataset_id:path}`, which would take the whole rest of the path. A
# dataset id never holds a `/` (SPEC §2; `metric:X` neither), so `{dataset_id}` is one segment.
@router.get("/ui/datasets/{dataset_id}/versions/{update_id}", response_class=HTMLResponse)
def dataset_version_page(
    request: Request,
    dataset_id: str,
    update_id: str,
    queries: Queries,
    clock: ClockDep,
    token: ApiToken,
) -> HTMLResponse:
    """A version at the centre: its facts, the run that wrote it (a metric's output), the runs
    that consumed it and what each of them produced (issue 25)."""
    unknown = f"dataset {dataset_id!r} has no version {update_id!r}"
    try:
        version = queries.dataset_version(dataset_id, UUID(update_id))
    except (ValueError, NotFound):
        return render_error(request, 404, unknown, token)
    context = {
        "title": f"Version of {dataset_id}",
        "version": version,
        "update": version.facts.update,
        "metric_code": output_metric_code(dataset_id),
        "status_classes": STATUS_CLASSES,
        "ENDED_STATUSES": ENDED_STATUSES,
        "now": clock.now(),
    }
    return render(request, "dataset_version.html", context, token=token, active="/ui/datasets")


@router.get("/ui/datasets/{dataset_id:path}", response_class=HTMLResponse)
def dataset_page(
    request: Request,
    dataset_id: str,
    catalog: Catalog,
    intake: Orchestration,
    queries: Queries,
    incidents: Incidents,
    clock: ClockDep,
    token: ApiToken,
) -> Response:
    metric_code = output_metric_code(dataset_id)
    if metric_code is not None:
        # `metric:X` is metric X's output (SPEC §8), not a dataset of its own: its page is X's
        return RedirectResponse(f"/ui/metrics/{quote(metric_code)}", status_code=303)
    try:
        dataset = catalog.get_dataset(dataset_id)
        results = intake.impact(dataset_id)
    except NotFound:
        return render_error(request, 404, f"unknown dataset {dataset_id!r}", token)
    # below the metrics it touches at once, every metric downstream with its depth (SPEC §8)
    downstream = queries.downstream_of(mi.metric.code for mi, _ in results)
    impact = impact_view(dataset_id, results, clock.now(), downstream)
    context = {
        "title": f"Dataset {dataset_id}",
        "dataset": dataset,
        "updates": queries.recent_updates(dataset_id),
        "impact": impact,
        # SPEC §9: late or not, by its expected_every and grace (None: it has none)
        "freshness": incidents.freshness(datasets=[dataset_id], metrics=()).datasets.get(
            dataset_id
        ),
        "freshness_classes": FRESHNESS_CLASSES,
        "now": clock.now(),
    }
    return render(request, "dataset.html", context, token=token, active="/ui/datasets")


@router.get("/ui/graph", response_class=HTMLResponse)
def graph_page(
    request: Request, catalog: Catalog, queries: Queries, token: ApiToken
) -> HTMLResponse:
    dataset_filter = request.query_params.get("dataset", "").strip() or None
    metric_filter = request.query_params.get("metric", "").strip() or None
    datasets = catalog.list_datasets()
    metrics = catalog.list_metrics()
    graph = build_graph(
        datasets,
        metrics,
        {code: verdict.state for code, verdict in queries.metric_states().items()},
        dataset_filter=dataset_filter,
        metric_filter=metric_filter,
    )
    context = {
        "title": "Graph",
        "graph": graph,
        "dagre_max_nodes": DAGRE_MAX_NODES,
        "dataset_filter": dataset_filter or "",
        "metric_filter": metric_filter or "",
        "dataset_ids": [d.id for d in datasets],
        "metric_codes": [m.code for m in metrics],
    }
    return render(request, "graph.html", context, token=token, active="/ui/graph")
