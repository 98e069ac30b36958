"""Freshness objectives through every catalog door, on a real database (SPEC §9): a YAML file
through `catalog load` (its dry run included) and the read commands, the HTTP API's POST, PATCH
and GET, and channels in the file; whatever text is given, it is stored or refused with a
validation error, never a database error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.durations import DurationError, format_duration, parse_duration
from metrics_orchestrator.domain.errors import ValidationError
from tests.integration.cli_helpers import cli, cli_json, load_multi_dataset_world
from tests.integration.http_helpers import Api, assert_problem, running_api
from tests.support import MutableClock

SECRET = "do-not-print-this-secret"
CHANNELS = [
    {"name": "ops", "url": "https://hooks.example.test/ops", "secret": SECRET},
    {"name": "chat", "url": "http://127.0.0.1:9/slack", "format": "slack", "kinds": ["run_failed"]},
]


def _multi(catalogs_dir: Path) -> dict[str, Any]:
    text = (catalogs_dir / "multi_dataset_catalog.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def _with_objectives(
    document: dict[str, Any],
    datasets: dict[str, dict[str, str]],
    metrics: dict[str, str],
) -> dict[str, Any]:
    """The document with objectives set on the datasets and metrics named, and the channels."""
    for dataset in document["datasets"]:
        dataset.update(datasets.get(dataset["id"], {}))
    for metric in document["metrics"]:
        if metric["code"] in metrics:
            metric["max_data_age"] = metrics[metric["code"]]
    return {**document, "notifications": CHANNELS}


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _execute(database_url: str, sql: bytes) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql)


def _pending_runs(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT id FROM metric_runs WHERE status = 'pending_dependencies' ORDER BY id"
        ).fetchall()


# --- the catalog file and the terminal ---------------------------------------------------------


def test_a_yaml_file_sets_objectives_and_the_read_commands_show_them_judged(
    tmp_path: Path, catalogs_dir: Path, database_url: str
) -> None:
    document = _with_objectives(
        _multi(catalogs_dir),
        datasets={"fx_daily": {"expected_every": "PT6H", "grace": "PT30M"}},
        metrics={"fx.gap": "P2D"},
    )
    loaded = cli(database_url, "catalog", "load", str(_write(tmp_path, document)))
    assert loaded.exit_code == 0, loaded.output
    assert SECRET not in loaded.output
    # registered three days ago: the dataset is late and the metric overdue (never had data)
    _execute(database_url, b"UPDATE datasets SET created_at = now() - interval '3 days'")
    _execute(database_url, b"UPDATE metrics SET created_at = now() - interval '3 days'")

    metrics = {
        m["code"]: m for m in cli_json(cli(database_url, "metrics", "list", "--json"))["items"]
    }
    assert metrics["fx.gap"]["max_data_age"] == "P2D"
    assert metrics["fx.gap"]["freshness"]["state"] == "overdue"
    assert (
        metrics["prices.real_wages"]["max_data_age"],
        metrics["prices.real_wages"]["freshness"],
    ) == (None, None)
    shown = cli_json(cli(database_url, "metrics", "show", "fx.gap", "--json"))
    assert shown["max_data_age"] == "P2D"
    assert shown["freshness"]["since"] == shown["freshness"]["due_at"]
    assert "no successful run since registration" in shown["freshness"]["why"]
    datasets = {
        d["id"]: d for d in cli_json(cli(database_url, "datasets", "list", "--json"))["items"]
    }
    assert (datasets["fx_daily"]["expected_every"], datasets["fx_daily"]["grace"]) == (
        "PT6H",
        "PT30M",
    )
    assert datasets["fx_daily"]["freshness"]["state"] == "late"
    assert (datasets["fx_mirror"]["expected_every"], datasets["fx_mirror"]["grace"]) == (
        None,
        "PT0S",
    )
    assert datasets["fx_mirror"]["freshness"] is None

    assert "P2D (overdue)" in cli(database_url, "metrics", "list").stdout
    table = cli(database_url, "metrics", "show", "fx.gap").stdout
    assert "max data age" in table
    assert "overdue since" in table
    assert "none (no objective)" in cli(database_url, "metrics", "show", "reserves.sma_20").stdout
    assert "PT6H + grace PT30M (late)" in cli(database_url, "datasets", "list").stdout


def test_the_dry_run_shows_a_changed_objective_as_a_change_and_cancels_no_run(
    tmp_path: Path, catalogs_dir: Path, database_url: str
) -> None:
    load_multi_dataset_world(database_url, catalogs_dir, ("reserves_daily", "r1"))
    waiting = _pending_runs(database_url)
    assert waiting  # the metrics that also read fx_daily wait for it
    changed = _write(
        tmp_path,
        _with_objectives(
            _multi(catalogs_dir),
            datasets={"fx_daily": {"expected_every": "P1D"}},
            metrics={"reserves.at_parallel": "PT12H"},
        ),
    )

    dry = cli(database_url, "catalog", "load", "--dry-run", str(changed))
    assert dry.exit_code == 0, dry.output
    lines = [line.strip() for line in dry.stdout.splitlines()]
    assert "would change: fx_daily" in lines
    assert "would change: reserves.at_parallel" in lines
    assert "would cancel no pending run" in lines
    summary = cli_json(cli(database_url, "catalog", "load", "--dry-run", "--json", str(changed)))
    assert summary["datasets"]["updated"] == ["fx_daily"]
    assert summary["metrics"]["updated"] == ["reserves.at_parallel"]
    assert summary["canceled_pending_runs_of"] == []
    assert SECRET not in dry.output + json.dumps(summary)

    assert cli(database_url, "catalog", "load", str(changed)).exit_code == 0
    assert _pending_runs(database_url) == waiting  # an objective is not the definition
    again = cli_json(cli(database_url, "catalog", "load", "--dry-run", "--json", str(changed)))
    assert (again["datasets"]["updated"], again["metrics"]["updated"]) == ([], [])
    # left out of the next file, an objective is removed, like every optional field
    removed = cli_json(
        cli(database_url, "catalog", "load", "--json", str(_write(tmp_path, _multi(catalogs_dir))))
    )
    assert removed["datasets"]["updated"] == ["fx_daily"]
    assert removed["metrics"]["updated"] == ["reserves.at_parallel"]


def test_a_bad_objective_or_channel_in_a_file_is_one_line_each_and_nothing_is_written(
    tmp_path: Path, catalogs_dir: Path, database_url: str
) -> None:
    document = _with_objectives(
        _multi(catalogs_dir),
        datasets={
            "fx_daily": {"expected_every": "P1M", "grace": "PT1H"},
            "fx_mirror": {"grace": "PT1H"},
        },
        metrics={"fx.gap": "P400D"},
    )
    document["notifications"] = [{"name": "bad", "url": "https://h/\x00", "secret": SECRET}]

    result = cli(database_url, "catalog", "load", str(_write(tmp_path, document)))

    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: datasets[0].expected_every: 'P1M' is not an ISO-8601 duration of weeks, days, "
        "hours, minutes and seconds (such as PT6H, P1D or P1DT12H; months and years have no "
        "fixed length)",
        "error: datasets[3].grace: grace needs expected_every (it is slack after the expected "
        "interval)",
        "error: metrics[0].max_data_age: 'P400D' is out of range: from PT1S to P366D",
        "error: notifications[0].url: must not contain NUL characters",
    ]
    assert SECRET not in result.output
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM datasets").fetchone() == (0,)


# --- the HTTP API ----------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url, MutableClock()) as api:
        api.container.catalog.load_catalog(
            {
                "series": [{"code": "A"}],
                "datasets": [
                    {"id": "d1", "series": ["A"], "expected_every": "P1D", "grace": "PT1H"}
                ],
            }
        )
        yield api


def _dataset(api: Api, dataset_id: str = "d1") -> dict[str, Any]:
    response = api.client.get(f"/datasets/{dataset_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_patch_grace_null_resets_it_and_keeps_the_objective(api: Api) -> None:
    response = api.client.patch("/datasets/d1", json={"grace": None})

    assert response.status_code == 200, response.text
    assert (response.json()["expected_every"], response.json()["grace"]) == ("P1D", "PT0S")
    assert _dataset(api)["grace"] == "PT0S"


def test_patch_that_removes_the_objective_but_gives_a_grace_is_refused_not_half_done(
    api: Api,
) -> None:
    body = assert_problem(
        api.client.patch("/datasets/d1", json={"expected_every": None, "grace": "PT3H"}),
        422,
        detail_contains="grace needs expected_every",
    )

    assert [e["path"] for e in body["errors"]] == ["grace"]
    assert (_dataset(api)["expected_every"], _dataset(api)["grace"]) == ("P1D", "PT1H")
    removed = api.client.patch("/datasets/d1", json={"expected_every": None, "grace": "PT0S"})
    assert (removed.json()["expected_every"], removed.json()["grace"]) == (None, "PT0S")


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "words"),
    [
        ("patch", "/datasets/d1", {"expected_every": "P1M"}, "expected_every", "months and years"),
        ("patch", "/datasets/d1", {"grace": "P367D"}, "grace", "out of range"),
        ("patch", "/metrics/m.one", {"max_data_age": "PT0S"}, "max_data_age", "out of range"),
        ("post", "/datasets", {"id": "d2", "series": ["A"], "grace": "PT1H"}, "grace", "needs"),
        (
            "post",
            "/datasets",
            {"id": "d2", "series": ["A"], "expected_every": 86400},
            "expected_every",
            "such as PT6H",
        ),
    ],
)
def test_a_bad_objective_over_http_is_a_422_naming_the_field_in_plain_words(
    api: Api, method: str, path: str, body: dict[str, Any], field: str, words: str
) -> None:
    _register_metric(api)

    problem = assert_problem(getattr(api.client, method)(path, json=body), 422)

    assert [e["path"] for e in problem["errors"]] == [field]
    assert words in problem["detail"]
    assert problem["detail"].startswith(f"{field}: ")
    assert "value error" not in problem["detail"].lower()
    assert api.client.get("/datasets/d2").status_code == 404


def _register_metric(api: Api, **fields: object) -> dict[str, Any]:
    body = {
        "id": "m1",
        "code": "m.one",
        "expression_type": "window_op",
        "expression": {"op": "sma", "series": {"series_code": "A"}, "window": 3},
        **fields,
    }
    response = api.client.post("/metrics", json=body)
    assert response.status_code == 200, response.text
    registered: dict[str, Any] = response.json()
    return registered


def test_post_metric_with_an_objective_and_every_read_of_it_carries_it(api: Api) -> None:
    assert _register_metric(api, max_data_age="PT36H")["max_data_age"] == "P1DT12H"

    assert api.client.get("/metrics/m.one").json()["max_data_age"] == "P1DT12H"
    listed = api.client.get("/metrics").json()["items"]
    assert [(m["code"], m["max_data_age"]) for m in listed] == [("m.one", "P1DT12H")]
    assert [
        (d["id"], d["expected_every"], d["grace"])
        for d in api.client.get("/datasets").json()["items"]
    ] == [("d1", "P1D", "PT1H")]
    # POSTed again without it, it is removed, as a catalog file would (the body is the metric)
    assert _register_metric(api)["max_data_age"] is None


@pytest.mark.parametrize(
    "url", ["https://h/\x00", "https://h/\x07", "https://h:99999/", "https://h/\ud800"]
)
def test_a_channel_url_the_database_or_the_notifier_cannot_take_is_a_422(
    api: Api, url: str
) -> None:
    # \ud800 cannot be sent as JSON text by httpx: send it escaped, as a client could
    content = '{"url": "' + url.encode("unicode_escape").decode().replace("\\x", "\\u00") + '"}'
    response = api.client.put(
        "/notifications/channels/c1", content=content, headers={"Content-Type": "application/json"}
    )

    problem = assert_problem(response, 422)
    assert [e["path"] for e in problem["errors"]] == ["url"]
    assert api.client.get("/notifications/channels").json() == []


def test_a_channel_url_s_scheme_is_stored_in_lower_case(api: Api) -> None:
    response = api.client.put("/notifications/channels/c1", json={"url": "HTTPS://Hooks.Test/X"})

    assert response.status_code == 200, response.text
    assert response.json()["url"] == "https://Hooks.Test/…"  # shown by its origin only
    api.container.catalog.load_catalog(
        {"notifications": [{"name": "c2", "url": "Http://127.0.0.1/h"}]}
    )
    assert _stored_urls(api) == {"c1": "https://Hooks.Test/X", "c2": "http://127.0.0.1/h"}


def _stored_urls(api: Api) -> dict[str, str]:
    """What the notifier posts to (the API shows a URL's origin only)."""
    return dict(api.rows("SELECT name, url FROM notification_channels"))


# --- any text: stored or refused, never a database error ---------------------------------------

ISO_LIKE = st.from_regex(
    r"P(\d{1,5}W)?(\d{1,5}D)?(T(\d{1,7}H)?(\d{1,9}M)?(\d{1,11}S)?)?", fullmatch=True
)
ANY_VALUE = st.one_of(ISO_LIKE, st.text(max_size=40), st.integers(), st.booleans())
HYPOTHESIS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _expected(value: object, shortest: timedelta) -> str | None:
    """What the catalog stores for `value` (its ISO text), or None if it must refuse it."""
    try:
        return format_duration(parse_duration(value, shortest=shortest))
    except DurationError:
        return None


@HYPOTHESIS
@given(every=ANY_VALUE, grace=st.one_of(st.none(), ANY_VALUE))
def test_any_objective_in_a_catalog_file_is_stored_or_refused_with_a_validation_error(
    api: Api, every: object, grace: object
) -> None:
    dataset: dict[str, object] = {"id": "dh", "series": ["A"], "expected_every": every}
    if grace is not None:
        dataset["grace"] = grace
    stored_every = _expected(every, timedelta(seconds=1))
    stored_grace = _expected(grace, timedelta(0))
    document = {"datasets": [dataset]}
    if stored_every is None or (grace is not None and stored_grace is None):
        with pytest.raises(ValidationError):
            api.container.catalog.load_catalog(document)
        return
    api.container.catalog.load_catalog(document)
    shown = _dataset(api, "dh")
    assert shown["expected_every"] == stored_every
    assert shown["grace"] == (stored_grace or "PT0S")


@HYPOTHESIS
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "expected_every": st.one_of(st.none(), ANY_VALUE),
            "grace": st.one_of(st.none(), ANY_VALUE),
            "enabled": st.one_of(st.booleans(), st.none(), st.text(max_size=3)),
        },
    )
)
def test_any_patch_of_a_dataset_is_a_200_or_a_422(api: Api, body: dict[str, object]) -> None:
    response = api.client.patch("/datasets/d1", json=body)
    assert response.status_code in (200, 422), response.text


# URLs near the edges: schemes in any case, brackets, ports, spaces, control characters, NUL,
# a lone surrogate; and any text at all
URL_PIECES = [*"ab09:/.?#[]@%-", " ", "\x00", "\x07", "\x7f", "\u00e9", "\ud800"]
URLS = st.one_of(
    st.builds(
        str.__add__,
        st.sampled_from(["", "https://h/", "http://", "HTTP://h:", "https://[", "ftp://h/"]),
        st.text(alphabet=st.sampled_from(URL_PIECES), max_size=20),
    ),
    st.text(max_size=40),
)


@HYPOTHESIS
@given(url=URLS)
def test_any_channel_url_is_stored_or_refused_never_a_server_or_database_error(
    api: Api, url: str
) -> None:
    try:
        api.container.catalog.load_catalog({"notifications": [{"name": "hx", "url": url}]})
    except ValidationError:
        stored_by_file = False
    else:
        stored_by_file = True
    # the same text PUT through the API (json.dumps escapes what UTF-8 cannot carry)
    response = api.client.put(
        "/notifications/channels/hy",
        content=json.dumps({"url": url}),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == (200 if stored_by_file else 422), response.text
    stored = _stored_urls(api)
    if stored_by_file:
        assert stored["hx"] == stored["hy"]
        assert stored["hx"].startswith(("http://", "https://"))
