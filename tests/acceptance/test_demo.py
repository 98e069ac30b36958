"""`metrics-orchestrator demo` as a user runs it: a subprocess on a machine with nothing set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from metrics_orchestrator.domain.expressions import parse_expression
from metrics_orchestrator.interfaces.demo import bundled_catalog
from metrics_orchestrator.interfaces.demo_report import format_value
from metrics_orchestrator.worker.evaluator import evaluate
from metrics_orchestrator.worker.sample_world import SampleSeries, sample_points

CLI = Path(sys.executable).with_name("metrics-orchestrator")
_SERVICE_PREFIXES = (
    "DATABASE_",
    "AWS_",
    "SNS_",
    "SQS_",
    "HTTP_",
    "API_TOKEN",
    "LOG_",
    "RUN_",
    "WORKER_",
)
WORKER_LINE = (
    r"worker \((simulated|reference)\) +[a-z_]+\.[a-z_0-9]+ +"
    r"(first attempt|retry \d of \d|manual run)"
)
# The product promise: `make demo` tells its story in under a minute.
DEMO_SECONDS = 60


@pytest.mark.slow
def test_demo_tells_the_story_and_ends_with_the_runs_table(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    result = subprocess.run(
        [str(CLI), "demo"],
        cwd=tmp_path,  # no .env to pick up
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "SIMULATED" in out.upper() or "simulated" in out
    rows = _table_rows(out)
    by_metric: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        by_metric.setdefault(row.metric, []).append((row.status, row.attempt, row.versions))

    bcra = "bcra_infomondia_series=v20251111_014138_730866"
    # single-dataset metrics ran at once on the BCRA version
    for code in ("delta.reserves_7d", "mon.base_ampliada_ars", "ratio.reserves_to_base"):
        assert by_metric[code] == [("succeeded", "1", bcra)]
    # one worker failure and one silent worker, each retried once
    assert by_metric["mon.respaldo_real"] == [("failed", "1", bcra), ("succeeded", "2", bcra)]
    prices = "prices_monthly=p1"
    assert by_metric["prices.real_wages"] == [
        ("timed_out", "1", prices),
        ("succeeded", "2", prices),
    ]
    # a single-dataset metric runs on every version
    assert [v for _, _, v in by_metric["reserves.sma_20"]] == [
        "reserves_daily=r1",
        "reserves_daily=r2",
        "reserves_daily=r3",
    ]
    # r2 and r3 are manifests listing r1's files: the table says why their values are equal
    for earlier, later in (("r1", "r2"), ("r2", "r3")):
        assert (
            f"note: reserves.sma_20 on reserves_daily={later} reads the same data files as on "
            f"reserves_daily={earlier}" in out
        )
    # coalescing: one run on the newest reserves and the first fx
    assert by_metric["reserves.at_parallel"] == [
        ("succeeded", "1", "fx_daily=f1, reserves_daily=r3")
    ]
    # the stale prices version never ran anything; the fresh one did
    assert by_metric["reserves.real_pesos"] == [
        ("succeeded", "1", "fx_daily=f1, prices_monthly=p1, reserves_daily=r3")
    ]
    assert "p_old" not in out.split("Runs")[-1]
    # metrics over metrics (SPEC §8): the chain ran on its upstream outputs, then once more
    # after its root's definition changed and `refresh --stale` ran the root
    assert [(s, a) for s, a, _ in by_metric["reserves.real_pesos_yoy"]] == [("succeeded", "1")] * 2
    assert [(s, a) for s, a, _ in by_metric["reserves.real_yoy_over_gap"]] == [
        ("succeeded", "1")
    ] * 2
    assert all(
        v.startswith("metric:reserves.real_pesos=")
        for _, _, v in by_metric["reserves.real_pesos_yoy"]
    )
    # SPEC §9: the junk opens two incidents, dismissing it resolves them, the webhook hears all
    assert "projection updates: 2 dismissed, 1 duplicate, 7 processed" in out
    assert (
        "webhook demo-webhook received 2 incident.opened, 2 incident.resolved "
        "(all signed: X-Signature-256 verified)"
    ) in out
    _assert_each_chapter_tells_only_its_own_story(out)
    _assert_every_succeeded_run_shows_its_computed_output(rows)
    finished = re.search(r"demo finished in (\d+\.\d) s", out)
    assert finished is not None
    assert float(finished[1]) < DEMO_SECONDS


def _assert_every_succeeded_run_shows_its_computed_output(rows: list[Row]) -> None:
    succeeded = [row for row in rows if row.status == "succeeded"]
    assert len(succeeded) == 17
    for row in succeeded:
        assert int(row.rows) > 0, row
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row.latest), row
        float(row.value.replace(",", ""))
    assert all(row.rows == row.latest == row.value == "" for row in rows if row not in succeeded)
    # one metric of each catalog, recomputed here by the evaluator on the same sample world
    for catalog, metric in (
        ("bcra_catalog.yaml", "ratio.reserves_to_base"),
        ("multi_dataset_catalog.yaml", "fx.gap"),
        ("multi_dataset_catalog.yaml", "prices.real_wages"),  # monthly, and the retried run
    ):
        (shown,) = [row for row in succeeded if row.metric == metric]
        assert (shown.rows, shown.latest, shown.value) == _expected_output(catalog, metric)


def _expected_output(catalog: str, metric_code: str) -> tuple[str, str, str]:
    """(row count, date of the latest valued point, its value) as the table prints them."""
    document = bundled_catalog(catalog)
    metric = next(m for m in document["metrics"] if m["code"] == metric_code)
    expression = parse_expression(metric["expression_type"], metric["expression"])
    monthly = {s["code"] for s in document["series"] if s.get("frequency") == "monthly"}
    series = {
        code: sample_points(SampleSeries(code, code in monthly)).lazy()
        for code in expression.series_codes()
    }
    output = evaluate(expression, series)
    latest = output.filter(pl.col("value").is_not_null()).sort("obs_time").row(-1, named=True)
    assert isinstance(latest["value"], float)  # a real number, not a made-up one
    return (str(output.height), f"{latest['obs_time']:%Y-%m-%d}", format_value(latest["value"]))


def _chapters(out: str) -> dict[int, str]:
    """Chapter number -> its text (title to the next chapter or the final table)."""
    story = out[: out.index("┏")]  # up to the final table
    parts = re.split(r"^(\d+)\. ", story, flags=re.MULTILINE)
    return {int(number): text for number, text in zip(parts[1::2], parts[2::2], strict=True)}


def _assert_each_chapter_tells_only_its_own_story(out: str) -> None:
    chapters = _chapters(out)
    assert len(chapters) == 10
    worker_lines = [line for line in out.splitlines() if "worker (" in line]
    simulated = [line for line in worker_lines if "worker (simulated)" in line]
    # the simulated worker only plays the two scripted faults; the reference worker computes
    assert len(simulated) == 3
    assert all("first attempt" in line for line in simulated)
    assert len(worker_lines) == 3 + 2 * 17
    for line in worker_lines:  # each names the metric and what the run is
        assert re.search(WORKER_LINE, line), line
    assert re.search(r"worker \(reference\) +fx\.gap +first attempt +succeeded: \d+ rows", out)
    # the retry is in the chapter that announces it, and only there
    assert "mon.respaldo_real        retry 2 of 3     succeeded" in chapters[2]
    assert all(
        "retry" not in chapters[n].split("expect:")[1].split("\n", 1)[1] for n in (1, 3, 4, 5, 6)
    )
    # nothing runs on the stale version
    assert "worker" not in chapters[5]
    # the timeout happens in chapter 7, not before
    assert "timed out" in chapters[7]
    assert all("timed out" not in chapters[n] for n in range(1, 7))
    # each chapter's completions are printed in that chapter
    assert "reserves.sma_20          first attempt on reserves_daily=r3 succeeded" in chapters[3]
    assert "reserves.at_parallel     first attempt    succeeded" in chapters[4]
    # a dependent starts when its upstream succeeds, in the chapter of the upstream's input
    assert re.search(r"reserves\.real_pesos_yoy +first attempt +succeeded", chapters[6])
    assert re.search(r"reserves\.real_yoy_over_gap +first attempt +succeeded", chapters[6])
    # the refresh: a manual run of the root, then its dependent on the root's new output
    assert re.search(r"reserves\.real_pesos_yoy +manual run .*succeeded", chapters[8])
    assert re.search(r"reserves\.real_yoy_over_gap +first attempt .*succeeded", chapters[8])
    assert "duplicate" in chapters[9]
    # incidents open in the chapter of their cause and resolve in the one that ends it
    assert len(re.findall(r"incident #\d+ opened: event_rejected", chapters[9])) == 2
    assert "resolved" not in chapters[9].split("expect:")[1].split("\n", 1)[1]
    assert chapters[10].count("resolved: dismissed: junk from a broken producer") == 2
    assert all("incident #" not in chapters[n] for n in range(1, 9))


def test_the_demo_prints_the_same_story_every_time(tmp_path: Path) -> None:
    first, second = _run_demo(tmp_path), _run_demo(tmp_path)
    assert _normalised(first) == _normalised(second)


def _normalised(out: str) -> str:
    out = re.sub(r"\d+\.\d s", "N s", out)
    out = re.sub(r"mo-demo-\w+", "DIR", out)
    # a metric output's version is named by its run's versionTs (the worker's clock)
    out = re.sub(r"\d{8}T\d{6}\.\d{6}Z", "VERSION_TS", out)
    return re.sub(r"127\.0\.0\.1:\d+", "HOST", out)


def _run_demo(cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    result = subprocess.run(
        [str(CLI), "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@dataclass(frozen=True)
class Row:
    metric: str
    status: str
    attempt: str
    versions: str
    rows: str
    latest: str
    value: str


def _table_rows(out: str) -> list[Row]:
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 8 and cells[2].isdigit():
            rows.append(Row(*cells[:7]))
    return rows
