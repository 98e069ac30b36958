"""Dashboard buttons under API_TOKEN: a signed sign-in cookie, and notices the server wrote.

Reads are open, as the API's GETs are. A button (cancel, retry, refresh, refresh stale, replay)
is a form POST; when the server has API_TOKEN it needs a signed-in session: the sign-in form
checks the token and sets an HTTP-only, SameSite=Strict cookie holding an issue time and its
HMAC under a key derived from the token (slowly, PBKDF2): the cookie proves sign-in without
containing the token, expires server-side after COOKIE_MAX_AGE, and a new token signs everyone
out.
CSRF and DNS rebinding are refused before any route runs, for the dashboard and the API by
the same rules (interfaces/http/guards.py).

A notice after a button ("run canceled") travels in a short-lived cookie signed the same way
(`redirect_with_notice`), never in the URL: a crafted link cannot put text on a page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from functools import lru_cache
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

SESSION_COOKIE = "mo_dashboard_session"
NOTICE_COOKIE = "mo_notice"
COOKIE_MAX_AGE = 12 * 3600
NOTICE_MAX_AGE = 60
MAX_NOTICE_LENGTH = 500
# Without a token nothing needs signing in, but notices are still signed: with a key that
# lives as long as the process (a token-less server listens on loopback only: one process).
_PROCESS_KEY = secrets.token_bytes(32)
_KEY_ITERATIONS = 100_000


class DashboardRefusal(Exception):
    """A dashboard POST refused before it reached a service (rendered as an HTML page)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@lru_cache(maxsize=8)
def _derived_key(token: str, purpose: str) -> bytes:
    """A key for `purpose` from the API token; slow, so a stolen cookie resists guessing."""
    salt = f"metrics-orchestrator dashboard {purpose}".encode()
    return hashlib.pbkdf2_hmac("sha256", token.encode(), salt, _KEY_ITERATIONS)


def _signature(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def session_value(token: str, now: float | None = None) -> str:
    """The sign-in cookie's value: `<issued at>.<HMAC>` (no token inside)."""
    issued = str(int(time.time() if now is None else now))
    return f"{issued}.{_signature(_derived_key(token, 'session'), issued)}"


def is_signed_in(request: Request, token: str | None) -> bool:
    """True when no token is configured, or the cookie is a session signed for this token."""
    if token is None:
        return True
    issued, _, signature = request.cookies.get(SESSION_COOKIE, "").partition(".")
    if not issued.isdigit() or not 0 <= time.time() - int(issued) <= COOKIE_MAX_AGE:
        return False
    expected = _signature(_derived_key(token, "session"), issued)
    return hmac.compare_digest(signature.encode(), expected.encode())


def sign_in(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def sign_out(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def check_button(request: Request, token: str | None) -> None:
    """What every dashboard POST that changes something must pass (the guards ran already)."""
    if not is_signed_in(request, token):
        raise DashboardRefusal(401, "sign in with the API token to use this button")


# --- notices -------------------------------------------------------------------------------


def _notice_key(token: str | None) -> bytes:
    return _derived_key(token, "notice") if token else _PROCESS_KEY


def redirect_with_notice(url: str, notice: str, token: str | None) -> RedirectResponse:
    """A 303 to `url` that shows `notice` there once (a signed cookie for that page only)."""
    text = notice if len(notice) <= MAX_NOTICE_LENGTH else notice[: MAX_NOTICE_LENGTH - 1] + "…"
    encoded = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        NOTICE_COOKIE,
        f"{encoded}.{_signature(_notice_key(token), encoded)}",
        max_age=NOTICE_MAX_AGE,
        httponly=True,
        samesite="strict",
        path=urlsplit(url).path or "/",
    )
    return response


def read_notice(request: Request, token: str | None) -> str:
    """The notice the server left for this page, if its signature holds; else empty."""
    encoded, _, signature = request.cookies.get(NOTICE_COOKIE, "").partition(".")
    expected = _signature(_notice_key(token), encoded)
    if not encoded or not hmac.compare_digest(signature.encode(), expected.encode()):
        return ""
    try:
        padded = encoded + "=" * (-len(encoded) % 4)
        return base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def forget_notice(request: Request, response: Response) -> None:
    """A notice is shown once: the page that showed it deletes it."""
    if NOTICE_COOKIE in request.cookies:
        response.delete_cookie(NOTICE_COOKIE, path=request.url.path)
