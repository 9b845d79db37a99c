"""The reconciler: observe (watch events into a store), decide (one pure table), act (API writes).

One thread makes every decision (`loop.LoopRunner` runs the passes); Kopf's
watch handlers only hand their events to `observe`. The state comes from the
watch streams of unfinished ExportJobs and worker Jobs (`store.ClusterState`),
so a pass costs O(what changed), not O(everything): a full LIST happens only
at start, on taking the lead, every `full_resync_seconds` and after a failed
pass. Each pass, in numbered steps:

1. Re-list if due; fold the new watch events into the store; every ExportJob
   they touched is "dirty". Waiting exports are rechecked every `resync_seconds`.
2. Deleted ExportJobs: delete their worker Jobs (the garbage collector would
   too; this frees the slot sooner). A Job holds its slot until it is gone.
3. For each dirty export, `decide` (controller/decide.py) says what to do:
   label, fail, follow or finish its Job, wait for a prerequisite, or queue.
4. Admission: while a slot is free, the fair queue (controller/admission.py)
   names the next export; its slot is reserved in the store before its Job is
   created, so nothing is admitted twice, and adopted if it already exists.
   One admitter thread creates the Jobs in queue order; each admission's
   status write follows with the other writes once its create has landed.
5. Writes go out in parallel (`api_parallelism`) without the loop waiting for
   them; what the API server returns is folded back into the store when it
   lands, so a later pass does not act on what it wrote. One export has at
   most one write in flight.
6. The level gauges are set from the store.

Every status write carries the resourceVersion it was computed from, so a write
based on a stale picture fails with a conflict instead of undoing a newer
state, and the write that makes an export terminal — where its metrics are
counted — happens exactly once. Queue positions are not written into objects
(each admission would shift them all); `exportjob queue` computes them on demand.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from exportjob.controller import transitions
from exportjob.controller.admission import FairQueue, Limits, QueueEntry
from exportjob.controller.decide import FailInvalid, Finish, Follow, Queue, Skip, Wait, decide
from exportjob.controller.errors import Conflict, NamespaceTerminating, NotOurs
from exportjob.controller.events import events_for
from exportjob.controller.kube import KubeApi
from exportjob.controller.manifests import (
    LABEL_FINISHED,
    UNFINISHED_EXPORTJOB_FIELD_SELECTOR,
    UNFINISHED_WORKER_JOB_SELECTOR,
    build_worker_job,
    claim_name,
)
from exportjob.controller.metrics import Metrics
from exportjob.controller.outcome import job_finished, observe_job
from exportjob.controller.prerequisites import Prerequisites
from exportjob.controller.settings import OperatorSettings
from exportjob.controller.store import ClusterState
from exportjob.reasons import Reason
from exportjob.spec import ExportJobSpec, SpecError, parse_spec
from exportjob.status import ExportJobStatus

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Object = dict[str, Any]
FINISHED = {LABEL_FINISHED: "true"}
FIRST_ATTEMPT = 1


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _ids(ej: Object) -> dict[str, str]:
    return {"namespace": ej["metadata"].get("namespace", ""), "exportjob": ej["metadata"].get("name", "")}


@dataclass
class Observed:
    """What a write task learned: objects as the API server returned them, folded back into the store."""

    exportjobs: list[Object] = field(default_factory=list)
    jobs: list[Object] = field(default_factory=list)
    finished: bool = False  # the write made the export terminal (and labelled it)
    admission_failed: bool = False  # the reserved slot must be released
    then: Callable[[], Observed] | None = None  # a write to send once this has been folded in


@dataclass
class _Parsed:
    generation: int | None
    spec: ExportJobSpec | None
    error: str | None


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        settings: OperatorSettings,
        metrics: Metrics,
        clock: Clock = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self.limits = Limits(
            settings.max_concurrent, settings.max_concurrent_per_namespace, dict(settings.namespace_weights)
        )
        self.state = ClusterState()
        self.queue = FairQueue()
        self.prerequisites = Prerequisites(api, settings)
        self.wake: Callable[[], None] = lambda: None  # set by the loop runner
        self._inbox: deque[tuple[str, str | None, Object]] = deque()
        self._dirty: set[str] = set()
        self._gone: list[Object] = []
        self._waiting: set[str] = set()
        self._parsed: dict[str, _Parsed] = {}
        # Decided once per version, not once per event (a running export's Job changes ~5 times):
        self._statuses: dict[str, tuple[str, ExportJobStatus]] = {}  # uid -> (resourceVersion, its status)
        self._followed: dict[str, tuple[str, str, int]] = {}  # uid -> (resourceVersion, Job, attempts) written
        self._synced = False
        self._next_resync = 0.0
        self._next_recheck = 0.0
        self._pool = ThreadPoolExecutor(settings.api_parallelism, thread_name_prefix="api")
        # One thread creates the admitted exports' Jobs, so they appear in admission order across passes too.
        self._admitter = ThreadPoolExecutor(1, thread_name_prefix="admit")
        self._results: deque[tuple[str, bool, Future[Observed]]] = deque()
        self._in_flight: dict[str, int] = {}  # export uid -> writes sent and not landed yet
        self._deferred: set[str] = set()  # exports to decide again once their write has landed
        self._reserved: dict[str, Object] = {}  # export uid -> the Job being created for it (its slot)

    # --- observe ----------------------------------------------------------------
    def observe(self, kind: str, event_type: str | None, obj: Object) -> None:
        """A watch event (from Kopf's handlers, any thread): remember it and wake the loop."""
        self._inbox.append((kind, event_type, obj))
        self.wake()

    def invalidate(self) -> None:
        """The next pass starts from a full re-list."""
        self._synced = False

    def stand_by(self) -> None:
        """Not leading: drop what was observed (the pass after taking the lead re-lists) and report no levels."""
        self._inbox.clear()
        self._synced = False
        self.metrics.set_levels(running=0, queue_depth=0, max_concurrent=self.limits.total)

    def _resync(self) -> None:
        exportjobs, ej_rv = self.api.list_exportjobs(UNFINISHED_EXPORTJOB_FIELD_SELECTOR)
        jobs, job_rv = self.api.list_jobs(UNFINISHED_WORKER_JOB_SELECTOR)
        self.state.replace(exportjobs, ej_rv, jobs, job_rv)
        for uid, manifest in self._reserved.items():  # Jobs still being created hold their slots
            if uid not in self.state.jobs:
                self.state.put_job(uid, manifest)
        self.queue = FairQueue()  # the round robin starts over too: what it remembers is only a tie-break
        self._waiting.clear()
        self._parsed = {uid: p for uid, p in self._parsed.items() if uid in self.state.exports}
        self._statuses.clear()
        self._followed.clear()
        self._dirty = set(self.state.exports)
        self._synced = True
        self._next_resync = self.monotonic() + self.settings.full_resync_seconds
        for job in self.state.orphans():
            if not job_finished(job) and not job["metadata"].get("deletionTimestamp"):
                log.info("deleting orphaned worker Job", extra={"job": job["metadata"]["name"]})
                self.api.delete_job(job["metadata"]["namespace"], job["metadata"]["name"])
        log.info("re-listed", extra={"exportjobs": len(exportjobs), "jobs": len(jobs)})

    def _drain_inbox(self) -> None:
        while self._inbox:
            kind, event_type, obj = self._inbox.popleft()
            if kind == "exportjob":
                change = self.state.apply_exportjob(event_type, obj)
                self._gone += change.gone
                if event_type == "DELETED" or obj["metadata"]["uid"] not in self.state.exports:
                    self._forget(obj["metadata"]["uid"])
            else:
                change = self.state.apply_job(event_type, obj)
            self._dirty |= change.exports

    def _forget(self, uid: str) -> None:
        self.queue.discard(uid)
        self._waiting.discard(uid)
        self._parsed.pop(uid, None)
        self._statuses.pop(uid, None)
        self._followed.pop(uid, None)
        self._dirty.discard(uid)

    # --- one pass -------------------------------------------------------------------
    def reconcile_once(self) -> None:
        # 1. Observe.
        self._fold_results()
        if not self._synced or self.monotonic() >= self._next_resync:
            self._inbox.clear()  # the LIST is newer than anything queued so far
            self._resync()
        self._drain_inbox()
        if self.monotonic() >= self._next_recheck:
            self._dirty |= self._waiting
            self._next_recheck = self.monotonic() + self.settings.resync_seconds

        # 2. Deleted ExportJobs free their slots once their Jobs are gone.
        tasks: list[tuple[str, Callable[[], Observed]]] = []
        for deleted in self._gone:
            job = self.state.jobs.get(deleted["metadata"]["uid"])
            if job is not None and not job_finished(job) and not job["metadata"].get("deletionTimestamp"):
                tasks.append(("", partial(self._delete_job, job)))
        self._gone = []

        # 3. Decide for every export that changed.
        newly_queued: list[str] = []
        dirty, self._dirty = self._dirty, set()
        for uid in dirty:
            current = self.state.exports.get(uid)
            if current is None:
                continue
            try:
                task = self._decide(current, newly_queued)
            except Exception:  # one broken object must not stall every other export
                log.exception("reconciling an ExportJob failed", extra=_ids(current))
                continue
            if task is not None:
                tasks.append((uid, task))

        # 4. Admission, in one place.
        admitted = self._admit_what_fits()
        admitted_uids = {uid for uid, _task in admitted}
        for uid in newly_queued:
            queued = self.state.exports.get(uid)
            if uid not in admitted_uids and uid in self.queue and queued is not None:
                status = self._status(queued)
                tasks.append((uid, partial(self._write, queued, status, self._queued(queued, status))))

        # 5. Act: admissions one after the other, in queue order (Jobs appear in the order the queue
        # promised); everything else in parallel. What the API server returns is folded back in
        # when it lands.
        self._run_in_order(admitted)
        self._run(tasks)

        # 6. Levels.
        self.metrics.set_levels(
            running=self.state.running_total, queue_depth=len(self.queue), max_concurrent=self.limits.total
        )

    # --- decide ----------------------------------------------------------------------
    def _decide(self, ej: Object, newly_queued: list[str]) -> Callable[[], Observed] | None:
        meta = ej["metadata"]
        uid = meta["uid"]
        status = self._status(ej)
        parsed = self._parse(ej)
        action = decide(
            deleting=bool(meta.get("deletionTimestamp")),
            status=status,
            spec_error=parsed.error,
            job=self.state.jobs.get(uid),
            prerequisites=lambda: self.prerequisites.missing(meta["namespace"], parsed.spec),  # type: ignore[arg-type]
        )
        if not isinstance(action, Queue):
            self.queue.discard(uid)
        if not isinstance(action, Wait):
            self._waiting.discard(uid)
        match action:
            case Skip():
                return None
            case FailInvalid(message=message):
                new = transitions.failed_before_start(
                    status,
                    reason=Reason.INVALID_SPEC,
                    message=message,
                    now=self._now(),
                    generation=meta.get("generation"),
                )
                return partial(self._write, ej, status, new)
            case Follow(job=job):
                return self._follow(ej, status, parsed.spec, job)
            case Finish(job=job):
                return partial(self._finish, ej, status, job)
            case Wait(missing=missing):
                self._waiting.add(uid)
                new = transitions.waiting(
                    status,
                    reason=missing.reason,
                    message=missing.message,
                    now=self._now(),
                    generation=meta.get("generation"),
                )
                return self._if_changed(ej, status, new)
            case Queue(job_lost=job_lost):
                assert parsed.spec is not None
                self.queue.push(
                    QueueEntry(
                        meta["namespace"], meta["name"], uid, parsed.spec.priority, meta.get("creationTimestamp", "")
                    )
                )
                if job_lost:
                    self._pool.submit(
                        self.api.post_event,
                        ej,
                        "Warning",
                        "WorkerJobMissing",
                        "the worker Job disappeared before its result was recorded; the export is queued again",
                    )
                if status.phase != "Queued":
                    newly_queued.append(uid)
                return None
        return None

    def _follow(
        self, ej: Object, status: ExportJobStatus, spec: ExportJobSpec | None, job: Object
    ) -> Callable[[], Observed] | None:
        if job["metadata"].get("uid") is None:  # our own placeholder: the create is still under way
            return None
        assert spec is not None
        # While it runs, only a retry is news (a second Pod): the Job's own status changes (its
        # startTime, a Pod becoming active or ready) are not copied, one write per change each.
        # startTime and the final attempts come with the result (transitions.finished).
        outcome = observe_job(job, [])
        attempts = max(outcome.attempts, FIRST_ATTEMPT)
        uid, version = ej["metadata"]["uid"], ej["metadata"].get("resourceVersion") or ""
        followed = (version, job["metadata"]["name"], attempts)
        if version and self._followed.get(uid) == followed:
            return None  # this version of the export already shows this Job and attempt
        new = transitions.admitted(
            status,
            job_name=job["metadata"]["name"],
            claim=claim_name(spec, self.settings) or "",
            path=spec.output.path,
            now=self._now(),
            generation=ej["metadata"].get("generation"),
            attempts=attempts,
        )
        task = self._if_changed(ej, status, new)
        if task is None:
            self._followed[uid] = followed
        return task

    def _if_changed(self, ej: Object, old: ExportJobStatus, new: ExportJobStatus) -> Callable[[], Observed] | None:
        if not transitions.status_patch(old.to_wire(), new.to_wire()):
            return None
        return partial(self._write, ej, old, new)

    def _queued(self, ej: Object, status: ExportJobStatus) -> ExportJobStatus:
        return transitions.queued(status, now=self._now(), generation=ej["metadata"].get("generation"))

    # --- admit --------------------------------------------------------------------------
    def _admit_what_fits(self) -> list[tuple[str, Callable[[], Observed]]]:
        """Unfinished worker Jobs per namespace (including reserved slots and Jobs being deleted) hold
        the slots (`state.running`, kept as Jobs change); reserving one counts it at once."""
        chosen: list[tuple[str, Callable[[], Observed]]] = []
        while self.state.running_total < self.limits.total:
            entry = self.queue.next_to_admit(self.state.running, self.limits)
            if entry is None:
                break
            self.queue.take(entry)
            ej = self.state.exports.get(entry.uid)
            parsed = self._parsed.get(entry.uid)
            if ej is None or parsed is None or parsed.spec is None or entry.uid in self.state.jobs:
                continue
            meta = ej["metadata"]
            manifest = build_worker_job(
                name=meta["name"], namespace=meta["namespace"], uid=entry.uid, spec=parsed.spec, settings=self.settings
            )
            self.state.put_job(entry.uid, manifest)  # the slot is taken from now on
            self._reserved[entry.uid] = manifest
            status = self._status(ej)
            chosen.append((entry.uid, partial(self._admit, ej, status, parsed.spec, manifest)))
        return chosen

    def _admit(self, ej: Object, status: ExportJobStatus, spec: ExportJobSpec, manifest: Object) -> Observed:
        meta = ej["metadata"]
        try:
            job, _created = self.api.create_job(manifest)
        except NotOurs as error:
            new = transitions.failed_before_start(
                status,
                reason=Reason.JOB_NAME_CONFLICT,
                message=str(error),
                now=self._now(),
                generation=meta.get("generation"),
            )
            observed = self._write(ej, status, new)
            observed.admission_failed = True
            return observed
        new = transitions.admitted(
            status,
            job_name=job["metadata"]["name"],
            claim=claim_name(spec, self.settings) or "",
            path=spec.output.path,
            now=self._now(),
            generation=meta.get("generation"),
            attempts=FIRST_ATTEMPT,  # the Job starts its first Pod at once
        )
        log.info("admitted", extra={**_ids(ej), "job": job["metadata"]["name"]})
        # The status write goes out with the other writes, not on the admitter's thread: the next
        # admission's create need not wait for it. On conflict the Job still holds its slot; status follows.
        return Observed(jobs=[job], then=partial(self._write, ej, status, new))

    # --- act ------------------------------------------------------------------------------
    def _run(self, tasks: list[tuple[str, Callable[[], Observed]]]) -> None:
        """Send the writes without waiting for them: a slow request never delays the next decision.

        One export has at most one write in flight; a decision about an export
        whose previous write is still out is made again once it has landed.
        """
        for uid, task in tasks:
            if uid and uid in self._in_flight:
                self._deferred.add(uid)
                continue
            if uid:
                self._in_flight[uid] = self._in_flight.get(uid, 0) + 1
            future = self._pool.submit(task)
            future.add_done_callback(partial(self._landed, uid, False))

    def _run_in_order(self, admissions: list[tuple[str, Callable[[], Observed]]]) -> None:
        """Create the admitted exports' Jobs one after the other, in the order they were admitted
        (one admitter thread: a later pass's admissions wait for an earlier pass's). Only the
        creates: each admission's status write follows in parallel once its create has landed.

        They always go, even with another write for the same export in flight:
        their slots are already reserved in the store, and a conflicting status
        write is caught by its resourceVersion.
        """
        if not admissions:
            return
        for uid, _task in admissions:
            self._in_flight[uid] = self._in_flight.get(uid, 0) + 1

        def chain() -> None:
            for uid, task in admissions:
                done: Future[Observed] = Future()
                try:
                    done.set_result(task())
                except BaseException as error:  # handed to the loop, which logs it and decides again
                    done.set_exception(error)
                self._landed(uid, True, done)

        self._admitter.submit(chain)

    def _landed(self, uid: str, admission: bool, future: Future[Observed]) -> None:
        """(A pool thread.) Hand the result to the loop and wake it."""
        self._results.append((uid, admission, future))
        self.wake()

    def _fold_results(self) -> None:
        while self._results:
            uid, admission, future = self._results.popleft()
            if uid:
                left = self._in_flight.get(uid, 1) - 1
                if left:
                    self._in_flight[uid] = left
                else:
                    self._in_flight.pop(uid, None)
                    if uid in self._deferred:
                        self._deferred.discard(uid)
                        self._dirty.add(uid)
            try:
                observed = future.result()
            except NamespaceTerminating as error:  # it goes with its namespace; its reserved slot is freed
                log.info("not admitted: %s", error, extra={"uid": uid})
                observed = Observed(admission_failed=admission)
            except Exception:
                ej = self.state.exports.get(uid)
                log.exception("acting on an ExportJob failed", extra=_ids(ej) if ej else {"uid": uid})
                observed = Observed(admission_failed=admission)
                self._dirty.add(uid)  # decide again on the next pass
            self._fold(uid, observed, admission)

    def _fold(self, uid: str, observed: Observed, admission: bool) -> None:
        if admission:
            self._reserved.pop(uid, None)
        if observed.admission_failed:
            held = self.state.jobs.get(uid)
            if held is not None and held["metadata"].get("uid") is None:
                self.state.forget_job(uid, held["metadata"]["name"])
        for job in observed.jobs:
            self.state.put_job(uid, job)
        for ej in observed.exportjobs:  # a finished one leaves the store (and stays out)
            self.state.apply_exportjob("MODIFIED", ej)
        if uid not in self.state.exports:
            self._forget(uid)
        elif observed.then is not None:
            self._run([(uid, observed.then)])

    def _delete_job(self, job: Object) -> Observed:
        log.info("deleting the worker Job of a deleted ExportJob", extra={"job": job["metadata"]["name"]})
        self.api.delete_job(job["metadata"]["namespace"], job["metadata"]["name"])
        return Observed()

    def _finish(self, ej: Object, status: ExportJobStatus, job: Object) -> Observed:
        pods = self.api.list_job_pods(ej["metadata"]["namespace"], job)
        outcome = observe_job(job, pods)
        new = transitions.finished(
            status, outcome=outcome, now=self._now(), generation=ej["metadata"].get("generation")
        )
        observed = self._write(ej, status, new)
        if observed.finished:
            self.api.label_job(job["metadata"]["namespace"], job["metadata"]["name"], FINISHED)
        return observed

    def _write(self, ej: Object, old: ExportJobStatus, new: ExportJobStatus) -> Observed:
        """Patch the status (guarded by resourceVersion); then events, metrics, the finished label."""
        meta = ej["metadata"]
        patch = transitions.status_patch(old.to_wire(), new.to_wire())
        if not patch:
            return Observed()
        try:
            written = self.api.patch_exportjob_status(
                meta["namespace"], meta["name"], patch, meta.get("resourceVersion")
            )
        except Conflict:
            log.info("status conflict; the watch brings the newer version", extra=_ids(ej))
            return Observed()
        observed = Observed(exportjobs=[written])
        fmt = self._format(ej)
        if new.phase == "Running" and old.phase != "Running":
            created = meta.get("creationTimestamp")
            waited = (self.clock() - _parse_time(created)).total_seconds() if created else 0.0
            self.metrics.record_admitted(fmt, waited)
        if new.is_terminal and not old.is_terminal:
            observed.finished = True
            self.metrics.record_finished(
                fmt,
                succeeded=new.phase == "Succeeded",
                reason=new.reason,
                rows=new.rows,
                size=new.bytes,
                duration_seconds=new.duration_seconds,
                peak_memory_bytes=new.worker_peak_memory_bytes,
            )
            log.info("finished", extra={**_ids(ej), "phase": new.phase, "reason": new.reason})
        for event in events_for(old, new):
            self.api.post_event(ej, event.type, event.reason, event.message)
        return observed

    # --- small helpers -----------------------------------------------------------------------
    def _status(self, ej: Object) -> ExportJobStatus:
        """The parsed status, once per resourceVersion (statuses are never changed in place)."""
        uid, version = ej["metadata"]["uid"], ej["metadata"].get("resourceVersion")
        cached = self._statuses.get(uid)
        if version and cached is not None and cached[0] == version:
            return cached[1]
        status = ExportJobStatus.model_validate(ej.get("status") or {})
        if version:
            self._statuses[uid] = (version, status)
        return status

    def _parse(self, ej: Object) -> _Parsed:
        """The spec, parsed once per generation (it is immutable; the cache only saves CPU)."""
        uid, generation = ej["metadata"]["uid"], ej["metadata"].get("generation")
        cached = self._parsed.get(uid)
        if cached is not None and cached.generation == generation:
            return cached
        try:
            parsed = _Parsed(generation, parse_spec(ej.get("spec") or {}), None)
        except SpecError as error:
            parsed = _Parsed(generation, None, str(error))
        self._parsed[uid] = parsed
        return parsed

    def _format(self, ej: Object) -> str:
        fmt = (ej.get("spec") or {}).get("format")
        return fmt if fmt in ("csv", "pdf") else "unknown"

    def _now(self) -> str:
        return _rfc3339(self.clock())

    def close(self) -> None:
        self._admitter.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
