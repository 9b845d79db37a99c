"""Fair tenants on the real API server: priority orders a namespace's own exports, never another's."""

from __future__ import annotations

from operator_harness import ExportJobs, queue_positions
from test_operator import synthetic


def test_another_namespaces_burst_of_high_priority_cannot_starve_an_earlier_export(
    k8s_client, exportjob_crd, exportjobs, second_namespace, start_operator, devcluster, namespace
):
    tenant_a, tenant_b = exportjobs, ExportJobs(k8s_client, second_namespace)
    tenant_b.create_claim("exports")
    # One slot in all: A's long export holds it while the queue forms.
    start_operator(namespaces=f"{namespace},{second_namespace}", max_concurrent=1, max_concurrent_per_namespace=1)
    tenant_a.create("a-long", synthetic(3_000_000, "long.csv", priority=1000))
    tenant_a.wait_for_phase("a-long", "Running")
    tenant_b.create("b-patient", synthetic(10, "patient.csv", priority=0))
    tenant_b.wait_for_phase("b-patient", "Queued")
    burst = [f"a-burst-{i}" for i in range(4)]
    for name in burst:
        tenant_a.create(name, synthetic(10, f"{name}.csv", priority=1000))
    for name in burst:
        tenant_a.wait_for_phase(name, "Queued")

    # The on-demand view already says B is next, although A's exports have the higher priority.
    assert queue_positions(devcluster.kubeconfig, second_namespace) == {"b-patient": 1}
    positions = queue_positions(devcluster.kubeconfig, namespace)
    assert sorted(positions.values()) == [2, 3, 4, 5]

    # With one slot, B must have finished before any export of A's burst was admitted: when the slot
    # frees, both namespaces run nothing, and A had the last turn.
    patient = tenant_b.wait_for_phase("b-patient", ("Succeeded", "Failed"), timeout=180)
    assert patient["phase"] == "Succeeded", patient
    items = {i["metadata"]["name"]: i["status"] for i in tenant_a.wait_all_finished(timeout=240)}
    assert all(items[name]["phase"] == "Succeeded" for name in burst), items
    assert all(patient["completionTime"] <= items[name]["admittedAt"] for name in burst), (patient, items)
    assert items["a-long"]["completionTime"] <= patient["admittedAt"]
