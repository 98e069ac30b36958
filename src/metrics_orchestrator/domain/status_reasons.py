"""Every `metric_runs.status_reason` the control plane writes: the one vocabulary (SPEC §5.5, §5.6).

A reason says why a run ended or was canceled; the API, the CLI, the dashboard and the demo
show it, and some readers match on it (the sweeper's timeout counts, the demo's narration),
so each text is written here once and everyone imports it.
"""

from __future__ import annotations

from metrics_orchestrator.domain.model import Cause, RunStatus

# The sweeper's timeouts (SPEC §5.5): the reason is the cause's name.
START_TIMEOUT = Cause.START_TIMEOUT.value
HEARTBEAT_TIMEOUT = Cause.HEARTBEAT_TIMEOUT.value
# The dispatcher gave up publishing (SPEC §5.4).
DISPATCH_FAILED = "dispatch_failed"
# A worker's completed event (SPEC §4.2).
WORKER_FAILURE = "worker_failure"
COMPLETED_AFTER_TIMEOUT = "completed_after_timeout"
# Cancels (SPEC §2, §6.3): a catalog change, or an operator who gave no reason of their own.
DEFINITION_CHANGED = "metric definition changed"
METRIC_DISABLED = "metric disabled"
CANCELED_BY_OPERATOR = "canceled by operator"
CANCELED_FROM_DASHBOARD = "canceled from the dashboard"
# A late success supersedes its queued automatic retry (SPEC §5.5).
SUPERSEDED_PREFIX = "superseded: "


def timeout_reason(cause: Cause) -> str:
    """The reason a run timed out for `cause` (a start or a heartbeat timeout)."""
    return {Cause.START_TIMEOUT: START_TIMEOUT, Cause.HEARTBEAT_TIMEOUT: HEARTBEAT_TIMEOUT}[cause]


def superseded_reason(attempt: int) -> str:
    """Why a pending retry is canceled when the attempt it retries succeeds late (SPEC §5.5)."""
    return f"{SUPERSEDED_PREFIX}attempt {attempt} succeeded late"


def completion_reason(previous: RunStatus, succeeded: bool) -> str | None:
    """The reason a completed event records: a late outcome after a timeout, or a failure."""
    if previous is RunStatus.TIMED_OUT:
        return COMPLETED_AFTER_TIMEOUT
    return None if succeeded else WORKER_FAILURE


def operator_cancel_reason(given: str | None) -> str:
    """An operator's own words, or the default when they gave none (blank counts as none)."""
    return (given or "").strip() or CANCELED_BY_OPERATOR
