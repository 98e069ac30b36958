"""Bearer-token protection of mutating endpoints, and the safe-bind rule of `serve` (SPEC §6.3).

Reads are open; with `API_TOKEN` set every POST/PATCH needs `Authorization: Bearer <token>`.
Without a token the API may only listen on a loopback address, where nobody else can reach it.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from metrics_orchestrator.interfaces.http.problems import ApiProblem

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="Required on every mutating endpoint when the server has API_TOKEN set.",
)


class UnsafeBindAddress(ValueError):
    """Listening beyond loopback without a token would expose an unauthenticated API."""


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind_address(host: str, token: str | None) -> None:
    """Refuse a non-loopback `host` unless an API token is configured (UnsafeBindAddress)."""
    if is_loopback(host) or (token is not None and token.strip()):
        return
    raise UnsafeBindAddress(
        f"HTTP_HOST={host!r} is not a loopback address; set API_TOKEN to protect the API "
        "or listen on 127.0.0.1"
    )


def token_matches(expected: str | None, presented: str | None) -> bool:
    """True when no token is required, or the presented one equals it (constant time)."""
    if not expected:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """FastAPI dependency of every mutating route."""
    expected: str | None = request.app.state.api_token
    presented = credentials.credentials if credentials is not None else None
    if token_matches(expected, presented):
        return
    detail = (
        "missing bearer token: send Authorization: Bearer <API_TOKEN>"
        if presented is None
        else "invalid bearer token"
    )
    raise ApiProblem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
    )
