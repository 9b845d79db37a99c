"""The reconcile loop: list the world, rebuild every ExportJob's status from it, admit what fits.

One loop, in one thread, makes every decision: Kopf's watch handlers only wake
it. Each pass reads the unfinished ExportJobs (finished ones carry the label
`exportjob.io/finished` and are not listed) and the worker Jobs straight from the
API server and then, in numbered steps:

1. Deletes worker Jobs whose ExportJob is gone (the garbage collector would too;
   this frees their slots sooner). They count as running until they are gone.
2. For each unfinished ExportJob: if its worker Job exists, follows it (Running,
   or finished → terminal status, event, metrics); if not, checks what it needs
   (claim, Secrets) and either marks it Waiting or puts it in the queue.
3. Asks `admission.plan_admission` which queued exports start now, creates
   their Jobs (adopting any that already exist), and writes every other queued
   export's position.
4. Sets the level gauges from what it just counted.

Every status write carries the resourceVersion it was computed from, so a write
based on a stale read fails with a conflict instead of undoing a newer state,
and an export's terminal transition, which is where metrics are counted,
happens exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from exportjob.controller import transitions
from exportjob.controller.admission import Limits, Waiting, plan_admission
from exportjob.controller.errors import Conflict, NotOurs
from exportjob.controller.kube import KubeApi
from exportjob.controller.leader import LeaderElector
from exportjob.controller.manifests import (
    LABEL_EXPORT_UID,
    LABEL_FINISHED,
    UNFINISHED_SELECTOR,
    WORKER_JOB_SELECTOR,
    build_worker_job,
    claim_name,
    secret_refs,
)
from exportjob.controller.metrics import Metrics
from exportjob.controller.outcome import job_finished, observe_job
from exportjob.controller.settings import OperatorSettings
from exportjob.spec import ExportJobSpec, SpecError, parse_spec
from exportjob.status import (
    REASON_CLAIM_NOT_FOUND,
    REASON_SECRET_NOT_FOUND,
    REASON_SERVICE_ACCOUNT_NOT_FOUND,
    ExportJobStatus,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _ids(ej: dict[str, Any]) -> dict[str, str]:
    return {"namespace": ej["metadata"].get("namespace", ""), "exportjob": ej["metadata"].get("name", "")}


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        settings: OperatorSettings,
        metrics: Metrics,
        clock: Clock = _utcnow,
        leader: LeaderElector | None = None,
    ) -> None:
        self.api = api
        self.leader = leader
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.limits = Limits(settings.max_concurrent, settings.max_concurrent_per_namespace)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- loop control ---------------------------------------------------------
    def wake(self) -> None:
        """Ask for a pass soon (called by Kopf's watch handlers)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.leader is not None:
            try:
                self.leader.release()
            except Exception:
                log.exception("could not release the leader Lease; a standby takes over when it expires")

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.wait(timeout=self.settings.renew_interval if failures == 0 else min(2**failures, 30))
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                if self._may_reconcile():
                    self.reconcile_once()
                failures = 0
            except Exception:  # the loop must survive API hiccups; the next pass starts from scratch
                failures += 1
                log.exception("reconcile pass failed", extra={"consecutive_failures": failures})

    def _may_reconcile(self) -> bool:
        """Without leader election always; with it, only while this replica holds the Lease."""
        if self.leader is None:
            return True
        leading = self.leader.lead()
        self.metrics.leader.set(1 if leading else 0)
        if not leading:  # a standby reports no levels of its own (rules take the max over replicas)
            self.metrics.set_levels(running=0, queue_depth=0, max_concurrent=self.limits.total)
        return leading

    # --- one pass ---------------------------------------------------------------
    def reconcile_once(self) -> None:
        exportjobs = self.api.list_exportjobs(UNFINISHED_SELECTOR)
        jobs = self.api.list_jobs(WORKER_JOB_SELECTOR)
        live = {ej["metadata"]["uid"] for ej in exportjobs}
        jobs_by_owner = {job["metadata"]["labels"].get(LABEL_EXPORT_UID): job for job in jobs}

        # 1. Orphans: unfinished Jobs whose ExportJob is gone (an ExportJob becomes
        # terminal only after its Job finished, so an unfinished Job's owner is always
        # among the unfinished ones listed). They hold their slot until deleted.
        running: Counter[str] = Counter()
        for job in jobs:
            if job_finished(job):
                continue
            running[job["metadata"]["namespace"]] += 1
            if job["metadata"]["labels"].get(LABEL_EXPORT_UID) not in live and not job["metadata"].get(
                "deletionTimestamp"
            ):
                log.info("deleting orphaned worker Job", extra={"job": job["metadata"]["name"]})
                self.api.delete_job(job["metadata"]["namespace"], job["metadata"]["name"])

        # 2. Follow or classify every unfinished export.
        queued: dict[tuple[str, str], tuple[dict[str, Any], ExportJobSpec, ExportJobStatus]] = {}
        waiting: list[Waiting] = []
        for ej in exportjobs:
            try:
                entry = self._classify(ej, jobs_by_owner.get(ej["metadata"]["uid"]))
            except Exception:  # one broken object must not stall every other export
                log.exception("reconciling an ExportJob failed", extra=_ids(ej))
                continue
            if entry is None:
                continue
            meta = ej["metadata"]
            queued[(meta["namespace"], meta["name"])] = entry
            waiting.append(
                Waiting(
                    meta["namespace"], meta["name"], entry[1].priority, meta.get("creationTimestamp", ""), meta["uid"]
                )
            )

        # 3. Admission, in one place.
        plan = plan_admission(waiting, running, self.limits)
        admitted = 0
        for candidate in plan.admit:
            ej, spec, status = queued[candidate.key]
            try:
                admitted += self._admit(ej, spec, status)
            except Exception:
                log.exception("admitting an ExportJob failed", extra=_ids(ej))
        for key, position in plan.positions.items():
            ej, _spec, status = queued[key]
            try:
                self._write(
                    ej,
                    status,
                    transitions.queued(
                        status, position=position, now=self._now(), generation=ej["metadata"].get("generation")
                    ),
                )
            except Exception:
                log.exception("writing a queue position failed", extra=_ids(ej))

        # 4. Levels.
        self.metrics.set_levels(
            running=sum(running.values()) + admitted, queue_depth=plan.queue_depth, max_concurrent=self.limits.total
        )

    # --- steps ------------------------------------------------------------------
    def _classify(
        self, ej: dict[str, Any], job: dict[str, Any] | None
    ) -> tuple[dict[str, Any], ExportJobSpec, ExportJobStatus] | None:
        """Follow an unfinished export; return it when it is ready and waits for a slot."""
        meta = ej["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        status = ExportJobStatus.model_validate(ej.get("status") or {})
        if status.is_terminal:  # finished but not yet labelled (the label write failed): label it now
            self.api.label_exportjob(meta["namespace"], meta["name"], {LABEL_FINISHED: "true"})
            return None
        try:
            spec = parse_spec(ej.get("spec") or {})
        except SpecError as error:
            self._finish_invalid(ej, status, str(error))
            return None
        if job is not None:
            self._follow(ej, spec, status, job)
            return None
        if status.phase == "Running":
            self.api.post_event(
                ej,
                "Warning",
                "WorkerJobMissing",
                "the worker Job disappeared before its result was recorded; the export is queued again",
            )
        problem = self._missing_prerequisite(meta["namespace"], spec)
        if problem is not None:
            self._write(
                ej,
                status,
                transitions.waiting(
                    status, reason=problem[0], message=problem[1], now=self._now(), generation=meta.get("generation")
                ),
            )
            return None
        return (ej, spec, status)

    def _now(self) -> str:
        return _rfc3339(self.clock())

    def _missing_prerequisite(self, namespace: str, spec: ExportJobSpec) -> tuple[str, str] | None:
        claim = claim_name(spec, self.settings)
        if claim is None:
            return (
                REASON_CLAIM_NOT_FOUND,
                "no PersistentVolumeClaim: set spec.output.claimName, or give the operator a default claim",
            )
        if not self.api.claim_exists(namespace, claim):
            return (
                REASON_CLAIM_NOT_FOUND,
                f'PersistentVolumeClaim "{claim}" not found in namespace "{namespace}"; '
                "the export starts once it exists",
            )
        if problem := self.api.usage_problem(
            "PersistentVolumeClaim", namespace, claim, self.settings.claim_selector, "claimSelector"
        ):
            return (REASON_CLAIM_NOT_FOUND, problem)
        account = self.settings.worker_service_account
        if not self.api.service_account_exists(namespace, account):
            return (
                REASON_SERVICE_ACCOUNT_NOT_FOUND,
                f'ServiceAccount "{account}" (the worker\'s) not found in namespace "{namespace}"; '
                "the export starts once it exists",
            )
        for _env, secret, key in secret_refs(spec):
            problem = self.api.secret_problem(namespace, secret, key, self.settings.secret_selector)
            if problem is not None:
                return (REASON_SECRET_NOT_FOUND, f"{problem}; the export starts once it exists")
        return None

    def _admit(self, ej: dict[str, Any], spec: ExportJobSpec, status: ExportJobStatus) -> bool:
        meta = ej["metadata"]
        manifest = build_worker_job(
            name=meta["name"], namespace=meta["namespace"], uid=meta["uid"], spec=spec, settings=self.settings
        )
        try:
            job, created = self.api.create_job(manifest)
        except NotOurs as error:
            self._finish(
                ej,
                status,
                transitions.failed_before_start(
                    status,
                    reason="JobNameConflict",
                    message=str(error),
                    now=self._now(),
                    generation=meta.get("generation"),
                ),
                spec.format,
            )
            return False
        new = transitions.admitted(
            status,
            job_name=job["metadata"]["name"],
            claim=claim_name(spec, self.settings) or "",
            path=spec.output.path,
            now=self._now(),
            generation=meta.get("generation"),
        )
        if not self._write(ej, status, new):
            return True  # the Job exists and holds its slot; status catches up next pass
        if created:
            waited = (
                (self.clock() - _parse_time(meta["creationTimestamp"])).total_seconds()
                if meta.get("creationTimestamp")
                else 0.0
            )
            self.metrics.record_admitted(spec.format, waited)
            self.api.post_event(ej, "Normal", "Admitted", f"started worker Job {job['metadata']['name']}")
            log.info(
                "admitted",
                extra={"namespace": meta["namespace"], "exportjob": meta["name"], "job": job["metadata"]["name"]},
            )
        return True

    def _follow(self, ej: dict[str, Any], spec: ExportJobSpec, status: ExportJobStatus, job: dict[str, Any]) -> None:
        meta = ej["metadata"]
        generation = meta.get("generation")
        if not job_finished(job):
            outcome = observe_job(job, [])
            new = transitions.admitted(
                status,
                job_name=job["metadata"]["name"],
                claim=claim_name(spec, self.settings) or "",
                path=spec.output.path,
                now=self._now(),
                generation=generation,
                attempts=outcome.attempts,
                start_time=outcome.start_time,
            )
            self._write(ej, status, new)
            return
        outcome = observe_job(job, self.api.list_job_pods(meta["namespace"], job["metadata"]["name"]))
        self._finish(
            ej,
            status,
            transitions.finished(status, outcome=outcome, now=self._now(), generation=generation),
            spec.format,
        )

    def _finish_invalid(self, ej: dict[str, Any], status: ExportJobStatus, message: str) -> None:
        fmt = (ej.get("spec") or {}).get("format") or "unknown"
        new = transitions.failed_before_start(
            status, reason="InvalidSpec", message=message, now=self._now(), generation=ej["metadata"].get("generation")
        )
        self._finish(ej, status, new, fmt if fmt in ("csv", "pdf") else "unknown")

    def _finish(self, ej: dict[str, Any], old: ExportJobStatus, new: ExportJobStatus, fmt: str) -> None:
        """Write a terminal status; count it only if this write is the one that made it terminal."""
        if not self._write(ej, old, new):
            return
        # Finished exports drop out of every later pass's LIST (UNFINISHED_SELECTOR).
        self.api.label_exportjob(ej["metadata"]["namespace"], ej["metadata"]["name"], {LABEL_FINISHED: "true"})
        succeeded = new.phase == "Succeeded"
        self.metrics.record_finished(
            fmt,
            succeeded=succeeded,
            reason=new.reason,
            rows=new.rows,
            size=new.bytes,
            duration_seconds=new.duration_seconds,
            peak_memory_bytes=new.worker_peak_memory_bytes,
        )
        if succeeded:
            self.api.post_event(
                ej, "Normal", "Succeeded", f"wrote {new.rows} rows ({new.size}) to {new.path}, sha256 {new.sha256}"
            )
        else:
            self.api.post_event(ej, "Warning", new.reason or "Failed", new.message or "export failed")
        log.info(
            "finished",
            extra={
                "namespace": ej["metadata"]["namespace"],
                "exportjob": ej["metadata"]["name"],
                "phase": new.phase,
                "reason": new.reason,
            },
        )

    def _write(self, ej: dict[str, Any], old: ExportJobStatus, new: ExportJobStatus) -> bool:
        """Patch the status if it changed; post the Queued/Waiting events. False on conflict."""
        meta = ej["metadata"]
        patch = transitions.status_patch(old.to_wire(), new.to_wire())
        if not patch:
            return True
        try:
            self.api.patch_exportjob_status(meta["namespace"], meta["name"], patch, meta.get("resourceVersion"))
        except Conflict:
            log.info(
                "status conflict; retrying next pass", extra={"namespace": meta["namespace"], "exportjob": meta["name"]}
            )
            self.wake()
            return False
        if new.phase == "Queued" and old.phase != "Queued":
            self.api.post_event(ej, "Normal", "Queued", f"waiting for a free slot (position {new.queue_position})")
        elif new.phase == "Waiting" and (old.phase != "Waiting" or old.reason != new.reason):
            self.api.post_event(ej, "Warning", new.reason or "Waiting", new.message or "")
        return True
