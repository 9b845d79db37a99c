"""The operator end to end on the local control plane: real API server, real Job controller, real worker.

Each test gets its own namespace and its own operator process watching only
that namespace; worker Pods are run by the dev cluster's process kubelet.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from operator_harness import RunningSampler, metric, queue_positions, wait_for_metrics, wait_until

from exportjob.controller.manifests import UNFINISHED_EXPORTJOB_FIELD_SELECTOR

pytestmark = pytest.mark.cluster


def synthetic(records: int, path: str, fmt: str = "csv", **extra) -> dict:
    return {
        "format": fmt,
        "source": {"synthetic": {"records": records, "seed": 1}},
        "output": {"claimName": "exports", "path": path},
        **extra,
    }


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_export_lands_on_the_claim_with_the_status_telling_the_truth(
    exportjobs, start_operator, devcluster, namespace
):
    start_operator()
    exportjobs.create("orders", synthetic(20_000, "reports/orders.csv"))
    status = exportjobs.wait_for_phase("orders", ("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded", status

    file = devcluster.volume_dir(namespace, "exports") / "reports" / "orders.csv"
    assert file.is_file() and not list(file.parent.glob("*.part"))
    assert status["sha256"] == sha256(file)
    assert status["bytes"] == file.stat().st_size
    assert status["rows"] == 20_000 == len(file.read_text().splitlines()) - 1
    assert status["path"] == "reports/orders.csv" and status["claimName"] == "exports"
    assert status["attempts"] == 1 and status["durationSeconds"] > 0 and status["workerPeakMemoryBytes"] > 0
    assert status["startTime"] <= status["completionTime"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Complete"]["status"] == "True" and conditions["Admitted"]["status"] == "True"
    assert all(c["lastTransitionTime"] for c in conditions.values())
    assert status["observedGeneration"] == 1
    # Finished exports leave the operator's watch by their phase (a selectable field): no label write.
    assert "exportjob.io/finished" not in (exportjobs.get("orders")["metadata"].get("labels") or {})
    assert [ej["metadata"]["name"] for ej in exportjobs.list("status.phase=Succeeded")] == ["orders"]
    assert exportjobs.list(UNFINISHED_EXPORTJOB_FIELD_SELECTOR) == []

    (job,) = exportjobs.worker_jobs()
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("ExportJob", "orders", True)
    exportjobs.wait_for_events("orders", {"Admitted", "Succeeded"})


def test_pdf_export(exportjobs, start_operator, devcluster, namespace):
    start_operator()
    exportjobs.create("report", synthetic(2_000, "report.pdf", fmt="pdf", pdf={"title": "Orders"}))
    status = exportjobs.wait_for_phase("report", ("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded", status
    file = devcluster.volume_dir(namespace, "exports") / "report.pdf"
    assert file.read_bytes().startswith(b"%PDF-") and status["sha256"] == sha256(file)
    manifest = json.loads((file.parent / "report.pdf.manifest.json").read_text())
    assert manifest["sha256"] == status["sha256"] and manifest["rows"] == 2_000


def test_twenty_exports_never_run_more_than_the_limit_and_go_by_priority(
    exportjobs, start_operator, devcluster, namespace
):
    # Created before the operator starts, so that all twenty compete for the first slots.
    priorities = {f"e{i:02d}": (i % 4) * 10 for i in range(20)}
    for name, priority in priorities.items():
        exportjobs.create(name, synthetic(30_000, f"many/{name}.csv", priority=priority))

    with RunningSampler(exportjobs) as sampler:
        operator = start_operator(max_concurrent=3, max_concurrent_per_namespace=3)
        # While exports wait, `exportjob queue` numbers them 1..n, higher priority first.
        wait_until(
            lambda: [e for e in exportjobs.list() if (e.get("status") or {}).get("phase") == "Queued"],
            30,
            "queued exports",
        )
        positions = queue_positions(devcluster.kubeconfig, namespace)
        assert sorted(positions.values()) == list(range(1, len(positions) + 1))
        by_position = sorted(positions, key=positions.__getitem__)
        assert [priorities[n] for n in by_position] == sorted((priorities[n] for n in by_position), reverse=True)
        items = exportjobs.wait_all_finished(timeout=300)

    assert sampler.samples > 20
    assert 1 <= sampler.peak <= 3, sampler.peak
    assert all(i["status"]["phase"] == "Succeeded" for i in items), [i["status"] for i in items]
    admitted = {i["metadata"]["name"]: i["status"]["admittedAt"] for i in items}
    for high, p_high in priorities.items():
        for low, p_low in priorities.items():
            if p_high > p_low:
                assert admitted[high] <= admitted[low], f"{high} (priority {p_high}) admitted after {low} ({p_low})"
    wait_for_metrics(
        operator,
        {
            ("exportjob_exports_total", "format=csv", "result=succeeded"): 20,
            ("exportjob_queue_depth",): 0,
            ("exportjob_max_concurrent",): 3,
        },
    )


def test_operator_killed_mid_run_loses_nothing_duplicates_nothing_counts_once(exportjobs, start_operator):
    names = [f"k{i}" for i in range(6)]
    for name in names:
        exportjobs.create(name, synthetic(1_500_000, f"kill/{name}.csv"))
    first = start_operator(max_concurrent=2)
    wait_until(lambda: len(exportjobs.worker_jobs()) >= 2, 60, "two worker Jobs")
    first.kill()
    finished_before = sum(
        1 for e in exportjobs.list() if (e.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    )

    second = start_operator(max_concurrent=2)
    items = exportjobs.wait_all_finished(timeout=300)
    assert [i["status"]["phase"] for i in items] == ["Succeeded"] * 6
    jobs = exportjobs.worker_jobs()
    assert sorted(j.metadata.owner_references[0].name for j in jobs) == names  # exactly one Job per export
    assert all(i["status"]["attempts"] == 1 for i in items)
    wait_for_metrics(second, {("exportjob_exports_total", "format=csv", "result=succeeded"): 6 - finished_before})


def test_waits_for_a_missing_claim_and_secret_without_holding_a_slot(exportjobs, start_operator):
    start_operator(max_concurrent=1)
    exportjobs.create(
        "no-claim",
        {"format": "csv", "source": {"synthetic": {"records": 10}}, "output": {"claimName": "later", "path": "a.csv"}},
    )
    exportjobs.create(
        "no-secret",
        {
            "format": "csv",
            "output": {"claimName": "exports", "path": "b.csv"},
            "source": {"postgres": {"query": "select 1", "connectionSecretRef": {"name": "pg", "key": "dsn"}}},
        },
    )
    waiting = exportjobs.wait_for_phase("no-claim", "Waiting")
    assert waiting["reason"] == "ClaimNotFound" and '"later" not found' in waiting["message"]
    no_secret = exportjobs.wait_for_phase("no-secret", "Waiting")
    assert no_secret["reason"] == "SecretNotFound" and 'Secret "pg" in namespace' in no_secret["message"]
    assert "does not exist or has no key" in no_secret["message"]  # the same text whether it exists or not

    # Neither holds the only slot: another export runs meanwhile.
    exportjobs.create("runs", synthetic(100, "c.csv"))
    assert exportjobs.wait_for_phase("runs", ("Succeeded", "Failed"))["phase"] == "Succeeded"

    exportjobs.create_claim("later")
    assert exportjobs.wait_for_phase("no-claim", ("Succeeded", "Failed"))["phase"] == "Succeeded"
    exportjobs.wait_for_events("no-claim", {"ClaimNotFound"})


def test_deleting_queued_and_running_exports_frees_their_slots(exportjobs, start_operator, devcluster, namespace):
    operator = start_operator(max_concurrent=1)
    exportjobs.create("long", synthetic(5_000_000, "long.csv"))
    exportjobs.wait_for_phase("long", "Running")
    # creationTimestamp has one-second resolution and ties go by name: the names fix the order.
    exportjobs.create("a-queued", synthetic(10, "queued.csv"))
    exportjobs.wait_for_phase("a-queued", "Queued")
    exportjobs.create("b-next", synthetic(10, "next.csv"))
    exportjobs.wait_for_phase("b-next", "Queued")
    assert queue_positions(devcluster.kubeconfig, namespace) == {"a-queued": 1, "b-next": 2}
    levels = wait_until(
        lambda: (s := operator.metrics()) and metric(s, "exportjob_queue_depth") == 2 and s, 15, "queue depth 2"
    )
    assert metric(levels, "exportjob_running") == 1

    exportjobs.delete("a-queued")
    exportjobs.delete("long")
    # The running export's Job (and Pod) go away, which frees the slot for `next`.
    wait_until(
        lambda: all(j.metadata.owner_references[0].name != "long" for j in exportjobs.worker_jobs()),
        60,
        "the deleted export's Job to be removed",
    )
    assert exportjobs.wait_for_phase("b-next", ("Succeeded", "Failed"))["phase"] == "Succeeded"
    assert not exportjobs.exists("a-queued")
    volume = devcluster.volume_dir(namespace, "exports")
    assert not (volume / "long.csv").exists() and not list(volume.glob("*.part")), "an interrupted export left a file"


def test_metrics_endpoint_matches_the_exports_that_ran(exportjobs, start_operator, devcluster, namespace):
    operator = start_operator(max_concurrent=2)
    exportjobs.create("a", synthetic(1_000, "m/a.csv"))
    exportjobs.create("b", synthetic(2_000, "m/b.csv"))
    exportjobs.create("c", synthetic(300, "m/c.pdf", fmt="pdf"))
    exportjobs.create(
        "broken",
        {
            "format": "csv",
            "backoffLimit": 0,
            "output": {"claimName": "exports", "path": "m/x.csv"},
            "columns": [{"name": "no_such_column"}],
            "source": {"synthetic": {"records": 5}},
        },
    )
    items = {i["metadata"]["name"]: i["status"] for i in exportjobs.wait_all_finished()}
    assert items["broken"]["phase"] == "Failed" and items["broken"]["reason"] == "InvalidSpec"

    samples = wait_for_metrics(
        operator,
        {
            ("exportjob_running",): 0,
            ("exportjob_exports_total", "format=csv", "result=succeeded"): 2,
            ("exportjob_exports_total", "format=pdf", "result=succeeded"): 1,
            ("exportjob_exports_total", "format=csv", "result=failed"): 1,
            # counted one after another by the same call: wait for all of them, not just the first
            ("exportjob_failures_total", "format=csv", "reason=InvalidSpec"): 1,
            ("exportjob_rows_total", "format=csv"): 3_000,
            ("exportjob_output_bytes_total", "format=csv"): items["a"]["bytes"] + items["b"]["bytes"],
            ("exportjob_output_bytes_total", "format=pdf"): items["c"]["bytes"],
            ("exportjob_export_duration_seconds_count", "format=csv"): 3,
        },
    )
    assert metric(samples, "exportjob_queue_wait_seconds_count", format="csv") == 3
    assert metric(samples, "exportjob_worker_peak_memory_bytes_count", format="pdf") == 1
    assert metric(samples, "exportjob_queue_depth") == 0 and metric(samples, "exportjob_max_concurrent") == 2


def test_sigterm_stops_the_operator_cleanly(start_operator):
    operator = start_operator()
    started = time.monotonic()
    assert operator.stop() == 0
    assert time.monotonic() - started < 20


def test_postgres_export_reads_the_dsn_from_a_secret(exportjobs, start_operator, postgres, devcluster, namespace):
    postgres.execute(
        "CREATE TABLE IF NOT EXISTS cluster_orders AS SELECT g AS id, 'name ' || g AS name, g * 1.5 AS amount "
        "FROM generate_series(1, 5000) g"
    )
    exportjobs.create_secret("pg", {"dsn": postgres.dsn()})
    start_operator()
    exportjobs.create(
        "pg-orders",
        {
            "format": "csv",
            "output": {"claimName": "exports", "path": "pg/orders.csv"},
            "source": {
                "postgres": {
                    "query": "SELECT id, name, amount FROM cluster_orders ORDER BY id",
                    "connectionSecretRef": {"name": "pg", "key": "dsn"},
                }
            },
        },
    )
    status = exportjobs.wait_for_phase("pg-orders", ("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded", status
    file = devcluster.volume_dir(namespace, "exports") / "pg" / "orders.csv"
    lines = file.read_text().splitlines()
    assert lines[0] == "id,name,amount" and lines[1] == "1,name 1,1.5" and len(lines) == 5001
    assert status["sha256"] == sha256(file) and status["rows"] == 5000
    (job,) = exportjobs.worker_jobs()
    env = {e.name: e for e in job.spec.template.spec.containers[0].env}
    assert env["EXPORTJOB_POSTGRES_DSN"].value is None  # only a secretKeyRef, never the value
    assert env["EXPORTJOB_POSTGRES_DSN"].value_from.secret_key_ref.name == "pg"


def test_two_replicas_elect_one_leader_and_the_standby_takes_over(exportjobs, start_operator):
    replicas = [start_operator(max_concurrent=2), start_operator(max_concurrent=2)]

    def leader():
        flags = [metric(r.metrics(), "exportjob_leader") for r in replicas]
        return sorted(flags) == [0.0, 1.0] and replicas[flags.index(1.0)]

    first = wait_until(leader, 20, "exactly one leader")
    with RunningSampler(exportjobs) as sampler:
        for name in ("h1", "h2", "h3", "h4", "h5"):
            exportjobs.create(name, synthetic(1_500_000, f"ha/{name}.csv"))
        wait_until(lambda: len(exportjobs.worker_jobs()) >= 2, 30, "the leader to admit two exports")
        first.kill()
        standby = next(r for r in replicas if r is not first)
        wait_until(lambda: metric(standby.metrics(), "exportjob_leader") == 1, 30, "the standby to take over the Lease")
        items = exportjobs.wait_all_finished(timeout=240)
    assert sampler.peak <= 2, sampler.peak  # the two replicas never admitted more than the limit together
    assert [i["status"]["phase"] for i in items] == ["Succeeded"] * 5
    assert len(exportjobs.worker_jobs()) == 5  # one Job per export, across both replicas
