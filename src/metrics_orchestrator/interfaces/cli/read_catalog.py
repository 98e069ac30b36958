"""`metrics list`, `metrics show CODE` and `datasets list` (SPEC §6.1): the catalog with what
happened to it lately.

The same read use cases as GET /metrics and GET /datasets (the catalog service, pages cut by
key), joined with the newest run of each metric, its data time and staleness (SPEC §8), and the
freshest update of each dataset.
"""

from __future__ import annotations

import typer

from metrics_orchestrator.application.pagination import keyset_page
from metrics_orchestrator.application.ports.queries import LastRun
from metrics_orchestrator.application.queries import MetricData
from metrics_orchestrator.domain.metric_state import StateVerdict
from metrics_orchestrator.domain.model import Dataset, DatasetUpdate, Metric
from metrics_orchestrator.interfaces.cli.reading import (
    JSON_OPTION,
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
    """Metrics by code: their state and why, trigger policy, and their newest run."""
    with read_container() as container:
        metrics, next_cursor = keyset_page(
            container.catalog.list_metrics(), lambda m: m.code, limit, cursor
        )
        last_runs = container.queries.last_run_by_metric()
        codes = [m.code for m in metrics]
        states = container.queries.metric_states(codes)
        data = container.queries.metric_data(codes)
    items = [metric_item(m, states[m.code], last_runs.get(m.code), data[m.code]) for m in metrics]
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
    """One metric: its state and why, its newest run, its data time and whether it is stale."""
    with read_container() as container:
        metric = container.catalog.get_metric(code)
        last = container.queries.last_run_by_metric().get(metric.code)
        state = container.queries.metric_state(metric.code)
        data = container.queries.metric_data([metric.code])[metric.code]
    item = metric_item(metric, state, last, data) | {
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


def metric_item(
    metric: Metric, state: StateVerdict, last: LastRun | None, data: MetricData
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
    }


def list_datasets_command(
    limit: int = LIMIT_OPTION, cursor: str | None = CURSOR_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Datasets by id: how many series they provide, their freshest version and when it came."""
    with read_container() as container:
        datasets, next_cursor = keyset_page(
            container.catalog.list_datasets(), lambda d: d.id, limit, cursor
        )
        freshest = container.queries.freshest_update_by_dataset()
    items = [dataset_item(d, freshest.get(d.id)) for d in datasets]
    if as_json:
        print_json({"items": items, "next_cursor": next_cursor})
        return
    print_table(
        f"{len(items)} dataset{'' if len(items) == 1 else 's'}",
        ["id", "enabled", "series", "freshest version", "received"],
        [
            [
                i["id"],
                "yes" if i["enabled"] else "no",
                i["series_count"],
                i["freshest_version"] or "none yet",
                i["freshest_received_at"],
            ]
            for i in items
        ],
    )
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


def dataset_item(dataset: Dataset, freshest: DatasetUpdate | None) -> dict[str, object]:
    return {
        "id": dataset.id,
        "enabled": dataset.enabled,
        "series_count": len(dataset.series),
        "freshest_version": freshest.version_manifest_path if freshest else None,
        "freshest_received_at": freshest.received_at if freshest else None,
        "freshest_occurred_at": freshest.occurred_at if freshest else None,
    }
