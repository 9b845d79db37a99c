"""The reconciler's bookkeeping against an in-memory API: slots are reserved before a Job exists, kept across a
re-list while the create is still out, and nothing is admitted twice. (Pure unit test: the API is a fake; the real
thing is exercised in tests/cluster.)"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from exportjob.controller.errors import Conflict
from exportjob.controller.manifests import LABEL_EXPORT_UID
from exportjob.controller.metrics import Metrics
from exportjob.controller.reconciler import Reconciler
from exportjob.controller.settings import OperatorSettings
from exportjob.status import TERMINAL_PHASES

SPEC = {"format": "csv", "source": {"synthetic": {"records": 1}}, "output": {"claimName": "exports", "path": "a.csv"}}


class FakeApi:
    def __init__(self) -> None:
        self.rv = itertools.count(100)
        self.exportjobs: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.creates = 0
        self.status_writes: list[tuple[str, dict[str, Any]]] = []
        self.release = threading.Event()
        self.release.set()

    def add(self, name: str) -> dict[str, Any]:
        obj = {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": str(next(self.rv)),
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {},
            },
            "spec": SPEC,
        }
        self.exportjobs[name] = obj
        return obj

    def list_exportjobs(self, selector: str):
        assert selector == "status.phase!=Failed,status.phase!=Succeeded"
        items = [o for o in self.exportjobs.values() if (o.get("status") or {}).get("phase") not in TERMINAL_PHASES]
        return items, str(next(self.rv))

    def list_jobs(self, selector: str):
        return list(self.jobs.values()), str(next(self.rv))

    def create_job(self, manifest):
        self.release.wait(10)
        self.creates += 1
        job = {
            **manifest,
            "metadata": {**manifest["metadata"], "uid": f"job-{self.creates}", "resourceVersion": str(next(self.rv))},
        }
        self.jobs[manifest["metadata"]["name"]] = job
        return job, True

    def patch_exportjob_status(self, namespace, name, patch, resource_version=None):
        obj = self.exportjobs[name]
        if resource_version and resource_version != obj["metadata"]["resourceVersion"]:
            raise Conflict(name)
        self.status_writes.append((name, patch))
        obj["status"] = {**(obj.get("status") or {}), **patch}
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        return {**obj, "metadata": dict(obj["metadata"])}

    def label_job(self, namespace, name, labels):
        pass

    def delete_job(self, namespace, name):
        self.jobs.pop(name, None)

    def list_job_pods(self, namespace, job):
        return []

    def post_event(self, *args):
        pass

    def claim_exists(self, namespace, name):
        return True

    def service_account_exists(self, namespace, name):
        return True

    def secret_problem(self, namespace, name, key, selector=None):
        return None


def settle(reconciler: Reconciler, passes: int = 3) -> None:
    for _ in range(passes):
        deadline = time.monotonic() + 10
        while sum(reconciler._in_flight.values()) > len(reconciler._results) and time.monotonic() < deadline:
            time.sleep(0.01)
        reconciler.reconcile_once()


def running_jobs(api: FakeApi) -> int:
    return len(api.jobs)


def test_admits_up_to_the_limit_and_never_twice():
    api = FakeApi()
    for i in range(5):
        api.add(f"e{i}")
    reconciler = Reconciler(api, OperatorSettings(max_concurrent=2, max_concurrent_per_namespace=2), Metrics())
    settle(reconciler, passes=5)
    assert api.creates == 2 and running_jobs(api) == 2
    phases = sorted((o.get("status") or {}).get("phase") for o in api.exportjobs.values())
    assert phases == ["Queued", "Queued", "Queued", "Running", "Running"]
    # The watch events of what it wrote change nothing more.
    for obj in api.exportjobs.values():
        reconciler.observe("exportjob", "MODIFIED", obj)
    for job in api.jobs.values():
        reconciler.observe("job", "ADDED", job)
    settle(reconciler)
    assert api.creates == 2


def test_a_relist_while_a_create_is_still_out_keeps_its_slot():
    api = FakeApi()
    for i in range(3):
        api.add(f"e{i}")
    reconciler = Reconciler(api, OperatorSettings(max_concurrent=1, max_concurrent_per_namespace=1), Metrics())
    api.release.clear()  # the create hangs
    reconciler.reconcile_once()
    assert reconciler._in_flight
    reconciler.invalidate()  # e.g. a failed pass: the next one re-lists, and the LIST has no Job yet
    reconciler.reconcile_once()
    reconciler.reconcile_once()
    api.release.set()
    settle(reconciler, passes=4)
    assert api.creates == 1 and running_jobs(api) == 1


def test_a_finished_job_frees_its_slot_for_the_next_export():
    api = FakeApi()
    for i in range(2):
        api.add(f"e{i}")
    reconciler = Reconciler(api, OperatorSettings(max_concurrent=1, max_concurrent_per_namespace=1), Metrics())
    settle(reconciler)
    (job,) = api.jobs.values()
    job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    job["metadata"]["resourceVersion"] = str(next(api.rv))
    reconciler.observe("job", "MODIFIED", job)
    settle(reconciler, passes=4)
    owner = job["metadata"]["labels"][LABEL_EXPORT_UID]
    finished = next(o for o in api.exportjobs.values() if o["metadata"]["uid"] == owner)
    assert finished["status"]["phase"] == "Failed"  # completed without a result: WorkerCrashed
    assert finished["metadata"]["labels"] == {}  # it left the watch by its phase: no label write
    assert owner not in reconciler.state.exports
    assert api.creates == 2


def test_a_running_export_is_written_again_only_for_a_retry():
    """The Job's own status churn (startTime, a Pod active, then ready) costs no status write; a second Pod does."""
    api = FakeApi()
    api.add("e0")
    reconciler = Reconciler(api, OperatorSettings(max_concurrent=1, max_concurrent_per_namespace=1), Metrics())
    settle(reconciler)
    assert [p.get("phase") for _, p in api.status_writes] == ["Running"]
    assert api.exportjobs["e0"]["status"]["attempts"] == 1
    (job,) = api.jobs.values()

    def job_changes(status: dict[str, Any]) -> None:
        job["status"] = status
        job["metadata"]["resourceVersion"] = str(next(api.rv))
        reconciler.observe("job", "MODIFIED", dict(job))
        settle(reconciler)

    job_changes({"startTime": "2026-01-01T00:00:01Z"})
    job_changes({"startTime": "2026-01-01T00:00:01Z", "active": 1})
    job_changes({"startTime": "2026-01-01T00:00:01Z", "active": 1, "ready": 1})
    assert len(api.status_writes) == 1
    job_changes({"startTime": "2026-01-01T00:00:01Z", "active": 1, "failed": 1})  # the first Pod failed, retried
    assert len(api.status_writes) == 2 and api.status_writes[-1][1] == {"attempts": 2}
