"""The help a newcomer reads: no `<bool>` after flags, `FILE` in usage lines, whole sentences."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from metrics_orchestrator.interfaces.cli import app

runner = CliRunner()
COMMANDS = [
    [],
    ["demo"],
    ["serve"],
    ["catalog"],
    ["catalog", "load"],
    ["send-update"],
    ["ingest"],
    ["migrate"],
    ["runs", "list"],
    ["runs", "show"],
    ["metrics", "readiness"],
    ["datasets", "impact"],
    ["events", "list"],
    ["events", "replay"],
]


def _help(args: list[str]) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "root")
def test_no_flag_is_followed_by_a_type(args: list[str]) -> None:
    assert "<bool>" not in _help(args)


def test_usage_lines_name_arguments_in_capitals() -> None:
    assert "catalog load [OPTIONS] FILE" in _help(["catalog", "load"])
    assert "ingest [OPTIONS] FILE" in _help(["ingest"])
    assert "runs show [OPTIONS] ID" in _help(["runs", "show"])
    assert "{" not in _help(["events", "replay"]).split("\n\n")[0]


def test_help_paragraphs_are_not_broken_mid_sentence() -> None:
    text = _help(["catalog", "load"])
    assert (
        "On bad input nothing is written and every problem is printed at once (exit code 2)."
        in (text)
    )


def test_commands_are_grouped_in_the_order_a_newcomer_needs_them() -> None:
    text = _help([])
    assert all(panel in text for panel in ("Start here", "Feed it", "Read it", "Operate it"))
    assert text.index("demo") < text.index("serve") < text.index("send-update")
