"""Acting on several runs at once: retry or cancel each of a selection (docs/ui.md "Acting on
many runs").

A batch is a loop over the single-run use cases (`RunOperations.retry` / `cancel`), one
transaction per run: every run passes the same domain checks as when it is acted on alone, one
refusal never undoes the others, and each outcome says what was done or why not, in the
domain's words ("… is succeeded; only failed, timed_out or canceled runs can be retried",
"… already has attempt 2 …").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from metrics_orchestrator.application.runs import RunOperations
from metrics_orchestrator.domain.errors import (
    Conflict,
    FieldError,
    IllegalTransition,
    NotFound,
    NotLatestAttempt,
    ValidationError,
)

# A selection is what one page of the runs list shows (50) and then some; a bigger batch is a
# script's job (the API, one run at a time), not a form's.
MAX_BATCH = 100


class BatchAction(StrEnum):
    RETRY = "retry"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What happened to one run of a batch."""

    run_id: UUID
    done: bool
    # done: what was done ("canceled", "retry queued as attempt 2"); refused: why not
    message: str
    # a short label of the refusal: "not the latest attempt", "cannot be retried",
    # "already ended" (a cancel), "unknown run"
    refusal: str = ""
    # a retry's new run
    new_run_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class BatchReport:
    action: BatchAction
    outcomes: tuple[BatchOutcome, ...]

    @property
    def done(self) -> int:
        return sum(1 for o in self.outcomes if o.done)

    @property
    def refused(self) -> int:
        return len(self.outcomes) - self.done


def selection(run_ids: Iterable[UUID], limit: int = MAX_BATCH) -> tuple[UUID, ...]:
    """The runs of a batch, each once, in the order given; ValidationError when there are none
    or more than `limit`."""
    unique = tuple(dict.fromkeys(run_ids))
    if not unique:
        raise ValidationError([FieldError("run", "select at least one run")])
    if len(unique) > limit:
        raise ValidationError(
            [FieldError("run", f"at most {limit} runs at once ({len(unique)} selected)")]
        )
    return unique


def act_on_runs(
    runs: RunOperations,
    action: BatchAction,
    run_ids: Iterable[UUID],
    *,
    cancel_reason: str | None = None,
) -> BatchReport:
    """Retry or cancel each run of the selection through the single-run use case."""
    outcomes = [_act(runs, action, run_id, cancel_reason) for run_id in selection(run_ids)]
    return BatchReport(action, tuple(outcomes))


def _act(
    runs: RunOperations, action: BatchAction, run_id: UUID, cancel_reason: str | None
) -> BatchOutcome:
    try:
        if action is BatchAction.RETRY:
            new_run = runs.retry(run_id)
            message = f"retry queued as attempt {new_run.attempt}"
            return BatchOutcome(run_id, True, message, new_run_id=new_run.id)
        runs.cancel(run_id, cancel_reason)
        return BatchOutcome(run_id, True, "canceled")
    except NotFound:
        return BatchOutcome(run_id, False, f"unknown run {run_id}", refusal="unknown run")
    except NotLatestAttempt as exc:
        return BatchOutcome(run_id, False, str(exc), refusal="not the latest attempt")
    except IllegalTransition as exc:  # only a cancel moves a run: it has ended already
        return BatchOutcome(run_id, False, str(exc), refusal="already ended")
    except Conflict as exc:  # a retry of a run that has a result, no request, a disabled metric
        return BatchOutcome(run_id, False, str(exc), refusal="cannot be retried")
