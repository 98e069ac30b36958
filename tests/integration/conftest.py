"""Fixtures shared by integration suites (the database ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from tests.factories import seed_metric
from tests.support import MutableClock


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def conn(pool: ConnectionPool[Connection[TupleRow]]) -> Iterator[Connection[TupleRow]]:
    """An autocommit connection to a database seeded with the default metric (factories)."""
    with pool.connection() as connection:
        connection.autocommit = True
        seed_metric(connection)
        yield connection


@pytest.fixture
def catalog_path(catalogs_dir: Path) -> Path:
    """The catalog the messaging suites load: metrics whose inputs span several datasets."""
    return catalogs_dir / "multi_dataset_catalog.yaml"
