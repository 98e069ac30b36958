"""Metrics over metrics as the HTTP API, the CLI and Prometheus show them (SPEC §8), on real
PostgreSQL: data time, staleness and its reasons, refresh (one metric, and the stale roots),
transitive readiness and the impact below the metrics a dataset version touches.

A chain is driven as in production: projection updates through the API, completions through
the feedback use case (a SUCCESS with an outputManifest forms the dependents' runs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.domain.events import decode_event
from tests.integration.cli_helpers import cli, cli_json
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock, feedback_service

OUTPUT = "s3://metrics-output/metrics/{code}/"


def _sma(source: dict[str, str], window: int = 2) -> dict[str, Any]:
    return {"op": "sma", "series": source, "window": window}


def _metric(metric_id: str, code: str, expression: dict[str, Any]) -> dict[str, Any]:
    kind = "window_op" if "window" in expression else "series_math"
    return {"id": metric_id, "code": code, "expression_type": kind, "expression": expression}


A, B, C, D = "a.base", "b.smooth", "c.ratio", "d.top"

# a.base reads d1; b.smooth reads a.base; c.ratio reads b.smooth and a.base (a diamond);
# d.top reads c.ratio; e.other reads d2 only.
CATALOG: dict[str, Any] = {
    "series": [{"code": "S1"}, {"code": "S2"}],
    "datasets": [{"id": "d1", "series": ["S1"]}, {"id": "d2", "series": ["S2"]}],
    "metrics": [
        _metric("a", A, _sma({"series_code": "S1"})),
        _metric("b", B, _sma({"metric_code": A})),
        _metric("c", C, {"op": "ratio", "left": {"metric_code": B}, "right": {"metricCode": A}}),
        _metric("d", D, _sma({"metric_code": C})),
        _metric("e", "e.other", _sma({"series_code": "S2"})),
    ],
}


class Graph:
    """The API over the catalog above, with completions sent as a worker would."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client
        self.clock = api.clock
        self.feedback: FeedbackService = feedback_service(api.container.uow_factory, api.clock)
        api.container.catalog.load_catalog(CATALOG)

    def update(self, dataset_id: str, version: str, occurred_at: datetime | None = None) -> None:
        response = self.api.send_update(dataset_id, version, occurred_at=occurred_at)
        assert response.status_code == 200, response.text

    def runs(self, code: str, status: str) -> list[UUID]:
        return [
            UUID(r["id"])
            for r in self.api.runs_of(code)
            if r["status"] == status  # newest first
        ]

    def only_run(self, code: str, status: str) -> UUID:
        found = self.runs(code, status)
        assert len(found) == 1, (code, status, self.api.runs_of(code))
        return found[0]

    def complete(self, run_id: UUID, *, succeeded: bool = True) -> None:
        # what the dispatcher does once SNS accepted the request (tested in its own suites)
        with psycopg.connect(self.api.database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE metric_runs SET status = 'dispatched', dispatched_at = %s"
                " WHERE id = %s AND status = 'queued'",
                (self.clock.now(), run_id),
            )
        body: dict[str, Any] = {
            "type": "metric_run_completed",
            "runId": str(run_id),
            "status": "SUCCESS" if succeeded else "FAILURE",
        }
        if succeeded:
            code = self.client.get(f"/runs/{run_id}").json()["metric_code"]
            body["outputManifest"] = OUTPUT.format(code=code) + f"v-{run_id.hex[:8]}/manifest.json"
            body["versionTs"] = f"v-{run_id.hex[:8]}"
        else:
            body["error"] = "boom"
        outcome = self.feedback.handle(
            decode_event(json.dumps(body)), source="test", received_at=self.clock.now()
        )
        assert outcome.status is EventStatus.PROCESSED

    def run_through(self, code: str) -> UUID:
        """The one queued run of `code`, dispatched and succeeded a minute later (time moves
        on, so the runs formed by its output are newer than the ones before)."""
        run_id = self.only_run(code, "queued")
        self.clock.advance(timedelta(minutes=1))
        self.complete(run_id)
        return run_id

    def metric(self, code: str) -> dict[str, Any]:
        response = self.client.get(f"/metrics/{code}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def stale(self) -> dict[str, str | None]:
        """Every metric's stale_reason (None: not stale), from GET /metrics."""
        items = self.client.get("/metrics").json()["items"]
        assert all(i["stale"] == (i["stale_reason"] is not None) for i in items)
        return {i["code"]: i["stale_reason"] for i in items}

    def settled(self) -> None:
        """d1 and d2 once, and the whole chain run through."""
        self.update("d1", "v1")
        self.update("d2", "w1")
        for code in (A, "e.other", B, C, D):
            self.run_through(code)


@pytest.fixture
def graph(database_url: str) -> Iterator[Graph]:
    with running_api(database_url, MutableClock()) as api:
        yield Graph(api)


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _prometheus_ages(graph: Graph) -> dict[str, float]:
    text = graph.client.get("/prometheus").text
    prefix = 'metrics_orchestrator_metric_data_age_seconds{metric="'
    ages = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, value = line[len(prefix) :].split('"} ')
            ages[labels] = float(value)
    return ages


# --- data time --------------------------------------------------------------------------------


def test_data_time_is_shown_on_the_run_the_metric_the_list_and_prometheus(graph: Graph) -> None:
    produced = graph.clock.now() - timedelta(days=1)
    graph.update("d1", "v1", occurred_at=produced)
    graph.clock.advance(timedelta(hours=1))
    a = graph.run_through(A)
    graph.clock.advance(timedelta(hours=1))
    b = graph.run_through(B)
    graph.clock.advance(timedelta(hours=1))

    for run_id, code in ((a, A), (b, B)):
        run = graph.client.get(f"/runs/{run_id}").json()
        assert run["data_time"] == _z(produced)  # B's through A's: the raw version behind both
        assert (
            run["definition_version"]
            == graph.api.rows("SELECT definition_version FROM metrics WHERE code = %s", code)[0][0]
        )
        assert run["definition_version"]
    age = (graph.clock.now() - produced).total_seconds()
    assert age == 86400 + 3 * 3600 + 2 * 60  # two completions took a minute each
    for code in (A, B):
        metric = graph.metric(code)
        assert (metric["data_time"], metric["data_age_seconds"]) == (_z(produced), age)
    never = graph.metric(C)  # C waits for nothing more but has not run yet: no data time
    assert (never["data_time"], never["data_age_seconds"]) == (None, None)
    listed = {i["code"]: i for i in graph.client.get("/metrics").json()["items"]}
    assert listed[B]["data_time"] == _z(produced)
    assert listed[B]["data_age_seconds"] == age
    assert listed["e.other"]["data_time"] is None
    assert _prometheus_ages(graph) == {A: age, B: age}


def test_a_queued_run_has_its_definition_but_no_data_time_yet(graph: Graph) -> None:
    graph.update("d1", "v1")
    run = graph.client.get(f"/runs/{graph.only_run(A, 'queued')}").json()

    assert run["data_time"] is None
    (stored,) = graph.api.rows("SELECT definition_version FROM metrics WHERE code = %s", A)
    assert run["definition_version"] == stored[0]


# --- staleness ----------------------------------------------------------------------------


def test_a_settled_graph_is_not_stale(graph: Graph) -> None:
    graph.settled()

    assert graph.stale() == dict.fromkeys((A, B, C, D, "e.other"))
    assert graph.metric(D)["stale"] is False


def test_a_newer_input_with_no_run_on_its_way_makes_the_chain_stale(graph: Graph) -> None:
    graph.settled()
    graph.update("d1", "v2")
    queued = graph.only_run(A, "queued")

    # a run is on its way: it will consume the newer version
    assert graph.stale() == dict.fromkeys((A, B, C, D, "e.other"))

    assert graph.client.post(f"/runs/{queued}/cancel").status_code == 200

    assert graph.stale() == {
        A: "newer input: d1",
        B: f"upstream stale: {A}",
        C: f"upstream stale: {A}, {B}",
        D: f"upstream stale: {C}",
        "e.other": None,
    }


def test_a_definition_change_makes_everything_downstream_stale_until_refreshed(
    graph: Graph,
) -> None:
    graph.settled()
    changed = _metric("a", A, _sma({"series_code": "S1"}, window=3))
    assert graph.client.post("/metrics", json=changed).status_code == 200

    assert graph.stale() == {
        A: "definition changed",
        B: f"upstream stale: {A}",
        C: f"upstream stale: {A}, {B}",
        D: f"upstream stale: {C}",
        "e.other": None,
    }

    refreshed = graph.client.post("/metrics/refresh", params={"stale": "true"})

    # only the root runs; the chain brings the rest up to date
    assert refreshed.status_code == 202, refreshed.text
    body = refreshed.json()
    (run_id,) = body["runs"][A]
    assert (list(body["runs"]), body["refused"]) == ([A], {})
    assert graph.only_run(A, "queued") == UUID(run_id)
    assert graph.api.runs_of(A)[0]["trigger"] == "manual"
    # a changed definition holds until a run formed with it succeeds, on its way or not
    assert graph.stale()[A] == "definition changed"
    graph.run_through(A)
    assert graph.stale()[A] is None
    graph.run_through(B)
    graph.run_through(C)
    graph.run_through(D)
    assert graph.stale() == dict.fromkeys((A, B, C, D, "e.other"))
    assert graph.client.post("/metrics/refresh?stale=true").json() == {"runs": {}, "refused": {}}


def test_refresh_stale_reports_a_root_that_cannot_run(graph: Graph) -> None:
    graph.settled()
    changed = _metric("a", A, _sma({"series_code": "S1"}, window=3))
    assert graph.client.post("/metrics", json=changed).status_code == 200
    assert graph.client.patch(f"/metrics/{A}", json={"enabled": False}).status_code == 200

    body = graph.client.post("/metrics/refresh?stale=true").json()

    assert body["runs"] == {}
    assert "disabled" in body["refused"][A]


def test_refresh_of_all_metrics_without_stale_is_refused(graph: Graph) -> None:
    assert_problem(graph.client.post("/metrics/refresh?stale=false"), 422)
    assert_problem(graph.client.post("/metrics/refresh"), 422)


# --- refresh one metric -------------------------------------------------------------------


def test_refresh_of_a_metric_is_a_manual_run_on_its_freshest_inputs(graph: Graph) -> None:
    graph.settled()
    consumed = graph.api.rows(
        "SELECT freshest_update_id FROM datasets WHERE id = %s", f"metric:{A}"
    )[0][0]

    response = graph.client.post(f"/metrics/{B}/refresh")

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["metric_code"] == B
    assert response.headers["Location"] == f"/runs/{body['run_id']}"
    run = graph.client.get(f"/runs/{body['run_id']}").json()
    assert (run["status"], run["trigger"]) == ("queued", "manual")
    assert [(entry["dataset_id"], entry["update_id"]) for entry in run["lineage"]] == [
        (f"metric:{A}", str(consumed))
    ]


def test_refresh_of_an_unknown_or_unrunnable_metric_is_refused(graph: Graph) -> None:
    assert_problem(graph.client.post("/metrics/no.such/refresh"), 404)
    # its upstream never succeeded: metric:a.base has no version yet
    assert_problem(graph.client.post(f"/metrics/{B}/refresh"), 409, detail_contains="metric:a.base")


# --- readiness through the chain ------------------------------------------------------------


def _upstream(graph: Graph, code: str) -> dict[str, Any]:
    response = graph.client.get(f"/metrics/{code}/readiness")
    assert response.status_code == 200, response.text
    return {i["dataset_id"]: i["upstream"] for i in response.json()["inputs"]}


def test_readiness_says_what_an_upstream_metric_itself_waits_for(graph: Graph) -> None:
    upstream = _upstream(graph, B)

    assert upstream[f"metric:{A}"]["metric_code"] == A
    assert upstream[f"metric:{A}"]["state"] == "waiting"
    assert "d1" in upstream[f"metric:{A}"]["reason"]
    assert _upstream(graph, A) == {"d1": None}  # a dataset of projections has no upstream


def test_readiness_says_an_upstream_metric_failed_and_when(graph: Graph) -> None:
    graph.update("d1", "v1")
    graph.clock.advance(timedelta(minutes=5))
    graph.complete(graph.only_run(A, "queued"), succeeded=False)

    upstream = _upstream(graph, C)

    assert upstream[f"metric:{A}"]["state"] == "failing"
    assert "failed at 2025-11-11 12:05:00 UTC" in upstream[f"metric:{A}"]["reason"]
    assert upstream[f"metric:{B}"]["state"] == "waiting"


def test_readiness_says_an_upstream_metric_is_disabled(graph: Graph) -> None:
    assert graph.client.patch(f"/metrics/{A}", json={"enabled": False}).status_code == 200

    upstream = _upstream(graph, B)

    assert upstream[f"metric:{A}"]["state"] == "disabled"
    assert upstream[f"metric:{A}"]["reason"].startswith("disabled")


# --- impact below the metrics a version touches -------------------------------------------


def test_impact_lists_every_metric_downstream_with_its_depth(graph: Graph) -> None:
    impact = graph.client.get("/datasets/d1/impact").json()

    assert impact["would_run"] == [A]
    assert impact["downstream"] == [
        {"metric_code": B, "depth": 1},
        {"metric_code": C, "depth": 1},  # reads a.base directly, and through b.smooth
        {"metric_code": D, "depth": 2},
    ]
    assert graph.client.get("/datasets/d2/impact").json()["downstream"] == []


# --- the CLI ----------------------------------------------------------------------------------


def test_the_cli_shows_data_time_staleness_upstream_and_downstream(graph: Graph) -> None:
    url = graph.api.database_url
    produced = graph.clock.now() - timedelta(days=1)
    graph.update("d1", "v1", occurred_at=produced)
    graph.update("d2", "w1")
    a = graph.run_through(A)
    for code in ("e.other", B, C, D):
        graph.run_through(code)
    changed = _metric("a", A, _sma({"series_code": "S1"}, window=3))
    assert graph.client.post("/metrics", json=changed).status_code == 200

    run = cli_json(cli(url, "runs", "show", str(a), "--json"))
    assert run["data_time"] == produced.isoformat()
    assert run["definition_version"]
    shown = cli(url, "runs", "show", str(a))
    assert "data time" in shown.stdout
    assert "definition" in shown.stdout

    metric = cli_json(cli(url, "metrics", "show", D, "--json"))
    assert (metric["data_time"], metric["stale"]) == (produced.isoformat(), True)
    assert metric["stale_reason"] == f"upstream stale: {C}"
    table = cli(url, "metrics", "show", D)
    assert table.exit_code == 0, table.output
    assert f"upstream stale: {C}" in table.stdout
    listed = {i["code"]: i for i in cli_json(cli(url, "metrics", "list", "--json"))["items"]}
    assert listed[A]["stale_reason"] == "definition changed"
    assert listed["e.other"]["stale"] is False
    assert "definition changed" in cli(url, "metrics", "list").stdout

    readiness = cli_json(cli(url, "metrics", "readiness", B, "--json"))
    (only,) = readiness["inputs"]
    assert only["upstream"]["metric_code"] == A
    assert only["upstream"]["state"] == "healthy"
    impact = cli_json(cli(url, "datasets", "impact", "d1", "--json"))
    assert [d["metric_code"] for d in impact["downstream"]] == [B, C, D]
    assert "depth" in cli(url, "datasets", "impact", "d1").stdout


def test_the_cli_refreshes_a_metric_or_the_stale_roots(graph: Graph) -> None:
    url = graph.api.database_url
    graph.settled()
    changed = _metric("a", A, _sma({"series_code": "S1"}, window=3))
    assert graph.client.post("/metrics", json=changed).status_code == 200

    stale = cli_json(cli(url, "metrics", "refresh", "--stale", "--json"))
    assert list(stale["runs"]) == [A]
    assert stale["refused"] == {}
    one = cli_json(cli(url, "metrics", "refresh", "e.other", "--json"))
    assert (one["metric_code"], one["status"], one["trigger"]) == (
        "e.other",
        "queued",
        "manual",
    )
    neither = cli(url, "metrics", "refresh")
    assert neither.exit_code == 2
    assert "--stale" in neither.stderr
    unknown = cli(url, "metrics", "refresh", "no.such")
    assert unknown.exit_code == 2
    graph.run_through(A)
    # the rest of the chain has runs on their way: nothing is stale any more
    assert "nothing is stale" in cli(url, "metrics", "refresh", "--stale").stdout
