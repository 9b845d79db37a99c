"""One enum of reasons: the worker, the outcome and the metrics share it, and untrusted values are bounded."""

import json

from exportjob.controller.metrics import Metrics
from exportjob.controller.outcome import observe_job
from exportjob.reasons import FAILURE_REASONS, Reason, failure_reason
from exportjob.worker import errors


def test_the_worker_reports_members_of_the_same_enum():
    assert errors.Reason is Reason
    assert errors.permanent(Reason.DISK_FULL, "x").reason == "DiskFull"


def test_an_unknown_or_hostile_reason_becomes_worker_crashed():
    assert failure_reason("DiskFull") is Reason.DISK_FULL
    assert failure_reason("x" * 10_000) is Reason.WORKER_CRASHED
    assert failure_reason(None) is Reason.WORKER_CRASHED


def test_a_forged_result_cannot_mint_metric_labels_or_flood_the_status():
    job = {"status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}}
    pod = {
        "metadata": {},
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": 65,
                            "finishedAt": "2026-01-01T00:00:00Z",
                            "message": json.dumps({"ok": False, "reason": "Evil1", "message": "m" * 5000}),
                        }
                    }
                }
            ]
        },
    }
    outcome = observe_job(job, [pod])
    assert outcome.reason == Reason.WORKER_CRASHED and len(outcome.message or "") <= 1024
    metrics = Metrics()
    for i in range(50):
        metrics.record_finished(
            "csv",
            succeeded=False,
            reason=f"Evil{i}",
            rows=None,
            size=None,
            duration_seconds=None,
            peak_memory_bytes=None,
        )
    counted = {
        s.labels["reason"]: s.value
        for m in metrics.registry.collect()
        for s in m.samples
        if "reason" in s.labels and s.labels["format"] == "csv" and s.name.endswith("_total")
    }
    assert set(counted) == set(FAILURE_REASONS)  # a bounded set, all present from the start
    assert counted["WorkerCrashed"] == 50 and sum(counted.values()) == 50
