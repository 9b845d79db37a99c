"""The fault suite: kill, stop and delete things under running exports, then check what survives.

Each test injects one fault into a working system (the operator as a process,
the dev cluster's real etcd, kube-apiserver and kube-controller-manager, the
process kubelet's workers, a real PostgreSQL, a real full disk) and checks the
invariants: nothing lost, nothing run twice, never more than the limit running,
files complete or absent. Each records a row of figures (see conftest.py); the
table is in docs/reliability.md. Tests wait for conditions, never for time,
except the deliberate outage (`CHAOS_OUTAGE_SECONDS`, default 30; 100 is the
long variant).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import statistics
import subprocess
import time
import uuid

import pykube
import pytest
from chaos_tools import (
    Observer,
    alive,
    job_intervals,
    max_overlap,
    part_files,
    seconds_since,
    worker_pids,
)
from operator_harness import ExportJobs, metric, wait_until

pytestmark = pytest.mark.chaos

OUTAGE_SECONDS = float(os.environ.get("CHAOS_OUTAGE_SECONDS", "30"))
RUN_EXPORTS = int(os.environ.get("CHAOS_EXPORTS", "50"))  # the long variant: CHAOS_EXPORTS=100 CHAOS_KILLS=10
RUN_KILLS = int(os.environ.get("CHAOS_KILLS", "5"))
SEED = int(os.environ.get("CHAOS_SEED", "13"))
TERMINAL = ("Succeeded", "Failed")


def export(path: str, records: int, claim: str = "exports", **extra) -> dict:
    return {
        "format": "csv",
        "source": {"synthetic": {"records": records}},
        "output": {"claimName": claim, "path": path},
        "ttlSecondsAfterFinished": 3600,  # Jobs are the evidence: keep them for the whole test
        **extra,
    }


def phases(exportjobs: ExportJobs) -> dict[str, str | None]:
    return {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in exportjobs.list()}


def count_phase(exportjobs: ExportJobs, *wanted: str) -> int:
    return sum(1 for phase in phases(exportjobs).values() if phase in wanted)


def jobs_per_export(exportjobs: ExportJobs) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in exportjobs.worker_jobs():
        owner = job.metadata.owner_references[0].name
        counts[owner] = counts.get(owner, 0) + 1
    return counts


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assert_all_succeeded(exportjobs: ExportJobs, volume, names: list[str], records: int) -> None:
    """0 lost: every export Succeeded once, its file complete (rows, sha256), one Job each."""
    statuses = {i["metadata"]["name"]: i.get("status") or {} for i in exportjobs.list()}
    assert sorted(statuses) == sorted(names)
    failed = {n: (s.get("phase"), s.get("reason"), s.get("message")) for n, s in statuses.items()}
    failed = {n: v for n, v in failed.items() if v[0] != "Succeeded"}
    assert not failed, failed
    for name, status in statuses.items():
        assert status["rows"] == records, (name, status)
        assert sha256(volume / status["path"]) == status["sha256"], name
    duplicated = {n: c for n, c in jobs_per_export(exportjobs).items() if c != 1}
    assert not duplicated, f"exports with more than one worker Job: {duplicated}"


# --- the operator, SIGKILLed again and again ---------------------------------------------------


def test_operator_sigkilled_during_a_run_loses_and_duplicates_nothing(
    exportjobs, start_operator, devcluster, namespace, chaos_figures
):
    limit = 5
    settings = {"max_concurrent": limit, "max_concurrent_per_namespace": limit, "lease_duration_seconds": 3}
    operator = start_operator(**settings)
    names = [f"ex-{i:03d}" for i in range(RUN_EXPORTS)]
    rng = random.Random(SEED)
    # kill points: alternately "right after the k-th admission" and "right after the k-th finish"
    points = sorted(rng.sample(range(2, RUN_EXPORTS - 2), RUN_KILLS))
    with Observer(exportjobs) as observer:
        for name in names:  # same priority: the queue order is creation order, then name
            exportjobs.create(name, export(f"{name}.csv", 2000, backoffLimit=2))
        started = time.monotonic()
        done_at_last_start = 0
        recoveries: list[float] = []  # from a kill until the new process leads (reconciles)
        for number, point in enumerate(points, 1):
            if number % 2:
                wait_until(lambda p=point: observer.jobs_seen >= p, 300, f"admission #{point}", interval=0.02)
            else:
                wait_until(
                    lambda p=point: count_phase(exportjobs, *TERMINAL) >= p, 300, f"finish #{point}", interval=0.05
                )
            operator.kill()
            killed = time.monotonic()
            operator = start_operator(**settings)
            # the new process cannot lead before the dead one's Lease expires: nothing finishes meanwhile
            done_at_last_start = count_phase(exportjobs, *TERMINAL)
            # the new process reconciles once it holds the Lease
            wait_until(lambda o=operator: metric(o.metrics(), "exportjob_leader") == 1, 60, "the new operator to lead")
            recoveries.append(seconds_since(killed))
        exportjobs.wait_all_finished(timeout=600)
        elapsed = seconds_since(started)
        final_metrics = operator.metrics()
    volume = devcluster.volume_dir(namespace, "exports")
    assert_all_succeeded(exportjobs, volume, names, 2000)
    jobs = exportjobs.worker_jobs()
    by_times = max_overlap(job_intervals(jobs))
    assert by_times <= limit, f"{by_times} Jobs were active at once (limit {limit})"
    assert observer.peak_jobs <= limit, f"{observer.peak_jobs} unfinished Jobs seen at once"
    assert observer.peak_processes <= limit, f"{observer.peak_processes} worker processes seen at once"
    assert observer.order_violations(names) == [], "admitted ahead of an older export"
    counted = sum(
        metric(final_metrics, "exportjob_exports_total", format="csv", result=r) for r in ("succeeded", "failed")
    )
    assert counted == RUN_EXPORTS - done_at_last_start, "the last operator counted exports it did not finish"
    assert part_files(volume) == []
    chaos_figures.append(
        {
            "scenario": f"operator SIGKILL x{RUN_KILLS}, {RUN_EXPORTS} exports, limit {limit}",
            "injection": "SIGKILL after admissions/finishes at seeded random points; restarted each time",
            "outcome": f"all Succeeded in {elapsed}s; peak {by_times} by Job times, {observer.peak_jobs} sampled, "
            f"{observer.peak_processes} worker processes; queue order kept; metrics counted once",
            "lost": 0,
            "duplicated": 0,
            "over-admitted": 0,
            "recovery s": f"median {statistics.median(recoveries)}, max {max(recoveries)} (kill until a new leader)",
        }
    )


# --- the control plane: kube-apiserver and etcd ------------------------------------------------


def _control_plane_fault(exportjobs, start_operator, devcluster, namespace, chaos_figures, *, label, inject, records):
    """3 exports running, 3 queued; `inject()` breaks and restores something; all six must finish."""
    operator = start_operator(max_concurrent=3, max_concurrent_per_namespace=3)
    names = [f"cp-{i}" for i in range(6)]
    with Observer(exportjobs) as observer:
        for name in names:
            exportjobs.create(name, export(f"{name}.csv", records, backoffLimit=2))
        wait_until(lambda: len(worker_pids(namespace)) == 3, 120, "three workers running")
        before = {job.metadata.name for job in exportjobs.worker_jobs()}
        injection = inject()
        back = time.monotonic()

        def admitted():
            return [job for job in exportjobs.worker_jobs() if job.metadata.name not in before]

        def progress():
            """A worker Job admitted after the fault has Pods: operator, controller manager and kubelet work."""
            return any(job.status.active or job.status.succeeded or job.status.failed for job in admitted())

        wait_until(admitted, 240, "the operator to admit an export after the fault")
        admission = seconds_since(back)
        wait_until(progress, 240, "a worker Job admitted after the fault to get its Pod")
        recovery = f"admission {admission}, Pod {seconds_since(back)}"
        exportjobs.wait_all_finished(timeout=300)
        all_done = seconds_since(back)
    volume = devcluster.volume_dir(namespace, "exports")
    assert_all_succeeded(exportjobs, volume, names, records)
    assert operator.process.poll() is None, "the operator exited"
    by_times = max_overlap(job_intervals(exportjobs.worker_jobs()))
    assert by_times <= 3 and observer.peak_processes <= 3, (by_times, observer.peak_processes)
    assert part_files(volume) == []
    chaos_figures.append(
        {
            "scenario": label,
            "injection": injection,
            "outcome": f"6/6 Succeeded, operator not restarted; all done {all_done}s after the fault",
            "lost": 0,
            "duplicated": 0,
            "over-admitted": 0,
            "recovery s": recovery,
        }
    )


def test_apiserver_sigkill_and_restart(exportjobs, start_operator, devcluster, namespace, chaos_figures):
    def inject():
        devcluster.stop_component("kube-apiserver", kill=True)
        return (
            f"kube-apiserver SIGKILL, restarted at once (ready in {devcluster.start_component('kube-apiserver'):.1f}s)"
        )

    _control_plane_fault(
        exportjobs,
        start_operator,
        devcluster,
        namespace,
        chaos_figures,
        label="kube-apiserver SIGKILL + restart",
        inject=inject,
        records=300_000,
    )


def test_apiserver_outage_while_workers_finish(exportjobs, start_operator, devcluster, namespace, chaos_figures):
    """Workers finish while the API is down; the kubelet must report them afterwards (or the slots stay held)."""

    def inject():
        devcluster.stop_component("kube-apiserver")
        gone = time.monotonic()
        wait_until(lambda: not worker_pids(namespace), OUTAGE_SECONDS + 120, "the running workers to finish")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - gone)))  # the deliberate outage
        outage = time.monotonic() - gone
        ready = devcluster.start_component("kube-apiserver")
        return f"kube-apiserver stopped {outage:.0f}s; the 3 running workers finished meanwhile (ready in {ready:.1f}s)"

    _control_plane_fault(
        exportjobs,
        start_operator,
        devcluster,
        namespace,
        chaos_figures,
        label=f"kube-apiserver outage {OUTAGE_SECONDS:.0f}s",
        inject=inject,
        records=300_000,
    )


def test_etcd_sigkill_and_restart(exportjobs, start_operator, devcluster, namespace, chaos_figures):
    def inject():
        devcluster.stop_component("etcd", kill=True)
        etcd = devcluster.start_component("etcd")
        api = devcluster.start_component("kube-apiserver")  # running all along: waits for /readyz again
        return f"etcd SIGKILL, restarted at once (ready in {etcd:.1f}s, API ready {api:.1f}s later)"

    _control_plane_fault(
        exportjobs,
        start_operator,
        devcluster,
        namespace,
        chaos_figures,
        label="etcd SIGKILL + restart",
        inject=inject,
        records=300_000,
    )


# --- the worker, PostgreSQL, the disk ----------------------------------------------------------


def test_worker_sigkilled_mid_write_is_retried_and_leaves_no_partial_file(
    exportjobs, start_operator, devcluster, namespace, chaos_figures
):
    start_operator()
    records = 1_000_000
    exportjobs.create("victim", export("victim.csv", records, backoffLimit=2))
    volume = devcluster.volume_dir(namespace, "exports")

    def writing():
        parts = list(volume.glob("victim.csv.*.part")) if volume.exists() else []
        return parts and parts[0].stat().st_size > 1_000_000 and worker_pids(namespace)

    pids = wait_until(writing, 120, "the worker to have written 1 MB")
    os.kill(pids[0], signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: not alive(pids[0]), 10, "the worker to die")
    assert not (volume / "victim.csv").exists(), "a file appeared under the final name"
    assert len(part_files(volume)) == 1  # the killed attempt's, until an attempt succeeds
    status = exportjobs.wait_for_phase("victim", TERMINAL, timeout=180)
    recovery = seconds_since(killed)
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] == 2 and status["rows"] == records
    assert sha256(volume / "victim.csv") == status["sha256"]
    assert part_files(volume) == [], "the killed attempt's .part survived the successful one"
    chaos_figures.append(
        {
            "scenario": "worker SIGKILL mid-write",
            "injection": "SIGKILL the worker after 1 MB of a 1M-row CSV",
            "outcome": "no file under the final name; attempt 2 Succeeded, sha256 true, no .part left",
            "lost": 0,
            "duplicated": 0,
            "over-admitted": 0,
            "recovery s": recovery,
        }
    )


def test_postgres_stopped_mid_export_fails_retryably_then_succeeds(
    exportjobs, start_operator, devcluster, namespace, kube_api, postgres, chaos_figures
):
    rows = 2_000_000
    exportjobs.create_secret("pg", {"dsn": postgres.dsn()})
    start_operator()
    query = f"SELECT g AS id, md5(g::text) AS name FROM generate_series(1, {rows}) AS g"
    spec = {
        "format": "csv",
        "backoffLimit": 3,
        "source": {"postgres": {"query": query, "connectionSecretRef": {"name": "pg", "key": "dsn"}}},
        "output": {"claimName": "exports", "path": "pg.csv"},
    }
    exportjobs.create("pg", spec)
    volume = devcluster.volume_dir(namespace, "exports")
    wait_until(
        lambda: volume.exists() and any(p.stat().st_size > 100_000 for p in volume.glob("pg.csv.*.part")),
        120,
        "the export to stream rows",
    )
    postgres.halt()
    stopped = time.monotonic()
    try:

        def attempt_failed():
            jobs = exportjobs.worker_jobs()
            return jobs and (jobs[0].status.failed or 0) >= 1

        wait_until(attempt_failed, 120, "the first attempt to fail")
    finally:
        postgres.resume()
    status = exportjobs.wait_for_phase("pg", TERMINAL, timeout=180)
    recovery = seconds_since(stopped)
    assert status["phase"] == "Succeeded", status
    exit_codes = [
        cs["state"]["terminated"]["exitCode"]
        for pod in pykube.Pod.objects(kube_api, namespace=namespace)
        if pod.obj["status"].get("phase") == "Failed"
        for cs in pod.obj["status"].get("containerStatuses") or []
    ]
    assert exit_codes and set(exit_codes) == {75}, exit_codes  # EX_TEMPFAIL: retryable, counted by backoffLimit
    assert 2 <= status["attempts"] <= 4 and status["rows"] == rows  # within backoffLimit 3
    assert sha256(volume / "pg.csv") == status["sha256"]
    assert part_files(volume) == []
    chaos_figures.append(
        {
            "scenario": "PostgreSQL stopped mid-export",
            "injection": "pg_ctl stop -m fast while rows stream; started again after the attempt failed",
            "outcome": f"attempt 1 failed (retryable), attempt {status['attempts']} Succeeded, sha256 true",
            "lost": 0,
            "duplicated": 0,
            "over-admitted": 0,
            "recovery s": recovery,
        }
    )


@pytest.fixture
def tiny_claim(exportjobs, devcluster, namespace):
    """A claim whose directory is a 256 KiB tmpfs: a real disk that really fills up."""
    exportjobs.create_claim("tiny")
    directory = devcluster.volume_dir(namespace, "tiny")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(directory)], check=True)
    yield directory
    subprocess.run(["umount", "-l", str(directory)], check=False)


def test_disk_full_on_one_claim_leaves_the_others_unaffected(
    exportjobs, start_operator, devcluster, namespace, tiny_claim, chaos_figures
):
    start_operator()
    exportjobs.create("full", export("full.csv", 100_000, claim="tiny", backoffLimit=0))
    for i in range(3):
        exportjobs.create(f"fine-{i}", export(f"fine-{i}.csv", 20_000))
    exportjobs.wait_all_finished(timeout=180)
    status = exportjobs.status("full")
    assert (status["phase"], status["reason"]) == ("Failed", "DiskFull"), status
    assert list(tiny_claim.iterdir()) == [], "a partial file was left behind"
    volume = devcluster.volume_dir(namespace, "exports")
    for i in range(3):
        fine = exportjobs.status(f"fine-{i}")
        assert fine["phase"] == "Succeeded" and sha256(volume / fine["path"]) == fine["sha256"]
    chaos_figures.append(
        {
            "scenario": "disk full on one claim",
            "injection": "a 256 KiB tmpfs as the claim of one export; 3 others on another claim",
            "outcome": "Failed DiskFull, no partial file; the 3 others Succeeded",
            "lost": 0,
            "duplicated": 0,
            "over-admitted": 0,
            "recovery s": "-",
        }
    )


# --- deletions ---------------------------------------------------------------------------------


def test_exportjob_deleted_while_running(exportjobs, start_operator, devcluster, namespace, kube_api, chaos_figures):
    start_operator(max_concurrent=1, max_concurrent_per_namespace=1)
    exportjobs.create("doomed", export("doomed.csv", 50_000_000))
    exportjobs.create("next", export("next.csv", 20_000))
    volume = devcluster.volume_dir(namespace, "exports")
    wait_until(lambda: worker_pids(namespace) and part_files(volume), 120, "the doomed worker to write")
    exportjobs.delete("doomed")
    deleted = time.monotonic()
    exportjobs.wait_for_phase("next", "Running", timeout=60)
    recovery = seconds_since(deleted)
    assert exportjobs.wait_for_phase("next", TERMINAL, timeout=120)["phase"] == "Succeeded"
    wait_until(
        lambda: not any(j.metadata.owner_references[0].name == "doomed" for j in exportjobs.worker_jobs()),
        60,
        "the doomed Job to go",
    )
    wait_until(
        lambda: not [p for p in pykube.Pod.objects(kube_api, namespace=namespace) if "doomed" in p.name],
        60,
        "the doomed Pod to go",
    )
    wait_until(lambda: not part_files(volume), 60, "the doomed .part to go")
    assert not (volume / "doomed.csv").exists()
    chaos_figures.append(
        {
            "scenario": "ExportJob deleted while running",
            "injection": "kubectl delete exportjob of a running export; one more queued (limit 1)",
            "outcome": "its Job, Pod and .part gone; the queued one admitted and Succeeded",
            "lost": 0,
            "duplicated": 0,
            "over-admitted": 0,
            "recovery s": recovery,
        }
    )


def test_namespace_deleted_with_running_exports(
    exportjobs, start_operator, devcluster, namespace, kube_api, k8s_client, chaos_figures
):
    """Two exports run in a second namespace, which is deleted; the first namespace's queue moves on."""
    other = f"t-{uuid.uuid4().hex[:10]}"
    pykube.Namespace(kube_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}).create()
    wait_until(
        lambda: pykube.ServiceAccount.objects(kube_api, namespace=other).get_or_none(name="default"),
        30,
        f"ServiceAccount {other}/default",
    )
    try:
        doomed = ExportJobs(k8s_client, other)
        doomed.create_claim("exports")
        start_operator(namespaces=f"{namespace},{other}", max_concurrent=2, max_concurrent_per_namespace=2)
        for i in range(2):
            doomed.create(f"doomed-{i}", export(f"doomed-{i}.csv", 50_000_000))
        wait_until(lambda: len(worker_pids(other)) == 2, 120, "both doomed workers running")
        for i in range(2):
            exportjobs.create(f"waiting-{i}", export(f"waiting-{i}.csv", 20_000))
        wait_until(lambda: count_phase(exportjobs, "Queued") == 2, 60, "the other namespace's exports queued")
        pykube.Namespace(kube_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}).delete()
        deleted = time.monotonic()
        wait_until(lambda: count_phase(exportjobs, "Running", *TERMINAL) >= 1, 120, "an admission elsewhere")
        recovery = seconds_since(deleted)
        exportjobs.wait_all_finished(timeout=120)
        assert set(phases(exportjobs).values()) == {"Succeeded"}
        wait_until(
            lambda: pykube.Namespace.objects(kube_api).get_or_none(name=other) is None,
            120,
            f"namespace {other} to be gone",
        )
        gone = seconds_since(deleted)
        assert worker_pids(other) == []
        left = part_files(devcluster.volume_dir(other, "exports"))
        assert left == [], f"partial files of the deleted namespace: {left}"
    finally:
        pykube.Namespace(kube_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}).delete()
    chaos_figures.append(
        {
            "scenario": "namespace deleted with 2 running exports",
            "injection": "kubectl delete namespace; 2 exports queued in another namespace (limit 2)",
            "outcome": f"namespace gone after {gone}s (workers stopped, .part removed); the others admitted, Succeeded",
            "lost": 0,
            "duplicated": 0,
            "over-admitted": 0,
            "recovery s": recovery,
        }
    )


def test_claim_deleted_while_running(exportjobs, start_operator, devcluster, namespace, kube_api, chaos_figures):
    """The PVC stays Terminating while any Pod uses it (pvc-protection), finished Pods included, until the Job's TTL."""
    start_operator(max_concurrent=1, max_concurrent_per_namespace=1)
    exportjobs.create("using", export("using.csv", 600_000, ttlSecondsAfterFinished=5))
    volume = devcluster.volume_dir(namespace, "exports")
    wait_until(lambda: worker_pids(namespace) and part_files(volume), 120, "the worker to write")
    exportjobs.create("after", export("after.csv", 20_000, ttlSecondsAfterFinished=5))
    exportjobs.wait_for_phase("after", "Queued", timeout=60)
    claim = pykube.PersistentVolumeClaim.objects(kube_api, namespace=namespace).get(name="exports")
    claim.delete()
    deleted = time.monotonic()
    claim.reload()
    assert claim.obj["metadata"].get("deletionTimestamp"), "the claim in use was deleted at once"
    status = exportjobs.wait_for_phase("using", TERMINAL, timeout=120)
    assert status["phase"] == "Succeeded" and sha256(volume / "using.csv") == status["sha256"]
    # the claim still exists (Terminating), so the queued export is admitted onto it; the process
    # kubelet starts it (a real kubelet would not: "persistentvolumeclaim is being deleted")
    after = exportjobs.wait_for_phase("after", TERMINAL, timeout=120)
    assert after["phase"] == "Succeeded", after

    def claim_gone():
        return pykube.PersistentVolumeClaim.objects(kube_api, namespace=namespace).get_or_none(name="exports") is None

    wait_until(claim_gone, 120, "the claim to go once the finished Jobs (TTL 5 s) took their Pods along")
    gone = seconds_since(deleted)
    assert exportjobs.worker_jobs() == [] and part_files(volume) == []
    chaos_figures.append(
        {
            "scenario": "PVC deleted while an export writes to it",
            "injection": "kubectl delete pvc under a running export; one more queued (limit 1)",
            "outcome": f"PVC Terminating until both Jobs' TTL (5 s) removed their Pods, gone after {gone}s; "
            "running one Succeeded; queued one admitted onto the Terminating PVC and Succeeded",
            "lost": 0,
            "duplicated": 0,
            "over-admitted": 0,
            "recovery s": gone,
        }
    )


# --- the dev cluster's own fault injection -----------------------------------------------------


def _cluster_processes(devcluster) -> set[int]:
    """Every live process whose command line names the cluster's state directory (containers aside)."""
    marker = str(devcluster.state_dir).encode()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as file:
                cmdline = file.read()
        except OSError:
            continue
        if marker in cmdline and b"exportjob-worker" not in cmdline and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


def test_restarted_components_are_tracked(devcluster, chaos_figures):
    """`restart <component>` (SIGKILL or SIGTERM) brings each one back under a recorded pid, so teardown finds it."""
    from devcluster.cluster import COMPONENTS

    seconds = {}
    for component in COMPONENTS:
        old = devcluster.running_components()[component]
        seconds[component] = devcluster.restart_component(component, kill=component != "kubelet")
        new = devcluster.running_components()[component]
        assert new and new != old and not alive(old), (component, old, new)
    wait_until(devcluster.is_healthy, 60, "the cluster to be healthy again")
    recorded = set(devcluster.running_components().values())
    assert _cluster_processes(devcluster) == recorded  # nothing runs that `down` would not find
    chaos_figures.append(
        {
            "scenario": "dev cluster: restart each component",
            "injection": "restart --kill etcd, kube-apiserver, kube-controller-manager; restart kubelet",
            "outcome": "new pids recorded in run/*.pid; no unrecorded process; cluster healthy",
            "lost": "-",
            "duplicated": "-",
            "over-admitted": "-",
            "recovery s": " / ".join(f"{c} {s:.1f}" for c, s in seconds.items()),
        }
    )
