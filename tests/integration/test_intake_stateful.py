"""Random update sequences against an independent in-memory model of SPEC §5.2-§5.3.

The model below is written straight from the spec's words, not from the domain code, so a
disagreement points at a real bug in one of them. Invariants are checked after every step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.domain.events import decode_event
from tests.support import MutableClock

DATASETS = ["d0", "d1", "d2", "d3"]
START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MetricDef:
    id: str
    datasets: tuple[str, ...]
    required_days: int
    policy: str


METRICS = [
    MetricDef("m_single", ("d0",), 1, "all_new"),
    MetricDef("m_pair_all", ("d0", "d1"), 2, "all_new"),
    MetricDef("m_pair_any", ("d1", "d2"), 1, "any_new"),
    MetricDef("m_triple_all", ("d0", "d1", "d2"), 3, "all_new"),
    MetricDef("m_triple_any", ("d1", "d2", "d3"), 2, "any_new"),
]


def catalog_document() -> dict[str, Any]:
    def ref(ds: str) -> dict[str, str]:
        return {"series_code": f"S_{ds}"}

    metrics = []
    for m in METRICS:
        refs = [ref(ds) for ds in m.datasets]
        expression: dict[str, Any] = (
            {"op": "sma", "series": refs[0], "window": 3}
            if len(refs) == 1
            else {"op": "sum", "operands": refs}
        )
        metrics.append(
            {
                "id": m.id,
                "code": m.id,
                "expression_type": "window_op" if len(refs) == 1 else "composite",
                "expression": expression,
                "required_days": m.required_days,
                "trigger_policy": m.policy,
            }
        )
    return {
        "series": [{"code": f"S_{ds}"} for ds in DATASETS],
        "datasets": [{"id": ds, "bucket": "b", "series": [f"S_{ds}"]} for ds in DATASETS],
        "metrics": metrics,
    }


@dataclass(frozen=True)
class ModelUpdate:
    key: str
    dataset: str
    effective_at: datetime
    received_at: datetime
    seq: int

    def order(self) -> tuple[datetime, datetime, int]:
        return (self.effective_at, self.received_at, self.seq)


@dataclass
class Model:
    updates: dict[str, ModelUpdate] = field(default_factory=dict)
    runs: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # metric -> lineages
    pending: dict[str, bool] = field(default_factory=dict)

    def freshest(self, dataset: str) -> ModelUpdate | None:
        mine = [u for u in self.updates.values() if u.dataset == dataset]
        return max(mine, key=ModelUpdate.order, default=None)

    def receive(self, update: ModelUpdate, now: datetime) -> None:
        if update.key in self.updates:
            return
        self.updates[update.key] = update
        for m in METRICS:
            if update.dataset in m.datasets:
                self._consider(m, now)

    def _consider(self, m: MetricDef, now: datetime) -> None:
        last = self.runs.get(m.id, [])
        last_used = last[-1] if last else None
        candidates: dict[str, ModelUpdate] = {}
        new = set()
        for ds in m.datasets:
            best = self.freshest(ds)
            if best is None or best.effective_at < now - timedelta(days=m.required_days):
                continue
            candidates[ds] = best
            used = self.updates[last_used[ds]] if last_used else None
            if used is None or best.order() > used.order():
                new.add(ds)
        has_all = len(candidates) == len(m.datasets)
        policy_ok = len(new) == len(m.datasets) if m.policy == "all_new" else bool(new)
        if has_all and policy_ok:
            lineage = {ds: u.key for ds, u in candidates.items()}
            if lineage not in last:
                self.runs.setdefault(m.id, []).append(lineage)
                self.pending[m.id] = False
        elif new:
            self.pending[m.id] = True


def _as_sets(runs: dict[str, list[dict[str, str]]]) -> dict[str, set[frozenset[tuple[str, str]]]]:
    return {m: {frozenset(lin.items()) for lin in r} for m, r in runs.items() if r}


class IntakeMachine(RuleBasedStateMachine):
    database_url: str
    uow_factory: UnitOfWorkFactory

    def __init__(self) -> None:
        super().__init__()
        self.conn = psycopg.connect(self.database_url, autocommit=True)
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE metrics SET last_automatic_run_id = NULL;"
                "DELETE FROM run_dataset_updates; DELETE FROM metric_run_pending_datasets;"
                "DELETE FROM metric_runs; UPDATE datasets SET freshest_update_id = NULL;"
                "DELETE FROM dataset_updates; DELETE FROM event_log"
            )
        self.clock = MutableClock(START)
        self.intake = IntakeService(self.uow_factory, self.clock, lambda c: f"s3://o/{c}/")
        self.model = Model()
        self.sent: list[tuple[str, str, datetime | None]] = []
        self.seq = 0

    def _send(self, dataset: str, version: str, occurred_at: datetime | None) -> None:
        body: dict[str, Any] = {
            "dataset_id": dataset,
            "version_manifest_path": version,
            "projections_path": f"{dataset}/p",
        }
        if occurred_at is not None:
            body["occurred_at"] = occurred_at.isoformat()
        now = self.clock.now()
        result = self.intake.ingest(decode_event(json.dumps(body)), source="model", received_at=now)
        key = f"{dataset}:{version}"
        if key not in self.model.updates:
            self.seq += 1
        assert result.status.value == ("duplicate" if key in self.model.updates else "processed")
        self.model.receive(ModelUpdate(key, dataset, occurred_at or now, now, self.seq), now)
        self.sent.append((dataset, version, occurred_at))

    @rule(
        dataset=st.sampled_from(DATASETS),
        age_hours=st.one_of(st.none(), st.integers(min_value=-2, max_value=96)),
    )
    def new_version(self, dataset: str, age_hours: int | None) -> None:
        occurred_at = None if age_hours is None else self.clock.now() - timedelta(hours=age_hours)
        self._send(dataset, f"v{len(self.sent)}", occurred_at)

    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        if self.sent:
            dataset, version, occurred_at = data.draw(st.sampled_from(self.sent))
            self._send(dataset, version, occurred_at)

    @rule(hours=st.integers(min_value=0, max_value=60))
    def clock_moves(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours, seconds=1))

    def teardown(self) -> None:
        self.conn.close()

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql).fetchall()

    @invariant()
    def database_agrees_with_model(self) -> None:
        runs: dict[str, list[dict[str, str]]] = {}
        assert all(
            len(r) == len({frozenset(x.items()) for x in r}) for r in self.model.runs.values()
        )
        lineage_rows = self._rows(
            "SELECT r.metric_id, r.id, l.dataset_id, u.event_key FROM metric_runs r"
            " JOIN run_dataset_updates l ON l.run_id = r.id"
            " JOIN dataset_updates u ON u.id = l.update_id"
            " ORDER BY r.queued_at, r.id"
        )
        by_run: dict[Any, dict[str, str]] = {}
        owner: dict[Any, str] = {}
        for metric_id, run_id, ds, key in lineage_rows:
            by_run.setdefault(run_id, {})[ds] = key
            owner[run_id] = metric_id
        for run_id, lineage in by_run.items():
            runs.setdefault(owner[run_id], []).append(lineage)
        # runs of one metric may share a queued_at (the clock need not move): compare as sets
        assert _as_sets(runs) == _as_sets(self.model.runs)
        pending = {
            m
            for (m,) in self._rows(
                "SELECT metric_id FROM metric_runs WHERE status = 'pending_dependencies'"
            )
        }
        assert pending == {m for m, p in self.model.pending.items() if p}

    @invariant()
    def structural_invariants(self) -> None:
        assert (
            self._rows(
                "SELECT metric_id FROM metric_runs WHERE status = 'pending_dependencies'"
                " GROUP BY 1 HAVING count(*) > 1"
            )
            == []
        )
        assert (
            self._rows(
                "SELECT metric_id, inputs_fingerprint FROM metric_runs WHERE trigger = 'automatic'"
                " AND inputs_fingerprint IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1"
            )
            == []
        )
        mismatched = self._rows(
            "SELECT r.id FROM metric_runs r WHERE r.status = 'queued' AND"
            " (SELECT jsonb_object_agg(l.dataset_id, l.update_id::text)"
            "    FROM run_dataset_updates l WHERE l.run_id = r.id)"
            " IS DISTINCT FROM (SELECT jsonb_object_agg(k, v->>'updateId')"
            "    FROM jsonb_each(r.request_payload->'catalog'->'datasets') AS e(k, v))"
        )
        assert mismatched == []
        assert self._rows("SELECT count(*) FROM dataset_updates") == [(len(self.model.updates),)]


@pytest.mark.slow
def test_intake_agrees_with_the_model(database_url: str, uow_factory: UnitOfWorkFactory) -> None:
    CatalogService(uow_factory, MutableClock(START), default_required_days=7).load_catalog(
        catalog_document()
    )
    IntakeMachine.database_url = database_url
    IntakeMachine.uow_factory = uow_factory
    run_state_machine_as_test(
        IntakeMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
