"""The operator's picture of the cluster, kept from watch events. Pure (no I/O, no locks).

Only unfinished objects are watched (server-side selectors: `status.phase` not
terminal on ExportJobs, no `exportjob.io/finished` label on worker Jobs), so the store holds what
is queued, waiting or running, never the finished history: its size and the
cost of a reconcile pass do not grow with the number of exports ever run.

Objects arrive from two places: the watch events (through Kopf's handlers) and
full LISTs (at start, on becoming leader, every `full_resync_seconds`, after
errors). Both are ordered by resourceVersion, so an event older than what the
store holds is ignored, and an event about an object the store does not hold
is ignored if it is not newer than the last LIST (the object was deleted since).
kube-apiserver's resourceVersions are etcd revisions, which increase; the store
compares them as integers and, should one ever not be an integer, trusts the
later arrival.

The reconciler also writes its own results in (a Job it has just created, so
the next pass counts the slot before the watch event arrives).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from exportjob.controller.manifests import LABEL_EXPORT_UID, LABEL_FINISHED
from exportjob.controller.outcome import job_finished
from exportjob.status import TERMINAL_PHASES

Object = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(obj: Object) -> Object:
    """The object without what the operator never reads and that dominates its size: managedFields and
    kubectl's last-applied copy of the whole object. Holding thousands of queued exports costs less."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if "managedFields" not in meta and LAST_APPLIED not in annotations:
        return obj
    meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**obj, "metadata": meta}


def _rv(obj: Object) -> int | None:
    try:
        return int(obj["metadata"].get("resourceVersion") or "")
    except (KeyError, ValueError):
        return None


def _newer(candidate: Object, held: Object | None) -> bool:
    if held is None:
        return True
    a, b = _rv(candidate), _rv(held)
    return a is None or b is None or a >= b


def owner_uid(job: Object) -> str | None:
    return (job["metadata"].get("labels") or {}).get(LABEL_EXPORT_UID)


def is_labelled_finished(job: Object) -> bool:
    return LABEL_FINISHED in (job["metadata"].get("labels") or {})


def is_finished_export(ej: Object) -> bool:
    """Terminal: it has left the operator's watch (UNFINISHED_EXPORTJOB_FIELD_SELECTOR), or is leaving it."""
    return (ej.get("status") or {}).get("phase") in TERMINAL_PHASES


@dataclass
class Change:
    """What one event or LIST changed, for the reconciler to act on."""

    exports: set[str] = field(default_factory=set)  # uids of ExportJobs to decide again
    gone: list[Object] = field(default_factory=list)  # ExportJobs deleted (not merely finished)


class ClusterState:
    def __init__(self) -> None:
        self.exports: dict[str, Object] = {}  # uid -> unfinished ExportJob
        # ExportJob uid -> its unfinished worker Job. Read it freely; change it only through
        # `_set_job`, which keeps `running` in step.
        self.jobs: dict[str, Object] = {}
        # namespace -> Jobs holding a slot (not yet finished, including placeholders being created):
        # kept as the Jobs change, so admission never walks every running Job.
        self.running: Counter[str] = Counter()
        self._slots: dict[str, str] = {}  # ExportJob uid -> namespace, for each Job counted in `running`
        self._listed_rv: dict[str, int] = {"exportjob": 0, "job": 0}
        # ExportJobs that left (finished or deleted) -> the resourceVersion they left at: an
        # older event still in flight (e.g. of the operator's own status write) must not bring one back.
        self._left: dict[str, int] = {}

    # --- watch events ---------------------------------------------------------
    def apply_exportjob(self, event_type: str | None, obj: Object) -> Change:
        uid = obj["metadata"]["uid"]
        held = self.exports.get(uid)
        left, rv = self._left.get(uid), _rv(obj)
        if left is not None and (rv is None or rv <= left):
            return Change()
        if not self._fresh("exportjob", obj, held):
            return Change()
        if event_type == "DELETED" or is_finished_export(obj):
            self.exports.pop(uid, None)
            if rv is not None:
                self._left[uid] = rv
            really_gone = event_type == "DELETED" and not is_finished_export(obj)
            return Change(gone=[obj] if really_gone else [])
        self.exports[uid] = slim(obj)
        return Change(exports={uid})

    def apply_job(self, event_type: str | None, job: Object) -> Change:
        owner = owner_uid(job)
        if owner is None:
            return Change()
        held = self.jobs.get(owner)
        if held is not None and held["metadata"].get("uid") not in (None, job["metadata"].get("uid")):
            if event_type == "DELETED":  # an older Job of the same owner; the one held stays
                return Change()
        elif not self._fresh("job", job, held):
            return Change()
        if event_type == "DELETED" or is_labelled_finished(job):
            self._set_job(owner, None)
        else:
            self._set_job(owner, slim(job))
        return Change(exports={owner} if owner in self.exports else set())

    def _set_job(self, owner: str, job: Object | None) -> None:
        """Hold `job` as `owner`'s Job (None: no Job), and count the slots held per namespace."""
        self.jobs.pop(owner, None)
        namespace = self._slots.pop(owner, None)  # what was counted, whatever became of that object since
        if namespace is not None:
            self.running[namespace] -= 1
            if self.running[namespace] <= 0:
                del self.running[namespace]
        if job is not None:
            self.jobs[owner] = job
            if not job_finished(job):
                self._slots[owner] = job["metadata"]["namespace"]
                self.running[job["metadata"]["namespace"]] += 1

    @property
    def running_total(self) -> int:
        return sum(self.running.values())

    def _fresh(self, kind: str, obj: Object, held: Object | None) -> bool:
        if held is not None:
            return _newer(obj, held)
        rv = _rv(obj)
        return rv is None or rv > self._listed_rv[kind]

    # --- full LISTs -----------------------------------------------------------
    def replace(self, exportjobs: Iterable[Object], exportjobs_rv: str, jobs: Iterable[Object], jobs_rv: str) -> None:
        """Start over from LISTs of the unfinished ExportJobs and worker Jobs."""
        self.exports = {ej["metadata"]["uid"]: slim(ej) for ej in exportjobs}
        self.jobs, self.running, self._slots = {}, Counter(), {}
        for job in jobs:
            owner = owner_uid(job)
            if owner is not None:
                self._set_job(owner, slim(job))
        self._listed_rv = {"exportjob": _int_or_zero(exportjobs_rv), "job": _int_or_zero(jobs_rv)}
        self._left = {}  # whatever left before the LIST is older than it: `_fresh` filters those events

    # --- the reconciler's own writes -----------------------------------------
    def put_job(self, owner: str, job: Object) -> None:
        """A Job this operator has just created (or a placeholder while it is being created)."""
        if _newer(job, self.jobs.get(owner)):
            self._set_job(owner, job)

    def forget_job(self, owner: str, job_name: str) -> None:
        held = self.jobs.get(owner)
        if held is not None and held["metadata"].get("name") == job_name:
            self._set_job(owner, None)

    def orphans(self) -> list[Object]:
        """Worker Jobs whose ExportJob the store does not hold."""
        return [job for owner, job in self.jobs.items() if owner not in self.exports]


def _int_or_zero(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0
