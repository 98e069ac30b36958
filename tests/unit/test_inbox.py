"""The dismissal reason of the rejected-events inbox (domain/inbox.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.inbox import MAX_DISMISS_REASON, dismiss_reason


@given(st.text(max_size=MAX_DISMISS_REASON + 20))
def test_a_reason_is_stored_trimmed_or_refused_naming_the_field(text: str) -> None:
    trimmed = text.strip()
    if 1 <= len(trimmed) <= MAX_DISMISS_REASON and "\x00" not in trimmed:
        assert dismiss_reason(text) == trimmed
    else:
        with pytest.raises(ValidationError) as refused:
            dismiss_reason(text)
        assert [e.path for e in refused.value.errors] == ["reason"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "a reason is required"),
        (" \n\t", "a reason is required"),
        ("x" * (MAX_DISMISS_REASON + 1), "at most 500 characters"),
        ("bad\x00byte", "NUL"),
    ],
)
def test_each_refusal_says_why(text: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        dismiss_reason(text)


def test_the_longest_reason_is_kept_whole() -> None:
    assert dismiss_reason("y" * MAX_DISMISS_REASON) == "y" * MAX_DISMISS_REASON
