"""`ingest --workers N` as real processes: its workers never outlive it, nor hold a transaction
while blocked on output nobody reads."""

from __future__ import annotations

import contextlib
import operator
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.interfaces.child_processes import ChildLost, run_children
from tests.integration.intake_helpers import load_catalog_file, update_body
from tests.support import MutableClock

REPO_ROOT = Path(__file__).resolve().parents[2]

LINES = 5_000
# Seconds without a new stored update after which the workers count as blocked.
STALLED_FOR = 3.0


def stored_updates(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM dataset_updates").fetchone() or (0,)
    return int(count)


def open_transactions(database_url: str) -> int:
    """Backends of the test database idle inside a transaction (holding what they locked)."""
    with psycopg.connect(database_url) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
        ).fetchone() or (0,)
    return int(count)


def eventually(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def wait_until_stalled(database_url: str, ingest: subprocess.Popen[bytes]) -> int:
    """The number of stored updates once it stops growing (the workers' output is full)."""
    deadline = time.monotonic() + 120
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        assert ingest.poll() is None, "ingest ended before its output filled up"
        count = stored_updates(database_url)
        if count != last:
            last, since = count, time.monotonic()
        elif count > 0 and time.monotonic() - since > STALLED_FOR:
            return count
        time.sleep(0.2)
    raise AssertionError(f"the workers never stalled ({last} updates stored)")


@pytest.fixture
def started() -> Iterator[list[psutil.Process]]:
    """Processes a test started, directly or not: any still alive at teardown is killed."""
    processes: list[psutil.Process] = []
    yield processes
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            for descendant in process.children(recursive=True):  # started since it was listed
                descendant.kill()
            process.kill()


def test_killing_ingest_ends_its_workers_and_leaves_no_transaction_open(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    catalogs_dir: Path,
    tmp_path: Path,
    started: list[psutil.Process],
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    datasets = ("reserves_daily", "fx_daily", "prices_monthly", "fx_mirror")
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(update_body(datasets[n % 4], f"v{n:05d}") + "\n" for n in range(LINES))
    )
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "INFO"}
    # Its output goes to pipes nobody reads, as to a terminal or log shipper that stopped
    # reading: once they are full, every write to them blocks.
    ingest = subprocess.Popen(
        [sys.executable, "-m", "metrics_orchestrator", "ingest", "--workers", "2", str(events)],
        env=env,
        cwd=tmp_path,  # no .env here: only `env` configures it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    started.append(psutil.Process(ingest.pid))
    try:
        stored = wait_until_stalled(database_url, ingest)
        descendants = started[0].children(recursive=True)
        started.extend(descendants)
        assert len(descendants) >= 2, descendants
        assert stored < LINES
        # blocked on their output, the workers hold no transaction: intake elsewhere goes on
        assert open_transactions(database_url) == 0

        ingest.kill()
        ingest.wait(10)

        _, alive = psutil.wait_procs(descendants, timeout=5)
        assert alive == [], f"outlived the killed ingest: {alive}"
        assert eventually(lambda: open_transactions(database_url) == 0, 5)
    finally:
        for pipe in (ingest.stdout, ingest.stderr):
            if pipe is not None:
                pipe.close()


def test_workers_killed_under_ingest_are_reported_and_it_exits_1(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    catalogs_dir: Path,
    tmp_path: Path,
    started: list[psutil.Process],
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(update_body("fx_daily", f"v{n:05d}") + "\n" for n in range(LINES)))
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    with (tmp_path / "stderr").open("wb") as stderr:
        ingest = subprocess.Popen(
            [sys.executable, "-m", "metrics_orchestrator", "ingest", "--workers", "2", str(events)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    started.append(psutil.Process(ingest.pid))
    assert eventually(lambda: stored_updates(database_url) > 0, 60)
    workers = [
        child
        for child in started[0].children()
        if any("spawn_main" in part for part in child.cmdline())
    ]
    started.extend(workers)
    assert workers
    for worker in workers:
        worker.kill()

    # the old pool waited for ever for the lost workers' results
    out, _ = ingest.communicate(timeout=60)

    assert ingest.returncode == 1, out
    assert b"line 1: not handled, stopped: its worker process ended (exit code -9)" in out


def test_a_child_whose_parent_is_killed_exits_by_the_lifeline_alone(
    tmp_path: Path, started: list[psutil.Process]
) -> None:
    # The portable guard on its own (no parent-death signal): the pipe from the parent closes.
    parent_code = (
        "import multiprocessing, time\n"
        "from tests.integration.process_helpers import sleep_guarded_by_the_lifeline_alone\n"
        "context = multiprocessing.get_context('spawn')\n"
        "ours, theirs = context.Pipe()\n"
        "child = context.Process(target=sleep_guarded_by_the_lifeline_alone, args=(theirs,))\n"
        "child.start()\n"
        "theirs.close()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    # the parent imports this repository's tests package, whatever the working directory
    importable = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": importable},
    )
    started.append(psutil.Process(parent.pid))
    assert parent.stdout is not None
    with parent.stdout:
        child = psutil.Process(int(parent.stdout.readline()))
    started.append(child)
    time.sleep(0.5)
    assert child.is_running()

    parent.kill()
    parent.wait(10)

    _, alive = psutil.wait_procs([child], timeout=5)
    assert alive == []


def test_children_results_come_back_in_order_and_a_lost_child_is_reported() -> None:
    assert run_children(operator.add, [(1, 2), (3, 4)]) == [3, 7]
    # os._exit ends the child before it reports: its exit code is the answer, not a hang
    assert run_children(os._exit, [(3,)]) == [ChildLost(3)]
