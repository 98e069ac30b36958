"""Limits of the message transport that the rules are shaped by."""

from __future__ import annotations

# The most messages one SQS receive returns; intake takes one receive in one transaction
# (docs/messaging.md), so it is also the largest intake batch.
MAX_BATCH = 10
