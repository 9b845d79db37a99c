"""What to do with one unfinished ExportJob, given what was observed. Pure.

`decide` is the whole decision table of the reconciler; the reconciler only
observes (watch events into its store), calls `decide`, and carries out the
action. Table, first match wins:

| observed                                          | action                          |
|---------------------------------------------------|---------------------------------|
| being deleted                                     | `Skip` (its Job goes with it)   |
| status already terminal (it is leaving the watch) | `Skip`                          |
| stored spec does not parse                        | `FailInvalid` (terminal)        |
| worker Job exists and has finished                | `Finish` from the Job's outcome |
| worker Job exists, still running                  | `Follow` (attempts, start time) |
| a claim / Secret / ServiceAccount is missing      | `Wait` (holds no slot)          |
| otherwise                                         | `Queue` for a slot              |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exportjob.controller.outcome import job_finished
from exportjob.reasons import Reason
from exportjob.status import ExportJobStatus


@dataclass(frozen=True)
class Missing:
    """A prerequisite that does not exist (yet)."""

    reason: Reason
    message: str


@dataclass(frozen=True)
class Skip:
    why: str


@dataclass(frozen=True)
class FailInvalid:
    message: str


@dataclass(frozen=True)
class Follow:
    job: dict[str, Any]


@dataclass(frozen=True)
class Finish:
    job: dict[str, Any]


@dataclass(frozen=True)
class Wait:
    missing: Missing


@dataclass(frozen=True)
class Queue:
    job_lost: bool = False  # it was Running but its Job is gone: queued again, with a Warning


Action = Skip | FailInvalid | Follow | Finish | Wait | Queue


def decide(
    *,
    deleting: bool,
    status: ExportJobStatus,
    spec_error: str | None,
    job: dict[str, Any] | None,
    prerequisites: Callable[[], Missing | None],
) -> Action:
    """The action for one unfinished ExportJob. `prerequisites` is called only when they matter."""
    if deleting:
        return Skip("being deleted")
    if status.is_terminal:
        return Skip("finished")
    if spec_error is not None:
        return FailInvalid(spec_error)
    if job is not None:
        return Finish(job) if job_finished(job) else Follow(job)
    missing = prerequisites()
    if missing is not None:
        return Wait(missing)
    return Queue(job_lost=status.phase == "Running")
