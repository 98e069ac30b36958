from __future__ import annotations

import json

import pytest
import structlog

from metrics_orchestrator.domain import log_events
from metrics_orchestrator.infrastructure.logging import configure_logging
from metrics_orchestrator.infrastructure.settings import LogFormat


def test_json_lines_carry_event_message_and_context_with_secrets_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", LogFormat.JSON)
    structlog.get_logger().info(
        log_events.ON_RUN_QUEUED,
        message="run queued",
        run_id="r-1",
        api_token="s3cr3t",
        database_url="postgresql://app:hunter2@db:5432/x",
    )
    line = json.loads(capsys.readouterr().err.strip())
    assert line["event"] == "ON_RUN_QUEUED"
    assert line["message"] == "run queued"
    assert line["run_id"] == "r-1"
    assert line["level"] == "info"
    assert line["api_token"] == "***"
    assert line["database_url"] == "postgresql://app:***@db:5432/x"
    assert "hunter2" not in json.dumps(line)


def test_level_from_settings_filters_lower_levels(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", LogFormat.JSON)
    structlog.get_logger().info(log_events.ON_RUN_QUEUED, message="hidden")
    structlog.get_logger().warning(log_events.ON_EVENT_REJECTED, message="shown")
    lines = capsys.readouterr().err.strip().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["ON_EVENT_REJECTED"]


def test_event_constants_are_their_own_names() -> None:
    names = [n for n in dir(log_events) if n.startswith("ON_")]
    assert names
    assert all(getattr(log_events, n) == n for n in names)
