"""Readiness ("why not yet") and impact (dry run) as API bodies (SPEC §6.3).

Both come from `IntakeService.readiness` / `IntakeService.impact`, which ask the same
`evaluate_metric` that intake asks, so what they say is what intake would do. Through the
graph of metrics (SPEC §8): an input `metric:X` says what X itself is doing (its state, from
`QueryService.upstream_states`), and the impact lists every metric downstream with its depth
(`QueryService.downstream_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from metrics_orchestrator.application.ports.intake import MetricInputs
from metrics_orchestrator.application.verdicts import IMPACT_ACTIONS, explain
from metrics_orchestrator.domain.metric_outputs import output_metric_code
from metrics_orchestrator.domain.metric_state import StateVerdict
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputAssessment,
    MetricDecision,
    fresh_until,
)
from metrics_orchestrator.interfaces.http.models import (
    DownstreamMetricOut,
    ImpactMetricOut,
    ImpactOut,
    InputReadinessOut,
    ReadinessOut,
    UpdateRefOut,
    UpstreamOut,
)


def readiness_view(
    mi: MetricInputs,
    evaluation: Evaluation,
    now: datetime,
    upstream: Mapping[str, StateVerdict] | None = None,
) -> ReadinessOut:
    """`upstream`: the state of each metric whose output is an input, by code."""
    blocking = list(evaluation.waiting_for(mi.metric.trigger_policy))
    return ReadinessOut(
        metric_code=mi.metric.code,
        trigger_policy=mi.metric.trigger_policy,
        required_days=mi.metric.required_days,
        evaluated_at=now,
        outcome=evaluation.outcome,
        ready=evaluation.outcome is MetricDecision.READY,
        waiting_for=blocking,
        explanation=explain(mi, evaluation, blocking),
        pending_run_id=mi.pending_run_id,
        inputs=[_input_view(mi, assessment, upstream or {}) for assessment in evaluation.inputs],
    )


def impact_view(
    dataset_id: str,
    results: list[tuple[MetricInputs, Evaluation]],
    now: datetime,
    downstream: Mapping[str, int] | None = None,
) -> ImpactOut:
    """`downstream`: every metric below the ones affected at once, with its depth."""
    metrics = [
        ImpactMetricOut(
            metric_code=mi.metric.code,
            action=IMPACT_ACTIONS[evaluation.outcome],
            waiting_for=list(evaluation.waiting_for(mi.metric.trigger_policy)),
        )
        for mi, evaluation in sorted(results, key=lambda result: result[0].metric.code)
    ]
    return ImpactOut(
        dataset_id=dataset_id,
        evaluated_at=now,
        would_run=[m.metric_code for m in metrics if m.action == "would_run"],
        would_wait=[m.metric_code for m in metrics if m.action == "would_wait"],
        metrics=metrics,
        downstream=[
            DownstreamMetricOut(metric_code=code, depth=depth)
            for code, depth in sorted((downstream or {}).items(), key=lambda cd: (cd[1], cd[0]))
        ],
    )


def _upstream_view(dataset_id: str, upstream: Mapping[str, StateVerdict]) -> UpstreamOut | None:
    code = output_metric_code(dataset_id)
    if code is None or code not in upstream:
        return None
    return UpstreamOut.of(code, upstream[code])


def _input_view(
    mi: MetricInputs, assessment: InputAssessment, upstream: Mapping[str, StateVerdict]
) -> InputReadinessOut:
    freshest = assessment.freshest
    facts = next(f for f in mi.facts if f.dataset_id == assessment.dataset_id)
    return InputReadinessOut(
        dataset_id=assessment.dataset_id,
        series_codes=[
            d.series_code for d in mi.metric.dependencies if d.dataset_id == assessment.dataset_id
        ],
        status=assessment.status,
        is_new=assessment.is_new,
        freshest_update=UpdateRefOut(
            update_id=freshest.id,
            version_manifest_path=freshest.version_manifest_path,
            effective_at=freshest.effective_at,
            received_at=freshest.received_at,
        )
        if freshest is not None
        else None,
        fresh_until=fresh_until(freshest, mi.metric.required_days) if freshest else None,
        last_run_update_id=facts.last_used.id if facts.last_used is not None else None,
        upstream=_upstream_view(assessment.dataset_id, upstream),
    )
