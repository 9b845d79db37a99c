"""The ExportJob `status`: its typed model and the vocabulary of phases, conditions and reasons.

The operator writes status only through these models (so what it writes always
fits the CRD's structural schema, which is generated from them in
`exportjob.crd`), and tests and tools read it through them. Pure: no client,
no Kopf.

Status follows the Kubernetes API conventions: `conditions` are the source of
truth (a list keyed by `type`, each with `status`, a CamelCase `reason`, a
human `message` and `lastTransitionTime`); `phase` is only a one-word summary
for printer columns and humans; `observedGeneration` says which spec the status
describes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Phase = Literal["Queued", "Waiting", "Running", "Succeeded", "Failed"]
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed"})

# Condition types.
ADMITTED = "Admitted"  # True once a slot is granted and the worker Job exists.
COMPLETE = "Complete"  # True when the file is written (terminal).
FAILED = "Failed"  # True when the export failed for good (terminal).

# Every reason (condition reasons, failure reasons): exportjob.reasons.Reason.


class _StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(_StatusModel):
    """One observation of the ExportJob's state (Kubernetes API conventions)."""

    type: str = Field(description="Admitted, Complete or Failed.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the condition's last transition.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: str = Field(description="When the condition last changed status (RFC 3339).")
    observed_generation: int | None = Field(default=None, description="The spec generation this condition describes.")


class ExportJobStatus(_StatusModel):
    """Observed state of the export. Rebuilt by the operator from the worker Job and its result."""

    phase: Phase | None = Field(default=None, description="Summary: Queued, Waiting, Running, Succeeded or Failed.")
    observed_generation: int | None = Field(default=None, description="The spec generation last acted upon.")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions keyed by type.")
    job_name: str | None = Field(default=None, description="Name of the worker Job, once admitted.")
    queued_at: str | None = Field(default=None, description="When the export was first seen waiting.")
    admitted_at: str | None = Field(default=None, description="When a slot was granted.")
    start_time: str | None = Field(
        default=None, description="When the worker started writing (recorded with its result)."
    )
    completion_time: str | None = Field(default=None, description="When the export finished (either way).")
    duration_seconds: float | None = Field(default=None, description="Worker wall time of the successful attempt.")
    attempts: int | None = Field(default=None, description="Worker Pods started for this export.")
    rows: int | None = Field(default=None, description="Data rows written (header excluded).")
    bytes: int | None = Field(default=None, description="Size of the file in bytes.")
    size: str | None = Field(default=None, description="Size of the file, human readable.")
    sha256: str | None = Field(default=None, description="SHA-256 of the file, hex.")
    path: str | None = Field(default=None, description="Path of the file relative to the volume root.")
    claim_name: str | None = Field(default=None, description="The PersistentVolumeClaim holding the file.")
    worker_peak_memory_bytes: int | None = Field(default=None, description="Peak resident memory of the worker.")
    reason: str | None = Field(default=None, description="CamelCase failure reason, when Failed.")
    message: str | None = Field(default=None, description="What went wrong and what to do, when Failed or Waiting.")

    def condition(self, condition_type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
