"""Status transitions of an ExportJob: from what was observed to the status to write. Pure.

Each function takes the current status and what the reconciler observed, and
returns the next status. Conditions keep their `lastTransitionTime` while their
`status` does not change (API conventions), so rewriting the same observation
is a no-op, and `status_patch` sends only what changed.
"""

from __future__ import annotations

from typing import Any, Literal

from exportjob.controller.outcome import Outcome
from exportjob.reasons import Reason
from exportjob.status import ADMITTED, COMPLETE, FAILED, Condition, ExportJobStatus

ConditionStatus = Literal["True", "False", "Unknown"]

# Positions are not written into each object (every admission would shift them all):
# they are computed on demand from one LIST (docs/operator.md, "The queue").
QUEUED_MESSAGE = "waiting for a free slot; `kubectl exportjob queue` shows the position"


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB' (binary units, as kubectl users read sizes)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def with_condition(
    status: ExportJobStatus,
    type_: str,
    value: ConditionStatus,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """The conditions of `status` with `type_` set; lastTransitionTime moves only when `value` changes."""
    previous = status.condition(type_)
    since = previous.last_transition_time if previous is not None and previous.status == value else now
    updated = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    others = [c for c in status.conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: c.type)


def queued(status: ExportJobStatus, *, now: str, generation: int | None) -> ExportJobStatus:
    """Ready to run, waiting for a slot."""
    conditions = with_condition(
        status,
        ADMITTED,
        "False",
        Reason.QUEUED,
        QUEUED_MESSAGE,
        now,
        generation,
    )
    return status.model_copy(
        update={
            "phase": "Queued",
            "observed_generation": generation,
            "conditions": conditions,
            "queued_at": status.queued_at or now,
            "message": None,
            "reason": None,
        }
    )


def waiting(status: ExportJobStatus, *, reason: str, message: str, now: str, generation: int | None) -> ExportJobStatus:
    """Not ready: something it needs (a claim, a Secret) is missing. Holds no slot; retried."""
    conditions = with_condition(status, ADMITTED, "False", reason, message, now, generation)
    return status.model_copy(
        update={
            "phase": "Waiting",
            "observed_generation": generation,
            "conditions": conditions,
            "queued_at": status.queued_at or now,
            "reason": reason,
            "message": message,
        }
    )


def admitted(
    status: ExportJobStatus,
    *,
    job_name: str,
    claim: str,
    path: str,
    now: str,
    generation: int | None,
    attempts: int = 0,
    start_time: str | None = None,
) -> ExportJobStatus:
    """A slot is held and the worker Job exists."""
    conditions = with_condition(
        status, ADMITTED, "True", Reason.ADMITTED, f"worker Job {job_name} is running the export", now, generation
    )
    return status.model_copy(
        update={
            "phase": "Running",
            "observed_generation": generation,
            "conditions": conditions,
            "job_name": job_name,
            "admitted_at": status.admitted_at or now,
            "claim_name": claim,
            "path": path,
            "attempts": attempts or status.attempts,
            "start_time": start_time or status.start_time,
            "reason": None,
            "message": None,
        }
    )


def finished(status: ExportJobStatus, *, outcome: Outcome, now: str, generation: int | None) -> ExportJobStatus:
    """The export is over, one way or the other. Terminal: never changes again."""
    result = outcome.result
    common: dict[str, Any] = {
        "observed_generation": generation,
        "attempts": outcome.attempts or status.attempts,
        "start_time": result.get("startedAt") or outcome.start_time or status.start_time,
        "completion_time": result.get("finishedAt") or outcome.completion_time or now,
        "duration_seconds": result.get("durationSeconds"),
        "worker_peak_memory_bytes": result.get("peakMemoryBytes"),
    }
    if outcome.state == "Succeeded":
        size = int(result.get("bytes") or 0)
        message = f"wrote {result.get('rows', 0)} rows ({human_size(size)}) to {result.get('path') or status.path}"
        if result.get("replacedGlyphs"):
            message += (
                f"; {result['replacedGlyphs']} characters that no font of pdf.fonts has were printed as '?'"
                " (see docs/pdf.md)"
            )
        conditions = with_condition(status, COMPLETE, "True", Reason.SUCCEEDED, message, now, generation)
        return status.model_copy(
            update={
                **common,
                "phase": "Succeeded",
                "conditions": conditions,
                "rows": result.get("rows"),
                "bytes": size,
                "size": human_size(size),
                "sha256": result.get("sha256"),
                "path": result.get("path") or status.path,
                "reason": None,
                "message": None,
            }
        )
    reason = outcome.reason or Reason.WORKER_CRASHED
    message = outcome.message or reason
    conditions = with_condition(status, FAILED, "True", reason, message, now, generation)
    return status.model_copy(
        update={
            **common,
            "phase": "Failed",
            "conditions": conditions,
            "reason": reason,
            "message": message,
        }
    )


def failed_before_start(
    status: ExportJobStatus, *, reason: str, message: str, now: str, generation: int | None
) -> ExportJobStatus:
    """A problem only the operator can see, before any worker ran (e.g. an invalid stored spec)."""
    outcome = Outcome("Failed", reason=reason, message=message, completion_time=now)
    return finished(status, outcome=outcome, now=now, generation=generation)


def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning status `old` into `new` (removed fields set to null); {} when equal."""
    patch: dict[str, Any] = {key: value for key, value in new.items() if old.get(key) != value}
    patch.update({key: None for key in old if key not in new})
    return patch
