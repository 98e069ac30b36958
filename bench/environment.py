"""What every benchmark needs: bench databases, the machine's description, small statistics.

Databases are named `bench_*` and created on the server given by `BENCH_DATABASE_URL`
(default: the embedded PostgreSQL every other `make` target uses, started for the run). A
migrated template is built once per suite run; each measurement clones it (or a clone with a
synthetic catalog loaded), so runs never see each other's rows. Everything created is dropped
when the suite ends, even on failure.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.catalog import CatalogShape, generate_catalog
from metrics_orchestrator.bootstrap import bootstrap, resolve_database_url
from metrics_orchestrator.infrastructure.postgres.migrations import migrate
from metrics_orchestrator.infrastructure.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def server_url() -> str | None:
    """`BENCH_DATABASE_URL`, or None for the embedded server."""
    return os.environ.get("BENCH_DATABASE_URL") or None


def embedded_server(resources: ExitStack) -> str:
    """The embedded PostgreSQL (stopped with `resources`); its data directory as for `serve`."""
    settings = load_settings().model_copy(update={"database_url": None})
    url = resolve_database_url(settings, resources, auto_migrate=False)
    print(f"bench databases on the embedded PostgreSQL ({url})", file=sys.stderr)
    return url


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def database_name(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


@dataclass
class BenchDatabases:
    """Creates `bench_*` databases on one server and drops them all on `close()`."""

    server: str
    prefix: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:8]}")
    _created: list[str] = field(default_factory=list)
    _templates: dict[CatalogShape, str] = field(default_factory=dict)
    _migrated: str | None = None

    def create(self, template: str | None = None) -> str:
        """A new database (a copy of `template`, a database URL, if given); returns its URL."""
        name = f"{self.prefix}_{len(self._created):03d}"
        suffix = f' TEMPLATE "{database_name(template)}"' if template else ""
        with _admin(self.server) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        self._created.append(name)
        return make_conninfo(self.server, dbname=name)

    def migrated(self) -> str:
        """A fresh, migrated, empty database."""
        if self._migrated is None:
            self._migrated = self.create()
            migrate(self._migrated)
        return self.create(self._migrated)

    def with_catalog(self, shape: CatalogShape) -> str:
        """A fresh, migrated database holding the synthetic catalog of `shape`."""
        template = self._templates.get(shape)
        if template is None:
            template = self.migrated()
            load_catalog(template, shape)
            self._templates[shape] = template
        return self.create(template)

    def drop(self, url: str) -> None:
        name = database_name(url)
        with _admin(self.server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._created:
            self._created.remove(name)

    def close(self) -> None:
        with _admin(self.server) as conn:
            for name in reversed(self._created):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()
        self._templates.clear()
        self._migrated = None


@contextmanager
def bench_databases(server: str | None = None) -> Iterator[BenchDatabases]:
    with ExitStack() as resources:
        databases = BenchDatabases(server or server_url() or embedded_server(resources))
        try:
            yield databases
        finally:
            databases.close()


def load_catalog(database_url: str, shape: CatalogShape) -> None:
    with bootstrap(load_settings(env={}), database_url=database_url) as container:
        container.catalog.load_catalog(generate_catalog(shape))


@contextmanager
def connection(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


# -- statistics ----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in [0, 1]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- the machine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    kernel: str
    python: str
    postgres: str
    packages: dict[str, str]
    commit: str
    load_average: tuple[float, float, float]


def describe_machine(database_url: str) -> Machine:
    with connection(database_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    packages = {}
    for name in ("psycopg", "psycopg-pool", "boto3", "moto", "structlog", "pydantic"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gib=_memory_gib(),
        kernel=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        postgres=str(row[0]) if row else "unknown",
        packages=packages,
        commit=_git_commit(),
        load_average=os.getloadavg(),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"
