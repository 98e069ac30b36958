"""SPEC §5.3 steps 1-4 for one metric: `evaluate_metric` and what its `Evaluation` says.

Direct unit tests of each outcome for both trigger policies, then a property test that checks
the domain against the rule restated here from the spec text (an independent oracle).
The intake consequences over a stream of updates are in test_rules_intake_consequences.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.model import DatasetUpdate, TriggerPolicy
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputAssessment,
    InputFacts,
    InputStatus,
    MetricDecision,
    assess_input,
    evaluate_metric,
    inputs_fingerprint,
)
from tests.updates import update_version

ALL_NEW = TriggerPolicy.ALL_NEW
ANY_NEW = TriggerPolicy.ANY_NEW
BOTH = pytest.mark.parametrize("policy", [ALL_NEW, ANY_NEW])
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAYS = 7
TICK = timedelta(microseconds=1)

_seq = iter(range(1, 1_000_000))


def version(dataset_id: str, age: timedelta = timedelta(hours=1)) -> DatasetUpdate:
    """An update of `dataset_id` produced and received `age` before NOW; later calls are newer
    on ties (a larger receipt sequence)."""
    at = NOW - age
    return update_version(uuid4(), dataset_id, at, at, next(_seq))


def stale(dataset_id: str) -> DatasetUpdate:
    return version(dataset_id, timedelta(days=DAYS) + TICK)


def facts(
    dataset_id: str, freshest: DatasetUpdate | None, last_used: DatasetUpdate | None = None
) -> InputFacts:
    return InputFacts(dataset_id, freshest, last_used)


def evaluate(policy: TriggerPolicy, *inputs: InputFacts) -> Evaluation:
    return evaluate_metric(policy, DAYS, inputs, NOW)


# --- one input: missing, stale, fresh and new, fresh and already used --------------------


def test_an_input_without_updates_is_missing() -> None:
    assert assess_input(facts("d1", None), DAYS, NOW) == InputAssessment(
        "d1", InputStatus.MISSING, candidate=None, is_new=False, freshest=None
    )


def test_a_missing_input_is_never_new_even_after_a_run() -> None:
    used = version("d1")
    assessed = assess_input(facts("d1", None, last_used=used), DAYS, NOW)
    assert (assessed.status, assessed.is_new) == (InputStatus.MISSING, False)


def test_a_stale_input_has_no_candidate_and_is_not_new() -> None:
    old = stale("d1")
    assert assess_input(facts("d1", old), DAYS, NOW) == InputAssessment(
        "d1", InputStatus.STALE, candidate=None, is_new=False, freshest=old
    )


def test_a_fresh_input_never_used_is_a_new_candidate() -> None:
    update = version("d1")
    assert assess_input(facts("d1", update), DAYS, NOW) == InputAssessment(
        "d1", InputStatus.FRESH, candidate=update, is_new=True, freshest=update
    )


def test_a_fresh_input_newer_than_the_last_run_is_new() -> None:
    used = version("d1", timedelta(hours=2))
    update = version("d1")
    assessed = assess_input(facts("d1", update, last_used=used), DAYS, NOW)
    assert (assessed.status, assessed.candidate, assessed.is_new) == (
        InputStatus.FRESH,
        update,
        True,
    )


def test_the_update_the_last_run_used_is_a_candidate_but_not_new() -> None:
    used = version("d1")
    assessed = assess_input(facts("d1", used, last_used=used), DAYS, NOW)
    assert (assessed.status, assessed.candidate, assessed.is_new) == (
        InputStatus.FRESH,
        used,
        False,
    )


def test_the_window_edge_decides_between_fresh_and_stale() -> None:
    at_edge = version("d1", timedelta(days=DAYS))
    past_edge = version("d1", timedelta(days=DAYS) + TICK)
    assert assess_input(facts("d1", at_edge), DAYS, NOW).status is InputStatus.FRESH
    assert assess_input(facts("d1", past_edge), DAYS, NOW).status is InputStatus.STALE
    assert evaluate(ALL_NEW, facts("d1", at_edge)).outcome is MetricDecision.READY
    assert evaluate(ALL_NEW, facts("d1", past_edge)).outcome is MetricDecision.UNCHANGED


# --- outcomes of one metric, per policy --------------------------------------------------


@BOTH
def test_every_input_new_and_fresh_is_ready(policy: TriggerPolicy) -> None:
    ev = evaluate(policy, facts("d1", version("d1")), facts("d2", version("d2")))
    assert ev.outcome is MetricDecision.READY


def test_all_new_waits_while_one_input_has_nothing_newer_than_the_last_run() -> None:
    reused = version("d2")
    ev = evaluate(ALL_NEW, facts("d1", version("d1")), facts("d2", reused, last_used=reused))
    assert ev.outcome is MetricDecision.WAITING


def test_any_new_runs_on_one_new_input_reusing_the_other_fresh_one() -> None:
    reused = version("d2")
    new = version("d1")
    ev = evaluate(ANY_NEW, facts("d1", new), facts("d2", reused, last_used=reused))
    assert ev.outcome is MetricDecision.READY
    assert ev.candidates == {"d1": new, "d2": reused}


@BOTH
@pytest.mark.parametrize("blocker", ["missing", "stale"])
def test_a_missing_or_stale_input_blocks_a_new_one(policy: TriggerPolicy, blocker: str) -> None:
    other = None if blocker == "missing" else stale("d2")
    ev = evaluate(policy, facts("d1", version("d1")), facts("d2", other))
    assert ev.outcome is MetricDecision.WAITING
    assert ev.fingerprint is None


@BOTH
def test_nothing_new_changes_nothing(policy: TriggerPolicy) -> None:
    a, b = version("d1"), version("d2")
    ev = evaluate(policy, facts("d1", a, last_used=a), facts("d2", b, last_used=b))
    assert ev.outcome is MetricDecision.UNCHANGED


@BOTH
def test_a_stale_version_newer_than_the_last_run_is_not_new(policy: TriggerPolicy) -> None:
    used = version("d1", timedelta(days=DAYS + 2))
    newer_but_stale = version("d1", timedelta(days=DAYS + 1))
    b = version("d2")
    ev = evaluate(policy, facts("d1", newer_but_stale, last_used=used), facts("d2", b, last_used=b))
    assert ev.outcome is MetricDecision.UNCHANGED


@BOTH
def test_an_input_older_than_the_last_run_is_not_new(policy: TriggerPolicy) -> None:
    # Cannot happen through intake (freshest never goes back), but the rule stays "newer".
    older = version("d1", timedelta(hours=3))
    used = version("d1", timedelta(hours=2))
    ev = evaluate(policy, facts("d1", older, last_used=used))
    assert ev.outcome is MetricDecision.UNCHANGED


@BOTH
def test_a_metric_without_inputs_never_runs(policy: TriggerPolicy) -> None:
    ev = evaluate(policy)
    assert ev.outcome is MetricDecision.UNCHANGED
    assert ev.inputs == ()


@BOTH
def test_a_single_input_runs_on_each_new_version(policy: TriggerPolicy) -> None:
    used = version("d1", timedelta(hours=2))
    assert (
        evaluate(policy, facts("d1", version("d1"), last_used=used)).outcome is MetricDecision.READY
    )
    assert evaluate(policy, facts("d1", used, last_used=used)).outcome is MetricDecision.UNCHANGED


@BOTH
def test_three_inputs_one_new_two_reused(policy: TriggerPolicy) -> None:
    b, c = version("d2"), version("d3")
    ev = evaluate(
        policy,
        facts("d1", version("d1")),
        facts("d2", b, last_used=b),
        facts("d3", c, last_used=c),
    )
    expected = MetricDecision.READY if policy is ANY_NEW else MetricDecision.WAITING
    assert ev.outcome is expected


def test_any_new_with_two_of_three_new_is_ready_and_all_new_is_not() -> None:
    c = version("d3")
    inputs = (facts("d1", version("d1")), facts("d2", version("d2")), facts("d3", c, last_used=c))
    assert evaluate(ANY_NEW, *inputs).outcome is MetricDecision.READY
    assert evaluate(ALL_NEW, *inputs).outcome is MetricDecision.WAITING


# --- what the evaluation reports ---------------------------------------------------------


@BOTH
def test_the_assessments_follow_the_order_of_the_inputs(policy: TriggerPolicy) -> None:
    a, old = version("d1"), stale("d3")
    ev = evaluate(policy, facts("d3", old), facts("d2", None), facts("d1", a))
    assert [(i.dataset_id, i.status) for i in ev.inputs] == [
        ("d3", InputStatus.STALE),
        ("d2", InputStatus.MISSING),
        ("d1", InputStatus.FRESH),
    ]
    assert ev.inputs[0].freshest is old
    assert ev.candidates == {"d1": a}


@BOTH
def test_a_ready_evaluation_carries_the_fingerprint_of_its_candidates(
    policy: TriggerPolicy,
) -> None:
    a, b = version("d1"), version("d2")
    ev = evaluate(policy, facts("d1", a), facts("d2", b))
    assert ev.fingerprint == inputs_fingerprint({"d1": a, "d2": b})


@BOTH
def test_a_waiting_or_unchanged_evaluation_has_no_fingerprint(policy: TriggerPolicy) -> None:
    a = version("d1")
    assert evaluate(policy, facts("d1", a), facts("d2", None)).fingerprint is None
    assert evaluate(policy, facts("d1", a, last_used=a)).fingerprint is None


def test_all_new_holds_only_the_new_candidates() -> None:
    new, reused = version("d1"), version("d2")
    ev = evaluate(
        ALL_NEW, facts("d1", new), facts("d2", reused, last_used=reused), facts("d3", None)
    )
    assert ev.held(ALL_NEW) == {"d1": new, "d2": None, "d3": None}


def test_any_new_holds_every_fresh_candidate() -> None:
    new, reused = version("d1"), version("d2")
    ev = evaluate(
        ANY_NEW,
        facts("d1", new),
        facts("d2", reused, last_used=reused),
        facts("d3", None),
        facts("d4", stale("d4")),
    )
    assert ev.held(ANY_NEW) == {"d1": new, "d2": reused, "d3": None, "d4": None}


@BOTH
def test_a_stale_input_is_held_by_neither_policy(policy: TriggerPolicy) -> None:
    ev = evaluate(policy, facts("d1", version("d1")), facts("d2", stale("d2")))
    assert ev.held(policy)["d2"] is None


@pytest.mark.parametrize(
    ("policy", "expected"),
    [(ALL_NEW, ("d2", "d3", "d4")), (TriggerPolicy.ANY_NEW, ("d3", "d4"))],
)
def test_waiting_for_names_the_inputs_without_the_candidate_the_policy_needs(
    policy: TriggerPolicy, expected: tuple[str, ...]
) -> None:
    """all_new waits for a new version of every input; any_new only for a fresh one."""
    reused = version("d2")
    ev = evaluate(
        policy,
        facts("d1", version("d1")),
        facts("d2", reused, last_used=reused),
        facts("d3", None),
        facts("d4", stale("d4")),
    )
    assert ev.waiting_for(policy) == expected


# --- the fingerprint of an input set -----------------------------------------------------


def test_the_fingerprint_is_the_sha256_of_the_sorted_dataset_update_pairs() -> None:
    # Stored in metric_runs.inputs_fingerprint (a unique index): its format must not drift.
    a = update_version(UUID(int=1), "alpha", NOW, NOW, 1)
    b = update_version(UUID(int=2), "beta", NOW, NOW, 2)
    canonical = f"alpha={UUID(int=1)},beta={UUID(int=2)}"
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert inputs_fingerprint({"beta": b, "alpha": a}) == expected


@given(st.permutations(["d1", "d2", "d3", "d4"]))
def test_the_fingerprint_does_not_depend_on_the_order_of_the_inputs(order: list[str]) -> None:
    updates = {ds: update_version(UUID(int=i + 1), ds, NOW, NOW, i) for i, ds in enumerate(order)}
    by_name = {ds: updates[ds] for ds in sorted(updates)}
    assert inputs_fingerprint(updates) == inputs_fingerprint(by_name)


def test_a_different_update_gives_a_different_fingerprint() -> None:
    a, b, c = version("d1"), version("d2"), version("d2")
    assert inputs_fingerprint({"d1": a, "d2": b}) != inputs_fingerprint({"d1": a, "d2": c})
    assert inputs_fingerprint({"d1": a}) != inputs_fingerprint({"d1": a, "d2": b})


# --- the domain against the rule restated from SPEC §5.3 ---------------------------------


@dataclass(frozen=True)
class SpecVerdict:
    outcome: MetricDecision
    candidates: dict[str, DatasetUpdate]
    new: frozenset[str]


def spec_verdict(
    policy: TriggerPolicy, days: int, inputs: Sequence[InputFacts], now: datetime
) -> SpecVerdict:
    """§5.3 in the spec's own words, written without the domain's helpers."""

    def order(u: DatasetUpdate) -> tuple[datetime, datetime, int]:
        return (u.effective_at, u.received_at, u.seq)

    candidates = {
        f.dataset_id: f.freshest
        for f in inputs
        if f.freshest is not None and f.freshest.effective_at >= now - timedelta(days=days)
    }
    new = frozenset(
        f.dataset_id
        for f in inputs
        if f.dataset_id in candidates
        and (f.last_used is None or order(candidates[f.dataset_id]) > order(f.last_used))
    )
    every_input_has_one = len(inputs) > 0 and len(candidates) == len(inputs)
    policy_holds = len(new) == len(inputs) if policy is ALL_NEW else len(new) >= 1
    if every_input_has_one and policy_holds:
        outcome = MetricDecision.READY
    elif new:
        outcome = MetricDecision.WAITING
    else:
        outcome = MetricDecision.UNCHANGED
    return SpecVerdict(outcome, candidates, new)


ages = st.integers(0, 12).map(lambda days: timedelta(days=days, hours=1))
fact_shapes = st.tuples(
    st.none() | ages,  # the freshest update's age, or no update at all
    st.sampled_from(["never run", "same", "older", "newer"]),  # what the last run used
)


def build_facts(index: int, shape: tuple[timedelta | None, str]) -> InputFacts:
    age, last = shape
    ds = f"d{index}"
    current = None if age is None else version(ds, age)
    if last == "never run":
        last_used = None
    elif last == "same":
        last_used = current if current is not None else version(ds)
    elif last == "older":
        last_used = version(ds, (age or timedelta(0)) + timedelta(days=1))
    else:
        last_used = version(ds, (age or timedelta(days=2)) - timedelta(days=1))
    return InputFacts(ds, current, last_used)


@given(
    st.sampled_from(TriggerPolicy),
    st.integers(0, 10),
    st.lists(fact_shapes, min_size=0, max_size=4),
)
def test_evaluate_metric_is_the_rule_of_the_spec(
    policy: TriggerPolicy, days: int, shapes: list[tuple[timedelta | None, str]]
) -> None:
    inputs = [build_facts(i, shape) for i, shape in enumerate(shapes)]
    expected = spec_verdict(policy, days, inputs, NOW)
    ev = evaluate_metric(policy, days, inputs, NOW)

    assert ev.outcome is expected.outcome
    assert ev.candidates == expected.candidates
    assert [a.dataset_id for a in ev.inputs] == [f.dataset_id for f in inputs]
    assert {a.dataset_id for a in ev.inputs if a.is_new} == expected.new
    needed = expected.new if policy is ALL_NEW else frozenset(expected.candidates)
    assert ev.waiting_for(policy) == (
        ()
        if expected.outcome is MetricDecision.READY
        else tuple(f.dataset_id for f in inputs if f.dataset_id not in needed)
    )
    if expected.outcome is MetricDecision.READY:
        assert ev.fingerprint == inputs_fingerprint(expected.candidates)
    else:
        assert ev.fingerprint is None
    for a in ev.inputs:
        assert a.candidate is expected.candidates.get(a.dataset_id)
    held = ev.held(policy)
    for f in inputs:
        holds = f.dataset_id in expected.new or (
            policy is ANY_NEW and f.dataset_id in expected.candidates
        )
        assert held[f.dataset_id] is (expected.candidates[f.dataset_id] if holds else None)
