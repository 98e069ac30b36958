"""What readiness and impact mean in words: shared by the HTTP views and the CLI (SPEC §6.1, §6.3).

Both read `IntakeService.readiness` / `IntakeService.impact`, which ask the same `evaluate_metric`
that intake asks, so what they say is what intake would do.
"""

from __future__ import annotations

from typing import Literal

from metrics_orchestrator.application.ports.intake import MetricInputs
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputAssessment,
    InputStatus,
    MetricDecision,
    fresh_until,
)

# What a dry run says intake would do, in the words of the API, the CLI and the dashboard.
ImpactAction = Literal["would_run", "would_wait", "no_change"]

IMPACT_ACTIONS: dict[MetricDecision, ImpactAction] = {
    MetricDecision.READY: "would_run",
    MetricDecision.WAITING: "would_wait",
    MetricDecision.UNCHANGED: "no_change",
}


def explain(mi: MetricInputs, evaluation: Evaluation, blocking: list[str]) -> str:
    policy = mi.metric.trigger_policy.value
    if evaluation.outcome is MetricDecision.READY:
        return f"ready: every input has a fresh version and the {policy} policy holds"
    reasons = [
        _blocking_reason(a, mi.metric.required_days)
        for a in evaluation.inputs
        if a.dataset_id in blocking
    ]
    if evaluation.outcome is MetricDecision.WAITING:
        return f"waiting ({policy}): " + "; ".join(reasons)
    if reasons:
        return f"not ready ({policy}): " + "; ".join(reasons)
    return (
        f"up to date ({policy}): no input has a version newer than the one the last automatic "
        "run used; the next new version of any input runs it"
    )


def _blocking_reason(assessment: InputAssessment, required_days: int) -> str:
    dataset_id = assessment.dataset_id
    if assessment.status is InputStatus.MISSING:
        return f"{dataset_id} has no update yet"
    if assessment.status is InputStatus.STALE and assessment.freshest is not None:
        until = fresh_until(assessment.freshest, required_days).isoformat()
        return f"{dataset_id} is stale (its freshest update stopped being fresh at {until})"
    return f"{dataset_id} has no version newer than the one the last automatic run used"
