"""`incidents list|show`, `notify channels|test` and `freshness` at a terminal (SPEC §6.1, §9),
against a real database and a real local receiver."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from metrics_orchestrator.bootstrap import bootstrap, load_settings
from tests.integration.cli_helpers import cli, cli_json
from tests.receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as served:
        yield served


def seed(database_url: str, receiver_url: str) -> None:
    """Two rejected events (two incidents), a channel and an objective."""
    settings = load_settings(env={"DATABASE_URL": database_url})
    with bootstrap(settings, database_url=database_url) as container:
        container.catalog.load_catalog(
            {
                "series": [{"code": "A"}],
                "datasets": [{"id": "d1", "series": ["A"], "expected_every": "PT1S"}],
                "notifications": [{"name": "ops", "url": receiver_url, "secret": "shh"}],
            }
        )
        container.router.handle("{junk", source="test")
        container.router.handle("{more junk", source="test")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE datasets SET created_at = now() - interval '1 day'")


def test_incidents_at_a_terminal(database_url: str, receiver: Receiver) -> None:
    seed(database_url, receiver.url)

    listed = cli(database_url, "incidents", "list", "--open")
    assert listed.exit_code == 0, listed.output
    assert "2 incidents" in listed.output
    assert "event_rejected" in listed.output
    page = cli_json(cli(database_url, "incidents", "list", "--json", "--limit", "1"))
    assert len(page["incidents"]) == 1
    assert page["next_before"] == page["incidents"][0]["id"]

    shown = cli(database_url, "incidents", "show", str(page["incidents"][0]["id"]))
    assert shown.exit_code == 0, shown.output
    assert "occurrences" in shown.output
    assert cli(database_url, "incidents", "show", "999999").exit_code == 2


def test_notify_and_freshness_at_a_terminal(database_url: str, receiver: Receiver) -> None:
    seed(database_url, receiver.url)

    channels = cli(database_url, "notify", "channels")
    assert channels.exit_code == 0, channels.output
    assert "ops" in channels.output
    assert "shh" not in channels.output + cli(database_url, "notify", "channels", "--json").output

    sent = cli(database_url, "notify", "test", "ops")
    assert sent.exit_code == 0, sent.output
    assert "delivered: HTTP 200" in sent.output
    assert receiver.received[0].document["type"] == "test"
    assert cli(database_url, "notify", "test", "nope").exit_code == 2
    receiver.status = 500
    assert cli(database_url, "notify", "test", "ops").exit_code == 1

    freshness = cli_json(cli(database_url, "freshness", "--json"))
    assert [(f["what"], f["name"], f["state"]) for f in freshness] == [("dataset", "d1", "late")]
