"""`metrics-orchestrator demo` as a user runs it: a subprocess on a machine with nothing set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).with_name("metrics-orchestrator")
_SERVICE_PREFIXES = ("DATABASE_", "AWS_", "SNS_", "SQS_", "HTTP_", "API_TOKEN", "LOG_", "RUN_")


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
    for metric, status, attempt, versions in rows:
        by_metric.setdefault(metric, []).append((status, attempt, versions))

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
    # coalescing: one run on the newest reserves and the first fx
    assert by_metric["reserves.at_parallel"] == [
        ("succeeded", "1", "fx_daily=f1, reserves_daily=r3")
    ]
    # the stale prices version never ran anything; the fresh one did
    assert by_metric["reserves.real_pesos"] == [
        ("succeeded", "1", "fx_daily=f1, prices_monthly=p1, reserves_daily=r3")
    ]
    assert "p_old" not in out.split("Runs")[-1]
    assert re.search(r"events: 1 duplicate, \d+ processed, 2 rejected", out)
    _assert_each_chapter_tells_only_its_own_story(out)


def _chapters(out: str) -> dict[int, str]:
    """Chapter number -> its text (title to the next chapter or the final table)."""
    story = out[: out.index("┏")]  # up to the final table
    parts = re.split(r"^(\d+)\. ", story, flags=re.MULTILINE)
    return {int(number): text for number, text in zip(parts[1::2], parts[2::2], strict=True)}


def _assert_each_chapter_tells_only_its_own_story(out: str) -> None:
    chapters = _chapters(out)
    assert len(chapters) == 8
    worker_lines = [line for line in out.splitlines() if "worker (simulated)" in line]
    assert worker_lines
    for line in worker_lines:  # each names the metric and what the run is
        assert re.search(
            r"worker \(simulated\) +[a-z_]+\.[a-z_0-9]+ +(first attempt|retry \d of \d)", line
        )
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
    assert "duplicate" in chapters[8]


def test_the_demo_prints_the_same_story_every_time(tmp_path: Path) -> None:
    first, second = _run_demo(tmp_path), _run_demo(tmp_path)
    assert _normalised(first) == _normalised(second)


def _normalised(out: str) -> str:
    out = re.sub(r"\d+\.\d s", "N s", out)
    out = re.sub(r"mo-demo-\w+", "DIR", out)
    return re.sub(r"127\.0\.0\.1:\d+", "HOST", out)


def _run_demo(cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    result = subprocess.run(
        [str(CLI), "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _table_rows(out: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 5 and cells[2].isdigit():
            rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows
