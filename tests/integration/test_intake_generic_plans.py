"""The intake's statements under GENERIC plans on an empty, never-analysed database.

psycopg prepares a statement after a few executions, and PostgreSQL may then settle on a
generic plan made while the tables were empty (issue 14: a semi join walking a whole
`metric_runs` index, growing with history). Here every statement the intake transaction
runs is prepared with `plan_cache_mode = force_generic_plan` and its plan must reach
`metric_runs` and `run_dataset_updates` only through index conditions: no sequential scan
and no scan of a whole index, so its cost cannot grow with run history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from metrics_orchestrator.infrastructure.postgres.named_queries import load_queries

GROWING = {"metric_runs", "run_dataset_updates"}
# what an intake transaction runs (intake_repository.py, in order)
INTAKE_STATEMENTS = [
    "lock_datasets",
    "freshest_updates",
    "record_updates",
    "set_freshest_updates",
    "lock_dependent_metrics",
    "lock_pending_runs",
    "input_facts",
    "existing_automatic_fingerprints",
    "insert_pending_runs",
    "still_pending_runs",
    "replace_pending_rows_delete",
    "replace_pending_rows_insert",
    "insert_queued_runs",
    "promote_pending_runs",
    "insert_lineage",
    "fill_pending_rows_from_lineage",
    "set_last_automatic_runs",
]
_PARAM = re.compile(r"%\((\w+)\)[sb]")


def as_prepared(sql: str) -> tuple[str, int]:
    """The statement with $n parameters (one per distinct name) and how many there are."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${names.setdefault(match.group(1), len(names) + 1)}"

    return _PARAM.sub(number, sql), len(names)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def generic_plan(conn: psycopg.Connection[Any], name: str, sql: str) -> dict[str, Any]:
    text, count = as_prepared(sql)
    conn.execute(f"PREPARE {name} AS {text}")
    args = ", ".join(["NULL"] * count)
    execute = f"EXECUTE {name}({args})" if count else f"EXECUTE {name}"
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {execute}").fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return dict(plan[0]["Plan"])


def scans_of_growing_tables(
    conn: psycopg.Connection[Any], plan: dict[str, Any]
) -> list[tuple[str, str, bool]]:
    """(node type, table or index, has an index condition) for every scan of those tables."""
    index_table = dict(
        conn.execute(
            "SELECT indexname, tablename FROM pg_indexes WHERE tablename = ANY(%s)",
            (list(GROWING),),
        ).fetchall()
    )
    found = []
    for node in nodes(plan):
        relation = node.get("Relation Name")
        index = node.get("Index Name")
        table = relation or index_table.get(index or "")
        if table not in GROWING or node.get("Node Type") == "ModifyTable":
            continue
        kind = node["Node Type"]
        if kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            found.append((kind, index or table, "Index Cond" in node))
        elif kind != "Bitmap Heap Scan":
            found.append((kind, table, False))
    return found


@pytest.mark.parametrize("name", INTAKE_STATEMENTS)
def test_an_intake_statement_reaches_run_history_only_through_index_conditions(
    database_url: str, name: str
) -> None:
    with psycopg.connect(database_url) as conn:
        (analysed,) = conn.execute(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY(%s)"
            " AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
            (list(GROWING),),
        ).fetchone() or (0,)
        assert analysed == 0, "the database must be un-analysed for this test to mean anything"
        conn.execute("SET plan_cache_mode = force_generic_plan")
        plan = generic_plan(conn, f"s_{name}", load_queries("intake.sql")[name])
        scans = scans_of_growing_tables(conn, plan)

    assert [s for s in scans if not s[2]] == [], json.dumps(plan, indent=1)


# The form issue 14 found in production: a generic plan walks the whole fingerprint index.
HISTORY_WALKING = """
SELECT metric_id, inputs_fingerprint
FROM metric_runs
WHERE trigger = 'automatic'
  AND (metric_id, inputs_fingerprint) IN (
      SELECT * FROM unnest(%(metric_ids)b::text[], %(fingerprints)b::text[]))
"""


def test_the_check_catches_a_statement_that_walks_run_history(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        plan = generic_plan(conn, "s_history_walking", HISTORY_WALKING)
        scans = scans_of_growing_tables(conn, plan)

    assert [s for s in scans if not s[2]] != [], json.dumps(plan, indent=1)
