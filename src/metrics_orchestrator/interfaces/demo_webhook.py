"""The demo's notification receiver (SPEC §9): a local HTTP endpoint standing in for a team's
webhook, so the demo shows incident notifications arriving, signed, without any account."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEMO_SECRET = "demo-secret"


class DemoWebhook:
    """Keeps what it received: (type, incident kind, subject, signature valid)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str, bool]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhook"

    def seen(self) -> list[tuple[str, str, str, bool]]:
        with self._lock:
            return list(self.received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = hmac.new(DEMO_SECRET.encode(), body, hashlib.sha256).hexdigest()
                signed = self.headers.get("X-Signature-256") == f"sha256={expected}"
                document: dict[str, Any] = json.loads(body)
                incident = document.get("incident") or {}
                with webhook._lock:
                    webhook.received.append(
                        (
                            str(document.get("type")),
                            str(incident.get("kind")),
                            str(incident.get("subject")),
                            signed,
                        )
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


@contextmanager
def demo_webhook() -> Iterator[DemoWebhook]:
    webhook = DemoWebhook()
    thread = threading.Thread(target=webhook._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield webhook
    finally:
        webhook._server.shutdown()
        webhook._server.server_close()
