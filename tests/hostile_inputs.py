"""Hypothesis strategies of hostile message bodies (issue 10, SPEC §5.8).

Shared by the router property test (real PostgreSQL) and the HTTP intake property test:
arbitrary bytes, arbitrary JSON (non-finite numbers, huge integers, deep nesting, long strings,
extreme timestamps), envelopes inside envelopes, and near-valid events (a valid event with one
field mutated or removed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

RUN_ID = "6a1e7d4c-0000-4000-8000-000000000001"

VALID_EVENTS: list[dict[str, Any]] = [
    {
        "event": "projection_update",
        "dataset_id": "d1",
        "bucket": "ingestor-datasets",
        "version_manifest_path": "datasets/d1/versions/v1/manifest.json",
        "projections_path": "datasets/d1/projections",
        "occurred_at": "2025-11-11T01:41:38Z",
    },
    {"type": "metric_run_started", "runId": RUN_ID, "startedAt": "2025-11-11T11:59:00Z"},
    {"type": "metric_run_heartbeat", "runId": RUN_ID, "progress": 0.5, "ts": "2025-11-11T12:00Z"},
    {
        "type": "metric_run_completed",
        "runId": RUN_ID,
        "metricCode": "ratio.a_to_b",
        "status": "SUCCESS",
        "versionTs": "2025-11-11T01-43-05",
        "outputManifest": "s3://metrics-output/metrics/ratio.a_to_b/v/manifest.json",
        "rowCount": 5421,
    },
]

offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59)
)
timestamps = st.one_of(
    st.datetimes(timezones=st.one_of(offsets, st.just(UTC))).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # no zone
    st.sampled_from(
        [
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "9999-12-30T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2999-01-01T00:00:00Z",
            "not a date",
        ]
    ),
)
# Written into the JSON text as they are: json.dumps cannot produce these literals.
raw_numbers = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, "100000000000000000000"]
)
long_strings = st.sampled_from([0, 1, 128, 129, 1024, 1025, 10_000]).map(lambda n: "x" * n)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # includes NaN and infinities: json.dumps writes them as NaN / Infinity
    st.text(max_size=40),
    long_strings,
    timestamps,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_PLACEHOLDER = "__RAW_NUMBER__"


def _with_raw_number(document: Any, literal: str) -> str:
    """The document as JSON, one placeholder string replaced by a raw number literal."""
    return json.dumps(document).replace(f'"{_PLACEHOLDER}"', literal, 1)


@st.composite
def near_valid_events(draw: st.DrawFn) -> str:
    event = dict(draw(st.sampled_from(VALID_EVENTS)))
    field = draw(st.sampled_from(sorted(event)))
    action = draw(st.sampled_from(["replace", "remove", "raw_number"]))
    if action == "remove":
        del event[field]
        return json.dumps(event)
    if action == "raw_number":
        event[field] = _PLACEHOLDER
        return _with_raw_number(event, draw(raw_numbers))
    event[field] = draw(json_values)
    return json.dumps(event)


@st.composite
def deeply_nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=1, max_value=1000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = opener * depth + "1" + closer * depth
    return draw(st.sampled_from([inner, '{"event": "projection_update", "x": ' + inner + "}"]))


@st.composite
def enveloped(draw: st.DrawFn, bodies: st.SearchStrategy[str]) -> str:
    body = draw(bodies)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        body = json.dumps({"Type": "Notification", "Message": body})
    return body


text_bodies = st.one_of(
    near_valid_events(),
    json_values.map(json.dumps),
    deeply_nested(),
    st.sampled_from(VALID_EVENTS).map(json.dumps),
)
hostile_bodies: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=300),
    text_bodies.map(lambda text: text.encode("utf-8", "surrogatepass")),
    enveloped(text_bodies).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.tuples(st.binary(max_size=20), text_bodies).map(
        lambda pair: pair[0] + pair[1].encode("utf-8", "surrogatepass")
    ),
)


def fixed_now() -> datetime:
    return datetime(2025, 11, 11, 12, 0, tzinfo=UTC)
