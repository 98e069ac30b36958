"""The dashboard's signed values: the sign-in session and notices (issue 20 item 8)."""

from __future__ import annotations

import time

from starlette.requests import Request

from metrics_orchestrator.interfaces.web.security import (
    COOKIE_MAX_AGE,
    NOTICE_COOKIE,
    SESSION_COOKIE,
    is_signed_in,
    read_notice,
    redirect_with_notice,
    session_value,
)


def _request(cookie: str) -> Request:
    headers = [(b"cookie", cookie.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_a_session_is_signed_for_one_token_and_expires() -> None:
    fresh = session_value("s3cret")

    assert "s3cret" not in fresh
    assert is_signed_in(_request(f"{SESSION_COOKIE}={fresh}"), "s3cret")
    assert not is_signed_in(_request(f"{SESSION_COOKIE}={fresh}"), "rotated")
    stale = session_value("s3cret", now=time.time() - COOKIE_MAX_AGE - 5)
    assert not is_signed_in(_request(f"{SESSION_COOKIE}={stale}"), "s3cret")
    future = session_value("s3cret", now=time.time() + 3600)
    assert not is_signed_in(_request(f"{SESSION_COOKIE}={future}"), "s3cret")
    assert not is_signed_in(_request(f"{SESSION_COOKIE}=s3cret"), "s3cret")
    assert is_signed_in(_request(""), None)


def test_a_notice_reads_back_only_under_the_key_it_was_signed_with() -> None:
    response = redirect_with_notice("/ui/runs/x", "run canceled: ünïcode " + "x" * 900, "tok")
    cookie = response.headers["set-cookie"]
    value = cookie.split(";")[0].split("=", 1)[1].strip('"')

    shown = read_notice(_request(f"{NOTICE_COOKIE}={value}"), "tok")

    assert shown.startswith("run canceled: ünïcode")
    assert len(shown) <= 500
    assert "path=/ui/runs/x" in cookie.lower()
    assert read_notice(_request(f"{NOTICE_COOKIE}={value}"), "other") == ""
    assert read_notice(_request(f"{NOTICE_COOKIE}=aGk.{'0' * 64}"), "tok") == ""
