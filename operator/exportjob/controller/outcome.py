"""What happened to a worker Job: running, succeeded with a result, or failed with a reason.

Reads only the objects the API server returns (the Job and its Pods, as
dictionaries) and the worker's result JSON from the Pod's termination message.
Pure, so every failure path is unit-tested without a cluster; the reconciler
turns an `Outcome` into status, events and metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """The observed state of one worker Job."""

    state: str  # "Running", "Succeeded" or "Failed"
    result: dict[str, Any] = field(default_factory=dict)  # the worker's result JSON, when there is one
    reason: str | None = None  # CamelCase failure reason
    message: str | None = None
    attempts: int = 0
    start_time: str | None = None
    completion_time: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("Succeeded", "Failed")


def _condition(job: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type and condition.get("status") == "True":
            return condition
    return None


def job_finished(job: dict[str, Any]) -> bool:
    """The Job has its terminal condition (Complete or Failed): its slot is free."""
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated
    return None


def _last_terminated(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    finished = [t for t in (_terminated(p) for p in pods) if t]
    return max(finished, key=lambda t: t.get("finishedAt") or "", default=None)


def parse_result(message: str | None) -> dict[str, Any]:
    """The worker's result JSON from a termination message; {} when absent or not ours."""
    if not message:
        return {}
    try:
        result = json.loads(message)
    except ValueError:
        return {}
    return result if isinstance(result, dict) and "ok" in result else {}


def _crash_message(terminated: dict[str, Any] | None) -> str:
    if not terminated:
        return "the worker Pod ended without reporting a result"
    code = terminated.get("exitCode")
    detail = terminated.get("reason") or "Error"
    if code is not None and code >= 128:
        return (
            f"the worker was killed by signal {code - 128} ({detail}); "
            "if it was OOMKilled, raise the worker memory limit"
        )
    return f"the worker exited with code {code} ({detail}) without reporting a result; see its logs"


def observe_job(job: dict[str, Any], pods: list[dict[str, Any]]) -> Outcome:
    """Classify a worker Job and, when it has finished, explain how."""
    status = job.get("status") or {}
    attempts = int(status.get("succeeded") or 0) + int(status.get("failed") or 0) + int(status.get("active") or 0)
    common: dict[str, Any] = {"attempts": attempts, "start_time": status.get("startTime")}
    terminated = _last_terminated(pods)
    result = parse_result(terminated.get("message") if terminated else None)

    if _condition(job, "Complete"):
        completion = status.get("completionTime")
        if result.get("ok") is True:
            return Outcome("Succeeded", result=result, completion_time=completion, **common)
        return Outcome(
            "Failed",
            reason="WorkerCrashed",
            completion_time=completion,
            message="the worker Job completed but its Pod reported no result",
            **common,
        )

    failed = _condition(job, "Failed")
    if failed:
        completion = failed.get("lastTransitionTime")
        job_reason = failed.get("reason") or ""
        if job_reason == "DeadlineExceeded":
            limit = (job.get("spec") or {}).get("activeDeadlineSeconds")
            return Outcome(
                "Failed",
                reason="DeadlineExceeded",
                completion_time=completion,
                result=result,
                message=f"the export did not finish within activeDeadlineSeconds={limit}; raise it or export less",
                **common,
            )
        if result.get("ok") is False and result.get("reason"):
            return Outcome(
                "Failed",
                reason=str(result["reason"]),
                message=str(result.get("message") or ""),
                completion_time=completion,
                result=result,
                **common,
            )
        if job_reason == "BackoffLimitExceeded":
            return Outcome(
                "Failed",
                reason="WorkerCrashed",
                completion_time=completion,
                result=result,
                message=f"retries exhausted after {attempts} attempts: {_crash_message(terminated)}",
                **common,
            )
        return Outcome(
            "Failed",
            reason="WorkerCrashed",
            completion_time=completion,
            result=result,
            message=f"{job_reason or 'the Job failed'}: {_crash_message(terminated)}",
            **common,
        )
    return Outcome("Running", **common)
