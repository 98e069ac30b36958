"""What readiness and impact mean in words: shared by the HTTP views and the CLI (SPEC §6.1, §6.3).

Both read `Orchestrator.readiness` / `Orchestrator.impact`, which ask the same `evaluate_metric`
that intake asks, so what they say is what intake would do.
"""

from __future__ import annotations

from metrics_orchestrator.application.ports.intake import MetricInputs
from metrics_orchestrator.domain.orchestration import (
    Evaluation,
    InputAssessment,
    InputStatus,
    Outcome,
    fresh_until,
)

IMPACT_ACTIONS: dict[Outcome, str] = {
    Outcome.READY: "would_run",
    Outcome.WAITING: "would_wait",
    Outcome.UNCHANGED: "no_change",
}


def explain(mi: MetricInputs, evaluation: Evaluation, blocking: list[str]) -> str:
    policy = mi.metric.trigger_policy.value
    if evaluation.outcome is Outcome.READY:
        return f"ready: every input has a fresh version and the {policy} policy holds"
    reasons = [
        _blocking_reason(a, mi.metric.required_days)
        for a in evaluation.inputs
        if a.dataset_id in blocking
    ]
    if evaluation.outcome is Outcome.WAITING:
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
