"""What a unit of work changed, recorded as it happens and published after its commit.

Use cases record each run status change (and each run created) on `uow.changes`; the unit of
work sends the one NOTIFY when it commits a transaction that queued runs, and `in_transaction`
hands the recorded transitions to telemetry once the commit succeeded. So no use case wires
an effect by hand, none can forget one, and a rolled-back or retried transaction counts nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from metrics_orchestrator.domain.model import RunStatus, StatusChange

# The LISTEN/NOTIFY channel of a committed transaction that queued runs (the dispatcher listens).
RUN_QUEUED_CHANNEL = "metric_run_queued"

# The LISTEN/NOTIFY channel of a committed transaction that queued notifications (SPEC §9).
NOTIFICATION_QUEUED_CHANNEL = "notification_queued"

# `from_status` of a run that did not exist before the transition (created directly in it).
NEW_RUN = "none"


class TransitionCounter(Protocol):
    def run_transition(self, from_status: str, to_status: str, count: int = 1) -> None: ...


@dataclass(slots=True)
class RecordedChanges:
    """The run transitions of one transaction, by (from status, to status)."""

    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    # outbox rows written (the notifiers must be woken, SPEC §9)
    notifications: int = 0
    # run once the transaction committed (logging what it did), never after a rollback
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    def notifications_queued(self, count: int) -> None:
        self.notifications += count

    def moved(self, change: StatusChange, count: int = 1) -> None:
        """`count` runs changed as `change` says."""
        self.transition(change.source.value, change.target.value, count)

    def created(self, status: RunStatus, count: int = 1) -> None:
        """`count` runs were created directly in `status`."""
        self.transition(NEW_RUN, status.value, count)

    def transition(self, from_status: str, to_status: str, count: int = 1) -> None:
        if count > 0 and from_status != to_status:
            self.transitions[(from_status, to_status)] += count

    @property
    def queued_runs(self) -> bool:
        """Whether this transaction put a run in `queued` (the dispatcher must be woken)."""
        queued = RunStatus.QUEUED.value
        return any(to == queued for _, to in self.transitions)

    def publish(self, telemetry: TransitionCounter) -> None:
        for (from_status, to_status), count in self.transitions.items():
            telemetry.run_transition(from_status, to_status, count)
