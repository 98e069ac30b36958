"""Definition versions and staleness (SPEC §8). Pure functions over facts loaded set-based.

A metric's definition version is a digest of its canonical expression and resolved inputs;
each run records the version it was formed with. A metric is stale when its latest succeeded
run used an older definition, or consumed an older version of an input than the freshest and
no run of the metric is on its way, or when a metric it reads is itself stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from metrics_orchestrator.domain.metric_graph import depths
from metrics_orchestrator.domain.model import MetricDependency


def definition_version(
    expression_type: str, expression: Mapping[str, Any], dependencies: Sequence[MetricDependency]
) -> str:
    """The digest of what a metric computes: its canonical expression and where each of its
    series comes from. Settings (window, policy, attempts) are not part of it."""
    document = {
        "type": expression_type,
        "expression": expression,
        "inputs": sorted([d.series_code, d.dataset_id] for d in dependencies),
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class StaleReason(StrEnum):
    DEFINITION_CHANGED = "definition changed"
    NEWER_INPUT = "newer input"
    UPSTREAM_STALE = "upstream stale"


@dataclass(frozen=True, slots=True)
class StalenessFacts:
    """What staleness needs of one metric."""

    code: str
    definition_version: str
    # the latest succeeded run: the definition it was formed with ("" unknown), or None if
    # the metric never succeeded
    last_success_definition: str | None
    # input datasets whose freshest version is not the one that run consumed
    newer_inputs: tuple[str, ...]
    # a run is pending, queued or under way (it will consume what is newest)
    run_on_its_way: bool
    upstream: tuple[str, ...]  # the metrics whose outputs it reads


@dataclass(frozen=True, slots=True)
class Staleness:
    reason: StaleReason | None = None
    detail: tuple[str, ...] = ()  # the inputs or upstream metrics the reason names

    @property
    def stale(self) -> bool:
        return self.reason is not None

    def __str__(self) -> str:
        if self.reason is None:
            return "up to date"
        if self.reason is StaleReason.DEFINITION_CHANGED:
            return str(self.reason)
        return f"{self.reason}: {', '.join(self.detail)}"


def _own_staleness(facts: StalenessFacts) -> Staleness:
    if facts.last_success_definition is None:
        return Staleness()  # never succeeded: nothing out of date yet (its state says why)
    known = facts.last_success_definition and facts.definition_version
    if known and facts.last_success_definition != facts.definition_version:
        return Staleness(StaleReason.DEFINITION_CHANGED)
    if facts.newer_inputs and not facts.run_on_its_way:
        return Staleness(StaleReason.NEWER_INPUT, tuple(sorted(facts.newer_inputs)))
    return Staleness()


def staleness(metrics: Sequence[StalenessFacts]) -> dict[str, Staleness]:
    """Each metric's staleness, upstream first: a metric whose upstream is stale is stale too
    (the reason names the stale upstream metrics), unless a reason of its own holds."""
    by_code = {m.code: m for m in metrics}
    upstream = {m.code: [u for u in m.upstream if u in by_code] for m in metrics}
    result: dict[str, Staleness] = {}
    for code, _ in sorted(depths(upstream).items(), key=lambda item: (item[1], item[0])):
        own = _own_staleness(by_code[code])
        stale_upstream = tuple(sorted(u for u in upstream[code] if result[u].stale))
        if not own.stale and stale_upstream:
            own = Staleness(StaleReason.UPSTREAM_STALE, stale_upstream)
        result[code] = own
    return result


def refresh_roots(metrics: Sequence[StalenessFacts]) -> list[str]:
    """`refresh --stale`: the stale metrics none of whose upstream metrics is stale; running
    them lets the chain bring the rest up to date. A root with a run already on its way is
    left to that run, so refreshing twice queues nothing more."""
    judged = staleness(metrics)
    return sorted(
        m.code
        for m in metrics
        if judged[m.code].stale
        and not m.run_on_its_way
        and not any(judged.get(u, Staleness()).stale for u in m.upstream)
    )
