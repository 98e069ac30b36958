"""The rules that turn dataset updates into runs (SPEC §5.2 freshness, §5.3 run formation).

Pure functions over small value objects: the intake use case loads the facts with a few
set-based queries, asks `evaluate_metric` what each metric should do, and writes the result.
The readiness and impact views ask the same function, so they always agree with intake.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from metrics_orchestrator.domain.model import DatasetUpdate, TriggerPolicy


def freshest(updates: Sequence[DatasetUpdate | None]) -> DatasetUpdate | None:
    """ "Freshest wins" (SPEC §5.2): the update intake records as its dataset's freshest."""
    present = [u for u in updates if u is not None]
    return max(present, key=lambda u: u.order_key, default=None)


def fresh_until(update: DatasetUpdate, required_days: int) -> datetime:
    """The moment this update stops being fresh for a metric with this window.

    Clamped to the latest representable moment: an update stored before occurred_at was
    bounded (year 9999) must not make readiness overflow (SPEC §5.8).
    """
    try:
        return update.effective_at + timedelta(days=required_days)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def is_fresh(update: DatasetUpdate, required_days: int, now: datetime) -> bool:
    return update.effective_at >= now - timedelta(days=required_days)


class InputStatus(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class InputFacts:
    """For one dataset a metric requires: its freshest update, and the one the last run used."""

    dataset_id: str
    freshest: DatasetUpdate | None
    last_used: DatasetUpdate | None


@dataclass(frozen=True, slots=True)
class InputAssessment:
    dataset_id: str
    status: InputStatus
    candidate: DatasetUpdate | None  # the freshest update, when it is fresh
    is_new: bool  # candidate newer than what the last automatic run used (or no such run)
    freshest: DatasetUpdate | None


class MetricDecision(StrEnum):
    READY = "ready"  # every input has a candidate and the policy holds: queue a run
    WAITING = "waiting"  # something new arrived but the metric cannot run yet: hold it
    UNCHANGED = "unchanged"  # nothing new: do nothing (late, duplicate or replayed versions)


@dataclass(frozen=True, slots=True)
class Evaluation:
    outcome: MetricDecision
    inputs: tuple[InputAssessment, ...]

    @property
    def candidates(self) -> dict[str, DatasetUpdate]:
        return {a.dataset_id: a.candidate for a in self.inputs if a.candidate is not None}

    @property
    def fingerprint(self) -> str | None:
        return inputs_fingerprint(self.candidates) if self.outcome is MetricDecision.READY else None

    def held(self, policy: TriggerPolicy) -> dict[str, DatasetUpdate | None]:
        """What a waiting run holds per dataset: the candidate that already satisfies the policy.

        Under all_new only a new candidate counts; under any_new any fresh one does.
        """
        return {
            a.dataset_id: a.candidate
            if a.candidate is not None and (a.is_new or policy is TriggerPolicy.ANY_NEW)
            else None
            for a in self.inputs
        }

    def waiting_for(self, policy: TriggerPolicy) -> tuple[str, ...]:
        """ "Why not yet": the datasets without the candidate the policy needs (none if ready).

        The same rule decides which pending rows of a waiting run stay empty (`held`).
        """
        if self.outcome is MetricDecision.READY:
            return ()
        return tuple(ds for ds, update in self.held(policy).items() if update is None)


def assess_input(facts: InputFacts, required_days: int, now: datetime) -> InputAssessment:
    update = facts.freshest
    if update is None:
        return InputAssessment(facts.dataset_id, InputStatus.MISSING, None, False, None)
    if not is_fresh(update, required_days, now):
        return InputAssessment(facts.dataset_id, InputStatus.STALE, None, False, update)
    return InputAssessment(
        facts.dataset_id,
        InputStatus.FRESH,
        update,
        update.is_newer_than(facts.last_used),
        update,
    )


def evaluate_metric(
    policy: TriggerPolicy,
    required_days: int,
    inputs: Sequence[InputFacts],
    now: datetime,
) -> Evaluation:
    """SPEC §5.3 steps 1-4 for one metric."""
    assessed = tuple(assess_input(f, required_days, now) for f in inputs)
    all_have_candidates = bool(assessed) and all(a.candidate is not None for a in assessed)
    new_count = sum(a.is_new for a in assessed)
    policy_holds = new_count == len(assessed) if policy is TriggerPolicy.ALL_NEW else new_count >= 1
    if all_have_candidates and policy_holds:
        outcome = MetricDecision.READY
    elif new_count >= 1:
        outcome = MetricDecision.WAITING
    else:
        outcome = MetricDecision.UNCHANGED
    return Evaluation(outcome, assessed)


def inputs_fingerprint(candidates: Mapping[str, DatasetUpdate]) -> str:
    """Identity of an input set: the same updates give the same fingerprint, in any order."""
    canonical = ",".join(f"{ds}={candidates[ds].id}" for ds in sorted(candidates))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
