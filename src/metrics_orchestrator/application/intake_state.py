"""The intake state of one batch: the aggregate an update changes (SPEC §5.2-§5.4, §7).

The intake loads, once per batch, the facts every update of the batch can need (each
affected metric's inputs, last automatic run and pending run; each dataset's freshest
update). `IntakeState` then takes the inserted updates one at a time, in arrival order, and
keeps those facts as processing them one by one would leave them in the database: the
freshest update per dataset (decided by `freshest`), the updates each metric's last
automatic run used, its pending run, the fingerprints already run. Each arrival asks the
domain (`evaluate_metric`) what each dependent metric does, exactly as a transaction of its
own would; `writes()` is then what changed: the state the batch leaves, written by the
unit of work with a handful of set-based statements instead of a dozen per update. Nothing
here reads or writes the database but through the two callables it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

from metrics_orchestrator.application.ports.intake import (
    IntakeWrites,
    MetricInputs,
    PendingRunWrite,
    QueuedRun,
    QueuedRunWrite,
    WaitingRun,
)
from metrics_orchestrator.domain.model import DatasetUpdate
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputFacts,
    MetricDecision,
    evaluate_metric,
    freshest,
)

# (metric id, fingerprint) pairs -> those an automatic run already has
AlreadyRun = Callable[[Sequence[tuple[str, str]]], set[tuple[str, str]]]
# The run to queue for a metric on these candidates (with their fingerprint), at this
# moment, becoming the given pending run (if any).
MakeRun = Callable[[MetricInputs, dict[str, DatasetUpdate], str, datetime, UUID | None], QueuedRun]


@dataclass(slots=True)
class ArrivalPlan:
    """What one update decided: the runs it queued and the runs it left waiting."""

    queued: list[QueuedRun] = field(default_factory=list)
    waiting: list[WaitingRun] = field(default_factory=list)


@dataclass(slots=True)
class _Metric:
    """A metric as the batch has left it so far."""

    inputs: MetricInputs
    last_used: dict[str, DatasetUpdate | None]
    pending_run_id: UUID | None


@dataclass(slots=True)
class _Run:
    """A run the batch creates or changes, as it stands so far."""

    run_id: UUID
    metric_id: str
    created_at: datetime | None  # None: pending before the batch
    held: dict[str, DatasetUpdate | None] | None = None
    queued: QueuedRun | None = None
    queued_at: datetime | None = None


class IntakeState:
    def __init__(
        self,
        inputs: Iterable[MetricInputs],
        freshest_before: dict[str, DatasetUpdate | None],
        *,
        already_run: AlreadyRun,
        make_run: MakeRun,
    ) -> None:
        self._metrics = {
            mi.metric.id: _Metric(
                mi, {f.dataset_id: f.last_used for f in mi.facts}, mi.pending_run_id
            )
            for mi in inputs
        }
        self._freshest: dict[str, DatasetUpdate | None] = {
            f.dataset_id: f.freshest for m in self._metrics.values() for f in m.inputs.facts
        }
        self._freshest.update(freshest_before)
        self._already_run = already_run
        self._make_run = make_run
        self._new_updates: set[UUID] = set()
        self._run_now: set[tuple[str, str]] = set()  # automatic runs queued by this batch
        self._ran_before: set[tuple[str, str]] = set()  # ... and by earlier transactions
        self._asked: set[tuple[str, str]] = set()
        self._runs: dict[UUID, _Run] = {}
        self._new_freshest: dict[str, UUID] = {}
        self._last_automatic: dict[str, UUID] = {}

    def arrive(
        self, update: DatasetUpdate, metric_ids: Sequence[str], now: datetime
    ) -> ArrivalPlan:
        """An inserted update, in arrival order, and what its dependent metrics do now."""
        self._new_updates.add(update.id)
        # SPEC §5.2: it competes with its dataset's freshest so far
        if freshest([self._freshest.get(update.dataset_id), update]) is update:
            self._freshest[update.dataset_id] = update
            self._new_freshest[update.dataset_id] = update.id
        metrics = [self._metrics[m] for m in metric_ids]
        # (metric, evaluation, fingerprint if ready): a fingerprint is a digest, taken once
        evaluations = [(m, ev, ev.fingerprint) for m in metrics for ev in [self._evaluate(m, now)]]
        ready = {
            (m.inputs.metric.id, fp): ev.candidates for m, ev, fp in evaluations if fp is not None
        }
        run = self._ran(ready)  # SPEC §5.3: never twice automatically on the same input set
        plan = ArrivalPlan()
        for m, ev, fp in evaluations:
            if fp is not None:
                pair = (m.inputs.metric.id, fp)
                if pair not in run:
                    plan.queued.append(self._queue(m, ready[pair], fp, now))
            elif ev.outcome is MetricDecision.WAITING:
                plan.waiting.append(self._wait(m, ev, now))
        return plan

    def writes(self) -> IntakeWrites:
        """The state the batch leaves, for the repository to write."""
        queued, waiting = [], []
        for run in self._runs.values():
            if run.queued is not None and run.queued_at is not None:
                queued.append(QueuedRunWrite(run.queued, run.queued_at, run.created_at, run.held))
            elif run.held is not None:
                waiting.append(PendingRunWrite(run.run_id, run.metric_id, run.created_at, run.held))
        return IntakeWrites(
            freshest=dict(self._new_freshest),
            queued=queued,
            waiting=waiting,
            last_automatic=dict(self._last_automatic),
        )

    def _evaluate(self, m: _Metric, now: datetime) -> Evaluation:
        facts = [
            InputFacts(f.dataset_id, self._freshest.get(f.dataset_id), m.last_used[f.dataset_id])
            for f in m.inputs.facts
        ]
        metric = m.inputs.metric
        return evaluate_metric(metric.trigger_policy, metric.required_days, facts, now)

    def _ran(
        self, ready: Mapping[tuple[str, str], Mapping[str, DatasetUpdate]]
    ) -> set[tuple[str, str]]:
        """Which of these (metric, fingerprint) pairs, each with its candidates, an automatic
        run already has.

        An input set with an update of this batch can only have been run by this batch; one
        made of older updates only is asked of the database, once.
        """
        ask = [
            pair
            for pair, candidates in ready.items()
            if pair not in self._asked
            and pair not in self._run_now
            and not any(c.id in self._new_updates for c in candidates.values())
        ]
        if ask:
            self._asked.update(ask)
            self._ran_before |= self._already_run(ask)
        return {pair for pair in ready if pair in self._run_now or pair in self._ran_before}

    def _queue(
        self, m: _Metric, candidates: dict[str, DatasetUpdate], fingerprint: str, now: datetime
    ) -> QueuedRun:
        queued = self._make_run(m.inputs, candidates, fingerprint, now, m.pending_run_id)
        run = self._runs.get(queued.run_id)
        if run is None:
            created = None if m.pending_run_id == queued.run_id else now
            run = self._runs[queued.run_id] = _Run(queued.run_id, queued.metric_id, created)
        # A run that waited (earlier in this batch or before it) keeps its rows as the record
        # of what it waited for; the repository fills them with the updates it consumed.
        run.queued, run.queued_at = queued, now
        metric_id = m.inputs.metric.id
        m.pending_run_id = None
        m.last_used = {f.dataset_id: candidates.get(f.dataset_id) for f in m.inputs.facts}
        self._run_now.add((metric_id, queued.fingerprint))
        self._last_automatic[metric_id] = queued.run_id
        return queued

    def _wait(self, m: _Metric, ev: Evaluation, now: datetime) -> WaitingRun:
        policy = m.inputs.metric.trigger_policy
        held = ev.held(policy)
        existing = m.pending_run_id
        run_id = existing or uuid4()
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run(run_id, m.inputs.metric.id, None if existing else now)
        run.held = held
        m.pending_run_id = run_id
        return WaitingRun(run_id, m.inputs.metric.id, existing is None, held)
