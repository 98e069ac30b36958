from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from metrics_orchestrator.domain.events import MAX_BUCKET_LENGTH
from metrics_orchestrator.domain.identifiers import MAX_IDENTIFIER_LENGTH
from metrics_orchestrator.domain.messages.run_completed import parse_run_completed
from metrics_orchestrator.domain.model import MAX_ATTEMPTS
from metrics_orchestrator.infrastructure.settings import (
    MAX_OUTPUT_PREFIX_LENGTH,
    WORKER_SUFFIX_ALLOWANCE,
    LogFormat,
    Settings,
    SettingsError,
    load_settings,
)


def test_defaults_match_the_spec() -> None:
    settings = load_settings(env={})
    assert settings.database_url is None
    assert settings.uses_embedded_database
    assert settings.uses_embedded_aws
    assert settings.output_prefix == "metrics"
    assert settings.http_host == "127.0.0.1"
    assert settings.http_port == 8000
    assert settings.default_required_days == 7
    assert settings.run_start_timeout == timedelta(minutes=15)
    assert settings.run_heartbeat_timeout == timedelta(minutes=5)
    assert settings.sweep_interval == timedelta(seconds=10)
    assert settings.log_format is LogFormat.CONSOLE


def test_every_variable_is_read_from_the_environment() -> None:
    settings = load_settings(
        env={
            "DATABASE_URL": "postgresql://u:secret@db/x",
            "AWS_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
            "SNS_RUN_REQUEST_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t.fifo",
            "SQS_PROJECTION_UPDATE_QUEUE_URL": "http://q/updates",
            "SQS_RUN_FEEDBACK_QUEUE_URLS": "http://q/a, http://q/b,",
            "OUTPUT_BUCKET": "out",
            "OUTPUT_PREFIX": "/m/x/",
            "HTTP_HOST": "0.0.0.0",
            "HTTP_PORT": "9000",
            "API_TOKEN": "tok",
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "json",
            "DEFAULT_REQUIRED_DAYS": "3",
            "RUN_START_TIMEOUT": "PT1M",
            "RUN_HEARTBEAT_TIMEOUT": "30",
            "RETRY_BASE_DELAY": "PT2S",
            "DISPATCH_MAX_ATTEMPTS": "9",
            "SWEEP_INTERVAL": "1.5",
        }
    )
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://u:secret@db/x"
    assert "secret" not in repr(settings)
    assert settings.sqs_run_feedback_queue_urls == ("http://q/a", "http://q/b")
    assert settings.output_base_path("m.code") == "s3://out/m/x/m.code/"
    assert settings.log_level == "DEBUG"
    assert settings.log_format is LogFormat.JSON
    assert settings.run_start_timeout == timedelta(minutes=1)
    assert settings.run_heartbeat_timeout == timedelta(seconds=30)
    assert settings.sweep_interval == timedelta(seconds=1.5)
    assert settings.dispatch_max_attempts == 9
    assert not settings.uses_embedded_aws


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HTTP_PORT": "99999"}, "HTTP_PORT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"DEFAULT_REQUIRED_DAYS": "0"}, "DEFAULT_REQUIRED_DAYS"),
        ({"RUN_START_TIMEOUT": "-5"}, "RUN_START_TIMEOUT"),
        ({"SWEEP_INTERVAL": "soon"}, "SWEEP_INTERVAL"),
        ({"DISPATCH_MAX_ATTEMPTS": "0"}, "DISPATCH_MAX_ATTEMPTS"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env=env)
    assert f"{named}:" in str(error.value)


def test_several_invalid_values_are_all_named() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env={"HTTP_PORT": "x", "LOG_LEVEL": "LOUD"})
    assert "HTTP_PORT:" in str(error.value)
    assert "LOG_LEVEL:" in str(error.value)


# --- bounds (issue 10, SPEC §5.8, §6.2; docs/limits.md) ------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RETRY_BASE_DELAY", "P99999999D"),  # wedged every sweep after the first failure
        ("RETRY_BASE_DELAY", "P2D"),
        ("DEFAULT_REQUIRED_DAYS", "99999999"),  # broke every update of a dependent dataset
        ("DEFAULT_REQUIRED_DAYS", "36501"),
        ("RUN_START_TIMEOUT", "P31D"),
        ("RUN_HEARTBEAT_TIMEOUT", "P31D"),
        ("SWEEP_INTERVAL", "PT2H"),
        ("DISPATCH_POLL_INTERVAL", "PT2H"),
        ("DISPATCH_MAX_ATTEMPTS", "101"),
        ("MAX_CLOCK_SKEW", "P2D"),
        ("MAX_CLOCK_SKEW", "-1"),
        ("RETRY_BASE_DELAY", "0"),
        ("SWEEP_INTERVAL", "-0.5"),
        ("RUN_START_TIMEOUT", "1e308"),
    ],
)
def test_values_out_of_their_documented_range_are_refused_naming_the_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(env={variable: value})


def test_the_largest_values_in_range_are_accepted() -> None:
    settings = load_settings(
        env={
            "RETRY_BASE_DELAY": "P1D",
            "DEFAULT_REQUIRED_DAYS": "36500",
            "RUN_START_TIMEOUT": "P30D",
            "RUN_HEARTBEAT_TIMEOUT": "P30D",
            "DISPATCH_MAX_ATTEMPTS": "100",
            "MAX_CLOCK_SKEW": "P1D",
        }
    )
    assert settings.retry_base_delay == timedelta(days=1)
    assert settings.max_clock_skew == timedelta(days=1)


def test_max_clock_skew_defaults_to_five_minutes_and_may_be_zero() -> None:
    assert load_settings(env={}).max_clock_skew == timedelta(minutes=5)
    assert load_settings(env={"MAX_CLOCK_SKEW": "0"}).max_clock_skew == timedelta(0)


def test_nothing_computed_from_the_largest_retry_delay_overflows() -> None:
    from metrics_orchestrator.domain.retries import retry_delay
    from metrics_orchestrator.infrastructure.settings import DURATION_BOUNDS

    largest = DURATION_BOUNDS["retry_base_delay"]
    delay = retry_delay(largest, attempt=100)
    # still a valid moment long after today, in Python (and in PostgreSQL, which goes further)
    assert datetime(2100, 1, 1, tzinfo=UTC) + delay < datetime(9999, 1, 1, tzinfo=UTC)


# --- settings that end up in paths and messages (issue 20 item 16) ---------------------------


def _longest_manifest_uri(settings: Settings) -> str:
    """The reference worker's longest output path under the longest metric code."""
    from metrics_orchestrator.domain.s3_locations import parse_s3_uri
    from metrics_orchestrator.worker.outputs import version_ts

    base = parse_s3_uri(settings.output_base_path("m" * MAX_IDENTIFIER_LENGTH))
    longest = f"runs/{uuid4()}-{MAX_ATTEMPTS}.ok"
    assert len(longest) <= WORKER_SUFFIX_ALLOWANCE
    assert len(f"{version_ts(datetime(9999, 12, 31, tzinfo=UTC))}/manifest.json") < len(longest)
    return base.child("x" * WORKER_SUFFIX_ALLOWANCE).uri


def test_the_longest_output_prefix_and_bucket_still_give_accepted_manifests() -> None:
    settings = load_settings(
        env={
            "OUTPUT_PREFIX": "p" * MAX_OUTPUT_PREFIX_LENGTH,
            "OUTPUT_BUCKET": "b" * MAX_BUCKET_LENGTH,
        }
    )
    completed = {
        "event": "metric_run_completed",
        "runId": str(uuid4()),
        "status": "SUCCESS",
        "outputManifest": _longest_manifest_uri(settings),
    }

    parsed = parse_run_completed(completed)  # raises ValidationError if refused

    assert parsed.output_manifest == completed["outputManifest"]
    key = parsed.output_manifest.removeprefix(f"s3://{settings.output_bucket}/")
    assert len(key.encode()) <= 1024  # an S3 key's limit


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OUTPUT_PREFIX", "p" * 1000, f"at most {MAX_OUTPUT_PREFIX_LENGTH}"),
        ("OUTPUT_PREFIX", "p" * (MAX_OUTPUT_PREFIX_LENGTH + 1), "characters"),
        ("OUTPUT_PREFIX", "a//b", "single '/'"),
        ("OUTPUT_PREFIX", "with space", "segments"),
        ("OUTPUT_PREFIX", "naïve", "segments"),
        ("OUTPUT_BUCKET", "Upper_Case", "S3 bucket name"),
        ("OUTPUT_BUCKET", "b" * 64, "S3 bucket name"),
        ("OUTPUT_BUCKET", "ab", "S3 bucket name"),
        ("PUBLIC_URL", "metrics.example.com", "http:// or https://"),
        ("PUBLIC_URL", "ftp://metrics.example.com", "http:// or https://"),
        ("PUBLIC_URL", "https://user:pw@metrics.example.com", "no user"),
        ("PUBLIC_URL", "https://metrics.example.com/?q=1", "no user, query"),
        ("PUBLIC_URL", "https://metrics.example.com:99999", "Port out of range"),
        ("PUBLIC_URL", "https://" + "a" * 600 + ".com", "at most 512"),
        ("API_TOKEN", "with space", "visible ASCII"),
        ("API_TOKEN", "t" * 513, "visible ASCII"),
        ("API_TOKEN", "tökén", "visible ASCII"),
        ("HTTP_HOST", "a" * 254, "HTTP_HOST"),
        ("HTTP_HOST", "http://host", "host name"),
    ],
)
def test_settings_that_reach_paths_and_messages_are_bounded_at_start_up(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env={variable: value})
    assert f"{variable}:" in str(error.value)
    assert says in str(error.value)


def test_public_url_is_kept_without_its_trailing_slash() -> None:
    settings = load_settings(env={"PUBLIC_URL": "https://metrics.example.com/"})
    assert settings.public_url == "https://metrics.example.com"
    assert load_settings(env={"PUBLIC_URL": ""}).public_url is None
    assert load_settings(env={"API_TOKEN": ""}).api_token is None
