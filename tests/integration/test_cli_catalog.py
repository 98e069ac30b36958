"""`metrics-orchestrator catalog load FILE` (SPEC §2, §6.1): exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import yaml
from typer.testing import CliRunner, Result

from metrics_orchestrator.bootstrap import bootstrap
from metrics_orchestrator.infrastructure.settings import load_settings
from metrics_orchestrator.interfaces.cli import app
from tests.integration.intake_helpers import update_body

runner = CliRunner()


def _load(file: Path, database_url: str) -> Result:
    return runner.invoke(
        app, ["catalog", "load", str(file)], env={"DATABASE_URL": database_url, "LOG_LEVEL": "INFO"}
    )


def _stderr(result: Result) -> str:
    """stderr without the line every command starts with (which database it uses)."""
    lines = result.stderr.splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("database: "))


def _count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
    assert row is not None
    return int(row[0])


def _write_yaml(tmp_path: Path, document: object, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _multi(catalogs_dir: Path) -> dict[str, Any]:
    path = catalogs_dir / "multi_dataset_catalog.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def test_load_prints_a_summary_and_a_second_load_changes_nothing(
    catalogs_dir: Path, database_url: str
) -> None:
    file = catalogs_dir / "bcra_catalog.yaml"

    first = _load(file, database_url)
    second = _load(file, database_url)

    assert first.exit_code == 0, first.output
    assert "series:   5 created, 0 updated, 0 unchanged" in first.stdout
    assert "metrics:  6 created, 0 updated, 0 unchanged" in first.stdout
    assert second.exit_code == 0, second.output
    assert "datasets: 0 created, 0 updated, 1 unchanged" in second.stdout
    assert "metrics:  0 created, 0 updated, 6 unchanged" in second.stdout
    assert _count(database_url, "metrics") == 6


def test_a_json_catalog_loads_too(catalogs_dir: Path, database_url: str, tmp_path: Path) -> None:
    file = tmp_path / "catalog.json"
    file.write_text(json.dumps(_multi(catalogs_dir)), encoding="utf-8")

    result = _load(file, database_url)

    assert result.exit_code == 0, result.output
    assert "metrics:  5 created" in result.stdout
    assert _count(database_url, "metric_dependencies") == 2 + 2 + 3 + 1 + 2


def test_bad_input_exits_2_with_one_line_per_error_and_writes_nothing(
    catalogs_dir: Path, database_url: str, tmp_path: Path
) -> None:
    document = _multi(catalogs_dir)
    del document["metrics"][0]["expression"]["right"]["dataset_id"]
    document["metrics"][1]["expression"]["op"] = "divide"
    document["datasets"][1]["series"].append("GOLD_D")
    file = _write_yaml(tmp_path, document)

    result = _load(file, database_url)

    assert result.exit_code == 2
    assert _stderr(result).splitlines() == [
        "error: datasets[1].series[2]: unknown series 'GOLD_D'",
        "error: metrics[0].expression.right.series_code: series 'FX_OFFICIAL_D' is provided by "
        "several datasets (fx_daily, fx_mirror); pin one with dataset_id",
        "error: metrics[1].expression.op: unknown series_math op 'divide'; expected one of "
        "ratio, multiply, subtract, add",
    ]
    assert result.stdout == ""
    assert _count(database_url, "series") == 0
    assert _count(database_url, "metrics") == 0


def test_a_missing_file_exits_2(database_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    result = _load(missing, database_url)

    assert result.exit_code == 2
    assert _stderr(result).splitlines() == [f"error: {missing}: file not found"]


def test_a_file_that_is_not_yaml_exits_2_with_one_line(database_url: str, tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("series:\n  - {code: A\n", encoding="utf-8")

    result = _load(file, database_url)

    assert result.exit_code == 2
    lines = _stderr(result).splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        f"error: {file}: not valid YAML at line 3, column 1: expected ',' or '}}', but got "
        "'<stream end>' (while parsing a flow mapping that starts at line 2, column 5)"
    )
    assert "<unicode string>" not in lines[0]


def test_a_file_that_is_not_json_exits_2(database_url: str, tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text('{"series": [}', encoding="utf-8")

    result = _load(file, database_url)

    assert result.exit_code == 2
    assert _stderr(result).startswith(f"error: {file}: not valid JSON: ")


def test_duplicate_keys_and_empty_files_are_refused(database_url: str, tmp_path: Path) -> None:
    duplicated = tmp_path / "dup.yaml"
    duplicated.write_text("series: []\nseries: []\n", encoding="utf-8")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n", encoding="utf-8")

    duplicate_result = _load(duplicated, database_url)
    empty_result = _load(empty, database_url)

    assert duplicate_result.exit_code == 2
    assert "duplicate key 'series'" in _stderr(duplicate_result)
    assert empty_result.exit_code == 2
    assert _stderr(empty_result).splitlines() == [
        f"error: {empty}: file is empty; expected keys series, datasets, metrics, notifications"
    ]


def test_a_document_that_is_not_an_object_is_reported_against_the_file(
    database_url: str, tmp_path: Path
) -> None:
    file = _write_yaml(tmp_path, ["series", "datasets"])

    result = _load(file, database_url)

    assert result.exit_code == 2
    assert _stderr(result).splitlines() == [
        f"error: {file}: a catalog must be an object with keys series, datasets, metrics, "
        "notifications, got a list"
    ]


def test_other_failures_exit_1(catalogs_dir: Path, empty_database_url: str) -> None:
    # A database without the schema: not the input's fault.
    result = _load(catalogs_dir / "bcra_catalog.yaml", empty_database_url)

    assert result.exit_code == 1
    assert _stderr(result).startswith("error: catalog load failed: ")
    assert len(_stderr(result).splitlines()) == 1


def _dry_run(file: Path, database_url: str, *extra: str) -> Result:
    return runner.invoke(
        app,
        ["catalog", "load", "--dry-run", *extra, str(file)],
        env={"DATABASE_URL": database_url, "LOG_LEVEL": "ERROR"},
    )


def _snapshot(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM series), (SELECT count(*) FROM datasets),"
            " (SELECT json_agg(m ORDER BY m.id) FROM metrics m),"
            " (SELECT json_agg(r.status ORDER BY r.id) FROM metric_runs r)"
        ).fetchall()


def test_a_dry_run_names_what_would_change_and_writes_nothing(
    catalogs_dir: Path, database_url: str, tmp_path: Path
) -> None:
    document = _multi(catalogs_dir)
    assert _load(_write_yaml(tmp_path, document, "first.yaml"), database_url).exit_code == 0
    settings = load_settings(env={"DATABASE_URL": database_url})
    with bootstrap(settings) as container:  # fx_daily: at_parallel waits for reserves_daily
        container.router.handle(update_body("fx_daily", "v1"), source="test")
    changed = next(m for m in document["metrics"] if m["code"] == "reserves.at_parallel")
    changed["description"] = "changed"
    changed["expression"] = {
        "op": "multiply",
        "left": {"series_code": "FX_PARALLEL_D"},
        "right": {"series_code": "RESERVES_USD_D"},
    }
    document["series"].append({"code": "NEW_SERIES_D"})
    before = _snapshot(database_url)

    result = _dry_run(_write_yaml(tmp_path, document), database_url)

    assert result.exit_code == 0, result.output
    assert "nothing was written" in result.stdout
    assert "series:   1 created, 0 updated, 5 unchanged" in result.stdout
    assert "    would create: NEW_SERIES_D" in result.stdout
    assert "    would change: reserves.at_parallel" in result.stdout
    assert "would cancel the pending run of these changed metrics (by id): " in result.stdout
    assert _snapshot(database_url) == before
    as_json = json.loads(_dry_run(_write_yaml(tmp_path, document), database_url, "--json").stdout)
    assert as_json["metrics"]["updated"] == ["reserves.at_parallel"]
    assert as_json["series"]["created"] == ["NEW_SERIES_D"]
    assert len(as_json["canceled_pending_runs_of"]) == 1
    assert _snapshot(database_url) == before


def test_a_dry_run_of_a_bad_file_lists_its_problems_and_exits_2(
    catalogs_dir: Path, database_url: str, tmp_path: Path
) -> None:
    document = _multi(catalogs_dir)
    document["datasets"][0]["series"] = ["NO_SUCH_SERIES"]

    result = _dry_run(_write_yaml(tmp_path, document), database_url)

    assert result.exit_code == 2
    assert "unknown series 'NO_SUCH_SERIES'" in result.stderr
    assert _count(database_url, "series") == 0
