"""The automatic retry rule (SPEC §5.6). Pure; the sweeper's SQL applies the same rule set-based."""

from __future__ import annotations

from datetime import timedelta

from metrics_orchestrator.domain.model import RunStatus

RETRYABLE_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})

# Caps the exponent so a metric with a huge max_attempts cannot overflow a duration
# (2**20 times the base delay is already far beyond any useful retry horizon).
MAX_DOUBLINGS = 20


def should_retry(status: RunStatus, attempt: int, max_attempts: int) -> bool:
    """Whether a run that ended in `status` on `attempt` gets an automatic retry."""
    return status in RETRYABLE_STATUSES and attempt < max_attempts


def retry_delay(base: timedelta, attempt: int) -> timedelta:
    """How long after the failure of `attempt` its retry may be dispatched: base * 2^(attempt-1)."""
    if attempt < 1:
        raise ValueError("attempt must be >= 1")
    return base * (1 << min(attempt - 1, MAX_DOUBLINGS))
