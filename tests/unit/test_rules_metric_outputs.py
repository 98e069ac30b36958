"""A metric's output as a dataset (SPEC §8), the pure rules of domain/metric_outputs.py: the
pseudo-dataset `metric:X`, the version a succeeded run's output makes, freshest-wins among those
versions by formation time, the data time behind a run, and what a run request says of such an
input. No database, no S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.identifiers import IDENTIFIER_PATTERN
from metrics_orchestrator.domain.messages.run_requested import build_run_request
from metrics_orchestrator.domain.metric_outputs import (
    InputBehind,
    OutputFacts,
    data_time,
    output_catalog_entry,
    output_dataset_id,
    output_metric_code,
    output_version,
)
from metrics_orchestrator.domain.model import DatasetUpdate, MetricDependency
from metrics_orchestrator.domain.orchestration import freshest

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RUN_ID = UUID("00000000-0000-4000-8000-00000000000a")
OTHER_RUN_ID = UUID("00000000-0000-4000-8000-00000000000b")
UPDATE_ID = UUID("00000000-0000-4000-8000-0000000000c1")
BASE = "s3://outputs/metrics/X/"
MANIFEST_KEY = "metrics/X/runs/abc/manifest.json"


def run_output(
    *,
    manifest: str | None = f"s3://outputs/{MANIFEST_KEY}",
    base_path: str | None = BASE,
    run_id: UUID = RUN_ID,
    formed_at: datetime = T0,
) -> OutputFacts:
    return OutputFacts(
        run_id=run_id,
        dataset_id="metric:X",
        base_path=base_path,
        formed_at=formed_at,
        manifest=manifest,
    )


def projection_update(dataset_id: str = "d1") -> DatasetUpdate:
    return DatasetUpdate(
        id=UPDATE_ID,
        event_key=f"{dataset_id}:v1/manifest.json",
        dataset_id=dataset_id,
        bucket="data",
        version_manifest_path="v1/manifest.json",
        projections_path="projections/",
        occurred_at=T0,
        received_at=T0 + timedelta(minutes=1),
    )


# --- the pseudo-dataset -----------------------------------------------------------------------


def test_a_metrics_output_is_the_dataset_metric_colon_code() -> None:
    assert output_dataset_id("ratio.reserves") == "metric:ratio.reserves"
    assert output_metric_code("metric:ratio.reserves") == "ratio.reserves"


def test_a_dataset_of_projections_is_no_metrics_output() -> None:
    assert output_metric_code("reserves_daily") is None
    assert output_metric_code("metricX") is None


@given(st.from_regex(IDENTIFIER_PATTERN, fullmatch=True))
def test_dataset_id_and_metric_code_round_trip(code: str) -> None:
    dataset_id = output_dataset_id(code)
    assert output_metric_code(dataset_id) == code
    # a real dataset id may not hold ":", so it never reads as a metric's output
    assert output_metric_code(code) is None


# --- the version a succeeded run's output makes -----------------------------------------------


def test_a_manifest_given_as_a_full_uri_makes_a_version() -> None:
    received = T0 + timedelta(hours=2)
    version = output_version(run_output(), received)
    assert version is not None
    assert version.dataset_id == "metric:X"
    assert version.event_key == f"metric:X:run:{RUN_ID}"
    assert (version.bucket, version.version_manifest_path) == ("outputs", MANIFEST_KEY)
    assert version.projections_path == "metrics/X/"
    assert version.occurred_at is None
    assert version.received_at == received
    assert version.effective_at == received
    assert version.run_id == RUN_ID
    assert version.formed_at == T0
    assert version.seq == 0


def test_a_manifest_given_as_a_key_lies_in_the_base_paths_bucket() -> None:
    version = output_version(run_output(manifest=MANIFEST_KEY), T0)
    assert version is not None
    assert (version.bucket, version.version_manifest_path) == ("outputs", MANIFEST_KEY)
    version = output_version(run_output(manifest=f"/{MANIFEST_KEY}"), T0)
    assert version is not None
    assert version.version_manifest_path == MANIFEST_KEY


def test_a_manifest_in_another_bucket_keeps_its_bucket() -> None:
    version = output_version(run_output(manifest="s3://elsewhere/out/manifest.json"), T0)
    assert version is not None
    assert (version.bucket, version.version_manifest_path) == ("elsewhere", "out/manifest.json")
    assert version.projections_path == "metrics/X/"


def test_each_run_makes_its_own_version_and_event_key() -> None:
    first = output_version(run_output(), T0)
    second = output_version(run_output(run_id=OTHER_RUN_ID), T0)
    assert first is not None
    assert second is not None
    assert first.event_key != second.event_key
    assert first.id != second.id


@pytest.mark.parametrize(
    ("manifest", "base_path"),
    [
        pytest.param(None, BASE, id="no manifest"),
        pytest.param("", BASE, id="empty manifest"),
        pytest.param(MANIFEST_KEY, None, id="no base path"),
        pytest.param(MANIFEST_KEY, "", id="empty base path"),
        pytest.param(MANIFEST_KEY, "https://outputs/metrics/X/", id="base path not s3"),
        pytest.param(MANIFEST_KEY, "s3:///metrics/X/", id="base path without bucket"),
        pytest.param(MANIFEST_KEY, "s3://outputs", id="base path without key"),
        pytest.param("s3:///metrics/X/manifest.json", BASE, id="manifest without bucket"),
        pytest.param("s3://outputs/", BASE, id="manifest without key"),
        pytest.param("/", BASE, id="manifest key empty"),
    ],
)
def test_nothing_to_read_makes_no_version(manifest: str | None, base_path: str | None) -> None:
    assert output_version(run_output(manifest=manifest, base_path=base_path), T0) is None


def test_a_late_success_of_an_older_run_does_not_win_freshest() -> None:
    newer_formed = output_version(
        run_output(run_id=OTHER_RUN_ID, formed_at=T0 + timedelta(minutes=10)),
        T0 + timedelta(minutes=20),
    )
    # formed first, but its success arrives an hour later
    older_formed = output_version(run_output(formed_at=T0), T0 + timedelta(hours=1))
    assert newer_formed is not None
    assert older_formed is not None
    assert older_formed.effective_at > newer_formed.effective_at
    recorded_new, recorded_old = newer_formed.recorded(1, "outputs"), older_formed.recorded(2, "o")
    assert freshest([recorded_new, recorded_old]) is recorded_new
    assert freshest([recorded_old, recorded_new]) is recorded_new
    assert not recorded_old.is_newer_than(recorded_new)


def test_among_runs_formed_at_once_the_later_receipt_wins() -> None:
    first = output_version(run_output(), T0 + timedelta(minutes=1))
    second = output_version(run_output(run_id=OTHER_RUN_ID), T0 + timedelta(minutes=2))
    assert first is not None
    assert second is not None
    assert freshest([second, first]) is second


# --- data time --------------------------------------------------------------------------------


def test_data_time_is_the_oldest_effective_time() -> None:
    inputs = [InputBehind(T0 + timedelta(days=2)), InputBehind(T0), InputBehind(T0 + timedelta(1))]
    assert data_time(inputs) == T0


def test_an_input_from_a_metric_brings_the_data_time_of_its_run() -> None:
    upstream = InputBehind(T0 + timedelta(days=5), T0 - timedelta(days=3), from_metric=True)
    assert data_time([upstream, InputBehind(T0)]) == T0 - timedelta(days=3)


def test_an_upstream_data_time_later_than_the_others_does_not_win() -> None:
    upstream = InputBehind(T0 + timedelta(days=5), T0 + timedelta(days=4), from_metric=True)
    assert data_time([upstream, InputBehind(T0)]) == T0


def test_an_input_from_a_metric_without_a_data_time_counts_its_effective_time() -> None:
    upstream = InputBehind(T0 - timedelta(days=1), None, from_metric=True)
    assert data_time([upstream, InputBehind(T0)]) == T0 - timedelta(days=1)


def test_an_upstream_data_time_on_a_dataset_input_is_not_used() -> None:
    odd = InputBehind(T0, T0 - timedelta(days=9), from_metric=False)
    assert data_time([odd]) == T0


def test_no_inputs_no_data_time() -> None:
    assert data_time([]) is None
    assert data_time(iter(())) is None


# --- the run request's catalog entry ----------------------------------------------------------


def test_a_metric_output_says_its_kind_metric_and_run() -> None:
    version = output_version(run_output(), T0)
    assert version is not None
    assert output_catalog_entry(version) == {
        "kind": "metric_output",
        "metricCode": "X",
        "runId": str(RUN_ID),
    }


def test_a_dataset_of_projections_adds_nothing() -> None:
    assert output_catalog_entry(projection_update()) == {}


def test_a_metric_dataset_without_its_run_adds_nothing() -> None:
    without_run = DatasetUpdate(
        id=UPDATE_ID,
        event_key="metric:X:legacy",
        dataset_id="metric:X",
        bucket="outputs",
        version_manifest_path=MANIFEST_KEY,
        projections_path="metrics/X/",
        occurred_at=None,
        received_at=T0,
    )
    assert output_catalog_entry(without_run) == {}


def test_a_run_request_describes_a_metric_input_and_a_dataset_input() -> None:
    version = output_version(run_output(), T0)
    assert version is not None
    dataset = projection_update()
    payload = build_run_request(
        run_id=OTHER_RUN_ID,
        attempt=1,
        requested_at=T0,
        metric_code="Y",
        expression_type="series_math",
        expression_json={
            "op": "ratio",
            "left": {"metric_code": "X"},
            "right": {"series_code": "A"},
        },
        dependencies=[MetricDependency("X", "metric:X"), MetricDependency("A", "d1")],
        consumed={"metric:X": version, "d1": dataset},
        output_base_path="s3://outputs/metrics/Y/",
    )
    assert payload["inputs"] == [
        {"datasetId": "metric:X", "seriesCode": "X"},
        {"datasetId": "d1", "seriesCode": "A"},
    ]
    assert payload["catalog"]["datasets"] == {
        "metric:X": {
            "bucket": "outputs",
            "manifestPath": MANIFEST_KEY,
            "projectionsPath": "metrics/X/",
            "updateId": str(version.id),
            "kind": "metric_output",
            "metricCode": "X",
            "runId": str(RUN_ID),
        },
        "d1": {
            "bucket": "data",
            "manifestPath": "v1/manifest.json",
            "projectionsPath": "projections/",
            "updateId": str(UPDATE_ID),
        },
    }
