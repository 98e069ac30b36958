"""`metrics readiness CODE` (why not yet) and `datasets impact ID` (dry run), at a terminal.

Through the graph of metrics (SPEC §8): an input `metric:X` says what X itself is doing, and
the impact lists every metric downstream with its depth.
"""

from __future__ import annotations

from collections.abc import Mapping

import typer

from metrics_orchestrator.application.ports.intake import MetricInputs
from metrics_orchestrator.application.verdicts import IMPACT_ACTIONS, explain
from metrics_orchestrator.domain.metric_outputs import output_metric_code
from metrics_orchestrator.domain.metric_state import StateVerdict
from metrics_orchestrator.domain.orchestration import Evaluation, MetricDecision, fresh_until
from metrics_orchestrator.interfaces.cli.reading import (
    JSON_OPTION,
    print_json,
    print_table,
    read_container,
)

metrics_app = typer.Typer(help="Ask about metrics.", no_args_is_help=True)
datasets_app = typer.Typer(help="Ask about datasets.", no_args_is_help=True)


@metrics_app.command("readiness")
def readiness_command(
    code: str = typer.Argument(..., metavar="CODE", help="The metric's code."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The metric's state, and why not yet: each input's freshest update and freshness."""
    with read_container() as container:
        now = container.clock.now()
        inputs, evaluation = container.intake.readiness(code)
        state = container.queries.metric_state(code)
        upstream = container.queries.upstream_states(inputs.metric.required_datasets)
    report = readiness_report(inputs, evaluation, upstream)
    rows = readiness_inputs(inputs, evaluation, upstream)
    if as_json:
        print_json(
            report | {"state": state.state.value, "state_reason": state.reason, "evaluated_at": now}
        )
        return
    typer.echo(f"{code}: {state.state.value} ({state.reason})")
    typer.echo(f"readiness: {report['explanation']}")
    print_table(
        f"inputs of {code} ({inputs.metric.trigger_policy.value}, "
        f"{inputs.metric.required_days} days fresh)",
        ["dataset", "status", "new", "freshest version", "received", "fresh until", "upstream"],
        [_input_row(i) for i in rows],
    )


def _input_row(i: dict[str, object]) -> list[object]:
    new = "yes" if i["is_new"] else "no"
    return [
        i["dataset_id"],
        i["status"],
        new,
        i["freshest_version"],
        i["freshest_received_at"],
        i["fresh_until"],
        _upstream_text(i["upstream"]),
    ]


def _upstream_text(upstream: object) -> str | None:
    if not isinstance(upstream, dict):
        return None
    return f"{upstream['metric_code']}: {upstream['state']} ({upstream['reason']})"


def _upstream_item(dataset_id: str, upstream: Mapping[str, StateVerdict]) -> object:
    """For an input on `metric:X`: X's state and why (None for a dataset of projections)."""
    code = output_metric_code(dataset_id)
    if code is None or code not in upstream:
        return None
    verdict = upstream[code]
    return {
        "metric_code": code,
        "state": verdict.state.value,
        "reason": verdict.reason,
        "waiting_for": list(verdict.waiting_for),
    }


def readiness_inputs(
    mi: MetricInputs, evaluation: Evaluation, upstream: Mapping[str, StateVerdict]
) -> list[dict[str, object]]:
    inputs: list[dict[str, object]] = []
    for assessment in evaluation.inputs:
        freshest = assessment.freshest
        inputs.append(
            {
                "dataset_id": assessment.dataset_id,
                "status": assessment.status.value,
                "is_new": assessment.is_new,
                "freshest_update_id": freshest.id if freshest else None,
                "freshest_version": freshest.version_manifest_path if freshest else None,
                "freshest_received_at": freshest.received_at if freshest else None,
                "fresh_until": fresh_until(freshest, mi.metric.required_days) if freshest else None,
                "upstream": _upstream_item(assessment.dataset_id, upstream),
            }
        )
    return inputs


def readiness_report(
    mi: MetricInputs, evaluation: Evaluation, upstream: Mapping[str, StateVerdict]
) -> dict[str, object]:
    blocking = list(evaluation.waiting_for(mi.metric.trigger_policy))
    return {
        "metric_code": mi.metric.code,
        "trigger_policy": mi.metric.trigger_policy.value,
        "required_days": mi.metric.required_days,
        "outcome": evaluation.outcome.value,
        "ready": evaluation.outcome is MetricDecision.READY,
        "waiting_for": blocking,
        "explanation": explain(mi, evaluation, blocking),
        "pending_run_id": mi.pending_run_id,
        "inputs": readiness_inputs(mi, evaluation, upstream),
    }


@datasets_app.command("impact")
def impact_command(
    dataset_id: str = typer.Argument(..., metavar="ID", help="The dataset's id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Dry run: what a new version of this dataset arriving now would do."""
    with read_container() as container:
        now = container.clock.now()
        results = container.intake.impact(dataset_id)
        below = container.queries.downstream_of(mi.metric.code for mi, _ in results)
    downstream = [
        {"metric_code": code, "depth": depth}
        for code, depth in sorted(below.items(), key=lambda cd: (cd[1], cd[0]))
    ]
    metrics = [
        {
            "metric_code": mi.metric.code,
            "action": IMPACT_ACTIONS[evaluation.outcome],
            "waiting_for": list(evaluation.waiting_for(mi.metric.trigger_policy)),
        }
        for mi, evaluation in sorted(results, key=lambda result: result[0].metric.code)
    ]
    if as_json:
        print_json(
            {
                "dataset_id": dataset_id,
                "evaluated_at": now,
                "metrics": metrics,
                "downstream": downstream,
            }
        )
        return
    print_table(
        f"a new version of {dataset_id} now would affect {len(metrics)} "
        f"metric{'' if len(metrics) == 1 else 's'}",
        ["metric", "action", "still waiting for"],
        [[m["metric_code"], m["action"], ", ".join(m["waiting_for"]) or "-"] for m in metrics],
    )
    if downstream:
        print_table(
            "and below them, when their runs succeed",
            ["metric", "depth"],
            [[d["metric_code"], d["depth"]] for d in downstream],
        )
