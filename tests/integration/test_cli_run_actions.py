"""`runs retry`, `runs cancel`, `metrics run` and run id prefixes at a terminal (SPEC §6.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from typer.testing import Result

from metrics_orchestrator.domain.model import RunStatus
from tests.factories import seed_metric, seed_run
from tests.integration.cli_helpers import cli, cli_json, load_multi_dataset_world


@pytest.fixture
def loaded(database_url: str, catalogs_dir: Path) -> str:
    """The multi-dataset catalog and one update of reserves_daily: reserves.sma_20 queued."""
    return load_multi_dataset_world(database_url, catalogs_dir, ("reserves_daily", "r1"))


def _refused(result: Result) -> str:
    """The one line a refusal prints; it exits 2 and shows no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr.splitlines()[-1]


def _queued_run(database_url: str) -> str:
    runs = cli_json(cli(database_url, "runs", "list", "--status", "queued", "--json"))["items"]
    assert len(runs) == 1
    return str(runs[0]["id"])


def _runs_with_ids(database_url: str, *ids: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_metric(conn)
        for wanted in ids:
            made = seed_run(conn, status=RunStatus.CANCELED, with_request=False)
            conn.execute("UPDATE metric_runs SET id = %s WHERE id = %s", (UUID(wanted), made))


@pytest.mark.parametrize("typed", [lambda i: i[:8], lambda i: i[:13], lambda i: i[:6].upper()])
def test_runs_show_takes_a_unique_prefix_as_listed_or_typed(loaded: str, typed: Any) -> None:
    run_id = _queued_run(loaded)

    shown = cli_json(cli(loaded, "runs", "show", typed(run_id), "--json"))

    assert shown["id"] == run_id
    assert shown["retryable"] is True


def test_an_ambiguous_prefix_is_refused_listing_the_matches(loaded: str) -> None:
    _runs_with_ids(
        loaded,
        "abcd0000-0000-4000-8000-000000000001",
        "abcd0000-0000-4000-8000-000000000002",
        "abce0000-0000-4000-8000-000000000003",
    )

    line = _refused(cli(loaded, "runs", "show", "abcd"))
    unique = cli_json(cli(loaded, "runs", "show", "ABCE", "--json"))

    assert line == (
        "error: ID: 'abcd' is ambiguous: it begins abcd0000-0000-4000-8000-000000000001, "
        "abcd0000-0000-4000-8000-000000000002"
    )
    assert unique["id"] == "abce0000-0000-4000-8000-000000000003"


def test_at_most_ten_matches_are_listed(loaded: str) -> None:
    _runs_with_ids(loaded, *(f"abcd0000-0000-4000-8000-0000000000{n:02d}" for n in range(12)))

    line = _refused(cli(loaded, "runs", "cancel", "abcd-0000"))

    assert line.count("abcd0000-") == 10
    assert line.endswith(" and more")


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("ffff0000", "error: unknown run ffff0000: no run id starts with it"),
        ("abc", "error: ID: a run id prefix needs at least 4 hex digits"),
        ("not-an-id", "error: ID: must be a run id or a prefix of one"),
    ],
)
def test_an_unknown_or_malformed_id_is_refused(loaded: str, typed: str, said: str) -> None:
    for command in (["runs", "show"], ["runs", "retry"], ["runs", "cancel"]):
        assert _refused(cli(loaded, *command, typed)).startswith(said)


def test_cancel_then_retry_by_prefix_through_the_api_use_cases(loaded: str) -> None:
    run_id = _queued_run(loaded)

    canceled = cli_json(cli(loaded, "runs", "cancel", run_id[:8], "--reason", "wrong", "--json"))
    again = _refused(cli(loaded, "runs", "cancel", run_id[:8]))
    retried = cli_json(cli(loaded, "runs", "retry", run_id[:8], "--json"))
    older = _refused(cli(loaded, "runs", "retry", run_id))
    table = cli(loaded, "runs", "retry", retried["id"][:8])

    assert (canceled["status"], canceled["status_reason"]) == ("canceled", "wrong")
    assert "from canceled to canceled" in again
    assert (retried["status"], retried["trigger"], retried["attempt"]) == ("queued", "manual", 2)
    assert retried["retry_of"] == run_id
    assert f"retry the latest attempt, {retried['id']}, instead" in older
    # the new attempt is queued: not retryable yet, said in one line
    assert "is queued; only failed, timed_out or canceled runs can be retried" in _refused(table)


def test_cancel_prints_a_table_by_default(loaded: str) -> None:
    run_id = _queued_run(loaded)

    result = cli(loaded, "runs", "cancel", run_id[:8])

    assert result.exit_code == 0, result.output
    assert "run canceled" in result.stdout
    assert run_id in result.stdout
    assert "canceled by operator" in result.stdout


def test_metrics_run_queues_a_manual_run_or_says_why_not(loaded: str) -> None:
    made = cli_json(cli(loaded, "metrics", "run", "reserves.sma_20", "--json"))
    table = cli(loaded, "metrics", "run", "reserves.sma_20")

    assert (made["status"], made["trigger"], made["metric_code"]) == (
        "queued",
        "manual",
        "reserves.sma_20",
    )
    assert table.exit_code == 0, table.output
    assert "run queued" in table.stdout
    assert _refused(cli(loaded, "metrics", "run", "no.such")).startswith(
        "error: unknown metric 'no.such'"
    )
    waiting = _refused(cli(loaded, "metrics", "run", "reserves.at_parallel"))
    assert "no update yet for fx_daily" in waiting


def test_an_unreachable_database_is_exit_1(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
    result = cli(url, "runs", "retry", "abcd")
    assert result.exit_code == 1, result.output


def test_several_ids_act_on_each_run_and_exit_2_when_one_is_refused(loaded: str) -> None:
    queued = _queued_run(loaded)
    pending = cli_json(cli(loaded, "runs", "list", "--status", "pending_dependencies", "--json"))[
        "items"
    ]
    first, second = str(pending[0]["id"]), str(pending[1]["id"])

    canceled = cli(loaded, "runs", "cancel", queued[:8], first, "--reason", "drill", "--json")
    assert canceled.exit_code == 0, canceled.output
    body = cli_json(canceled)
    assert (body["action"], body["done"], body["refused"]) == ("cancel", 2, 0)
    assert [o["run_id"] for o in body["outcomes"]] == [queued, first]

    again = cli(loaded, "runs", "cancel", queued, second)
    assert again.exit_code == 2, again.output
    assert "cancel: 1 done, 1 refused" in again.stdout
    assert "already ended" in again.stdout
    statuses = cli_json(cli(loaded, "runs", "list", "--status", "canceled", "--json"))["items"]
    assert sorted(str(r["id"]) for r in statuses) == sorted([queued, first, second])

    # a run canceled before it was queued has no request to repeat
    retried = cli(loaded, "runs", "retry", queued, first, "--json")
    assert retried.exit_code == 2, retried.output
    outcomes = json.loads(retried.stdout)["outcomes"]
    assert [(o["done"], o["refusal"]) for o in outcomes] == [
        (True, None),
        (False, "cannot be retried"),
    ]


def test_an_unknown_id_among_several_acts_on_none(loaded: str) -> None:
    queued = _queued_run(loaded)

    refused = _refused(cli(loaded, "runs", "cancel", queued, "ffff0000"))

    assert "ffff0000" in refused
    assert cli_json(cli(loaded, "runs", "show", queued, "--json"))["status"] == "queued"
