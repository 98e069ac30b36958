"""A real `serve` (HTTP on, real PostgreSQL, moto) and Chromium driven by Playwright.

The browser is the first of: `$CHROMIUM`, a Chromium or Chrome on PATH (Debian's chromium in
CI), Playwright's own build (installed on first use with `python -m playwright install
chromium`). Without any of them the tests fail, saying in one line how to get one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Playwright

import metrics_orchestrator

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NO_BROWSER = (
    "no browser for the dashboard tests: none of $CHROMIUM, chromium, chromium-browser, "
    "google-chrome on PATH, and `python -m playwright install chromium` failed ({reason}); "
    "install Chromium (Debian: `apt-get install -y chromium`) or set $CHROMIUM to a "
    "Chromium/Chrome binary"
)
BROWSERS_ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Variables of the test runner's environment that must not configure the served process.
_SERVICE_PREFIXES = ("DATABASE_", "AWS_", "SNS_", "SQS_", "HTTP_", "API_TOKEN", "LOG_", "RUN_")
# The served code is this checkout's, whatever `metrics-orchestrator` is installed.
SOURCE_ROOT = Path(metrics_orchestrator.__file__).resolve().parents[1]
SERVE = "from metrics_orchestrator.interfaces.cli import main; main()"
REPO_ROOT = Path(__file__).resolve().parents[2]


def chromium_executable(playwright: Playwright) -> str:
    """The browser the tests drive (see the module docstring for the order searched)."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        found = shutil.which(configured)
        if not found:
            pytest.fail(f"$CHROMIUM={configured!r} is not an executable browser", pytrace=False)
        return found
    for name in BROWSERS_ON_PATH:
        found = shutil.which(name)
        if found:
            return found
    return _playwright_chromium(playwright)


def _playwright_chromium(playwright: Playwright) -> str:
    """Playwright's own Chromium, downloaded once into its cache if it is not there yet."""
    executable = playwright.chromium.executable_path
    if not os.access(executable, os.X_OK):
        install = subprocess.run(
            [sys.executable, "-m", "playwright", "install", "chromium"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if install.returncode != 0 or not os.access(executable, os.X_OK):
            pytest.fail(NO_BROWSER.format(reason=_first_error(install)), pytrace=False)
    return executable


def _first_error(install: subprocess.CompletedProcess[str]) -> str:
    """The line of the installer's output that says why it failed (its first `Error`)."""
    lines = [
        line.strip() for line in (install.stderr + install.stdout).splitlines() if line.strip()
    ]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [f"exit code {install.returncode}"])[0]


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page screenshots go: a temporary folder, or `$UI_SCREENSHOTS_DIR`.

    `make screenshots` sets it to docs/ui/ (committed; docs/ui.md shows them): the test suite
    itself never writes into the checkout.
    """
    configured = os.environ.get("UI_SCREENSHOTS_DIR")
    if not configured:
        return tmp_path_factory.mktemp("screenshots")
    target = Path(configured)
    target.mkdir(parents=True, exist_ok=True)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: object | str) -> tuple[int, Any]:
        data = body if isinstance(body, str) else json.dumps(body)
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def describe(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


@contextmanager
def served_dashboard(service_env: Mapping[str, str], workdir: Path) -> Iterator[Served]:
    """`serve` with HTTP on a free port (no dispatcher or sweeper: runs stay where put)."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    env = {
        **inherited,
        **service_env,
        "PYTHONPATH": str(SOURCE_ROOT),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve", "--no-dispatcher", "--no-sweeper"],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(served)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_ready(served: Served, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"serve exited early\n{served.describe()}")
        try:
            if served.get("/health/ready")["status"] == "ready":
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"serve did not become ready\n{served.describe()}")
