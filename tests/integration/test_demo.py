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
    assert by_metric["delta.base_30d"] == [("timed_out", "1", bcra), ("succeeded", "2", bcra)]
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
    assert by_metric["prices.real_wages"] == [("succeeded", "1", "prices_monthly=p1")]
    assert "p_old" not in out.split("Runs")[-1]
    assert re.search(r"events: 1 duplicate, \d+ processed, 2 rejected", out)


def _table_rows(out: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 5 and cells[2].isdigit():
            rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows
