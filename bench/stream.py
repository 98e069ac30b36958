"""Synthetic streams of `projection_update` events (SPEC §4.1) over a synthetic catalog.

Event `i` of a stream is a pure function of the stream's shape and `i`, so several worker
processes can each generate their own share (`i % workers == worker`) of one logical stream
without passing bodies around. Datasets are visited round by round, each round in a seeded
random order, so every dataset is updated equally often and consecutive events rarely hit
the same dataset. `occurred_at` grows with `i`: each new version is the freshest of its
dataset, except the deliberately late ones.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.catalog import dataset_id


@dataclass(frozen=True, slots=True)
class StreamShape:
    datasets: int
    # distinguishes the event keys of separate streams sent to one database
    tag: str = "s"
    seed: int = 0
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(days=1))
    step: timedelta = timedelta(milliseconds=1)
    # every n-th event (n >= 2) is a redelivered copy of the previous one; 0: none
    duplicate_every: int = 0
    # every n-th event (n >= 2) is a new version older than its dataset's latest; 0: none
    late_every: int = 0
    bucket: str = "bench-datasets"

    def __post_init__(self) -> None:
        if self.datasets < 1:
            raise ValueError("datasets must be >= 1")
        for name in ("duplicate_every", "late_every"):
            value = getattr(self, name)
            if value != 0 and value < 2:
                raise ValueError(f"{name} must be 0 (none) or >= 2")


def projection_update(
    dataset_index: int,
    version: str,
    occurred_at: datetime,
    *,
    bucket: str = "bench-datasets",
) -> dict[str, Any]:
    ds = dataset_id(dataset_index)
    return {
        "event": "projection_update",
        "dataset_id": ds,
        "bucket": bucket,
        "version_manifest_path": f"datasets/{ds}/versions/{version}/manifest.json",
        "projections_path": f"datasets/{ds}/projections",
        "occurred_at": occurred_at.isoformat(),
    }


def event_key(body: str) -> str:
    event = json.loads(body)
    return f"{event['dataset_id']}:{event['version_manifest_path']}"


class EventStream:
    """Event bodies (JSON strings) of one logical stream; see the module docstring."""

    def __init__(self, shape: StreamShape) -> None:
        self.shape = shape
        self._rounds: dict[int, list[int]] = {}

    def dataset_of(self, index: int) -> int:
        round_number, position = divmod(index, self.shape.datasets)
        order = self._rounds.get(round_number)
        if order is None:
            order = list(range(self.shape.datasets))
            random.Random(self.shape.seed * 1_000_003 + round_number).shuffle(order)
            self._rounds = {round_number: order}  # one round at a time is all a reader needs
        return order[position]

    def body(self, index: int) -> str:
        shape = self.shape
        if shape.duplicate_every and index % shape.duplicate_every == shape.duplicate_every - 1:
            return self._original(index - 1)
        return self._original(index)

    def _original(self, index: int) -> str:
        shape = self.shape
        occurred_at = shape.start + shape.step * index
        if shape.late_every and index % shape.late_every == shape.late_every - 1:
            # older than every version of this dataset sent in the last few rounds
            occurred_at -= shape.step * shape.datasets * 3
        update = projection_update(
            self.dataset_of(index),
            f"{shape.tag}{index:09d}",
            occurred_at,
            bucket=shape.bucket,
        )
        return json.dumps(update)

    def bodies(self, *, worker: int = 0, workers: int = 1, start: int = 0) -> Iterator[str]:
        """This worker's share of the stream from event `start` on, without end."""
        if not 0 <= worker < workers:
            raise ValueError("worker must be in [0, workers)")
        index = start + (worker - start) % workers
        while True:
            yield self.body(index)
            index += workers

    def take(self, count: int, *, start: int = 0) -> list[str]:
        return [self.body(i) for i in range(start, start + count)]


def live_update(dataset_index: int, sequence: int, *, tag: str = "live") -> str:
    """An update of a dataset produced now (latency and soak streams, paced in real time)."""
    return json.dumps(projection_update(dataset_index, f"{tag}{sequence:09d}", datetime.now(UTC)))
