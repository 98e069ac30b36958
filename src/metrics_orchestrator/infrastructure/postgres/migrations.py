"""A small runner for plain-SQL migrations (see docs/decisions.md for why not a library).

Files `NNN_name.sql` in the `metrics_orchestrator.migrations` package are applied in order,
each in its own transaction, and recorded in `schema_migrations` with a checksum. A
session-level advisory lock makes concurrent `migrate` runs wait for each other, so the
second one finds nothing to do. `NNN_name.rollback.sql` undoes `NNN_name.sql`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from metrics_orchestrator.application.health import DatabaseState, DatabaseUnreachable

_FILE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")
# An arbitrary, fixed key: "metrics-orchestrator migrations".
MIGRATION_LOCK_KEY = 0x6D6F5F6D69677261

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str
    rollback_sql: str | None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    folder = resources.files("metrics_orchestrator.migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        rollback = folder.joinpath(entry.name.removesuffix(".sql") + ".rollback.sql")
        found.append(
            Migration(
                version=match["version"],
                name=match["name"],
                sql=entry.read_text(encoding="utf-8"),
                rollback_sql=rollback.read_text(encoding="utf-8") if rollback.is_file() else None,
            )
        )
    return sorted(found, key=lambda m: m.version)


def applied_versions(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {str(v): str(c) for v, c in rows}


def pending_migrations(url: str) -> list[Migration]:
    with psycopg.connect(url, autocommit=True) as conn:
        done = applied_versions(conn)
    return _pending(done)


def _pending(done: dict[str, str]) -> list[Migration]:
    return [m for m in available_migrations() if m.version not in done]


def migrate(url: str) -> list[Migration]:
    """Apply every pending migration; return those applied (empty when up to date)."""
    applied: list[Migration] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_BOOKKEEPING)
            done = applied_versions(conn)
            for migration in available_migrations():
                recorded = done.get(migration.version)
                if recorded is not None:
                    if recorded != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version}_{migration.name} changed after it "
                            "was applied; add a new migration instead of editing it"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL(migration.sql))
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.errors.RaiseException as exc:
                    # the migration's own check refused the data it found (003_bounds lists
                    # the rows to fix): a message for the operator, not a traceback
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} was not applied: "
                        f"{exc.diag.message_primary or exc}"
                    ) from exc
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied


def rollback_last(url: str) -> Migration | None:
    """Undo the newest applied migration with its rollback script."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            done = applied_versions(conn)
            if not done:
                return None
            by_version = {m.version: m for m in available_migrations()}
            last = by_version[max(done)]
            if last.rollback_sql is None:
                raise MigrationError(f"migration {last.version}_{last.name} has no rollback")
            with conn.transaction():
                conn.execute(sql.SQL(last.rollback_sql))
                conn.execute("DELETE FROM schema_migrations WHERE version = %s", (last.version,))
            return last
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


class PostgresSchemaProbe:
    """The readiness probe's view of the database: reachable, writable, migrations pending."""

    # A readiness probe must answer quickly, whatever state the database is in.
    CONNECT_TIMEOUT_SECONDS = 3

    def __init__(self, url: str) -> None:
        self._url = url

    def database_state(self) -> DatabaseState:
        from psycopg.conninfo import make_conninfo

        url = make_conninfo(self._url, connect_timeout=self.CONNECT_TIMEOUT_SECONDS)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                done = applied_versions(conn)
                # on for a standby in recovery and for default_transaction_read_only = on
                row = conn.execute("SHOW transaction_read_only").fetchone()
        except psycopg.Error as exc:
            text = str(exc).strip()
            raise DatabaseUnreachable(
                text.splitlines()[0] if text else type(exc).__name__
            ) from None
        return DatabaseState(
            pending_migrations=[f"{m.version}_{m.name}" for m in _pending(done)],
            read_only=bool(row and row[0] == "on"),
        )
