"""The running service for figures 3 and 5: a moto server, provisioned queues and `serve`.

Each piece runs in its own process, as in a deployment: the moto server (`moto_server`), the
service (`metrics-orchestrator serve --no-http`) and the benchmark, which sends updates and
reads run requests through real boto3 clients. If the `serve` command cannot start (for
example while the HTTP interface is not installed), `python -m bench.service` runs the same
runtime without HTTP — the same `bootstrap`/`build_runtime` calls, only without the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from metrics_orchestrator.domain.messages.run_requested import RUN_REQUESTED
from metrics_orchestrator.infrastructure.aws.clients import create_sns_client, create_sqs_client
from metrics_orchestrator.infrastructure.aws.provisioning import Topology, provision

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 60.0
_AWS_AND_DB_VARIABLES = (
    "DATABASE_URL",
    "AWS_ENDPOINT_URL",
    "SNS_RUN_REQUEST_TOPIC_ARN",
    "SQS_PROJECTION_UPDATE_QUEUE_URL",
    "SQS_RUN_FEEDBACK_QUEUE_URLS",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> tuple[int, int]:
    """(current VmRSS, peak VmHWM) of a process, in KiB, from /proc (no psutil needed)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def _stop(process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# -- moto --------------------------------------------------------------------------------------


class MotoProcess:
    """`moto_server` on a free local port, in its own process."""

    def __init__(self) -> None:
        port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        if not (BIN / "moto_server").exists():
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_until_listening(port)
        self.sns: SNSClient = create_sns_client(REGION, self.endpoint_url)
        self.sqs: SQSClient = create_sqs_client(REGION, self.endpoint_url)

    def _wait_until_listening(self, port: int) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("moto_server exited during start-up")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return
            time.sleep(0.1)
        raise RuntimeError("moto_server did not start listening in time")

    def provision(self) -> Topology:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        return provision(self.sns, self.sqs, prefix=prefix, fifo=False, raw_delivery=True)

    def close(self) -> None:
        _stop(self._process)

    def __enter__(self) -> MotoProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the service -------------------------------------------------------------------------------


def service_environment(database_url: str, endpoint_url: str, topology: Topology) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _AWS_AND_DB_VARIABLES}
    env.update(
        DATABASE_URL=database_url,
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL=endpoint_url,
        SNS_RUN_REQUEST_TOPIC_ARN=topology.topic_arn,
        SQS_PROJECTION_UPDATE_QUEUE_URL=topology.projection_update_queue.url,
        SQS_RUN_FEEDBACK_QUEUE_URLS=topology.run_feedback_queue.url,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    return env


@dataclass
class ServeProcess:
    """`metrics-orchestrator serve --no-http` (or the fallback) until `close()`."""

    env: dict[str, str]
    extra_flags: tuple[str, ...] = ()
    command: list[str] = field(default_factory=list)
    note: str = ""
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-serve-")) / "serve.log"
    )
    _process: subprocess.Popen[str] | None = None
    _log: IO[str] | None = None

    def start(self) -> ServeProcess:
        cli = [str(BIN / "metrics-orchestrator"), "serve", "--no-http", *self.extra_flags]
        try:
            self._launch(cli)
        except RuntimeError as exc:
            self.note = f"`serve` did not start ({exc}); ran `python -m bench.service` instead"
            self._launch([sys.executable, "-m", "bench.service", *self.extra_flags])
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def _launch(self, command: list[str]) -> None:
        self.command = command
        self._log = self.log_path.open("w")
        # cwd: a directory without a .env file, so only `env` configures the service
        process = subprocess.Popen(
            command,
            env=self.env,
            cwd=self.log_path.parent,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._process = process
        ready = threading.Event()
        threading.Thread(target=_watch, args=(process, ready), daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                self._log.close()
                tail = self.log_path.read_text()[-400:].strip().splitlines()
                raise RuntimeError(tail[-1] if tail else f"exit code {process.returncode}")

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        if self._process is not None:
            _stop(self._process, timeout=60)
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _watch(process: subprocess.Popen[str], ready: threading.Event) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("running"):
            ready.set()


# -- SQS helpers -------------------------------------------------------------------------------


def run_request_key(body: str) -> str:
    """The event key of the update a message was caused by (a run request or a relayed update)."""
    message = json.loads(body)
    if message.get("type") == RUN_REQUESTED:
        datasets = message["catalog"]["datasets"]
        dataset_id, entry = next(iter(datasets.items()))
        return f"{dataset_id}:{entry['manifestPath']}"
    return f"{message['dataset_id']}:{message['version_manifest_path']}"


def _serve_without_http() -> int:
    """`python -m bench.service [flags]`: the runtime of `serve` without the HTTP interface."""
    from contextlib import ExitStack

    from metrics_orchestrator.bootstrap import bootstrap, resolve_aws
    from metrics_orchestrator.infrastructure.logging import configure_logging
    from metrics_orchestrator.infrastructure.settings import load_settings
    from metrics_orchestrator.interfaces.runtime import ServeParts, build_runtime

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    parts = ServeParts(http=False, sweeper="--no-sweeper" not in sys.argv)
    with ExitStack() as resources:
        aws = resolve_aws(settings, resources)
        container = resources.enter_context(bootstrap(settings, aws=aws))
        runtime = build_runtime(container, aws, parts)
        print("running", flush=True)
        clean = runtime.run_until_signalled()
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(_serve_without_http())
