"""What every request must pass before a route sees it, for the API and the dashboard alike.

One ASGI middleware (`RequestGuard`) applies, in this order:

1. the Host check: only the names this service is reached by (DNS rebinding; 421);
2. for a request that changes something (POST, PUT, PATCH, DELETE):
   - the source check: a request from a browser (it sends Origin, Referer or Sec-Fetch-Site)
     must come from this service's own origin (CSRF; 403). Scripts send none of these
     headers and pass; the API token protects them;
   - the media type: a JSON body for the API, a form for the dashboard; an empty body may
     come without a Content-Type, as curl sends a bare POST (415);
3. the body limit: no body is read past MAX_REQUEST_BODY (413), and `read_body` reads a
   route's body against the route's own, smaller limit as it streams;
4. the security headers on every response (CSP, framing, sniffing, referrer).

The checks are plain functions over headers (`check_host`, `check_source`,
`check_media_type`), so the dashboard and the API cannot apply different rules.
Why each rule is what it is: docs/decisions.md "Which hosts are trusted".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message as MimeMessage
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrics_orchestrator.domain.decoding import MAX_BODY_BYTES
from metrics_orchestrator.interfaces.http.problems import problem_response

# The largest body any route accepts: the HTTP intake's (it records, as rejected, an event up
# to this size; SPEC §5.8 rejects over MAX_BODY_BYTES without parsing).
MAX_REQUEST_BODY = 4 * MAX_BODY_BYTES
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
# Probes and scrapers address a replica by its IP; these answer nothing a page could misuse.
HOST_CHECK_EXEMPT = frozenset({"/health", "/health/ready", "/prometheus"})
DASHBOARD_PREFIX = "/ui/"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# The dashboard and /docs load everything from this server; nothing may frame them.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class Refusal(Exception):
    """A request refused by a guard, before any route ran."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


class BodyTooLarge(StarletteHTTPException):
    """Raised while a body streams in; the problem handlers answer it as a 413 problem."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


@dataclass(frozen=True, slots=True)
class TrustedOrigins:
    """The host names this service is reached by, and its public origin behind a proxy."""

    hosts: frozenset[str]
    public_origin: str | None = None

    @classmethod
    def of(cls, bind_host: str, public_url: str | None) -> TrustedOrigins:
        """Loopback names, the bind address (unless a wildcard) and PUBLIC_URL's host."""
        hosts = set(LOOPBACK_HOSTS)
        bind = bind_host.strip().strip("[]").lower()
        if bind not in WILDCARD_HOSTS:
            hosts.add(bind)
        origin = None
        if public_url:
            parts = urlsplit(public_url)
            hosts.add((parts.hostname or "").lower())
            origin = _origin(parts.scheme, parts.netloc)
        return cls(frozenset(hosts), origin)


def host_name(host_header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower case."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def check_host(host_header: str | None, trusted: TrustedOrigins) -> None:
    """Refuse a Host this service is not reached by (Refusal 421)."""
    name = host_name(host_header or "")
    if name in trusted.hosts:
        return
    shown = (host_header or "")[:100]
    raise Refusal(
        421,
        "untrusted-host",
        f"this service is not reached as {shown!r}: it answers to "
        f"{', '.join(sorted(trusted.hosts))}; set PUBLIC_URL to the address people use",
    )


def check_source(headers: Mapping[str, str], trusted: TrustedOrigins) -> None:
    """The one same-origin rule of every request that changes something (Refusal 403).

    A browser says where a request comes from (Origin; Referer from older ones; Sec-Fetch-Site
    from current ones); such a request must come from this service's origin: the origin of the
    Host it was sent to (already checked by `check_host`) or PUBLIC_URL's. A request with none
    of these headers is not from a browser page, so it cannot be forged by one.
    """
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site not in {"", "same-origin", "none"}:
        raise Refusal(403, "cross-site", f"refused: a {fetch_site} request cannot change anything")
    source = headers.get("origin")
    if source is None:
        source = headers.get("referer")
    if source is None:
        return
    allowed = _allowed_origins(headers.get("host", ""), trusted)
    if source == "null" or _source_origin(source) not in allowed:
        raise Refusal(
            403,
            "cross-site",
            f"refused: a request from {source[:200]!r} is not from this site "
            "(behind a proxy, set PUBLIC_URL to the address in the browser)",
        )


def check_media_type(headers: Mapping[str, str], accepted: Iterable[str]) -> None:
    """The body is one of `accepted`; an empty body may come without a type (Refusal 415)."""
    content_type = headers.get("content-type")
    accepted = tuple(accepted)
    if content_type is None:
        if _has_body(headers):
            raise Refusal(
                415, "unsupported-media-type", f"a request body must be sent as {accepted[0]}"
            )
        return
    if _media_type(content_type) not in accepted:
        raise Refusal(
            415,
            "unsupported-media-type",
            f"Content-Type {content_type[:100]!r} is not accepted here; send {accepted[0]}",
        )


def accepted_media_types(path: str) -> tuple[str, ...]:
    """The dashboard's buttons post forms; the API takes JSON."""
    return (FORM,) if path.startswith(DASHBOARD_PREFIX) else (JSON,)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (BodyTooLarge) as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


class RequestGuard:
    """The ASGI middleware applying the checks above to every HTTP request."""

    def __init__(
        self, app: ASGIApp, trusted: TrustedOrigins, max_body: int = MAX_REQUEST_BODY
    ) -> None:
        self.app = app
        self.trusted = trusted
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        try:
            self._check(scope)
        except Refusal as refusal:
            response = problem_response(
                refusal.status, refusal.detail, kind=refusal.kind, instance=scope["path"]
            )
            await response(scope, receive, send)
            return
        await self.app(scope, _limited(receive, self.max_body), send)

    def _check(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        path: str = scope["path"]
        if path not in HOST_CHECK_EXEMPT:
            check_host(headers.get("host"), self.trusted)
        if scope["method"] in UNSAFE_METHODS:
            check_source(headers, self.trusted)
            check_media_type(headers, accepted_media_types(path))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise Refusal(413, "payload-too-large", str(BodyTooLarge(self.max_body).detail))


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive`, raising BodyTooLarge once the body streamed in exceeds `limit`."""
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return receive_within_limit


def _with_security_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return send_with_headers


def _allowed_origins(host_header: str, trusted: TrustedOrigins) -> set[str]:
    own = host_header.strip().lower()
    allowed = {_origin("http", own), _origin("https", own)}
    if trusted.public_origin:
        allowed.add(trusted.public_origin)
    return allowed


def _source_origin(source: str) -> str:
    try:
        parts = urlsplit(source.strip())
    except ValueError:
        return ""
    if parts.scheme not in {"http", "https"}:
        return ""
    return _origin(parts.scheme, parts.netloc)


def _origin(scheme: str, netloc: str) -> str:
    """scheme://host[:port], lower case, without the scheme's default port."""
    scheme, netloc = scheme.lower(), netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and netloc.endswith(default):
        netloc = netloc.removesuffix(default)
    return f"{scheme}://{netloc}"


def _media_type(content_type: str) -> str:
    message = MimeMessage()
    message["content-type"] = content_type
    media_type: str = message.get_content_type()
    if media_type.startswith("application/") and media_type.endswith("+json"):
        return JSON
    return media_type


def _has_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in {"", "0"}
    return "transfer-encoding" in headers
