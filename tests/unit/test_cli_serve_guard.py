from __future__ import annotations

import pytest
from typer.testing import CliRunner

from metrics_orchestrator.interfaces.cli import app


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
