"""Catalog registration against PostgreSQL (SPEC §2): resolution, refusals, all-or-nothing."""

from __future__ import annotations

import copy
import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.catalog_plan import CatalogLoadResult, KindCounts
from metrics_orchestrator.application.catalog_spec import (
    DatasetSpec,
    MetricSettings,
    MetricSpec,
    SeriesSpec,
)
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.domain.errors import Conflict, NotFound, ValidationError
from metrics_orchestrator.domain.model import MetricDependency, TriggerPolicy
from tests.support import MutableClock

CATALOG_TABLES = ("series", "datasets", "dataset_series", "metrics", "metric_dependencies")


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def catalog(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> CatalogService:
    return CatalogService(uow_factory, clock, default_required_days=7)


def _fixture(catalogs_dir: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((catalogs_dir / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture
def multi(catalogs_dir: Path) -> dict[str, Any]:
    return _fixture(catalogs_dir, "multi_dataset_catalog.yaml")


@pytest.fixture
def bcra(catalogs_dir: Path) -> dict[str, Any]:
    return _fixture(catalogs_dir, "bcra_catalog.yaml")


def _rows(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def _counts(database_url: str) -> dict[str, int]:
    """Rows per catalog table; `datasets` counts datasets of projections, not the
    pseudo-datasets of metric outputs (one per metric, SPEC §8)."""
    return {
        t: _rows(database_url, f"SELECT count(*) FROM {t}{_PROJECTIONS.get(t, '')}")[0][0]
        for t in CATALOG_TABLES
    }


_PROJECTIONS = {"datasets": " WHERE kind = 'projection'"}


def _errors(caught: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [str(error) for error in caught.value.errors]


def _insert_pending_run(database_url: str, metric_id: str) -> uuid.UUID:
    run_id = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, created_at,"
            " updated_at) VALUES (%s, %s, 'pending_dependencies', 'automatic', 1, now(), now())",
            (run_id, metric_id),
        )
    return run_id


def _run_status(database_url: str, run_id: uuid.UUID) -> tuple[str, str | None]:
    status, reason = _rows(
        database_url, "SELECT status, status_reason FROM metric_runs WHERE id = %s", run_id
    )[0]
    return status, reason


def _fx_gap(**changes: Any) -> MetricSpec:
    spec = MetricSpec(
        id="m-fx-gap",
        code="fx.gap",
        expression_type="series_math",
        expression={
            "op": "ratio",
            "left": {"series_code": "FX_PARALLEL_D"},
            "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_daily"},
        },
        required_days=2,
    )
    return MetricSpec.model_validate({**spec.model_dump(), **changes})


# --- loading the fixture catalogs ------------------------------------------------------------


def test_loading_the_bcra_catalog_creates_everything(
    catalog: CatalogService, bcra: dict[str, Any], database_url: str
) -> None:
    result = catalog.load_catalog(bcra)

    assert result == CatalogLoadResult(
        series=KindCounts(created=5), datasets=KindCounts(created=1), metrics=KindCounts(created=6)
    )
    assert _counts(database_url) == {
        "series": 5,
        "datasets": 1,
        "dataset_series": 5,
        "metrics": 6,
        "metric_dependencies": 3 + 3 + 2 + 5 + 1 + 1,
    }
    respaldo = catalog.get_metric("mon.respaldo_real")
    assert [d.series_code for d in respaldo.dependencies] == [
        "BCRA_RESERVAS_USD_M_D",
        "BCRA_TC_OFICIAL_A3500_PESOSxUSD_D",
        "BCRA_BASE_MONETARIA_TOTAL_ARS_BN_D",
        "BCRA_LELIQ_NOTALIQ_ARS_BN_D",
        "BCRA_PASES_PASIVOS_ARS_BN_D",
    ]
    assert respaldo.required_datasets == ("bcra_infomondia_series",)
    positions = _rows(
        database_url,
        "SELECT series_code, position FROM metric_dependencies"
        " WHERE metric_id = 'metric-delta-base-30d'",
    )
    assert positions == [("BCRA_BASE_MONETARIA_TOTAL_ARS_BN_D", 0)]


def test_loading_both_fixture_catalogs_twice_changes_nothing_the_second_time(
    catalog: CatalogService,
    bcra: dict[str, Any],
    multi: dict[str, Any],
    database_url: str,
    clock: MutableClock,
) -> None:
    catalog.load_catalog(bcra)
    catalog.load_catalog(multi)
    counts = _counts(database_url)
    stamps = _rows(database_url, "SELECT id, updated_at FROM metrics ORDER BY id")
    clock.advance(clock.now() - clock.now().replace(year=2000))

    again_bcra = catalog.load_catalog(bcra)
    again_multi = catalog.load_catalog(multi)

    assert again_bcra == CatalogLoadResult(
        series=KindCounts(unchanged=5),
        datasets=KindCounts(unchanged=1),
        metrics=KindCounts(unchanged=6),
    )
    assert again_multi == CatalogLoadResult(
        series=KindCounts(unchanged=5),
        datasets=KindCounts(unchanged=4),
        metrics=KindCounts(unchanged=5),
    )
    assert _counts(database_url) == counts
    assert _rows(database_url, "SELECT id, updated_at FROM metrics ORDER BY id") == stamps


def test_stored_expression_is_the_canonical_form(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    multi["metrics"][0]["expression"] = {
        "right": {"seriesCode": "FX_OFFICIAL_D", "datasetId": "fx_daily"},
        "op": "ratio",
        "left": {"seriesCode": "FX_PARALLEL_D"},
    }
    catalog.load_catalog(multi)

    stored = _rows(database_url, "SELECT expression_json FROM metrics WHERE id = 'm-fx-gap'")[0][0]
    expected = {
        "op": "ratio",
        "left": {"series_code": "FX_PARALLEL_D"},
        "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_daily"},
    }
    assert stored == expected
    assert list(catalog.get_metric("fx.gap").expression_json) == ["op", "left", "right"]


def test_settings_of_the_file_and_the_configured_default_are_stored(
    uow_factory: UnitOfWorkFactory, clock: MutableClock, multi: dict[str, Any]
) -> None:
    catalog = CatalogService(uow_factory, clock, default_required_days=11)
    catalog.load_catalog(multi)

    sma = catalog.get_metric("reserves.sma_20")
    real = catalog.get_metric("reserves.real_pesos")
    assert (sma.required_days, sma.trigger_policy, sma.max_attempts, sma.enabled) == (
        11,
        TriggerPolicy.ALL_NEW,
        3,
        True,
    )
    assert (real.required_days, real.trigger_policy, real.max_attempts) == (
        7,
        TriggerPolicy.ANY_NEW,
        2,
    )


# --- resolution (SPEC §2) ---------------------------------------------------------------------


def test_a_pinned_series_resolves_to_the_pinned_dataset(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)

    assert catalog.get_metric("fx.gap").dependencies == (
        MetricDependency("FX_PARALLEL_D", "fx_daily"),
        MetricDependency("FX_OFFICIAL_D", "fx_daily"),
    )
    assert catalog.get_metric("reserves.real_pesos").dependencies == (
        MetricDependency("RESERVES_USD_D", "reserves_daily"),
        MetricDependency("FX_OFFICIAL_D", "fx_daily"),
        MetricDependency("CPI_INDEX_M", "prices_monthly"),
    )


def test_a_pin_to_the_other_provider_is_honoured(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)
    mirrored = _fx_gap(
        expression={
            "op": "ratio",
            "left": {"series_code": "FX_PARALLEL_D"},
            "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_mirror"},
        }
    )

    metric = catalog.register_metric(mirrored)

    assert metric.dependencies[1] == MetricDependency("FX_OFFICIAL_D", "fx_mirror")
    assert metric.required_datasets == ("fx_daily", "fx_mirror")


def test_an_unpinned_series_with_two_providers_is_refused_naming_both(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    catalog.load_catalog(multi)
    counts = _counts(database_url)
    unpinned = MetricSpec(
        id="m-official",
        code="fx.official_sma",
        expression_type="window_op",
        expression={"op": "sma", "series": {"series_code": "FX_OFFICIAL_D"}, "window": 5},
    )

    with pytest.raises(ValidationError) as caught:
        catalog.register_metric(unpinned)

    assert _errors(caught) == [
        "expression.series.series_code: series 'FX_OFFICIAL_D' is provided by several datasets "
        "(fx_daily, fx_mirror); pin one with dataset_id"
    ]
    assert _counts(database_url) == counts


def test_the_same_refusal_in_a_file_carries_the_file_path(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    del multi["metrics"][2]["expression"]["left"]["right"]["dataset_id"]

    with pytest.raises(ValidationError) as caught:
        catalog.load_catalog(multi)

    assert _errors(caught) == [
        "metrics[2].expression.left.right.series_code: series 'FX_OFFICIAL_D' is provided by "
        "several datasets (fx_daily, fx_mirror); pin one with dataset_id"
    ]


def test_an_unknown_series_is_refused(catalog: CatalogService, multi: dict[str, Any]) -> None:
    catalog.load_catalog(multi)

    with pytest.raises(ValidationError) as caught:
        catalog.register_metric(
            _fx_gap(
                expression={
                    "op": "ratio",
                    "left": {"series_code": "FX_BLUE_D"},
                    "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_daily"},
                }
            )
        )

    assert _errors(caught) == ["expression.left.series_code: unknown series 'FX_BLUE_D'"]


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        (
            "prices_monthly",
            "dataset 'prices_monthly' does not provide series 'FX_OFFICIAL_D' "
            "(candidates: fx_daily, fx_mirror)",
        ),
        ("fx_nowhere", "unknown dataset 'fx_nowhere' (candidates: fx_daily, fx_mirror)"),
    ],
)
def test_a_bad_pin_is_refused_naming_the_candidates(
    catalog: CatalogService, multi: dict[str, Any], database_url: str, pin: str, message: str
) -> None:
    catalog.load_catalog(multi)
    before = catalog.get_metric("fx.gap")
    bad = _fx_gap(
        expression={
            "op": "ratio",
            "left": {"series_code": "FX_PARALLEL_D"},
            "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": pin},
        }
    )

    with pytest.raises(ValidationError) as caught:
        catalog.register_metric(bad)

    assert _errors(caught) == [f"expression.right.dataset_id: {message}"]
    assert catalog.get_metric("fx.gap") == before


def test_a_series_pinned_to_two_datasets_is_refused(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)
    twice = MetricSpec(
        id="m-twice",
        code="fx.twice",
        expression_type="series_math",
        expression={
            "op": "subtract",
            "left": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_daily"},
            "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_mirror"},
        },
    )

    with pytest.raises(ValidationError) as caught:
        catalog.register_metric(twice)

    assert _errors(caught) == [
        "expression.right.dataset_id: series 'FX_OFFICIAL_D' is pinned to 'fx_mirror' here but "
        "to 'fx_daily' at expression.left; a series has one dataset per metric"
    ]


def test_one_pin_decides_for_every_reference_to_the_series(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)
    spec = MetricSpec(
        id="m-fx-change",
        code="fx.change",
        expression_type="series_math",
        expression={
            "op": "subtract",
            "left": {"series_code": "FX_OFFICIAL_D"},
            "right": {
                "op": "lag",
                "series": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_mirror"},
                "window": 1,
            },
        },
    )

    assert catalog.register_metric(spec).dependencies == (
        MetricDependency("FX_OFFICIAL_D", "fx_mirror"),
    )


def test_a_series_no_dataset_provides_is_refused(catalog: CatalogService) -> None:
    catalog.register_series(SeriesSpec(code="ORPHAN_D", unit="u"))

    with pytest.raises(ValidationError) as caught:
        catalog.load_catalog(
            {
                "metrics": [
                    {
                        "id": "m-o",
                        "code": "o",
                        "expression_type": "window_op",
                        "expression": {
                            "op": "max",
                            "series": {"series_code": "ORPHAN_D"},
                            "window": 3,
                        },
                    }
                ]
            }
        )

    assert _errors(caught) == [
        "metrics[0].expression.series.series_code: series 'ORPHAN_D' is not provided by any dataset"
    ]


def test_series_and_datasets_already_in_the_database_can_be_referenced(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog({"series": multi["series"]})
    catalog.load_catalog({"datasets": multi["datasets"]})

    result = catalog.load_catalog({"metrics": multi["metrics"]})

    assert result.metrics == KindCounts(created=5)
    assert len(catalog.list_metrics()) == 5


# --- all or nothing ---------------------------------------------------------------------------


def test_a_file_with_several_errors_reports_all_and_writes_nothing(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    broken = copy.deepcopy(multi)
    broken["series"][4]["unit"] = 12
    broken["datasets"][2]["series"].append("GOLD_D")
    del broken["metrics"][0]["expression"]["right"]["dataset_id"]
    broken["metrics"][1]["expression"]["left"]["series_code"] = "WAGES_INDEX_X"
    broken["metrics"][3]["expression"]["window"] = 0
    broken["metrics"][4]["required_days"] = "two"
    broken["metrics"][4]["expression"]["right"]["dataset_id"] = "prices_monthly"
    broken["owner"] = "team-fx"

    with pytest.raises(ValidationError) as caught:
        catalog.load_catalog(broken)

    assert _errors(caught) == [
        "owner: unknown key; expected series, datasets, metrics, notifications",
        "series[4].unit: must be a string, got a number",
        "datasets[2].series[1]: unknown series 'GOLD_D'",
        "metrics[0].expression.right.series_code: series 'FX_OFFICIAL_D' is provided by several "
        "datasets (fx_daily, fx_mirror); pin one with dataset_id",
        "metrics[1].expression.left.series_code: unknown series 'WAGES_INDEX_X'",
        "metrics[3].expression.window: must be an integer between 1 and 36500",
        "metrics[4].required_days: must be an integer between 1 and 36500",
        "metrics[4].expression.right.dataset_id: dataset 'prices_monthly' does not provide "
        "series 'FX_PARALLEL_D' (candidates: fx_daily)",
    ]
    assert _counts(database_url) == dict.fromkeys(CATALOG_TABLES, 0)


def test_a_failing_reload_leaves_the_previous_catalog_untouched(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    catalog.load_catalog(multi)
    snapshot = {t: _rows(database_url, f"SELECT * FROM {t} ORDER BY 1, 2") for t in CATALOG_TABLES}
    changed = copy.deepcopy(multi)
    changed["series"][0]["name"] = "renamed"
    changed["datasets"][0]["bucket"] = "elsewhere"
    changed["metrics"][3]["expression"]["window"] = 30
    changed["metrics"][4]["expression"]["left"]["series_code"] = "NOT_A_SERIES"

    with pytest.raises(ValidationError):
        catalog.load_catalog(changed)

    after = {t: _rows(database_url, f"SELECT * FROM {t} ORDER BY 1, 2") for t in CATALOG_TABLES}
    assert after == snapshot


def test_a_metric_code_taken_by_another_metric_is_refused(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)

    with pytest.raises(Conflict) as conflict:
        catalog.register_metric(_fx_gap(id="m-other-gap"))
    assert str(conflict.value) == "metric code 'fx.gap' is already used by metric 'm-fx-gap'"
    clash = copy.deepcopy(multi["metrics"][3])
    clash["code"] = "fx.gap"
    with pytest.raises(ValidationError) as caught:
        catalog.load_catalog({"metrics": [clash]})
    assert _errors(caught) == [
        "metrics[0].code: code 'fx.gap' is already used by metric 'm-fx-gap'"
    ]


# --- changes ------------------------------------------------------------------------------------


def test_changing_an_expression_cancels_the_pending_run(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    catalog.load_catalog(multi)
    run_id = _insert_pending_run(database_url, "m-reserves-sma")
    changed = copy.deepcopy(multi)
    changed["metrics"][3]["expression"]["window"] = 30

    result = catalog.load_catalog(changed)

    assert result.metrics == KindCounts(updated=1, unchanged=4)
    assert result.canceled_runs == ("m-reserves-sma",)
    assert _run_status(database_url, run_id) == ("canceled", "metric definition changed")
    assert catalog.get_metric("reserves.sma_20").expression_json["window"] == 30


def test_changing_dependencies_cancels_the_pending_run_and_replaces_them(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    catalog.load_catalog(multi)
    run_id = _insert_pending_run(database_url, "m-fx-gap")
    mirrored = _fx_gap(
        expression={
            "op": "ratio",
            "left": {"series_code": "FX_PARALLEL_D"},
            "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_mirror"},
        }
    )

    catalog.register_metric(mirrored)

    assert _run_status(database_url, run_id) == ("canceled", "metric definition changed")
    assert _rows(
        database_url,
        "SELECT series_code, dataset_id, position FROM metric_dependencies"
        " WHERE metric_id = 'm-fx-gap' ORDER BY position",
    ) == [("FX_PARALLEL_D", "fx_daily", 0), ("FX_OFFICIAL_D", "fx_mirror", 1)]


def test_changing_only_descriptive_fields_keeps_the_pending_run(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    catalog.load_catalog(multi)
    run_id = _insert_pending_run(database_url, "m-fx-gap")

    metric = catalog.register_metric(_fx_gap(description="parallel over official", unit="x"))

    assert (metric.description, metric.unit) == ("parallel over official", "x")
    assert _run_status(database_url, run_id) == ("pending_dependencies", None)


def test_a_refused_change_keeps_the_pending_run(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    catalog.load_catalog(multi)
    run_id = _insert_pending_run(database_url, "m-fx-gap")
    unpinned = _fx_gap(
        expression={
            "op": "ratio",
            "left": {"series_code": "FX_PARALLEL_D"},
            "right": {"series_code": "FX_OFFICIAL_D"},
        }
    )

    with pytest.raises(ValidationError):
        catalog.register_metric(unpinned)

    assert _run_status(database_url, run_id) == ("pending_dependencies", None)


def test_update_metric_changes_settings_only(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    catalog.load_catalog(multi)
    run_id = _insert_pending_run(database_url, "m-fx-gap")

    metric = catalog.update_metric(
        "fx.gap", MetricSettings(required_days=5, max_attempts=4, trigger_policy="any_new")
    )

    assert (metric.required_days, metric.max_attempts, metric.trigger_policy) == (
        5,
        4,
        TriggerPolicy.ANY_NEW,
    )
    assert metric.enabled is True
    assert _run_status(database_url, run_id) == ("pending_dependencies", None)


def test_disabling_a_metric_cancels_its_pending_run_and_a_reload_keeps_it_disabled(
    catalog: CatalogService, multi: dict[str, Any], database_url: str
) -> None:
    catalog.load_catalog(multi)
    run_id = _insert_pending_run(database_url, "m-fx-gap")

    assert catalog.update_metric("fx.gap", MetricSettings(enabled=False)).enabled is False
    assert _run_status(database_url, run_id) == ("canceled", "metric disabled")
    result = catalog.load_catalog(multi)

    assert result.metrics == KindCounts(unchanged=5)
    assert catalog.get_metric("fx.gap").enabled is False
    assert catalog.update_metric("fx.gap", MetricSettings(enabled=True)).enabled is True


def test_update_metric_refuses_bad_values_and_unknown_metrics(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)

    with pytest.raises(ValidationError) as caught:
        catalog.update_metric(
            "fx.gap",
            MetricSettings.checked({"required_days": 0, "max_attempts": 0, "trigger_policy": "x"}),
        )
    assert _errors(caught) == [
        "required_days: must be an integer between 1 and 36500",
        "max_attempts: must be an integer between 1 and 100",
        "trigger_policy: unknown trigger policy 'x'; expected one of all_new, any_new",
    ]
    with pytest.raises(NotFound):
        catalog.update_metric("fx.nope", MetricSettings(enabled=False))
    with pytest.raises(NotFound):
        catalog.get_metric("fx.nope")
    assert catalog.get_metric("fx.gap").required_days == 2


def test_datasets_are_disabled_not_deleted_and_reloads_keep_that(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)

    assert catalog.set_dataset_enabled("fx_mirror", False).enabled is False
    catalog.load_catalog(multi)

    assert catalog.get_dataset("fx_mirror").enabled is False
    assert [d.id for d in catalog.list_datasets()] == [
        "fx_daily",
        "fx_mirror",
        "prices_monthly",
        "reserves_daily",
    ]
    with pytest.raises(NotFound):
        catalog.set_dataset_enabled("nope", True)
    with pytest.raises(NotFound):
        catalog.get_dataset("nope")


def test_a_dataset_series_list_replaces_the_stored_one(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)
    catalog.register_series(SeriesSpec(code="FX_CCL_D", name="CCL rate"))

    dataset = catalog.register_dataset(
        DatasetSpec(id="fx_mirror", name="FX rates (mirror)", series=["FX_OFFICIAL_D", "FX_CCL_D"])
    )

    assert dataset.series == ("FX_CCL_D", "FX_OFFICIAL_D")
    assert dataset.bucket == ""
    assert catalog.load_catalog(multi).datasets == KindCounts(updated=1, unchanged=3)
    assert catalog.get_dataset("fx_mirror").series == ("FX_OFFICIAL_D",)


def test_a_dataset_cannot_stop_providing_a_series_a_metric_uses(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)

    with pytest.raises(ValidationError) as caught:
        catalog.register_dataset(DatasetSpec(id="fx_daily", series=["FX_PARALLEL_D"]))

    assert _errors(caught) == [
        "series: cannot stop providing series 'FX_OFFICIAL_D': metric 'm-fx-gap' depends on it "
        "through this dataset",
        "series: cannot stop providing series 'FX_OFFICIAL_D': metric 'm-reserves-in-pesos-real' "
        "depends on it through this dataset",
    ]
    assert catalog.get_dataset("fx_daily").series == ("FX_OFFICIAL_D", "FX_PARALLEL_D")


def test_a_provider_can_move_when_the_same_file_repoints_its_metrics(
    catalog: CatalogService, multi: dict[str, Any]
) -> None:
    catalog.load_catalog(multi)
    moved = copy.deepcopy(multi)
    moved["datasets"][0]["series"] = ["FX_PARALLEL_D"]
    moved["metrics"][0]["expression"]["right"]["dataset_id"] = "fx_mirror"
    moved["metrics"][2]["expression"]["left"]["right"]["dataset_id"] = "fx_mirror"

    result = catalog.load_catalog(moved)

    assert result.datasets == KindCounts(updated=1, unchanged=3)
    assert result.metrics == KindCounts(updated=2, unchanged=3)
    assert catalog.get_metric("fx.gap").required_datasets == ("fx_daily", "fx_mirror")
    assert catalog.get_dataset("fx_daily").series == ("FX_PARALLEL_D",)


def test_concurrent_loads_of_the_same_file_both_succeed(
    catalog: CatalogService, bcra: dict[str, Any], multi: dict[str, Any], database_url: str
) -> None:
    document = {key: bcra[key] + multi[key] for key in ("series", "datasets", "metrics")}
    results: list[CatalogLoadResult] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def load() -> None:
        start.wait()
        try:
            results.append(catalog.load_catalog(document))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sum(r.metrics.created for r in results) == 11
    assert sum(r.metrics.unchanged for r in results) == 3 * 11
    assert _counts(database_url)["metrics"] == 11
