"""`ingest --workers N` routing: any line goes to some worker, an update with its dataset."""

from __future__ import annotations

import json
import string

from hypothesis import example, given
from hypothesis import strategies as st

from metrics_orchestrator.interfaces.cli.ingest import MAX_WORKERS, worker_of
from tests.hostile_inputs import hostile_bodies

worker_counts = st.integers(min_value=1, max_value=MAX_WORKERS)
dataset_ids = st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=40)


def update(dataset_id: str, version: str) -> str:
    return json.dumps(
        {
            "dataset_id": dataset_id,
            "version_manifest_path": f"datasets/{dataset_id}/versions/{version}/manifest.json",
            "projections_path": f"datasets/{dataset_id}/projections",
        }
    )


def envelope(body: str) -> str:
    return json.dumps({"Type": "Notification", "Message": body})


@given(hostile_bodies, worker_counts)
@example(b"[" * 50_000 + b"]" * 50_000, 2)  # json.loads raises RecursionError on it
def test_any_line_whatsoever_goes_to_one_of_the_workers(body: bytes, workers: int) -> None:
    assert 0 <= worker_of(body, workers) < workers


@given(dataset_ids, worker_counts)
def test_an_update_raw_or_enveloped_goes_to_its_datasets_worker(
    dataset_id: str, workers: int
) -> None:
    raw = worker_of(update(dataset_id, "v1"), workers)
    assert worker_of(envelope(update(dataset_id, "v2")), workers) == raw
    assert worker_of(update(dataset_id, "v3").encode(), workers) == raw
