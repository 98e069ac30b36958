"""Run ids typed at a terminal (SPEC §6.1): a unique prefix, hyphens optional."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import NotFound, ValidationError
from metrics_orchestrator.domain.run_ids import (
    MIN_PREFIX,
    SHOWN_MATCHES,
    parse_run_id_prefix,
    the_one_match,
)


@given(st.uuids(), st.integers(MIN_PREFIX, 36), st.booleans())
def test_every_prefix_of_an_id_as_listed_or_typed_covers_that_id(
    run_id: UUID, length: int, upper: bool
) -> None:
    typed = str(run_id)[:length]
    typed = typed.upper() if upper else typed
    if len(typed.replace("-", "")) < MIN_PREFIX:
        return
    prefix = parse_run_id_prefix(typed)
    assert prefix.lowest <= run_id <= prefix.highest
    assert run_id.hex.startswith(prefix.digits)


@given(st.uuids(), st.uuids())
def test_an_id_is_in_the_range_only_if_it_starts_with_the_prefix(a: UUID, b: UUID) -> None:
    prefix = parse_run_id_prefix(a.hex[:6])
    assert (prefix.lowest <= b <= prefix.highest) == b.hex.startswith(a.hex[:6])


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("", "must be a run id or a prefix"),
        ("02b2x", "must be a run id or a prefix"),
        ("02b", "at least 4 hex digits"),
        ("0-2-b", "at least 4 hex digits"),
        ("0" * 33, "32 hex digits; 33 given"),
    ],
)
def test_what_cannot_be_a_prefix_is_refused_naming_the_argument(typed: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=f"ID: .*{problem}"):
        parse_run_id_prefix(typed)


def test_one_match_is_the_run_none_is_unknown_several_are_listed() -> None:
    one, two = uuid4(), uuid4()
    assert the_one_match("abcd", [one]) == one
    with pytest.raises(NotFound, match="unknown run abcd"):
        the_one_match("abcd", [])
    with pytest.raises(ValidationError, match=rf"ambiguous: it begins {one}, {two}$"):
        the_one_match("abcd", [one, two])
    many = [uuid4() for _ in range(SHOWN_MATCHES)]
    with pytest.raises(ValidationError, match=r"and more$") as listed:
        the_one_match("abcd", many, more=True)
    assert all(str(m) in str(listed.value) for m in many)
