"""Migration 003_bounds: CHECK constraints for identifiers and bounds (issue 10, SPEC §2)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.types.json import Jsonb

from metrics_orchestrator.domain.identifiers import IDENTIFIER_PATTERN, is_identifier
from metrics_orchestrator.infrastructure.postgres.migrations import (
    MigrationError,
    applied_versions,
    migrate,
    rollback_last,
)

METRIC = (
    "INSERT INTO metrics (id, code, expression_type, expression_json, required_days,"
    " max_attempts) VALUES (%s, %s, 'series_math', %s, %s, %s)"
)


def _metric(conn: psycopg.Connection[tuple[object, ...]], metric_id: str, **kw: int) -> None:
    conn.execute(
        METRIC,
        (metric_id, metric_id, Jsonb({}), kw.get("required_days", 7), kw.get("max_attempts", 3)),
    )


def test_violating_rows_stop_the_migration_with_their_list_and_stay_unchanged(
    empty_database_url: str,
) -> None:
    migrate(empty_database_url)
    undone = [rollback_last(empty_database_url) for _ in range(2)]
    assert [m.version if m else None for m in undone] == ["004", "003"]
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO datasets (id) VALUES ('ds:v1'), ('fine')")
        _metric(conn, "m.long_window", required_days=99_999)
        _metric(conn, "m.many_attempts", max_attempts=1000)

    with pytest.raises(MigrationError) as raised:
        migrate(empty_database_url)

    message = str(raised.value)
    assert message.startswith("migration 003_bounds was not applied: ")
    assert "datasets.id 'ds:v1'" in message
    assert "m.long_window: required_days 99999 > 36500" in message
    assert "m.many_attempts: max_attempts 1000 > 100" in message
    assert "'fine'" not in message
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        assert "003" not in applied_versions(conn)
        ids = conn.execute("SELECT id FROM datasets ORDER BY id").fetchall()
        assert ids == [("ds:v1",), ("fine",)]  # nothing rewritten
        days = conn.execute("SELECT required_days FROM metrics WHERE id = 'm.long_window'")
        assert days.fetchall() == [(99_999,)]


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("INSERT INTO datasets (id) VALUES (%s)", ("a b",)),
        ("INSERT INTO datasets (id) VALUES (%s)", ("x" * 129,)),
        ("INSERT INTO series (code) VALUES (%s)", ("A/B",)),
        (METRIC, ("m:1", "ok", Jsonb({}), 7, 3)),
        (METRIC, ("ok", "code with space", Jsonb({}), 7, 3)),
        (METRIC, ("ok", "ok", Jsonb({}), 36_501, 3)),
        (METRIC, ("ok", "ok", Jsonb({}), 7, 101)),
    ],
)
def test_the_constraints_refuse_what_registration_refuses(
    database_url: str, sql: str, params: tuple[object, ...]
) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(sql, params)


def test_no_stored_timestamp_can_be_unreadable(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO datasets (id) VALUES ('d')")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO dataset_updates (id, event_key, dataset_id, bucket,"
                " version_manifest_path, projections_path, occurred_at, received_at,"
                " effective_at, payload) VALUES (gen_random_uuid(), 'k', 'd', 'b', 'm', 'p',"
                " '10000-01-01 00:00:01+00', %s, '10000-01-01 00:00:01+00', '{}')",
                (datetime(2025, 1, 1, tzinfo=UTC),),
            )


@pytest.mark.parametrize(
    "value", ["a", "A-Z_a.z-09", "x" * 128, "", "x" * 129, "a:b", "a/b", "a b", "é", "a\n"]
)
def test_the_database_pattern_is_the_domain_rule(database_url: str, value: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT %s ~ %s", (value, IDENTIFIER_PATTERN)).fetchone()
    assert row is not None
    assert row[0] is is_identifier(value)
