"""`notify`, `incidents` and `freshness` at a terminal, at their edges (SPEC §6.1, §9): what a
failed test post prints, the filters of `incidents list`, and failing subjects first."""

from __future__ import annotations

import psycopg

from metrics_orchestrator.bootstrap import bootstrap, load_settings
from tests.integration.cli_helpers import cli, cli_json

# a URL the catalog accepts where nobody listens (the discard port): every post is refused
UNUSABLE_URL = "http://127.0.0.1:9/hook"


def seed(database_url: str) -> None:
    """A channel nobody can post to, a rejected event, and two datasets with objectives: d1
    registered a day ago and never updated (late), d2 just registered (ok)."""
    settings = load_settings(env={"DATABASE_URL": database_url})
    with bootstrap(settings, database_url=database_url) as container:
        container.catalog.load_catalog(
            {
                "series": [{"code": "A"}],
                "datasets": [
                    {"id": "d1", "series": ["A"], "expected_every": "PT1H"},
                    {"id": "d2", "series": ["A"], "expected_every": "P1D"},
                ],
                "notifications": [{"name": "odd", "url": UNUSABLE_URL, "secret": "shh-123"}],
            }
        )
        container.router.handle("{junk", source="test")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE datasets SET created_at = now() - interval '1 day' WHERE id = 'd1'")


def test_a_test_post_that_fails_prints_why_and_exits_1(database_url: str) -> None:
    seed(database_url)

    sent = cli(database_url, "notify", "test", "odd")

    assert sent.exit_code == 1, sent.output
    assert sent.stderr.splitlines()[-1].startswith("not delivered: ConnectError: ")
    assert "Traceback" not in sent.output
    unknown = cli(database_url, "notify", "test", "nobody")
    assert unknown.exit_code == 2
    assert "no notification channel named 'nobody'" in unknown.stderr


def test_incidents_list_filters_by_kind_and_shows_open_ones(database_url: str) -> None:
    seed(database_url)

    rejected = cli_json(
        cli(database_url, "incidents", "list", "--kind", "event_rejected", "--json")
    )
    late = cli_json(cli(database_url, "incidents", "list", "--kind", "dataset_late", "--json"))

    assert [i["kind"] for i in rejected["incidents"]] == ["event_rejected"]
    assert late["incidents"] == []  # judged on the sweeper's tick, which has not run here
    table = cli(database_url, "incidents", "list", "--open")
    assert table.exit_code == 0, table.output
    assert "open" in table.stdout
    assert cli(database_url, "incidents", "list", "--kind", "nope").exit_code == 2


def test_freshness_puts_failing_subjects_first_and_says_why(database_url: str) -> None:
    seed(database_url)

    board = cli_json(cli(database_url, "freshness", "--json"))

    assert [(f["name"], f["state"]) for f in board] == [("d1", "late"), ("d2", "ok")]
    assert board[0]["since"] == board[0]["due_at"]
    assert board[1]["since"] is None
    assert "no update since registration" in board[0]["why"]
    table = cli(database_url, "freshness")
    assert table.exit_code == 0, table.output
    assert "1 of 2 failing" in table.stdout
    assert table.stdout.index("d1") < table.stdout.index("d2")


def test_channels_at_a_terminal_never_show_the_secret(database_url: str) -> None:
    seed(database_url)

    listed = cli_json(cli(database_url, "notify", "channels", "--json"))

    assert [(c["name"], c["has_secret"]) for c in listed] == [("odd", True)]
    assert "secret" not in listed[0]
    assert "shh-123" not in cli(database_url, "notify", "channels").output
