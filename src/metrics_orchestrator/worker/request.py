"""Kept only for `worker/adapters/sqs.py`, which another change is rewriting (issue 21 item 7):
the `metric_run_requested` message is `domain/messages/run_requested.py`. Delete this module
once that adapter imports it from there."""

from metrics_orchestrator.domain.messages.run_requested import Unanswerable, read_message

__all__ = ["Unanswerable", "read_message"]
