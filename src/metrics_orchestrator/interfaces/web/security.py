"""Dashboard buttons under API_TOKEN: a sign-in cookie, and a same-origin check on every POST.

Reads are open, as the API's GETs are. A button (cancel, retry, run now, replay) is a form
POST; when the server has API_TOKEN it needs the token, which the sign-in form stores in an
HTTP-only, SameSite=Strict cookie (scripts cannot read it; other sites' requests do not carry
it). CSRF: besides SameSite=Strict, every dashboard POST must come with an Origin (or, from
older browsers, a Referer) of this very host; a cross-site form post is refused even without
a token configured, where a loopback dashboard would otherwise be forgeable.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from metrics_orchestrator.interfaces.http.auth import token_matches

TOKEN_COOKIE = "mo_dashboard_token"
COOKIE_MAX_AGE = 12 * 3600


class DashboardRefusal(Exception):
    """A dashboard POST refused before it reached a service (rendered as an HTML page)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def is_signed_in(request: Request, token: str | None) -> bool:
    """True when no token is configured, or the cookie holds the right one."""
    if token is None:
        return True
    return token_matches(token, request.cookies.get(TOKEN_COOKIE))


def check_same_origin(request: Request) -> None:
    """Refuse a POST whose Origin/Referer is missing or another site (DashboardRefusal 403)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        raise DashboardRefusal(403, "refused: the request carries no Origin or Referer header")
    origin = urlsplit(source)
    host = request.headers.get("host", "")
    if origin.netloc.lower() != host.lower() or origin.scheme not in {"http", "https"}:
        raise DashboardRefusal(403, f"refused: a request from {source!r} is not from this site")


def check_button(request: Request, token: str | None) -> None:
    """What every dashboard POST that changes something must pass."""
    check_same_origin(request)
    if not is_signed_in(request, token):
        raise DashboardRefusal(401, "sign in with the API token to use this button")
