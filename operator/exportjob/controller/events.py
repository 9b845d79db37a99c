"""Which Kubernetes Events a status change deserves. Pure: one function of old and new status.

The reconciler posts these after the status write that made the change
succeeded, so each transition is announced once, also across retries.
"""

from __future__ import annotations

from dataclasses import dataclass

from exportjob.reasons import Reason
from exportjob.status import ExportJobStatus


@dataclass(frozen=True)
class EventSpec:
    type: str  # Normal or Warning
    reason: str
    message: str


def events_for(old: ExportJobStatus, new: ExportJobStatus) -> list[EventSpec]:
    if new.phase == old.phase and new.reason == old.reason:
        return []
    if new.phase == "Queued":
        return [EventSpec("Normal", Reason.QUEUED, "waiting for a free slot")]
    if new.phase == "Waiting":
        return [EventSpec("Warning", new.reason or "Waiting", new.message or "")]
    if new.phase == "Running" and old.phase != "Running":
        return [EventSpec("Normal", Reason.ADMITTED, f"started worker Job {new.job_name}")]
    if new.phase == "Succeeded":
        message = f"wrote {new.rows} rows ({new.size}) to {new.path}, sha256 {new.sha256}"
        return [EventSpec("Normal", Reason.SUCCEEDED, message)]
    if new.phase == "Failed":
        return [EventSpec("Warning", new.reason or "Failed", new.message or "export failed")]
    return []
