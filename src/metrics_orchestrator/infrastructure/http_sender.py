"""Posting notifications over HTTP (SPEC §9) with httpx: one client, bounded time per post."""

from __future__ import annotations

import httpx

from metrics_orchestrator.application.ports.incidents import PostResult

# what a delivery keeps of a receiver's answer (it is shown on the dashboard)
_ANSWER_LIMIT = 200


class HttpNotificationSender:
    def __init__(self) -> None:
        # No redirects: a receiver's 3xx is its answer, not a place to send the body again.
        self._client = httpx.Client(follow_redirects=False, trust_env=False)

    def post(self, url: str, body: str, headers: dict[str, str], timeout: float) -> PostResult:
        try:
            response = self._client.post(
                url, content=body.encode(), headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            return PostResult(False, f"no answer within {timeout:g} s")
        except httpx.HTTPError as exc:
            return PostResult(False, f"{type(exc).__name__}: {exc}"[:_ANSWER_LIMIT])
        except (httpx.InvalidURL, UnicodeError) as exc:
            # a URL httpx cannot use (a channel stored before the catalog checked IDNA, say
            # `xn--a`; a malformed port): the channel's failure, told, never a crash
            return PostResult(False, f"invalid URL: {exc}"[:_ANSWER_LIMIT])
        answer = response.text[:_ANSWER_LIMIT].strip()
        detail = f"HTTP {response.status_code}" + (f": {answer}" if answer else "")
        return PostResult(response.is_success, detail)

    def close(self) -> None:
        self._client.close()
