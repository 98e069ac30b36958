from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metrics_orchestrator.infrastructure.settings import load_settings
from metrics_orchestrator.interfaces.cli import app
from metrics_orchestrator.interfaces.cli.serve import dashboard_url


def test_serve_refuses_a_public_address_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--http-host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "API_TOKEN" in result.output


def test_invalid_configuration_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PORT", "not-a-port")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "HTTP_PORT" in result.output


def test_a_port_in_use_stops_serve_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.setenv("EMBEDDED_DATA_DIR", str(tmp_path / "pg"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--http-port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "running" not in result.stdout
    assert not (tmp_path / "pg").exists()  # no database was started


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8000/"),
        ({"HTTP_HOST": "0.0.0.0", "HTTP_PORT": "9000"}, "http://127.0.0.1:9000/"),
        ({"HTTP_HOST": "::1"}, "http://[::1]:8000/"),
        (
            {"HTTP_HOST": "0.0.0.0", "PUBLIC_URL": "https://m.example.com/"},
            "https://m.example.com/",
        ),
    ],
)
def test_serve_prints_a_dashboard_address_the_service_answers(
    env: dict[str, str], url: str
) -> None:
    """A wildcard bind is not an address a browser may use: the Host check answers 421."""
    assert dashboard_url(load_settings(env=env)) == url
