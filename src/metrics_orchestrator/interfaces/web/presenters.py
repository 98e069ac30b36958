"""What pages show, computed from application read models: formulas, timelines, buttons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID

from metrics_orchestrator.application.ports.runs import AttemptSummary
from metrics_orchestrator.application.refresh import StaleRefresh
from metrics_orchestrator.domain.errors import Conflict, IllegalTransition, NotLatestAttempt
from metrics_orchestrator.domain.metric_outputs import output_metric_code
from metrics_orchestrator.domain.metric_state import MetricState
from metrics_orchestrator.domain.model import Cause, MetricRun, change_for
from metrics_orchestrator.domain.retries import check_latest_attempt, check_manual_retry
from metrics_orchestrator.domain.staleness import StaleReason

TIMES = "\N{MULTIPLICATION SIGN}"
_INFIX = {"ratio": "/", "multiply": TIMES, "subtract": "\N{MINUS SIGN}", "add": "+"}


# --- formatting --------------------------------------------------------------------------


def dataset_href(dataset_id: str) -> str:
    """A dataset's page; for a metric's output (`metric:X`, SPEC §8) the page of metric X."""
    code = output_metric_code(dataset_id)
    if code is not None:
        return f"/ui/metrics/{quote(code)}"
    return f"/ui/datasets/{quote(dataset_id)}"


def version_href(dataset_id: str, update_id: UUID | str) -> str:
    """A dataset version's page (a version of a metric's output `metric:X` included)."""
    return f"/ui/datasets/{quote(dataset_id, safe='')}/versions/{update_id}"


# A manifest path in a list is cut to its end (where the version is named); the whole path is
# its tooltip and on the version's page.
SHORT_PATH = 48


def short_path(path: str, limit: int = SHORT_PATH) -> str:
    """The end of `path`, "…" first when it was cut."""
    if len(path) <= limit:
        return path
    return "…" + path[len(path) - limit + 1 :]


def when(moment: datetime | None) -> str:
    """A moment in UTC, to the second (the API's timestamps are UTC too)."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(value: timedelta | float | None) -> str:
    """A short human duration: 850 ms, 42 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    whole = int(seconds)
    units = ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s"))
    for size, name, sub, sub_name in units:
        if whole >= size:
            rest = (whole % size) // sub
            return f"{sign}{whole // size} {name}" + (f" {rest} {sub_name}" if rest else "")
    return f"{sign}{whole} s"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "—"
    return duration((now or datetime.now(UTC)) - moment) + " ago"


def data_age(age_seconds: float | None) -> str:
    """How old the data behind a metric's latest success is (SPEC §8): `data 3 h old`."""
    if age_seconds is None:
        return "no data yet"
    return f"data {duration(age_seconds)} old"


# --- data time and staleness (SPEC §8) -----------------------------------------------------

# What a person can do about each reason, under the reason the domain states.
STALE_HINTS: Mapping[StaleReason, str] = {
    StaleReason.DEFINITION_CHANGED: "its latest success was computed with an older definition",
    StaleReason.NEWER_INPUT: "an input has a newer version than its latest success used, "
    "and no run is on its way to consume it",
    StaleReason.UPSTREAM_STALE: "a metric it reads is stale itself; refreshing that one brings "
    "this one up to date",
}


def refresh_notice(refreshed: StaleRefresh) -> str:
    """What "Refresh stale metrics" did, in the one-line notice the next page shows."""
    if not refreshed.runs and not refreshed.refused:
        # refresh_roots leaves a root with a run on its way to that run
        return "nothing to refresh: no stale metric is without a run on its way"
    parts = []
    if refreshed.runs:
        count = len(refreshed.runs)
        parts.append(
            f"refresh queued for {count} stale metric{'' if count == 1 else 's'}: "
            f"{', '.join(refreshed.runs)} (the chain brings the rest up to date)"
        )
    if refreshed.refused:
        refused = "; ".join(f"{code} ({why})" for code, why in refreshed.refused.items())
        parts.append(f"not run: {refused}")
    return ". ".join(parts)


# --- expressions ---------------------------------------------------------------------------


def formula(node: Any) -> str:
    """An expression tree as one readable formula, e.g. `((RESERVES * FX@fx_daily) / CPI)`."""
    if not isinstance(node, Mapping):
        return str(node)
    if "op" not in node:
        return _reference(node)
    op = str(node["op"])
    if "operands" in node:
        text = f"{op}({', '.join(formula(o) for o in node.get('operands', []))})"
        return text + _alignment(node, "first")
    if "series" in node:
        return f"{op}({formula(node['series'])}, {node.get('window')})"
    text = f"({formula(node.get('left'))} {_INFIX.get(op, op)} {formula(node.get('right'))})"
    if node.get("scale") is not None:
        text = f"{text} {TIMES} {node['scale']}"
    return text + _alignment(node, "left")


def _alignment(node: Mapping[str, Any], index_operand: str) -> str:
    """` [as of left, ≤ 62 d]` for an as-of node (SPEC §3.1); nothing for the outer default."""
    if node.get("align") != "asof":
        return ""
    max_age = node.get("max_age_days")
    age = "" if max_age is None else f", \N{LESS-THAN OR EQUAL TO} {max_age} d"
    return f" [as of {index_operand}{age}]"


def _reference(node: Mapping[str, Any]) -> str:
    code = node.get("series_code", node.get("seriesCode", "?"))
    dataset = node.get("dataset_id", node.get("datasetId"))
    return f"{code}@{dataset}" if dataset else str(code)


@dataclass(frozen=True, slots=True)
class TreeNode:
    label: str
    children: tuple[TreeNode, ...] = ()


def expression_tree(node: Any) -> TreeNode:
    """The same tree, for a nested list: operators with their operands underneath."""
    if not isinstance(node, Mapping) or "op" not in node:
        return TreeNode(_reference(node) if isinstance(node, Mapping) else str(node))
    op = str(node["op"])
    if "operands" in node:
        operands = tuple(expression_tree(o) for o in node.get("operands", []))
        return TreeNode(op + _alignment(node, "first"), operands)
    if "series" in node:
        return TreeNode(f"{op} (window {node.get('window')})", (expression_tree(node["series"]),))
    label = op if node.get("scale") is None else f"{op} {TIMES} {node['scale']}"
    children = (expression_tree(node.get("left")), expression_tree(node.get("right")))
    return TreeNode(label + _alignment(node, "left"), children)


# --- runs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineStep:
    label: str
    at: datetime
    since_previous: timedelta | None


def run_timeline(run: MetricRun) -> list[TimelineStep]:
    """The run's recorded moments in order, each with the time since the previous one."""
    moments = [
        ("created", run.created_at),
        ("queued", run.queued_at),
        ("dispatched", run.dispatched_at),
        ("started", run.started_at),
        ("last heartbeat", run.last_heartbeat_at),
        (f"completed ({run.status})", run.completed_at),
    ]
    steps: list[TimelineStep] = []
    previous: datetime | None = None
    for label, at in moments:
        if at is None:
            continue
        steps.append(TimelineStep(label, at, at - previous if previous else None))
        previous = at
    return steps


@dataclass(frozen=True, slots=True)
class ButtonState:
    enabled: bool
    reason: str  # why it is disabled (empty when enabled)


def cancel_button(run: MetricRun, signed_in: bool) -> ButtonState:
    """Enabled where the lifecycle allows a cancel (the domain's table decides)."""
    try:
        change_for(Cause.CANCEL, run.status)
    except IllegalTransition:
        return ButtonState(False, f"a {run.status} run has ended; it cannot be canceled")
    return _needs_sign_in(signed_in)


def newer_attempt(run: MetricRun, attempts: Sequence[AttemptSummary]) -> AttemptSummary | None:
    """The latest attempt of the run's chain when it is not this run (SPEC §5.6)."""
    latest = max(attempts, key=lambda a: a.attempt, default=None)
    if latest is None:
        return None
    try:
        check_latest_attempt(run.id, run.attempt, latest.id, latest.attempt)
    except NotLatestAttempt:
        return latest
    return None


def retry_button(
    run: MetricRun, signed_in: bool, newer: AttemptSummary | None = None
) -> ButtonState:
    """Enabled where a manual retry is allowed (the domain's rules decide, and say why not)."""
    if newer is not None:
        return ButtonState(False, f"attempt {newer.attempt} is the latest of this chain")
    try:
        check_manual_retry(run.id, run.status, run.request_payload is not None)
    except Conflict as refused:
        return ButtonState(False, str(refused))
    return _needs_sign_in(signed_in)


def action_button(signed_in: bool) -> ButtonState:
    return _needs_sign_in(signed_in)


def _needs_sign_in(signed_in: bool) -> ButtonState:
    if signed_in:
        return ButtonState(True, "")
    return ButtonState(False, "sign in with the API token to use this button")


STATUS_CLASSES: Mapping[str, str] = {
    "pending_dependencies": "waiting",
    "queued": "active",
    "dispatched": "active",
    "running": "active",
    "succeeded": "ok",
    "failed": "bad",
    "timed_out": "bad",
    "canceled": "muted",
}


# A metric's state (domain/metric_state.py) as a badge class: only failing is a warning; waiting
# is neutral (a run collecting its inputs is normal), disabled is muted.
STATE_CLASSES: Mapping[str, str] = {
    MetricState.HEALTHY: "ok",
    MetricState.WAITING: "neutral",
    MetricState.RUNNING: "active",
    MetricState.FAILING: "bad",
    MetricState.DISABLED: "muted",
}
