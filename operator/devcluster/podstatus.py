"""Pod status documents as a real kubelet writes them.

Used by the process kubelet (:mod:`devcluster.kubelet`): it keeps one
:class:`ContainerRun` per container and asks :func:`build_status` for the
``status`` body it sends through the Pod ``status`` subresource (as a strategic
merge patch).  Phase and conditions follow the kubelet's rules closely enough
for the real Job controller (completions, failures, ``podFailurePolicy`` on exit
codes) and for ``kubectl get pods``.  Pure functions; unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MAX_TERMINATION_MESSAGE",
    "ContainerRun",
    "build_status",
    "exit_code_of",
    "now",
    "pod_phase",
    "terminated_reason",
]

# The kubelet reads at most this many bytes of a container's termination message.
MAX_TERMINATION_MESSAGE = 4096


def now() -> str:
    """Current time as the RFC 3339 (seconds) string the API uses."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code_of(returncode: int) -> int:
    """Map a ``subprocess`` return code to a container exit code (signal n -> 128+n)."""
    return 128 - returncode if returncode < 0 else returncode


def terminated_reason(exit_code: int) -> str:
    """The runtime's reason for a container that exited (no OOMKilled: no cgroups here)."""
    return "Completed" if exit_code == 0 else "Error"


@dataclass
class ContainerRun:
    """What the kubelet knows about one container of a pod."""

    name: str
    image: str = ""
    init: bool = False
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"  # waiting/terminated reason
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int = 0
    container_id: str = ""
    last_state: dict[str, Any] = field(default_factory=dict)

    # transitions -------------------------------------------------------
    def set_waiting(self, reason: str, message: str = "") -> None:
        self.state, self.reason, self.message = "waiting", reason, message

    def set_running(self, pid: int, started_at: str | None = None) -> None:
        self.state, self.reason, self.message = "running", "", ""
        self.started_at = started_at or now()
        self.finished_at = None
        self.exit_code = None
        self.container_id = f"process://{pid}"

    def set_terminated(
        self, exit_code: int, message: str = "", reason: str | None = None, finished_at: str | None = None
    ) -> None:
        self.state = "terminated"
        self.exit_code = exit_code
        self.reason = reason or terminated_reason(exit_code)
        self.message = message
        self.finished_at = finished_at or now()
        self.started_at = self.started_at or self.finished_at

    def prepare_restart(self) -> None:
        """Move the current terminated state to ``lastState`` before a restart."""
        self.last_state = {"terminated": self._terminated_doc()}
        self.restart_count += 1
        self.set_waiting(
            "CrashLoopBackOff" if self.exit_code else "Completed", f"back-off restarting container {self.name}"
        )
        self.started_at = None

    # documents -----------------------------------------------------------
    def _terminated_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if self.container_id:
            doc["containerID"] = self.container_id
        doc["message"] = self.message or None
        return doc

    def state_doc(self) -> dict[str, Any]:
        # null entries make a strategic merge patch drop the previous state
        if self.state == "running":
            return {"waiting": None, "terminated": None, "running": {"startedAt": self.started_at}}
        if self.state == "terminated":
            return {"waiting": None, "running": None, "terminated": self._terminated_doc()}
        waiting: dict[str, Any] = {"reason": self.reason, "message": self.message or None}
        return {"running": None, "terminated": None, "waiting": waiting}

    @property
    def ready(self) -> bool:
        return self.state == "running" and not self.init

    def status_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.state == "running",
            "state": self.state_doc(),
            "lastState": self.last_state or {"terminated": None},
        }
        if self.container_id:
            doc["containerID"] = self.container_id
        return doc


def pod_phase(restart_policy: str, init: list[ContainerRun], main: list[ContainerRun]) -> str:
    """The pod phase the kubelet would report for these container states."""
    restart_policy = restart_policy or "Always"
    for c in init:
        if c.state == "terminated" and c.exit_code and restart_policy == "Never":
            return "Failed"
        if not (c.state == "terminated" and c.exit_code == 0):
            return "Pending"
    if any(c.state == "running" for c in main):
        return "Running"
    if all(c.state == "terminated" for c in main):
        failed = any(c.exit_code for c in main)
        if restart_policy == "Always":
            return "Failed" if failed else "Succeeded"
        if restart_policy == "OnFailure" and failed:
            return "Running"  # the failed container is about to be restarted
        return "Failed" if failed else "Succeeded"
    if any(c.restart_count for c in main):
        return "Running"  # waiting in back-off between restarts
    return "Pending"


def _condition(ctype: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    # absent fields are sent as null so that a strategic merge patch clears stale values
    return {"type": ctype, "status": "True" if ok else "False", "reason": reason or None, "message": message or None}


def build_conditions(
    phase: str, init: list[ContainerRun], main: list[ContainerRun], sandbox_ready: bool
) -> list[dict[str, Any]]:
    terminal = phase in ("Succeeded", "Failed")
    if terminal:
        return [
            _condition("PodReadyToStartContainers", False),
            _condition("Initialized", True, "PodCompleted"),
            _condition("ContainersReady", False, "PodCompleted"),
            _condition("Ready", False, "PodCompleted"),
        ]
    conds = [_condition("PodReadyToStartContainers", sandbox_ready)]
    pending_init = [c.name for c in init if not (c.state == "terminated" and c.exit_code == 0)]
    if pending_init:
        conds.append(
            _condition(
                "Initialized",
                False,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            )
        )
    else:
        conds.append(_condition("Initialized", True))
    unready = [c.name for c in main if not c.ready]
    if unready:
        msg = f"containers with unready status: [{' '.join(unready)}]"
        conds.append(_condition("ContainersReady", False, "ContainersNotReady", msg))
        conds.append(_condition("Ready", False, "ContainersNotReady", msg))
    else:
        conds.append(_condition("ContainersReady", True))
        conds.append(_condition("Ready", True))
    return conds


def carry_transition_times(
    new: list[dict[str, Any]], previous: list[dict[str, Any]] | None, timestamp: str
) -> list[dict[str, Any]]:
    """Set ``lastTransitionTime``: kept from ``previous`` when the status did not change."""
    prev = {c.get("type"): c for c in previous or []}
    for cond in new:
        old = prev.get(cond["type"])
        if old and old.get("status") == cond["status"] and old.get("lastTransitionTime"):
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = timestamp
        cond.setdefault("lastProbeTime", None)
    return new


def build_status(
    *,
    restart_policy: str,
    init: list[ContainerRun],
    main: list[ContainerRun],
    start_time: str,
    host_ip: str = "127.0.0.1",
    pod_ip: str | None = None,
    sandbox_ready: bool = True,
    previous_conditions: list[dict[str, Any]] | None = None,
    phase: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """The full ``status`` document for a pod."""
    phase = phase or pod_phase(restart_policy, init, main)
    conditions = carry_transition_times(
        build_conditions(phase, init, main, sandbox_ready), previous_conditions, timestamp or now()
    )
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip or host_ip,
        "podIPs": [{"ip": pod_ip or host_ip}],
        "startTime": start_time,
        "containerStatuses": [c.status_doc() for c in main],
    }
    if init:
        status["initContainerStatuses"] = [c.status_doc() for c in init]
    return status
