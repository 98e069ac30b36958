"""`metrics-orchestrator catalog load FILE` (SPEC §2, §6.1): exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import yaml
from typer.testing import CliRunner, Result

from metrics_orchestrator.interfaces.cli import app

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
        f"error: {empty}: file is empty; expected keys series, datasets, metrics"
    ]


def test_a_document_that_is_not_an_object_is_reported_against_the_file(
    database_url: str, tmp_path: Path
) -> None:
    file = _write_yaml(tmp_path, ["series", "datasets"])

    result = _load(file, database_url)

    assert result.exit_code == 2
    assert _stderr(result).splitlines() == [
        f"error: {file}: a catalog must be an object with keys series, datasets, metrics, "
        "got a list"
    ]


def test_other_failures_exit_1(catalogs_dir: Path, empty_database_url: str) -> None:
    # A database without the schema: not the input's fault.
    result = _load(catalogs_dir / "bcra_catalog.yaml", empty_database_url)

    assert result.exit_code == 1
    assert _stderr(result).startswith("error: catalog load failed: ")
    assert len(_stderr(result).splitlines()) == 1
