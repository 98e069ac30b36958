"""The safe-bind rule of `serve` and the bearer-token comparison (SPEC §6.3)."""

from __future__ import annotations

import pytest

from metrics_orchestrator.interfaces.http.auth import (
    UnsafeBindAddress,
    check_bind_address,
    is_loopback,
    token_matches,
)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", " LocalHost "]
)
def test_loopback_addresses_need_no_token(host: str) -> None:
    assert is_loopback(host)
    check_bind_address(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "api.example.com", ""])
def test_other_addresses_are_refused_without_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(UnsafeBindAddress, match="API_TOKEN"):
        check_bind_address(host, None)
    with pytest.raises(ValueError, match="not a loopback address"):
        check_bind_address(host, "   ")


def test_other_addresses_are_allowed_with_a_token() -> None:
    check_bind_address("0.0.0.0", "s3cret")


@pytest.mark.parametrize(
    ("expected", "presented", "allowed"),
    [
        (None, None, True),
        ("", "anything", True),
        ("s3cret", "s3cret", True),
        ("s3cret", None, False),
        ("s3cret", "", False),
        ("s3cret", "s3cre", False),
        ("s3cret", "s3cret ", False),
        ("sécret", "sécret", True),
    ],
)
def test_token_matching(expected: str | None, presented: str | None, allowed: bool) -> None:
    assert token_matches(expected, presented) is allowed
