"""A run's log (issue 25): `GET /runs/{id}/logs` and `runs logs ID` read what a worker wrote at
`{basePath}runs/{runId}-{attempt}.log` in S3 (moto over HTTP), bounded; a run without one says
why; S3 out of reach is a 502."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg
import pytest

from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.domain.run_files import MAX_RUN_LOG_BYTES
from metrics_orchestrator.interfaces.cli import app
from tests.factories import seed_metric, seed_run
from tests.integration.cli_helpers import runner
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOG_LINES = "2026-12-05T03:00:00.000Z INFO    run started\n2026-12-05T03:00:01.000Z INFO    done\n"


@pytest.fixture
def bucket(output_bucket: str) -> str:
    return output_bucket


@pytest.fixture
def api(output_api: Api) -> Api:
    return output_api


def seed(api: Api, bucket: str, status: RunStatus = RunStatus.FAILED) -> str:
    """A first attempt whose request names an output base path in `bucket`."""
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM metrics WHERE id = 'm.ratio'").fetchone():
            seed_metric(conn)
        run_id = seed_run(conn, status=status, now=api.clock.now())
        conn.execute(
            "UPDATE metric_runs SET request_payload = jsonb_set(request_payload,"
            " '{output,basePath}', to_jsonb(%s::text)) WHERE id = %s",
            (f"s3://{bucket}/metrics/m.ratio/", run_id),
        )
    return str(run_id)


def log_key(run_id: str, attempt: int = 1) -> str:
    return f"metrics/m.ratio/runs/{run_id}-{attempt}.log"


def test_the_log_of_the_runs_own_attempt_is_read(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = seed(api, bucket)
    s3_client.put_object(Bucket=bucket, Key=log_key(run_id), Body=LOG_LINES.encode())
    s3_client.put_object(Bucket=bucket, Key=log_key(run_id, 2), Body=b"another attempt's\n")

    response = api.client.get(f"/runs/{run_id}/logs")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "run_id": run_id,
        "attempt": 1,
        "location": f"s3://{bucket}/{log_key(run_id)}",
        "found": True,
        "text": LOG_LINES,
        "size_bytes": len(LOG_LINES),
        "truncated": False,
        "note": None,
    }


def test_a_run_whose_worker_wrote_no_log_says_so(api: Api, bucket: str) -> None:
    run_id = seed(api, bucket)

    body = api.client.get(f"/runs/{run_id}/logs").json()

    assert (body["found"], body["text"]) == (False, None)
    assert body["note"] == f"no log: its worker wrote none at s3://{bucket}/{log_key(run_id)}"


def test_a_running_run_without_a_log_yet_says_when_one_comes(api: Api, bucket: str) -> None:
    run_id = seed(api, bucket, RunStatus.RUNNING)

    note = api.client.get(f"/runs/{run_id}/logs").json()["note"]

    assert note.startswith("no log yet: the reference worker writes it on its heartbeats")


def test_a_run_not_queued_has_no_log_location(api: Api, bucket: str) -> None:
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        seed_metric(conn)
        run_id = seed_run(conn, status=RunStatus.PENDING_DEPENDENCIES, now=api.clock.now())

    body = api.client.get(f"/runs/{run_id}/logs").json()

    assert (body["location"], body["found"]) == (None, False)
    assert body["note"] == "no log: the run has not been queued, so no worker has it yet"


def test_only_the_newest_part_of_a_huge_log_is_read_from_a_line_start(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = seed(api, bucket)
    lines = [f"line {n:06d} " + "x" * 80 for n in range(2 * MAX_RUN_LOG_BYTES // 80)]
    whole = "\n".join(lines) + "\n"
    s3_client.put_object(Bucket=bucket, Key=log_key(run_id), Body=whole.encode())

    body = api.client.get(f"/runs/{run_id}/logs").json()

    assert body["truncated"] is True
    assert body["size_bytes"] == len(whole)
    assert len(body["text"]) <= MAX_RUN_LOG_BYTES
    assert body["text"].startswith("line ")
    assert whole.endswith(body["text"])


def test_an_empty_log_is_a_log(api: Api, s3_client: S3Client, bucket: str) -> None:
    run_id = seed(api, bucket)
    s3_client.put_object(Bucket=bucket, Key=log_key(run_id), Body=b"")

    body = api.client.get(f"/runs/{run_id}/logs").json()

    assert (body["found"], body["text"], body["size_bytes"]) == (True, "", 0)


def test_a_log_that_is_not_utf8_is_shown_with_replacements(
    api: Api, s3_client: S3Client, bucket: str
) -> None:
    run_id = seed(api, bucket)
    s3_client.put_object(Bucket=bucket, Key=log_key(run_id), Body=b"caf\xe9 \xff\n")

    assert api.client.get(f"/runs/{run_id}/logs").json()["text"] == "caf\ufffd \ufffd\n"


def test_an_unknown_run_is_404(api: Api) -> None:
    assert_problem(api.client.get("/runs/00000000-0000-4000-8000-000000000000/logs"), 404)


def test_s3_unreachable_is_a_502_problem(database_url: str) -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "OUTPUT_BUCKET": "out-bucket"}
    with running_api(database_url, MutableClock(datetime.now(UTC)), env) as api:
        run_id = seed(api, "out-bucket")
        problem = assert_problem(
            api.client.get(f"/runs/{run_id}/logs"), 502, detail_contains="could not be reached"
        )
    assert problem["type"].endswith("log-unavailable")


def test_the_cli_prints_the_log_and_notes_on_stderr(
    api: Api, s3_client: S3Client, bucket: str, aws_endpoint_url: str
) -> None:
    with_log, without = seed(api, bucket), seed(api, bucket)
    s3_client.put_object(Bucket=bucket, Key=log_key(with_log), Body=LOG_LINES.encode())
    env = {
        "DATABASE_URL": api.database_url,
        "AWS_ENDPOINT_URL": aws_endpoint_url,
        "LOG_LEVEL": "ERROR",
    }

    printed = runner.invoke(app, ["runs", "logs", with_log[:8]], env=env)
    as_json = runner.invoke(app, ["runs", "logs", with_log, "--json"], env=env)
    none = runner.invoke(app, ["runs", "logs", without], env=env)

    assert (printed.exit_code, printed.stdout) == (0, LOG_LINES)
    assert json.loads(as_json.stdout)["text"] == LOG_LINES
    assert (none.exit_code, none.stdout) == (0, "")
    assert none.stderr.splitlines()[-1].startswith("no log: its worker wrote none at s3://")
