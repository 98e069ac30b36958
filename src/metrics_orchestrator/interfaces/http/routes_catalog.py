"""Catalog endpoints (SPEC §2, §6.3): metrics, datasets and series."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path

from metrics_orchestrator.application.catalog_spec import (
    DatasetSettings,
    DatasetSpec,
    MetricSettings,
    MetricSpec,
    SeriesSpec,
)
from metrics_orchestrator.application.incidents import IncidentQueries
from metrics_orchestrator.application.pagination import keyset_page
from metrics_orchestrator.application.queries import QueryService
from metrics_orchestrator.domain.model import Metric
from metrics_orchestrator.interfaces.http.dependencies import (
    AUTHENTICATED,
    DEFAULT_PAGE_SIZE,
    CatalogDep,
    Cursor,
    IncidentsDep,
    Limit,
    QueriesDep,
)
from metrics_orchestrator.interfaces.http.models import (
    MAX_KEY,
    NO_NUL,
    DatasetDetailOut,
    DatasetOut,
    DatasetPage,
    DatasetUpdateOut,
    MetricOut,
    MetricPage,
    SeriesOut,
    SeriesPage,
)
from metrics_orchestrator.interfaces.http.problems import problem_responses
from metrics_orchestrator.interfaces.http.version_models import DatasetVersionOut

router = APIRouter(responses=problem_responses(422, 503))

MetricCode = Annotated[
    str, Path(min_length=1, max_length=MAX_KEY, pattern=NO_NUL, description="The metric's code.")
]
DatasetId = Annotated[str, Path(min_length=1, max_length=MAX_KEY, pattern=NO_NUL)]
SeriesCode = Annotated[
    str, Path(min_length=1, max_length=MAX_KEY, pattern=NO_NUL, description="The series' code.")
]


@router.get("/metrics", tags=["metrics"], summary="List metrics, by code")
def list_metrics(
    catalog: CatalogDep,
    queries: QueriesDep,
    incidents: IncidentsDep,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> MetricPage:
    page, next_cursor = keyset_page(catalog.list_metrics(), lambda m: m.code, limit, cursor)
    codes = [m.code for m in page]
    states, data = queries.metric_states(codes), queries.metric_data(codes)
    runs = queries.run_summaries(codes)
    board = incidents.freshness(datasets=(), metrics=codes)
    return MetricPage(
        items=[
            MetricOut.of(m, states[m.code], data[m.code], runs[m.code], board.metrics.get(m.code))
            for m in page
        ],
        next_cursor=next_cursor,
    )


@router.get(
    "/metrics/{code}", tags=["metrics"], summary="One metric", responses=problem_responses(404)
)
def get_metric(
    code: MetricCode, catalog: CatalogDep, queries: QueriesDep, incidents: IncidentsDep
) -> MetricOut:
    return _metric_out(catalog.get_metric(code), queries, incidents)


@router.post(
    "/metrics",
    tags=["metrics"],
    summary="Register or update (by id) a metric",
    description="Validates the expression, resolves every series to one providing dataset and "
    "replaces the dependencies, in one transaction (SPEC §2). Changing the expression cancels "
    "the metric's open pending run. Every problem is reported at once, with its JSON path.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 409),
)
def register_metric(
    body: MetricSpec, catalog: CatalogDep, queries: QueriesDep, incidents: IncidentsDep
) -> MetricOut:
    return _metric_out(catalog.register_metric(body), queries, incidents)


@router.patch(
    "/metrics/{code}",
    tags=["metrics"],
    summary="Change a metric's settings",
    description="Enable or disable (disabling cancels its pending run), change the freshness "
    "window (`required_days`), `max_attempts`, `trigger_policy` or the objective "
    "`max_data_age` (ISO-8601; `null` removes it). Omitted fields are kept.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404),
)
def update_metric(
    code: MetricCode,
    body: MetricSettings,
    catalog: CatalogDep,
    queries: QueriesDep,
    incidents: IncidentsDep,
) -> MetricOut:
    return _metric_out(catalog.update_metric(code, body), queries, incidents)


def _metric_out(metric: Metric, queries: QueryService, incidents: IncidentQueries) -> MetricOut:
    data = queries.metric_data([metric.code])
    runs = queries.run_summaries([metric.code])
    state = queries.metric_state(metric.code)
    freshness = incidents.freshness(datasets=(), metrics=[metric.code]).metrics.get(metric.code)
    return MetricOut.of(metric, state, data[metric.code], runs[metric.code], freshness)


@router.get("/datasets", tags=["datasets"], summary="List datasets, by id")
def list_datasets(
    catalog: CatalogDep,
    incidents: IncidentsDep,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> DatasetPage:
    page, next_cursor = keyset_page(catalog.list_datasets(), lambda d: d.id, limit, cursor)
    board = incidents.freshness(datasets=[d.id for d in page], metrics=())
    return DatasetPage(items=[DatasetOut.of(d, board) for d in page], next_cursor=next_cursor)


@router.get(
    "/datasets/{dataset_id}",
    tags=["datasets"],
    summary="One dataset, its series and recent updates",
    responses=problem_responses(404),
)
def get_dataset(
    dataset_id: DatasetId, catalog: CatalogDep, queries: QueriesDep, incidents: IncidentsDep
) -> DatasetDetailOut:
    dataset = catalog.get_dataset(dataset_id)
    updates = queries.recent_updates(dataset_id)
    board = incidents.freshness(datasets=[dataset_id], metrics=())
    return DatasetDetailOut(
        **dict(DatasetOut.of(dataset, board)),
        recent_updates=[DatasetUpdateOut.model_validate(u) for u in updates],
    )


@router.get(
    "/datasets/{dataset_id}/versions/{update_id}",
    tags=["datasets"],
    summary="One version of a dataset, the run that wrote it and the runs that consumed it",
    description="A version (an update id, as `recent_updates`, a run's `lineage` and a run "
    "request's `updateId` name it) of a dataset or of a metric's output (`metric:X`, SPEC §8): "
    "its facts, whether it is the freshest, the run that wrote it (a metric's output), and the "
    "runs whose lineage holds it, newest first, each with what it produced.",
    responses=problem_responses(404),
)
def get_dataset_version(
    dataset_id: DatasetId, update_id: UUID, queries: QueriesDep
) -> DatasetVersionOut:
    return DatasetVersionOut.of(queries.dataset_version(dataset_id, update_id))


@router.post(
    "/datasets",
    tags=["datasets"],
    summary="Register or update a dataset",
    description="Upsert by id. `series` replaces the set of series the dataset provides; every "
    "code must be a registered series (POST /series), and a series a metric depends on "
    "through this dataset cannot be removed.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401),
)
def register_dataset(body: DatasetSpec, catalog: CatalogDep, incidents: IncidentsDep) -> DatasetOut:
    dataset = catalog.register_dataset(body)
    return DatasetOut.of(dataset, incidents.freshness(datasets=[dataset.id], metrics=()))


@router.patch(
    "/datasets/{dataset_id}",
    tags=["datasets"],
    summary="Change a dataset's settings",
    description="Enable or disable it, set its freshness objective `expected_every` and `grace` "
    "(ISO-8601 durations, SPEC §9; `expected_every: null` removes the objective). Omitted "
    "fields are kept.",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401, 404),
)
def update_dataset(
    dataset_id: DatasetId, body: DatasetSettings, catalog: CatalogDep, incidents: IncidentsDep
) -> DatasetOut:
    dataset = catalog.update_dataset(dataset_id, body)
    return DatasetOut.of(dataset, incidents.freshness(datasets=[dataset.id], metrics=()))


@router.post(
    "/series",
    tags=["datasets"],
    summary="Register or update a series",
    dependencies=AUTHENTICATED,
    responses=problem_responses(401),
)
def register_series(body: SeriesSpec, catalog: CatalogDep) -> SeriesOut:
    return SeriesOut.model_validate(catalog.register_series(body))


@router.get("/series", tags=["datasets"], summary="List series, by code")
def list_series(
    catalog: CatalogDep, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> SeriesPage:
    page, next_cursor = keyset_page(catalog.list_series(), lambda s: s.code, limit, cursor)
    return SeriesPage(items=[SeriesOut.model_validate(s) for s in page], next_cursor=next_cursor)


@router.get(
    "/series/{code}", tags=["datasets"], summary="One series", responses=problem_responses(404)
)
def get_series(code: SeriesCode, catalog: CatalogDep) -> SeriesOut:
    return SeriesOut.model_validate(catalog.get_series(code))
