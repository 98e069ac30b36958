"""`metrics list`, `metrics show CODE` and `datasets list` (SPEC §6.1): the catalog with what
happened to it lately.

The same read use cases as GET /metrics and GET /datasets (the catalog service, pages cut by
key), joined with the newest run of each metric, its data time and staleness (SPEC §8), the
freshest update of each dataset, and their freshness objectives judged now (SPEC §9), by the
same rules as GET /metrics, GET /datasets and `freshness`.
"""

from __future__ import annotations

from datetime import timedelta

import typer

from metrics_orchestrator.application.pagination import keyset_page
from metrics_orchestrator.application.ports.queries import LastRun
from metrics_orchestrator.application.queries import MetricData
from metrics_orchestrator.domain.durations import format_duration
from metrics_orchestrator.domain.freshness import Freshness
from metrics_orchestrator.domain.metric_state import StateVerdict
from metrics_orchestrator.domain.model import Dataset, DatasetUpdate, Metric
from metrics_orchestrator.interfaces.cli.reading import (
    JSON_OPTION,
    cell_text,
    print_fields,
    print_json,
    print_table,
    read_container,
)

LIMIT_OPTION = typer.Option(100, min=1, max=500, help="At most this many.")
CURSOR_OPTION = typer.Option(None, help="The next-page cursor of a previous list.")


def list_metrics_command(
    limit: int = LIMIT_OPTION, cursor: str | None = CURSOR_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Metrics by code: their state and why, trigger policy, newest run and objective."""
    with read_container() as container:
        metrics, next_cursor = keyset_page(
            container.catalog.list_metrics(), lambda m: m.code, limit, cursor
        )
        last_runs = container.queries.last_run_by_metric()
        codes = [m.code for m in metrics]
        states = container.queries.metric_states(codes)
        data = container.queries.metric_data(codes)
        board = container.incidents.freshness(datasets=(), metrics=codes)
    items = [
        metric_item(
            m, states[m.code], last_runs.get(m.code), data[m.code], board.metrics.get(m.code)
        )
        for m in metrics
    ]
    if as_json:
        print_json({"items": items, "next_cursor": next_cursor})
        return
    print_table(
        f"{len(items)} metric{'' if len(items) == 1 else 's'}",
        [
            "code",
            "state",
            "why",
            "trigger policy",
            "last run",
            "created",
            "ended",
            "data time",
            "stale",
            "max data age",
        ],
        [
            [
                i["code"],
                i["state"],
                i["state_reason"],
                i["trigger_policy"],
                i["last_run_status"] or "never ran",
                i["last_run_created_at"],
                i["last_run_completed_at"],
                i["data_time"],
                i["stale_reason"] or "no",
                _objective_text(i["max_data_age"], i["freshness"]),
            ]
            for i in items
        ],
    )
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


def show_metric_command(
    code: str = typer.Argument(..., metavar="CODE", help="The metric's code."),
    as_json: bool = JSON_OPTION,
) -> None:
    """One metric: its state and why, its newest run, its data time, whether it is stale, and
    its freshness objective judged now."""
    with read_container() as container:
        metric = container.catalog.get_metric(code)
        last = container.queries.last_run_by_metric().get(metric.code)
        state = container.queries.metric_state(metric.code)
        data = container.queries.metric_data([metric.code])[metric.code]
        board = container.incidents.freshness(datasets=(), metrics=[metric.code])
    freshness = board.metrics.get(metric.code)
    item = metric_item(metric, state, last, data, freshness) | {
        "expression_type": metric.expression_type,
        "expression": metric.expression_json,
        "required_datasets": list(metric.required_datasets),
    }
    if as_json:
        print_json(item)
        return
    print_fields(
        f"metric {metric.code}",
        [
            ("state", f"{item['state']} ({item['state_reason']})"),
            ("stale", item["stale_reason"] or "no"),
            ("data time", item["data_time"]),
            ("data age", _age_text(data.data_age_seconds)),
            ("max data age", item["max_data_age"] or "none (no objective)"),
            ("freshness", _freshness_text(freshness)),
            ("inputs", ", ".join(metric.required_datasets)),
            ("trigger policy", item["trigger_policy"]),
            ("required days", item["required_days"]),
            ("enabled", "yes" if metric.enabled else "no"),
            ("last run", item["last_run_status"] or "never ran"),
            ("last run created", item["last_run_created_at"]),
            ("last run ended", item["last_run_completed_at"]),
        ],
    )


def _age_text(seconds: float | None) -> str | None:
    """An age a person reads at a glance: whole days, hours and minutes."""
    if seconds is None:
        return None
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def _iso(duration: timedelta | None) -> str | None:
    return None if duration is None else format_duration(duration)


def freshness_item(freshness: Freshness | None) -> dict[str, object] | None:
    """An objective judged now, as GET /metrics and GET /datasets show it (None without one)."""
    if freshness is None:
        return None
    return {
        "state": str(freshness.state),
        "due_at": freshness.due_at,
        "since": freshness.since,
        "why": freshness.why,
    }


def _objective_text(objective: object, freshness: object) -> str | None:
    """A table cell: the objective and how it stands now, e.g. `P2D (overdue)`."""
    if objective is None:
        return None
    if not isinstance(freshness, dict):
        return str(objective)
    return f"{objective} ({freshness['state']})"


def _freshness_text(freshness: Freshness | None) -> str:
    if freshness is None:
        return "-"
    if freshness.since is not None:
        return f"{freshness.state} since {cell_text(freshness.since)}: {freshness.why}"
    return f"{freshness.state} until {cell_text(freshness.due_at)}: {freshness.why}"


def metric_item(
    metric: Metric,
    state: StateVerdict,
    last: LastRun | None,
    data: MetricData,
    freshness: Freshness | None = None,
) -> dict[str, object]:
    return {
        "code": metric.code,
        "id": metric.id,
        "state": state.state,
        "state_reason": state.reason,
        "trigger_policy": metric.trigger_policy,
        "enabled": metric.enabled,
        "required_days": metric.required_days,
        "last_run_status": last.status if last else None,
        "last_run_created_at": last.created_at if last else None,
        "last_run_completed_at": last.completed_at if last else None,
        "data_time": data.data_time,
        "data_age_seconds": data.data_age_seconds,
        "stale": data.staleness.stale,
        "stale_reason": str(data.staleness) if data.staleness.stale else None,
        "max_data_age": _iso(metric.max_data_age),
        "freshness": freshness_item(freshness),
    }


def list_datasets_command(
    limit: int = LIMIT_OPTION, cursor: str | None = CURSOR_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Datasets by id: how many series they provide, their freshest version and when it came,
    and their freshness objective (expected every, grace) judged now."""
    with read_container() as container:
        datasets, next_cursor = keyset_page(
            container.catalog.list_datasets(), lambda d: d.id, limit, cursor
        )
        freshest = container.queries.freshest_update_by_dataset()
        board = container.incidents.freshness(datasets=[d.id for d in datasets], metrics=())
    items = [dataset_item(d, freshest.get(d.id), board.datasets.get(d.id)) for d in datasets]
    if as_json:
        print_json({"items": items, "next_cursor": next_cursor})
        return
    print_table(
        f"{len(items)} dataset{'' if len(items) == 1 else 's'}",
        ["id", "enabled", "series", "freshest version", "received", "expected every"],
        [
            [
                i["id"],
                "yes" if i["enabled"] else "no",
                i["series_count"],
                i["freshest_version"] or "none yet",
                i["freshest_received_at"],
                _objective_text(_every_text(i), i["freshness"]),
            ]
            for i in items
        ],
    )
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


def _every_text(item: dict[str, object]) -> str | None:
    """`PT6H`, or `PT6H + grace PT30M` when there is slack."""
    every, grace = item["expected_every"], item["grace"]
    if every is None:
        return None
    return f"{every}" if grace == "PT0S" else f"{every} + grace {grace}"


def dataset_item(
    dataset: Dataset, freshest: DatasetUpdate | None, freshness: Freshness | None = None
) -> dict[str, object]:
    return {
        "id": dataset.id,
        "enabled": dataset.enabled,
        "series_count": len(dataset.series),
        "freshest_version": freshest.version_manifest_path if freshest else None,
        "freshest_received_at": freshest.received_at if freshest else None,
        "freshest_occurred_at": freshest.occurred_at if freshest else None,
        "expected_every": _iso(dataset.expected_every),
        "grace": format_duration(dataset.grace),
        "freshness": freshness_item(freshness),
    }
