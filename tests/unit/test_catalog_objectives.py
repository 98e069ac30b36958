"""Freshness objectives and notification channels as a catalog file gives them (SPEC §9):
validation at the JSON path, bounds, a grace that needs an objective, the channel rules, and a
secret that never shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.application.catalog_document import (
    CatalogDocument,
    check_dataset,
    in_document_order,
    read_catalog_document,
)
from metrics_orchestrator.application.catalog_spec import (
    ChannelSpec,
    DatasetSettings,
    DatasetSpec,
    MetricSettings,
    MetricSpec,
)
from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.expressions import parse_expression

SECRET = "hunter2-is-the-secret"


def _dataset(**fields: Any) -> dict[str, Any]:
    return {"id": "d1", "series": ["S1"], **fields}


def _metric(**fields: Any) -> dict[str, Any]:
    return {
        "id": "m1",
        "code": "m.one",
        "expression_type": "window_op",
        "expression": {"op": "sma", "series": {"series_code": "S1"}, "window": 5},
        **fields,
    }


def _channel(**fields: Any) -> dict[str, Any]:
    return {"name": "team", "url": "https://hooks.example.test/x", **fields}


def _read(raw: dict[str, Any]) -> tuple[CatalogDocument, dict[str, str]]:
    document, errors = read_catalog_document(raw)
    return document, {e.path: e.message for e in errors}


# --- objectives ------------------------------------------------------------------------------


def test_objectives_are_read_as_durations() -> None:
    document, errors = _read(
        {
            "datasets": [_dataset(expected_every="P1DT12H", grace="PT90M")],
            "metrics": [_metric(max_data_age="P2W")],
        }
    )

    assert errors == {}
    dataset = document.datasets[0].item
    assert (dataset.expected_every, dataset.grace) == (timedelta(hours=36), timedelta(minutes=90))
    assert document.metrics[0].item.max_data_age == timedelta(days=14)


def test_objectives_left_out_are_none_and_the_stored_metric_carries_its_own() -> None:
    document, errors = _read({"datasets": [_dataset()], "metrics": [_metric()]})

    assert errors == {}
    assert (document.datasets[0].item.expected_every, document.datasets[0].item.grace) == (
        None,
        None,
    )
    assert document.metrics[0].item.to_metric(7).max_data_age is None
    _, with_age = _read({"metrics": [_metric(max_data_age="PT6H")]})
    assert with_age == {}


def test_an_objective_is_not_part_of_a_metric_s_definition_version() -> None:
    expression = parse_expression("window_op", _metric()["expression"])
    plain = MetricSpec.model_validate(_metric()).with_expression(expression)
    with_age = MetricSpec.model_validate(_metric(max_data_age="P1D")).with_expression(expression)

    assert plain.to_metric(7).definition_version == with_age.to_metric(7).definition_version
    assert with_age.to_metric(7).max_data_age == timedelta(days=1)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("P1M", "months and years have no fixed length"),
        ("P1Y", "months and years have no fixed length"),
        ("1 day", "is not an ISO-8601 duration"),
        ("PT", "is not an ISO-8601 duration"),
        ("", "is not an ISO-8601 duration"),
        ("PT0S", "out of range: from PT1S to P366D"),
        ("P367D", "out of range: from PT1S to P366D"),
        ("P53W", "out of range: from PT1S to P366D"),
        (3600, "must be an ISO-8601 duration such as PT6H or P1D"),
        (True, "must be an ISO-8601 duration such as PT6H or P1D"),
        (["P1D"], "must be an ISO-8601 duration such as PT6H or P1D"),
        ("P" + "1" * 80 + "D", "must be an ISO-8601 duration such as PT6H or P1D"),
    ],
)
def test_a_bad_objective_is_refused_at_its_path(value: object, words: str) -> None:
    _, errors = _read(
        {
            "datasets": [_dataset(expected_every=value)],
            "metrics": [_metric(max_data_age=value)],
        }
    )

    assert set(errors) == {"datasets[0].expected_every", "metrics[0].max_data_age"}
    assert words in errors["datasets[0].expected_every"]
    assert words in errors["metrics[0].max_data_age"]
    assert "Value error" not in errors["metrics[0].max_data_age"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expected_every", "PT1S"),
        ("expected_every", "P366D"),
        ("expected_every", "p1d"),
        ("grace", "PT0S"),
        ("grace", "P366D"),
    ],
)
def test_the_bounds_themselves_are_accepted(field: str, value: str) -> None:
    fields = {"expected_every": "PT1H", field: value}
    _, errors = _read({"datasets": [_dataset(**fields)]})
    assert errors == {}


def test_a_grace_beyond_the_bounds_is_refused() -> None:
    _, errors = _read({"datasets": [_dataset(expected_every="P1D", grace="P367D")]})
    assert errors == {"datasets[0].grace": "'P367D' is out of range: from PT0S to P366D"}


def test_a_grace_alone_is_refused_it_means_nothing_without_an_objective() -> None:
    _, errors = _read({"datasets": [_dataset(grace="PT1H"), _dataset(id="d2", grace="PT0S")]})

    assert errors == {
        "datasets[0].grace": "grace needs expected_every (it is slack after the expected interval)",
        "datasets[1].grace": "grace needs expected_every (it is slack after the expected interval)",
    }


def test_a_grace_beside_an_invalid_objective_is_not_called_alone() -> None:
    document, errors = _read({"datasets": [_dataset(expected_every="P1M", grace="PT1H")]})

    assert list(errors) == ["datasets[0].expected_every"]
    # kept for the checks against the rest of the catalog; the error keeps it from being written
    assert [e.item.id for e in document.datasets] == ["d1"]


def test_a_dataset_from_the_api_with_a_grace_alone_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        check_dataset(DatasetSpec.model_validate(_dataset(grace="PT5M")))
    assert [e.path for e in refused.value.errors] == ["grace"]

    checked = check_dataset(
        DatasetSpec.model_validate(_dataset(expected_every="PT1H", grace="PT5M"))
    )
    assert checked.item.grace == timedelta(minutes=5)


@pytest.mark.parametrize(
    "value",
    [timedelta(0), timedelta(days=367), timedelta(seconds=1.5), timedelta(seconds=-1)],
)
def test_a_duration_given_in_python_is_held_to_the_same_bounds(value: timedelta) -> None:
    with pytest.raises(ValidationError) as refused:
        MetricSettings.checked({"max_data_age": value})
    assert [e.path for e in refused.value.errors] == ["max_data_age"]
    assert MetricSettings.checked({"max_data_age": timedelta(hours=2)}).max_data_age == timedelta(
        hours=2
    )


def test_settings_tell_a_null_that_removes_from_a_field_left_out() -> None:
    kept = DatasetSettings.model_validate({"enabled": False})
    removed = DatasetSettings.model_validate({"expected_every": None, "grace": None})
    set_ = DatasetSettings.model_validate({"expected_every": "PT6H", "grace": "PT1H"})

    assert (kept.removes_objective, kept.resets_grace) == (False, False)
    assert (removed.removes_objective, removed.resets_grace) == (True, True)
    assert (set_.removes_objective, set_.resets_grace) == (False, False)
    assert MetricSettings.model_validate({"max_data_age": None}).removes_max_data_age
    assert not MetricSettings.model_validate({"enabled": True}).removes_max_data_age


# --- notification channels -------------------------------------------------------------------


def test_a_channel_is_read_with_every_field() -> None:
    document, errors = _read(
        {
            "notifications": [
                _channel(
                    format="slack",
                    secret=SECRET,
                    kinds=["run_failed", "dataset_late"],
                    metrics=["fx.*", "reserves.?"],
                    enabled=False,
                ),
                _channel(name="plain", url="HTTP://127.0.0.1:8080/hook"),
            ]
        }
    )

    assert errors == {}
    team, plain = (located.item for located in document.channels)
    assert (team.format, team.secret, team.kinds, team.metrics, team.enabled) == (
        "slack",
        SECRET,
        ["run_failed", "dataset_late"],
        ["fx.*", "reserves.?"],
        False,
    )
    assert (plain.format, plain.secret, plain.kinds, plain.metrics, plain.enabled) == (
        "json",
        None,
        None,
        None,
        True,
    )
    # the scheme as the notifier and the database read it
    assert plain.url == "http://127.0.0.1:8080/hook"
    settings = team.to_settings()
    assert (settings.name, settings.kinds, settings.metrics) == (
        "team",
        ("run_failed", "dataset_late"),
        ("fx.*", "reserves.?"),
    )


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"name": "has space"}, "name", "A-Z a-z 0-9"),
        ({"name": "a/b"}, "name", "A-Z a-z 0-9"),
        ({"name": "n" * 129}, "name", "A-Z a-z 0-9"),
        ({"url": "ftp://host/x"}, "url", "http or https URL"),
        ({"url": "https://"}, "url", "http or https URL"),
        ({"url": "mailto:team@example.test"}, "url", "http or https URL"),
        ({"url": "https://host:99999/x"}, "url", "http or https URL"),
        ({"url": "https://host:0/x"}, "url", "http or https URL"),
        ({"url": "https://[::1/x"}, "url", "http or https URL"),
        ({"url": "https://host/a b"}, "url", "http or https URL"),
        ({"url": "https://host/\x07"}, "url", "http or https URL"),
        ({"url": "https://xn--a/hook"}, "url", "IDNA"),
        ({"url": "https://hooks.xn--zz-zzz.test/"}, "url", "IDNA"),
        ({"url": "https://\u2603.net/hook"}, "url", "IDNA"),
        ({"url": "https://a\u200db.example/"}, "url", "IDNA"),
        ({"url": "https://host/\x00"}, "url", "NUL"),
        ({"url": "https://host/\ud800"}, "url", "lone surrogates"),
        ({"url": "https://h/" + "x" * 2039}, "url", "2048"),
        ({"url": 42}, "url", "must be a string"),
        ({"format": "teams"}, "format", "unknown format 'teams'; expected json or slack"),
        ({"kinds": ["run_failed", "nope"]}, "kinds[1]", "run_failed"),
        ({"kinds": "run_failed"}, "kinds", "list"),
        ({"metrics": [""]}, "metrics[0]", "must not be empty"),
        ({"metrics": ["x" * 129]}, "metrics[0]", "128"),
        ({"metrics": ["m"] * 101}, "metrics", "100"),
        ({"enabled": "yes"}, "enabled", "must be true or false"),
        ({"colour": "red"}, "colour", "unknown key"),
    ],
)
def test_a_bad_channel_field_is_refused_at_its_path(
    fields: dict[str, object], path: str, words: str
) -> None:
    _, errors = _read({"notifications": [_channel(**fields)]})

    assert f"notifications[0].{path}" in errors, errors
    assert words in errors[f"notifications[0].{path}"]


def test_a_host_in_unicode_with_an_idna_form_is_accepted() -> None:
    document, errors = _read({"notifications": [_channel(url="https://bücher.example/hook")]})

    assert errors == {}
    assert document.channels[0].item.url == "https://bücher.example/hook"


# Host labels as people and attackers write them: plain, punycode (valid or not), any text.
_LABELS = st.one_of(
    st.from_regex(r"[a-z0-9-]{1,10}", fullmatch=True),
    st.from_regex(r"xn--[a-z0-9-]{0,10}", fullmatch=True),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=6),
)


@given(st.lists(_LABELS, min_size=1, max_size=3), st.sampled_from(["http", "https"]))
def test_every_channel_url_accepted_is_one_httpx_can_post_to(
    labels: list[str], scheme: str
) -> None:
    url = f"{scheme}://{'.'.join(labels)}/hook"
    document, errors = _read({"notifications": [_channel(url=url)]})

    if not errors:
        # what the notifier's sender builds before it connects: no exception here
        httpx.Request("POST", document.channels[0].item.url, content=b"{}")


def test_a_channel_needs_a_name_and_a_url_and_names_are_unique() -> None:
    _, errors = _read(
        {"notifications": [{"format": "json"}, _channel(), _channel(url="http://other/")]}
    )

    assert errors == {
        "notifications[0].name": "is required",
        "notifications[0].url": "is required",
        "notifications[2].name": "duplicate name 'team' (first at notifications[1])",
    }


@pytest.mark.parametrize(
    "secret", ["", "s" * 513, "with\x00nul", "lone \ud800 surrogate", 12345, ["list"]]
)
def test_a_bad_secret_is_refused_without_being_echoed(secret: object) -> None:
    _, errors = _read({"notifications": [_channel(secret=secret)]})

    assert errors == {
        "notifications[0].secret": "must be a string of 1 to 512 characters (text, no NUL)"
    }


def test_notifications_must_be_a_list_of_objects() -> None:
    assert _read({"notifications": {"name": "x"}})[1] == {
        "notifications": "must be a list, got an object"
    }
    assert _read({"notifications": ["x"]})[1] == {
        "notifications[0]": "must be an object, got a string"
    }


def test_the_secret_never_shows_in_a_repr_or_a_str() -> None:
    channel = ChannelSpec.model_validate(_channel(secret=SECRET))
    document, _ = _read({"notifications": [_channel(secret=SECRET)]})

    for shown in (repr(channel), str(channel), repr(document), str(document)):
        assert SECRET not in shown
    assert channel.secret == SECRET  # kept, to sign bodies with
    assert SECRET not in repr(channel.to_settings())


def test_a_channel_s_errors_come_after_the_entries_before_it_in_the_file() -> None:
    _, errors = read_catalog_document(
        {"notifications": [_channel(url="ftp://x")], "metrics": [_metric(max_data_age="P1M")]}
    )
    assert [e.path for e in in_document_order(errors)] == [
        "metrics[0].max_data_age",
        "notifications[0].url",
    ]
