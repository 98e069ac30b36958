"""One unit of work run to completion, again on a transient conflict, with the retry logged."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog

from metrics_orchestrator.application.ports import UnitOfWork, UnitOfWorkFactory, in_transaction
from metrics_orchestrator.application.ports.changes import TransitionCounter
from metrics_orchestrator.domain import log_events

log = structlog.get_logger(__name__)
T = TypeVar("T")


def transact(
    uow_factory: UnitOfWorkFactory,
    work: Callable[[UnitOfWork], T],
    telemetry: TransitionCounter | None = None,
) -> T:
    return in_transaction(uow_factory, work, on_retry=_log_transaction_retry, telemetry=telemetry)


def _log_transaction_retry(attempt: int, exc: Exception) -> None:
    log.warning(
        log_events.ON_TRANSACTION_RETRY,
        message="transient database conflict; retrying",
        attempt=attempt,
        error=str(exc),
    )
