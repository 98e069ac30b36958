"""Request and response of `POST /runs/bulk`: retry or cancel several runs, each through its
own use case (application/run_batches.py), with each run's outcome."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from metrics_orchestrator.application.catalog_spec import Text
from metrics_orchestrator.application.run_batches import (
    MAX_BATCH,
    BatchAction,
    BatchOutcome,
    BatchReport,
)


class RunBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: BatchAction = Field(description="`retry` or `cancel`, the same for every run.")
    run_ids: list[UUID] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"1 to {MAX_BATCH} run ids; a repeated id is acted on once.",
    )
    reason: Text | None = Field(
        default=None, description="A cancel's status reason (ignored by a retry)."
    )


class BatchOutcomeOut(BaseModel):
    run_id: UUID
    done: bool
    message: str = Field(description="What was done, or why not, in the domain's words.")
    refusal: str | None = Field(
        description="Why not, in short: `unknown run`, `not the latest attempt`, "
        "`cannot be retried`, `already ended`; null when done."
    )
    new_run_id: UUID | None = Field(description="A retry's new run.")

    @classmethod
    def of(cls, outcome: BatchOutcome) -> BatchOutcomeOut:
        return cls(
            run_id=outcome.run_id,
            done=outcome.done,
            message=outcome.message,
            refusal=outcome.refusal or None,
            new_run_id=outcome.new_run_id,
        )


class RunBatchOut(BaseModel):
    action: BatchAction
    done: int
    refused: int
    outcomes: list[BatchOutcomeOut] = Field(description="One per run, in the order given.")

    @classmethod
    def of(cls, report: BatchReport) -> RunBatchOut:
        return cls(
            action=report.action,
            done=report.done,
            refused=report.refused,
            outcomes=[BatchOutcomeOut.of(o) for o in report.outcomes],
        )
