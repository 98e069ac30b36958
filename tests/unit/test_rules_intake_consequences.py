"""The consequences SPEC §5.3 says tests must pin down, for both policies, without a database.

`IntakeSimulator` is a test oracle of the intake transaction for one metric: it records the
updates, keeps the last automatic run's inputs and the fingerprints already used, and asks
the domain (`freshest`, `evaluate_metric`, `inputs_fingerprint`) what to do, exactly as
intake does. It is deliberately tiny and lives here, not in the product.

"An update that matches no metric is recorded and nothing else" and "a disabled metric gets
no runs" are decisions of which metrics intake evaluates at all; they need the catalog and
stay with the database-backed intake tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.model import DatasetUpdate, TriggerPolicy
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputFacts,
    MetricDecision,
    evaluate_metric,
    freshest,
    inputs_fingerprint,
)
from tests.updates import update_version

ALL_NEW = TriggerPolicy.ALL_NEW
ANY_NEW = TriggerPolicy.ANY_NEW
BOTH = pytest.mark.parametrize("policy", [ALL_NEW, ANY_NEW])
T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 7
HOUR = timedelta(hours=1)

Inputs = dict[str, DatasetUpdate]


@dataclass
class Step:
    """What one received update did."""

    update: DatasetUpdate | None  # None: a duplicate event key, nothing recorded
    evaluation: Evaluation | None  # None: a duplicate, or no metric depends on the dataset
    run: Inputs | None  # the inputs of the automatic run it queued, if any


@dataclass
class IntakeSimulator:
    """One metric's view of intake: what is recorded, what its last automatic run used."""

    policy: TriggerPolicy
    datasets: tuple[str, ...]
    required_days: int = DAYS
    updates: list[DatasetUpdate] = field(default_factory=list)
    event_keys: set[str] = field(default_factory=set)
    last_run: Inputs | None = None
    fingerprints: set[str] = field(default_factory=set)
    runs: list[Inputs] = field(default_factory=list)
    ready_on_a_used_set: int = 0  # READY on an input set that already ran: must stay 0

    def record(
        self,
        dataset_id: str,
        received_at: datetime,
        occurred_at: datetime | None = None,
        key: str | None = None,
    ) -> DatasetUpdate | None:
        """Insert the update (ON CONFLICT (event_key) DO NOTHING); None for a duplicate."""
        key = key if key is not None else f"{dataset_id}:{uuid4()}"
        if key in self.event_keys:
            return None
        self.event_keys.add(key)
        effective_at = occurred_at if occurred_at is not None else received_at
        update = update_version(uuid4(), dataset_id, effective_at, received_at, len(self.updates))
        self.updates.append(update)
        return update

    def receive(
        self,
        dataset_id: str,
        received_at: datetime,
        occurred_at: datetime | None = None,
        key: str | None = None,
    ) -> Step:
        """One intake transaction: record, evaluate the metric, queue a run if it is ready."""
        update = self.record(dataset_id, received_at, occurred_at, key)
        if update is None or dataset_id not in self.datasets:
            return Step(update, None, None)
        evaluation = self.evaluate(received_at)
        run = None
        if evaluation.outcome is MetricDecision.READY:
            fingerprint = inputs_fingerprint(evaluation.candidates)
            assert evaluation.fingerprint == fingerprint
            if fingerprint in self.fingerprints:
                self.ready_on_a_used_set += 1
            else:
                run = evaluation.candidates
                self.fingerprints.add(fingerprint)
                self.runs.append(run)
                self.last_run = run
        return Step(update, evaluation, run)

    def evaluate(self, now: datetime) -> Evaluation:
        facts = [
            InputFacts(
                ds,
                freshest([u for u in self.updates if u.dataset_id == ds]),
                self.last_run.get(ds) if self.last_run is not None else None,
            )
            for ds in self.datasets
        ]
        return evaluate_metric(self.policy, self.required_days, facts, now)


def two_inputs(policy: TriggerPolicy) -> IntakeSimulator:
    return IntakeSimulator(policy, ("d1", "d2"))


# --- coalescing ---------------------------------------------------------------------------


@BOTH
def test_many_updates_of_one_input_coalesce_into_one_run_on_the_newest_of_each(
    policy: TriggerPolicy,
) -> None:
    sim = two_inputs(policy)
    d1 = [sim.receive("d1", T0 + n * HOUR) for n in range(5)]
    assert all(step.run is None for step in d1)
    assert all(s.evaluation and s.evaluation.outcome is MetricDecision.WAITING for s in d1)

    last = sim.receive("d2", T0 + 6 * HOUR)
    assert sim.runs == [{"d1": d1[-1].update, "d2": last.update}]


@BOTH
def test_coalescing_also_takes_the_newest_of_the_input_that_completes_the_set(
    policy: TriggerPolicy,
) -> None:
    sim = IntakeSimulator(policy, ("d1", "d2", "d3"))
    sim.receive("d1", T0)
    newest_d1 = sim.receive("d1", T0 + HOUR).update
    sim.receive("d2", T0 + 2 * HOUR)
    newest_d2 = sim.receive("d2", T0 + 3 * HOUR).update
    assert sim.runs == []
    d3 = sim.receive("d3", T0 + 4 * HOUR).update
    assert sim.runs == [{"d1": newest_d1, "d2": newest_d2, "d3": d3}]


# --- single-dataset metrics ----------------------------------------------------------------


@BOTH
def test_a_single_dataset_metric_runs_on_every_new_version(policy: TriggerPolicy) -> None:
    sim = IntakeSimulator(policy, ("d1",))
    steps = [sim.receive("d1", T0 + n * HOUR) for n in range(4)]
    assert sim.runs == [{"d1": s.update} for s in steps]


# --- a metric registered after its inputs already have fresh versions -----------------------


@BOTH
@pytest.mark.parametrize("next_update", ["d1", "d2"])
def test_a_metric_registered_late_runs_on_the_next_update_of_any_input(
    policy: TriggerPolicy, next_update: str
) -> None:
    sim = two_inputs(policy)
    earlier = {"d1": sim.record("d1", T0), "d2": sim.record("d2", T0 + HOUR)}
    # The metric is registered now: nothing ran yet. The next update of either input runs it.
    step = sim.receive(next_update, T0 + 2 * HOUR)
    assert sim.runs == [{**earlier, next_update: step.update}]


# --- after a run: all_new waits for every input again, any_new runs again at once ------------


def test_all_new_waits_for_every_input_again_after_a_run() -> None:
    sim = two_inputs(ALL_NEW)
    sim.receive("d1", T0)
    sim.receive("d2", T0 + HOUR)
    assert len(sim.runs) == 1

    again = sim.receive("d1", T0 + 2 * HOUR)
    assert again.run is None
    assert again.evaluation is not None
    assert again.evaluation.outcome is MetricDecision.WAITING
    assert again.evaluation.held(ALL_NEW) == {"d1": again.update, "d2": None}
    assert again.evaluation.waiting_for(ALL_NEW) == ("d2",)

    d2 = sim.receive("d2", T0 + 3 * HOUR)
    assert sim.runs[1:] == [{"d1": again.update, "d2": d2.update}]


def test_any_new_runs_again_at_once_reusing_the_fresh_inputs() -> None:
    sim = two_inputs(ANY_NEW)
    sim.receive("d1", T0)
    d2 = sim.receive("d2", T0 + HOUR).update
    first_d1 = sim.runs[0]["d1"]

    again = sim.receive("d1", T0 + 2 * HOUR)
    assert again.run == {"d1": again.update, "d2": d2}
    assert again.update is not first_d1
    # and the monthly-style input keeps being reused while it stays fresh
    third = sim.receive("d1", T0 + 3 * HOUR)
    assert third.run == {"d1": third.update, "d2": d2}
    assert len(sim.runs) == 3


# --- a stale input blocks a run until a fresh version arrives -------------------------------


@BOTH
def test_a_stale_input_blocks_until_a_fresh_version_arrives(policy: TriggerPolicy) -> None:
    sim = two_inputs(policy)
    sim.receive("d2", T0)
    later = T0 + timedelta(days=DAYS) + timedelta(microseconds=1)  # d2 is now stale
    blocked = [sim.receive("d1", later + n * HOUR) for n in range(3)]
    assert sim.runs == []
    for step in blocked:
        assert step.evaluation is not None
        assert step.evaluation.outcome is MetricDecision.WAITING
        assert step.evaluation.held(policy)["d2"] is None

    fresh_d2 = sim.receive("d2", later + 4 * HOUR)
    assert sim.runs == [{"d1": blocked[-1].update, "d2": fresh_d2.update}]


@BOTH
def test_an_input_exactly_at_the_window_edge_still_counts(policy: TriggerPolicy) -> None:
    sim = two_inputs(policy)
    d2 = sim.receive("d2", T0).update
    d1 = sim.receive("d1", T0 + timedelta(days=DAYS))
    assert d1.run == {"d1": d1.update, "d2": d2}


def test_any_new_stops_reusing_an_input_once_it_has_gone_stale() -> None:
    sim = two_inputs(ANY_NEW)
    sim.receive("d2", T0)
    sim.receive("d1", T0 + HOUR)
    assert len(sim.runs) == 1
    stale_time = T0 + timedelta(days=DAYS, hours=1)
    step = sim.receive("d1", stale_time)
    assert step.run is None
    fresh_d2 = sim.receive("d2", stale_time + HOUR)
    assert fresh_d2.run == {"d1": step.update, "d2": fresh_d2.update}


@BOTH
def test_a_run_blocked_by_a_stale_input_holds_what_the_policy_would_use(
    policy: TriggerPolicy,
) -> None:
    """What the pending run shows (§5.3 step 3): all_new only the new versions, any_new every
    fresh one it would reuse."""
    sim = IntakeSimulator(policy, ("d1", "d2", "d3"))
    sim.receive("d3", T0)
    d2 = sim.receive("d2", T0 + timedelta(days=DAYS - 1)).update
    sim.receive("d1", T0 + timedelta(days=DAYS - 1, hours=1))
    assert len(sim.runs) == 1
    step = sim.receive("d1", T0 + timedelta(days=DAYS, hours=1))  # d3 has gone stale
    assert step.run is None
    assert step.evaluation is not None
    assert step.evaluation.outcome is MetricDecision.WAITING
    held_d2 = d2 if policy is ANY_NEW else None
    assert step.evaluation.held(policy) == {"d1": step.update, "d2": held_d2, "d3": None}


def test_a_stale_occurred_at_never_runs_a_single_dataset_metric() -> None:
    sim = IntakeSimulator(ALL_NEW, ("d1",))
    step = sim.receive("d1", T0, occurred_at=T0 - timedelta(days=DAYS, microseconds=1))
    assert step.evaluation is not None
    assert step.evaluation.outcome is MetricDecision.UNCHANGED
    assert sim.runs == []


# --- late, duplicate and old versions never create or re-run --------------------------------


@BOTH
def test_a_duplicate_event_changes_nothing(policy: TriggerPolicy) -> None:
    sim = two_inputs(policy)
    sim.receive("d1", T0, key="d1:v1")
    duplicate = sim.receive("d1", T0 + HOUR, key="d1:v1")
    assert (duplicate.update, duplicate.evaluation, duplicate.run) == (None, None, None)
    assert len(sim.updates) == 1


@BOTH
def test_a_late_older_version_after_a_run_never_re_runs(policy: TriggerPolicy) -> None:
    sim = two_inputs(policy)
    sim.receive("d1", T0 + HOUR)
    sim.receive("d2", T0 + 2 * HOUR)
    assert len(sim.runs) == 1

    late = sim.receive("d1", T0 + 3 * HOUR, occurred_at=T0)
    assert late.run is None
    assert late.evaluation is not None
    assert late.evaluation.outcome is MetricDecision.UNCHANGED
    assert len(sim.runs) == 1


@BOTH
def test_a_late_older_version_while_waiting_keeps_the_newer_one_held(
    policy: TriggerPolicy,
) -> None:
    sim = two_inputs(policy)
    newer = sim.receive("d1", T0 + 2 * HOUR).update
    late = sim.receive("d1", T0 + 3 * HOUR, occurred_at=T0 + HOUR)
    assert late.evaluation is not None
    assert late.evaluation.held(policy)["d1"] is newer
    d2 = sim.receive("d2", T0 + 4 * HOUR).update
    assert sim.runs == [{"d1": newer, "d2": d2}]


def test_a_version_equal_in_effective_time_but_received_later_is_newer() -> None:
    # docs/orchestration.md: "newer" uses the full freshness order (ties to the later receipt)
    sim = IntakeSimulator(ALL_NEW, ("d1",))
    sim.receive("d1", T0, occurred_at=T0)
    tie = sim.receive("d1", T0 + HOUR, occurred_at=T0)
    assert tie.run == {"d1": tie.update}


def test_an_update_of_a_dataset_the_metric_does_not_read_is_only_recorded() -> None:
    sim = IntakeSimulator(ALL_NEW, ("d1",))
    step = sim.receive("other", T0)
    assert step.update is not None
    assert (step.evaluation, step.run) == (None, None)
    assert sim.runs == []


# --- the stream properties -----------------------------------------------------------------

MAX_INPUTS = 3
arrival = st.tuples(
    st.integers(0, MAX_INPUTS - 1),  # which input
    st.integers(0, 36),  # hours since the previous arrival
    st.none() | st.integers(0, 96),  # occurred_at this many hours before receipt (late ones)
    st.booleans(),  # a redelivery of the previous event (same key)
)


@dataclass(frozen=True)
class Arrival:
    dataset_id: str
    received_at: datetime
    occurred_at: datetime | None
    key: str


def arrivals(raw: list[tuple[int, int, int | None, bool]], width: int) -> list[Arrival]:
    out: list[Arrival] = []
    now = T0
    for n, (index, hours, occurred_hours_before, redelivered) in enumerate(raw):
        now += timedelta(hours=hours)
        if redelivered and out:
            previous = out[-1]
            out.append(Arrival(previous.dataset_id, now, previous.occurred_at, previous.key))
            continue
        occurred = (
            None if occurred_hours_before is None else now - timedelta(hours=occurred_hours_before)
        )
        out.append(Arrival(f"d{index % width}", now, occurred, f"event-{n}"))
    return out


def order(u: DatasetUpdate) -> tuple[datetime, datetime, int]:
    return (u.effective_at, u.received_at, u.seq)


def freshest_of(sim: IntakeSimulator, ds: str) -> DatasetUpdate | None:
    of_ds = [u for u in sim.updates if u.dataset_id == ds]
    return max(of_ds, key=order) if of_ds else None


def is_fresh_at(u: DatasetUpdate | None, now: datetime, days: int) -> bool:
    return u is not None and u.effective_at >= now - timedelta(days=days)


streams = st.lists(arrival, min_size=1, max_size=25)
policies = st.sampled_from(TriggerPolicy)
widths = st.integers(1, MAX_INPUTS)
windows = st.integers(0, 3)


@settings(max_examples=300, deadline=None)  # whole streams; CI machines are shared
@given(policies, widths, windows, streams)
def test_every_run_is_on_the_freshest_fresh_version_of_each_input_and_never_repeats(
    policy: TriggerPolicy, width: int, days: int, raw: list[tuple[int, int, int | None, bool]]
) -> None:
    sim = IntakeSimulator(policy, tuple(f"d{i}" for i in range(width)), required_days=days)
    for a in arrivals(raw, width):
        step = sim.receive(a.dataset_id, a.received_at, a.occurred_at, a.key)
        if step.run is not None:
            for ds in sim.datasets:
                assert step.run[ds] is freshest_of(sim, ds)
                assert is_fresh_at(step.run[ds], a.received_at, days)
        # no ready set is left unqueued: after each update the metric has caught up
        assert sim.evaluate(a.received_at).outcome is not MetricDecision.READY
    assert sim.ready_on_a_used_set == 0
    assert len({inputs_fingerprint(run) for run in sim.runs}) == len(sim.runs)


@settings(max_examples=300, deadline=None)  # whole streams; CI machines are shared
@given(policies, widths, windows, streams)
def test_an_update_that_does_not_become_the_freshest_never_creates_or_re_runs(
    policy: TriggerPolicy, width: int, days: int, raw: list[tuple[int, int, int | None, bool]]
) -> None:
    sim = IntakeSimulator(policy, tuple(f"d{i}" for i in range(width)), required_days=days)
    for a in arrivals(raw, width):
        before = freshest_of(sim, a.dataset_id)
        step = sim.receive(a.dataset_id, a.received_at, a.occurred_at, a.key)
        became_freshest = step.update is not None and (
            before is None or order(step.update) > order(before)
        )
        if not became_freshest:
            assert step.run is None
            assert step.evaluation is None or step.evaluation.outcome is not MetricDecision.READY


@settings(max_examples=300, deadline=None)  # whole streams; CI machines are shared
@given(policies, widths, windows, streams)
def test_consecutive_runs_follow_the_policy(
    policy: TriggerPolicy, width: int, days: int, raw: list[tuple[int, int, int | None, bool]]
) -> None:
    sim = IntakeSimulator(policy, tuple(f"d{i}" for i in range(width)), required_days=days)
    for a in arrivals(raw, width):
        sim.receive(a.dataset_id, a.received_at, a.occurred_at, a.key)
    for previous, run in zip(sim.runs, sim.runs[1:], strict=False):
        newer = [ds for ds in sim.datasets if order(run[ds]) > order(previous[ds])]
        assert all(order(run[ds]) >= order(previous[ds]) for ds in sim.datasets)
        if policy is ALL_NEW:
            assert newer == list(sim.datasets)  # every input again
        else:
            assert newer  # at least one


@settings(max_examples=300, deadline=None)  # whole streams; CI machines are shared
@given(policies, widths, windows, streams)
def test_a_run_happens_exactly_when_the_policy_first_holds(
    policy: TriggerPolicy, width: int, days: int, raw: list[tuple[int, int, int | None, bool]]
) -> None:
    """Restates when a run is due from the spec, independently of the domain, at every step."""
    sim = IntakeSimulator(policy, tuple(f"d{i}" for i in range(width)), required_days=days)
    for a in arrivals(raw, width):
        last = sim.last_run
        step = sim.receive(a.dataset_id, a.received_at, a.occurred_at, a.key)
        if step.update is None:
            assert step.run is None
            continue
        current = [freshest_of(sim, ds) for ds in sim.datasets]
        fresh = {
            u.dataset_id: u
            for u in current
            if u is not None and is_fresh_at(u, a.received_at, days)
        }
        new = {ds for ds, u in fresh.items() if last is None or order(u) > order(last[ds])}
        due = len(fresh) == width and (len(new) == width if policy is ALL_NEW else bool(new))
        assert (step.run is not None) is due
        if step.run is not None:
            assert step.run == fresh


@settings(max_examples=200, deadline=None)
@given(windows, streams)
def test_a_single_dataset_metric_runs_once_per_new_fresh_version(
    days: int, raw: list[tuple[int, int, int | None, bool]]
) -> None:
    for policy in TriggerPolicy:
        sim = IntakeSimulator(policy, ("d0",), required_days=days)
        expected_runs = []
        for a in arrivals(raw, 1):
            before = freshest_of(sim, "d0")
            step = sim.receive(a.dataset_id, a.received_at, a.occurred_at, a.key)
            u = step.update
            if (
                u is not None
                and (before is None or order(u) > order(before))
                and is_fresh_at(u, a.received_at, days)
            ):
                expected_runs.append({"d0": u})
        assert sim.runs == expected_runs
