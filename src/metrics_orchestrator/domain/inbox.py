"""The rejected-events inbox (SPEC §5.8, §6.1): why an entry may leave it. Pure functions.

A rejected event stays in the inbox until a replay is processed, or until a person dismisses
it (an event that can never be valid), saying why; the reason stays in the event log.
"""

from __future__ import annotations

from metrics_orchestrator.domain.errors import FieldError, ValidationError

MAX_DISMISS_REASON = 500


def dismiss_reason(reason: str) -> str:
    """The reason as stored: trimmed, 1-500 characters, no NUL (PostgreSQL text cannot hold
    one). Raises ValidationError naming the field `reason`."""
    text = reason.strip()
    if not text:
        problem = "a reason is required (why this event will never be valid)"
    elif len(text) > MAX_DISMISS_REASON:
        problem = f"must be at most {MAX_DISMISS_REASON} characters, got {len(text)}"
    elif "\x00" in text:
        problem = "must not contain NUL characters"
    else:
        return text
    raise ValidationError([FieldError("reason", problem)])
