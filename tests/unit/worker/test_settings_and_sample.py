"""Worker settings (bounded, errors naming the variable) and the sample world's series."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from metrics_orchestrator.worker.sample_world import (
    HOLIDAYS,
    SampleSeries,
    sample_points,
)
from metrics_orchestrator.worker.settings import WorkerSettingsError, load_worker_settings

REQUIRED = {
    "SQS_RUN_REQUEST_QUEUE_URL": "http://sqs/q",
    "SNS_RUN_FEEDBACK_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
}


def test_defaults() -> None:
    settings = load_worker_settings(REQUIRED)
    assert settings.worker_concurrency == 2
    assert settings.worker_heartbeat_interval == 10.0
    assert settings.worker_visibility_timeout == 60


def test_the_queue_and_topic_are_required_and_named() -> None:
    with pytest.raises(WorkerSettingsError) as raised:
        load_worker_settings({})
    assert "SQS_RUN_REQUEST_QUEUE_URL" in str(raised.value)
    assert "SNS_RUN_FEEDBACK_TOPIC_ARN" in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_CONCURRENCY", "1000"),
        ("WORKER_HEARTBEAT_INTERVAL", "0"),
        ("WORKER_HEARTBEAT_INTERVAL", "1e9"),
        ("WORKER_HEARTBEAT_INTERVAL", "soon"),
        ("WORKER_VISIBILITY_TIMEOUT", "50000"),
        ("WORKER_MIN_RUN_SECONDS", "-1"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_out_of_bounds_values_are_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(WorkerSettingsError, match=variable):
        load_worker_settings({**REQUIRED, variable: value})


def test_the_visibility_timeout_must_outlast_two_heartbeats() -> None:
    with pytest.raises(WorkerSettingsError, match="WORKER_VISIBILITY_TIMEOUT"):
        load_worker_settings(
            {**REQUIRED, "WORKER_HEARTBEAT_INTERVAL": "30", "WORKER_VISIBILITY_TIMEOUT": "40"}
        )


def test_sample_series_are_deterministic_with_weekend_and_holiday_gaps() -> None:
    daily = SampleSeries("BCRA_RESERVAS_USD_M_D", monthly=False)
    first, again = sample_points(daily), sample_points(daily)
    assert first.equals(again)
    times = first["obs_time"].to_list()
    assert 480 <= len(times) <= 530  # about two years of business days
    assert all(t.weekday() < 5 for t in times)
    assert not any((t.month, t.day) in HOLIDAYS for t in times)
    assert times == sorted(times)
    assert times[-1] == datetime(2025, 11, 10, tzinfo=UTC)
    assert first["value"].null_count() >= 1
    other = sample_points(SampleSeries("BCRA_TC_OFICIAL_A3500_PESOSxUSD_D", monthly=False))
    assert not first["value"].equals(other["value"])


def test_monthly_sample_series_have_one_point_on_the_first_of_each_month() -> None:
    monthly = sample_points(SampleSeries("CPI_INDEX_M", monthly=True))
    times = monthly["obs_time"].to_list()
    assert 24 <= len(times) <= 26
    assert all(t.day == 1 for t in times)


def test_serve_refuses_both_workers_at_once() -> None:
    from typer.testing import CliRunner

    from metrics_orchestrator.interfaces.cli import app

    result = CliRunner().invoke(app, ["serve", "--sample-worker", "--worker"])
    assert result.exit_code == 2
    assert "choose one of --sample-worker" in result.output


def test_the_worker_command_names_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from metrics_orchestrator.interfaces.cli import app

    monkeypatch.delenv("SQS_RUN_REQUEST_QUEUE_URL", raising=False)
    monkeypatch.delenv("SNS_RUN_FEEDBACK_TOPIC_ARN", raising=False)
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "SQS_RUN_REQUEST_QUEUE_URL" in result.output
