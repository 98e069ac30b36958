"""Response model of `GET /datasets/{id}/versions/{update_id}`: a version at the centre
(issue 25), with the run that wrote it and the runs that consumed it."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from metrics_orchestrator.application.ports.queries import DatasetVersion
from metrics_orchestrator.domain.model import RunStatus, RunTrigger
from metrics_orchestrator.interfaces.http.models import DatasetUpdateOut


class VersionProducerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: UUID
    metric_code: str
    status: RunStatus


class VersionConsumerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: UUID = Field(validation_alias="id")
    metric_code: str
    status: RunStatus
    trigger: RunTrigger
    attempt: int
    created_at: datetime
    completed_at: datetime | None
    output_manifest: str | None = Field(description="What the run reported it wrote, if it did.")
    row_count: int | None
    output_dataset_id: str | None = Field(
        description="`metric:X` when the run's success made a version of its metric's output "
        "(SPEC §8), else null."
    )
    output_update_id: UUID | None = Field(
        description="That version's id (GET /datasets/{output_dataset_id}/versions/{id})."
    )


class DatasetVersionOut(DatasetUpdateOut):
    dataset_id: str
    is_freshest: bool = Field(
        description="Whether this is the dataset's freshest version now (SPEC §5.2; for "
        "`metric:X`, the output of the latest formed run, §8)."
    )
    run_id: UUID | None = Field(
        description="For a version of a metric's output: the run that wrote it."
    )
    formed_at: datetime | None = Field(description="When that run's chain was formed.")
    produced_by: VersionProducerOut | None = Field(
        description="For a version of a metric's output: that run, its metric and status."
    )
    consumed_by: list[VersionConsumerOut] = Field(
        description="The runs whose lineage holds this version, newest first, each with what "
        "it produced (at most 100)."
    )
    more_consumers: bool = Field(description="More runs consumed it than `consumed_by` lists.")

    @classmethod
    def of(cls, version: DatasetVersion) -> DatasetVersionOut:
        facts = version.facts
        update = facts.update
        return cls(
            **DatasetUpdateOut.model_validate(update).model_dump(),
            dataset_id=update.dataset_id,
            is_freshest=facts.is_freshest,
            run_id=update.run_id,
            formed_at=update.formed_at,
            produced_by=VersionProducerOut.model_validate(facts.produced_by)
            if facts.produced_by is not None
            else None,
            consumed_by=[VersionConsumerOut.model_validate(c) for c in version.consumers],
            more_consumers=version.more_consumers,
        )
