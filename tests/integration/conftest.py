"""Fixtures shared by integration suites (the database ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from tests.factories import seed_metric
from tests.integration.http_helpers import Api, running_api
from tests.support import MutableClock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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


@pytest.fixture
def output_bucket(s3_client: S3Client, aws_prefix: str) -> str:
    """A bucket of this test's own in moto, for run outputs and logs."""
    name = f"{aws_prefix}-out"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def output_api(database_url: str, aws_endpoint_url: str, output_bucket: str) -> Iterator[Api]:
    """The API in-process, reading run outputs and logs from `output_bucket` (moto)."""
    env = {"AWS_ENDPOINT_URL": aws_endpoint_url, "OUTPUT_BUCKET": output_bucket}
    with running_api(database_url, MutableClock(datetime.now(UTC)), env) as api:
        yield api
