"""Migration 004_attempt_chains: existing retries join their chain (SPEC §5.6, issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
from psycopg.types.json import Jsonb

from metrics_orchestrator.infrastructure.postgres.migrations import migrate, rollback_last

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _run(
    conn: psycopg.Connection[tuple[object, ...]],
    attempt: int,
    retry_of: UUID | None,
    minutes: int,
) -> UUID:
    run_id = uuid4()
    conn.execute(
        "INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, retry_of,"
        " created_at, updated_at) VALUES (%s, 'm', 'canceled', %s, %s, %s, %s, %s)",
        (
            run_id,
            "manual" if retry_of else "automatic",
            attempt,
            retry_of,
            T0 + timedelta(minutes=minutes),
            T0,
        ),
    )
    return run_id


def test_existing_chains_are_filled_and_a_duplicate_attempt_roots_its_own_chain(
    empty_database_url: str,
) -> None:
    migrate(empty_database_url)
    undone = rollback_last(empty_database_url)
    assert undone is not None
    assert undone.version == "004"
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO metrics (id, code, expression_type, expression_json, required_days)"
            " VALUES ('m', 'm', 'series_math', %s, 7)",
            (Jsonb({}),),
        )
        first = _run(conn, 1, None, 0)
        second = _run(conn, 2, first, 1)
        # what the bug of issue 19 made: attempt 1 retried by hand a second time
        duplicate = _run(conn, 2, first, 2)
        third = _run(conn, 3, second, 3)
        after_duplicate = _run(conn, 3, duplicate, 4)
        alone = _run(conn, 1, None, 5)

    migrate(empty_database_url)

    with psycopg.connect(empty_database_url) as conn:
        roots: dict[object, object] = dict(
            conn.execute("SELECT id, chain_root FROM metric_runs").fetchall()
        )
    assert roots == {
        first: None,
        second: first,
        third: first,
        duplicate: None,
        after_duplicate: duplicate,
        alone: None,
    }
