"""The request guards shared by the API and the dashboard: Host, source, media type (issue 20)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.interfaces.http.guards import (
    FORM,
    JSON,
    Refusal,
    TrustedOrigins,
    accepted_media_types,
    check_host,
    check_media_type,
    check_source,
    host_name,
)

LOCAL = TrustedOrigins.of("127.0.0.1", None)
PROXIED = TrustedOrigins.of("127.0.0.1", "https://metrics.example.com")


def _status(check: object, *args: object) -> int:
    try:
        check(*args)  # type: ignore[operator]
    except Refusal as refusal:
        return refusal.status
    return 200


# --- Host ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "127.0.0.1"]
)
def test_loopback_names_and_the_bind_address_are_trusted(host: str) -> None:
    check_host(host, LOCAL)


@pytest.mark.parametrize(
    "host", ["evil.example:8000", "evil.example", "127.0.0.1.evil.example", "", "[::2]:8000"]
)
def test_any_other_host_is_refused_with_421(host: str) -> None:
    assert _status(check_host, host, LOCAL) == 421
    assert _status(check_host, None, LOCAL) == 421


def test_public_url_and_a_specific_bind_address_add_their_hosts() -> None:
    trusted = TrustedOrigins.of("10.0.0.5", "https://Metrics.Example.com/base/")
    check_host("metrics.example.com", trusted)
    check_host("10.0.0.5:8000", trusted)
    assert trusted.public_origin == "https://metrics.example.com"
    # a wildcard bind trusts no name of its own: PUBLIC_URL says which
    assert TrustedOrigins.of("0.0.0.0", None).hosts == LOCAL.hosts


def test_host_names_lose_port_and_brackets() -> None:
    assert host_name("[::1]:8000") == "::1"
    assert host_name("Example.COM:80") == "example.com"
    assert host_name("example.com") == "example.com"


# --- source (CSRF) -------------------------------------------------------------------------


def test_requests_of_this_origin_and_of_scripts_pass() -> None:
    own = {"host": "127.0.0.1:8000"}
    check_source({**own, "origin": "http://127.0.0.1:8000"}, LOCAL)
    check_source({**own, "referer": "http://127.0.0.1:8000/ui/runs"}, LOCAL)
    check_source({**own, "sec-fetch-site": "same-origin", "origin": "http://127.0.0.1:8000"}, LOCAL)
    check_source(own, LOCAL)  # curl, the CLI: no browser header at all


def test_behind_a_proxy_the_public_origin_passes() -> None:
    rewritten = {"host": "127.0.0.1:8000", "origin": "https://metrics.example.com"}
    check_source(rewritten, PROXIED)
    assert _status(check_source, rewritten, LOCAL) == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "null"},
        {"origin": "http://evil.example"},
        {"origin": "javascript://127.0.0.1:8000"},
        {"origin": "http://127.0.0.1:8001"},
        {"referer": "http://evil.example/page"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"sec-fetch-site": "cross-site", "origin": "http://127.0.0.1:8000"},
    ],
)
def test_other_sources_are_refused_with_403(headers: dict[str, str]) -> None:
    assert _status(check_source, {"host": "127.0.0.1:8000", **headers}, LOCAL) == 403


@given(st.text(max_size=60))
def test_an_origin_passes_only_if_it_is_this_service(origin: str) -> None:
    headers = {"host": "127.0.0.1:8000", "origin": origin}
    ours = origin.lower() in {"http://127.0.0.1:8000", "https://127.0.0.1:8000"}
    assert (_status(check_source, headers, LOCAL) == 200) == ours


# --- media type ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "application/json", "content-length": "2"}, 200),
        ({"content-type": "Application/JSON; charset=utf-8", "content-length": "2"}, 200),
        ({"content-type": "application/merge-patch+json", "content-length": "2"}, 200),
        ({"content-length": "0"}, 200),
        ({}, 200),
        ({"content-type": "text/plain", "content-length": "2"}, 415),
        ({"content-type": FORM, "content-length": "0"}, 415),
        ({"content-type": "multipart/form-data; boundary=x", "content-length": "9"}, 415),
        ({"content-length": "2"}, 415),
        ({"transfer-encoding": "chunked"}, 415),
    ],
)
def test_the_api_takes_json_or_no_body(headers: dict[str, str], status: int) -> None:
    assert _status(check_media_type, headers, accepted_media_types("/runs/x/cancel")) == status


def test_the_dashboard_takes_forms() -> None:
    assert accepted_media_types("/ui/runs/x/cancel") == (FORM,)
    assert accepted_media_types("/metrics") == (JSON,)
    check_media_type({"content-type": FORM, "content-length": "9"}, (FORM,))
    assert _status(check_media_type, {"content-type": JSON, "content-length": "2"}, (FORM,)) == 415
