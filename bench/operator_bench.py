"""`make bench-operator`: what the operator costs the API server and itself per export, and how fast it admits.

Runs on its own local control plane (real etcd, kube-apiserver,
kube-controller-manager, the process kubelet running the real worker) in a
temporary directory, with the operator as users run it (`exportjob-operator`
in its own process). Optionally runs the same scenario with the operator of
another git revision side by side (`--baseline REF`: the source of REF in a
temporary worktree, same venv), so figures are compared in one run.

Scenarios (bench/README.md says how each figure is taken):

* lifecycle N (N small synthetic CSV exports applied at once, `--limit`
  running): exports/min, writes to ExportJob objects per export (the API
  server's `apiserver_request_total{resource="exportjobs"}` PATCH/PUT/POST
  before and after), operator and kube-apiserver CPU per export
  (/proc/<pid>/stat utime+stime, from after the operator started), operator
  peak RSS (VmHWM), max running vs the limit (from every Job's startTime and
  completionTime), slot-freed → next-Job latency p50/p95 (a watch on the
  worker Jobs, receive times: a Job's terminal condition → the next Job ADDED,
  while exports were still queued).
* admission N: the kubelet is paused (SIGSTOP) so Pods never start; N exports
  exist before the operator starts with `maxConcurrent` N; admissions/s is N
  over the time from the first to the last worker Job ADDED on the watch.
* restart F+Q: F finished and Q queued exports exist (the kubelet paused);
  the operator starts; reported: seconds from process start to the first
  worker Job, and its RSS once it has admitted.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from devcluster import DevCluster  # noqa: E402
from machine import cpu_seconds  # noqa: E402

GROUP, VERSION, PLURAL = "exportjob.io", "v1alpha1", "exportjobs"
CRD = REPO / "crds" / "exportjob.io_exportjobs.yaml"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "etcd")
WORKER_SELECTOR = "app.kubernetes.io/managed-by=exportjob-operator,app.kubernetes.io/component=worker"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Operator:
    """`exportjob-operator` (this tree's, or a baseline revision's source) in its own process."""

    def __init__(self, cluster: DevCluster, namespaces: list[str], log: Path, source: Path | None, **settings: Any):
        self.metrics_port, self.health_port = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "EXPORTJOB_NAMESPACES": ",".join(namespaces),
            "EXPORTJOB_DEFAULT_CLAIM": "exports",
            "EXPORTJOB_LEASE_NAMESPACE": namespaces[0],
            "EXPORTJOB_METRICS_PORT": str(self.metrics_port),
            "EXPORTJOB_HEALTH_PORT": str(self.health_port),
            "EXPORTJOB_LOG_FORMAT": "plain",
        }
        env.update({f"EXPORTJOB_{k.upper()}": str(v) for k, v in settings.items()})
        if source is not None:
            env["PYTHONPATH"] = str(source / "operator")
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exportjob.controller.main"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for(self._healthy, 60, "the operator's health endpoint")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited with {self.process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class JobWatch:
    """Receive times of worker Job events: ADDED, and the first event carrying a terminal condition."""

    def __init__(self, api: client.ApiClient, namespaces: list[str]) -> None:
        self.added: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.times: dict[str, tuple[str, str]] = {}  # startTime, completionTime
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(api, ns), daemon=True) for ns in namespaces]
        for thread in self._threads:
            thread.start()

    def _run(self, api: client.ApiClient, namespace: str) -> None:
        """Each watch resumes where the last one ended (a watch from no resourceVersion would send every
        Job again: every 5 s, the whole history, which cost the API server more the more exports ran)."""
        batch = client.BatchV1Api(api)
        resume: dict[str, str] = {}
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    batch.list_namespaced_job,
                    namespace,
                    label_selector=WORKER_SELECTOR,
                    timeout_seconds=5,
                    allow_watch_bookmarks=True,
                    **resume,
                ):
                    if event["type"] == "BOOKMARK":
                        resume = {"resource_version": event["raw_object"]["metadata"]["resourceVersion"]}
                        continue
                    resume = {"resource_version": event["object"].metadata.resource_version}
                    now = time.monotonic()
                    job = event["object"]
                    key = f"{namespace}/{job.metadata.name}"
                    if event["type"] == "ADDED":
                        self.added.setdefault(key, now)
                    conditions = (job.status and job.status.conditions) or []
                    if any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions):
                        self.finished.setdefault(key, now)
                        if job.status.start_time and job.status.completion_time:
                            self.times[key] = (job.status.start_time, job.status.completion_time)
                    if self._stop.is_set():
                        break
            except ApiException as error:
                if error.status == 410:  # too old: start over from every Job (the times are kept)
                    resume = {}
                time.sleep(0.2)
            except Exception:
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def slot_latencies(self) -> list[float]:
        """For each Job that finished while another Job was still to be created: time to the next ADDED."""
        added = sorted(self.added.values())
        latencies = []
        for finished in self.finished.values():
            following = [t for t in added if t >= finished]
            if following:
                latencies.append(following[0] - finished)
        return latencies


def max_running(times: dict[str, tuple[Any, Any]]) -> int:
    intervals = [(s.timestamp(), c.timestamp()) for s, c in times.values()]
    best = 0
    for start, _ in intervals:
        best = max(best, sum(1 for s, c in intervals if s <= start < c))
    return best


def request_counts(kubeconfig: Path) -> dict[tuple[str, str], float]:
    """Requests the API server has served so far, by (verb, resource), from its `/metrics`."""
    body = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    counts: dict[tuple[str, str], float] = {}
    for line in body.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(
            part.split("=", 1) for part in line[line.index("{") + 1 : line.rindex("}")].split(",") if "=" in part
        )
        key = (labels.get("verb", "").strip('"'), labels.get("resource", "").strip('"'))
        counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def write_requests(counts: dict[tuple[str, str], float]) -> float:
    """PATCH/PUT requests to ExportJob objects (status and metadata)."""
    return sum(n for (verb, resource), n in counts.items() if resource == "exportjobs" and verb in ("PATCH", "PUT"))


def synthetic(records: int, path: str, priority: int = 0) -> dict[str, Any]:
    return {
        "format": "csv",
        "priority": priority,
        "source": {"synthetic": {"records": records}},
        "output": {"claimName": "exports", "path": path},
    }


class Bench:
    def __init__(self, cluster: DevCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.counter = 0
        self.dropped: list[str] = []

    def pid(self, component: str) -> int:
        pid = self.cluster.running_components()[component]
        assert pid is not None, component
        return pid

    @contextmanager
    def kubelet_paused(self):
        pid = self.pid("kubelet")
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def namespaces(self, count: int) -> list[str]:
        names = []
        for _ in range(count):
            self.counter += 1
            name = f"bench-{os.getpid()}-{self.counter}"
            self.core.create_namespace({"metadata": {"name": name}})
            wait_for(lambda name=name: self._has_default_sa(name), 60, f"ServiceAccount {name}/default")
            self.core.create_namespaced_persistent_volume_claim(
                name,
                {
                    "metadata": {"name": "exports"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                },
            )
            names.append(name)
        return names

    def _has_default_sa(self, namespace: str) -> bool:
        try:
            self.core.read_namespaced_service_account("default", namespace)
            return True
        except ApiException:
            return False

    def create(self, namespaces: list[str], count: int, records: int = 10, prefix: str = "e") -> list[tuple[str, str]]:
        def one(i: int) -> tuple[str, str]:
            namespace = namespaces[i % len(namespaces)]
            name = f"{prefix}{i:05d}"
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ExportJob",
                "metadata": {"name": name},
                "spec": synthetic(records, f"bench/{name}.csv"),
            }
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
            return namespace, name

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(count)))

    def finish_directly(self, objects: list[tuple[str, str]]) -> None:
        """Make exports look long finished (a terminal status), as history does."""

        def one(item: tuple[str, str]) -> None:
            namespace, name = item
            status = {"phase": "Succeeded", "rows": 10, "bytes": 100, "size": "100 B"}
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, objects))

    def unfinished(self, namespaces: list[str]) -> int:
        count = 0
        for namespace in namespaces:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
            count += sum(1 for i in items if (i.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))
        return count

    def drop(self, namespaces: list[str]) -> None:
        """Delete the case's namespaces; the next case waits until they are gone (`settle`): emptying one
        that held 5,000 exports (their Jobs, Pods and Events) keeps the control plane busy for minutes,
        which the next case would otherwise pay for."""
        for namespace in namespaces:
            try:
                self.core.delete_namespace(namespace)
            except ApiException:
                pass

    def settle(self) -> None:
        """Wait (at most 30 min) until every namespace an earlier case dropped is gone; called with the
        kubelet running, which must stop the Pods bound to it first."""
        pending = [ns for ns in self.dropped if self._exists(ns)]
        try:
            wait_for(lambda: not any(self._exists(ns) for ns in pending), 1800, "dropped namespaces to go", 2)
        except TimeoutError as error:
            print(f"# {error}; going on", flush=True)
        self.dropped = []

    def _exists(self, namespace: str) -> bool:
        try:
            self.core.read_namespace(namespace)
            return True
        except ApiException as error:
            if error.status == 404:
                return False
            raise

    # --- scenarios -----------------------------------------------------------------------------
    def lifecycle(self, count: int, limit: int, source: Path | None, label: str) -> dict[str, Any]:
        self.settle()
        namespaces = self.namespaces(1)
        operator = Operator(
            self.cluster,
            namespaces,
            self.workdir / f"operator-{label}-{count}.log",
            source,
            max_concurrent=limit,
            max_concurrent_per_namespace=limit,
        )
        jobs = JobWatch(self.api, namespaces)
        api_pid = self.pid("kube-apiserver")
        time.sleep(2)  # the operator's start-up is not counted
        cpu_op0, cpu_api0, requests0 = (
            cpu_seconds(operator.pid),
            cpu_seconds(api_pid),
            request_counts(self.cluster.kubeconfig),
        )
        started = time.monotonic()
        self.create(namespaces, count)
        wait_for(lambda: len(jobs.finished) >= count, 60 + count * 3, f"{count} worker Jobs to finish", interval=0.5)
        wait_for(lambda: self.unfinished(namespaces) == 0, 120, f"{count} exports to finish", interval=1)
        elapsed = time.monotonic() - started
        cpu_op, cpu_api = cpu_seconds(operator.pid) - cpu_op0, cpu_seconds(api_pid) - cpu_api0
        requests = request_counts(self.cluster.kubeconfig)
        writes = write_requests(requests) - write_requests(requests0)
        # Every kind of request the API server served during the case, per export (what grows with N).
        per_export = {
            f"{verb} {resource}": round((n - requests0.get((verb, resource), 0.0)) / count, 2)
            for (verb, resource), n in sorted(requests.items())
            if (n - requests0.get((verb, resource), 0.0)) / count >= 0.05
        }
        print(f"# requests per export, {label} {count}: {json.dumps(per_export)}", flush=True)
        peak = peak_rss_mb(operator.pid)
        jobs.stop()
        operator.stop()
        latencies = jobs.slot_latencies()
        self.drop(namespaces)
        return {
            "operator": label,
            "exports": count,
            "limit": limit,
            "exports_per_min": round(count / elapsed * 60, 1),
            "writes_per_export": round(writes / count, 2),
            "operator_cpu_ms_per_export": round(cpu_op / count * 1000, 1),
            "apiserver_cpu_ms_per_export": round(cpu_api / count * 1000, 1),
            "operator_peak_rss_mb": round(peak, 1),
            "max_running": max_running(jobs.times),
            "slot_to_admission_p50_s": round(percentile(latencies, 0.5), 3),
            "slot_to_admission_p95_s": round(percentile(latencies, 0.95), 3),
        }

    def admission(self, count: int, source: Path | None, label: str) -> dict[str, Any]:
        self.settle()
        namespaces = self.namespaces(4)
        with self.kubelet_paused():
            self.create(namespaces, count)
            jobs = JobWatch(self.api, namespaces)
            time.sleep(1)
            operator = Operator(
                self.cluster,
                namespaces,
                self.workdir / f"operator-admission-{label}.log",
                source,
                max_concurrent=count,
                max_concurrent_per_namespace=count,
            )
            control_plane = {name: self.pid(name) for name in CONTROL_PLANE}
            cpu0 = cpu_seconds(operator.pid)
            plane0 = {name: cpu_seconds(pid) for name, pid in control_plane.items()}
            wait_for(lambda: len(jobs.added) >= count, 120 + count / 5, f"{count} worker Jobs", interval=0.5)
            cpu = cpu_seconds(operator.pid) - cpu0
            plane = {name: cpu_seconds(pid) - plane0[name] for name, pid in control_plane.items()}
            first, last = min(jobs.added.values()), max(jobs.added.values())
            operator.stop()
            jobs.stop()
            self.drop(namespaces)  # unbound Pods go at once; the paused kubelet never ran them
        return {
            "operator": label,
            "exports": count,
            "admissions_per_s": round((count - 1) / (last - first), 1) if last > first else float("inf"),
            "start_to_first_job_s": round(first - operator.started, 2),
            "operator_cpu_ms_per_admission": round(cpu / count * 1000, 1),
            # What the rest of the machine's CPU went to meanwhile: on 2 cores the sum bounds admissions/s.
            **{f"{name}_cpu_ms_per_admission": round(value / count * 1000, 1) for name, value in plane.items()},
            "operator_peak_rss_mb": round(peak_rss_mb(operator.pid), 1) if operator.process.poll() is None else None,
        }

    def restart(self, finished: int, queued: int, source: Path | None, label: str) -> dict[str, Any]:
        self.settle()
        namespaces = self.namespaces(2)
        with self.kubelet_paused():
            history = self.create(namespaces, finished, prefix="h")
            self.finish_directly(history)
            self.create(namespaces, queued, prefix="q")
            jobs = JobWatch(self.api, namespaces)
            operator = Operator(
                self.cluster,
                namespaces,
                self.workdir / f"operator-restart-{label}.log",
                source,
                max_concurrent=10,
                max_concurrent_per_namespace=10,
            )
            wait_for(lambda: len(jobs.added) >= 10, 300, "the first ten admissions", interval=0.2)
            first = min(jobs.added.values())
            time.sleep(5)
            rss, peak = rss_mb(operator.pid), peak_rss_mb(operator.pid)
            operator.stop()
            jobs.stop()
            self.drop(namespaces)
        return {
            "operator": label,
            "finished": finished,
            "queued": queued,
            "start_to_first_admission_s": round(first - operator.started, 2),
            "operator_rss_mb": round(rss, 1),
            "operator_peak_rss_mb": round(peak, 1),
        }


@contextmanager
def baseline_tree(ref: str | None):
    if not ref:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="exportjob-baseline-"))
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), ref], check=True, capture_output=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], capture_output=True)


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lifecycle", default="100,1000", help="comma-separated export counts (limit --limit)")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--admission", type=int, default=2000, help="exports admitted at once (0 skips)")
    parser.add_argument("--restart", default="10000,5000", help="finished,queued (empty skips)")
    parser.add_argument("--baseline", help="git revision whose operator runs the lifecycle and admission cases too")
    parser.add_argument("--baseline-lifecycle", default="100", help="lifecycle counts for the baseline")
    parser.add_argument("--json", type=Path, help="write the figures here")
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="exportjob-bench-operator-"))
    results: dict[str, list[dict[str, Any]]] = {"lifecycle": [], "admission": [], "restart": []}
    print(f"# bench-operator: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; logs in {workdir}", flush=True)
    with DevCluster(workdir / "cluster", bin_dir=REPO / "bin") as cluster, baseline_tree(arguments.baseline) as base:
        cluster.start()
        subprocess.run(
            ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "apply", "--server-side", "-f", str(CRD)],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(cluster.kubeconfig),
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/exportjobs.exportjob.io",
            ],
            check=True,
            capture_output=True,
        )
        bench = Bench(cluster, workdir)
        runs: list[tuple[str, Path | None]] = [("this", None)] + ([("baseline", base)] if base else [])
        for label, source in runs:
            counts = arguments.lifecycle if label == "this" else arguments.baseline_lifecycle
            for count in [int(c) for c in counts.split(",") if c]:
                row = bench.lifecycle(count, arguments.limit, source, label)
                results["lifecycle"].append(row)
                print(json.dumps(row), flush=True)
        if arguments.admission:
            for label, source in runs:
                row = bench.admission(arguments.admission, source, label)
                results["admission"].append(row)
                print(json.dumps(row), flush=True)
        if arguments.restart:
            finished, queued = (int(x) for x in arguments.restart.split(","))
            row = bench.restart(finished, queued, None, "this")
            results["restart"].append(row)
            print(json.dumps(row), flush=True)
    for name, rows in results.items():
        if rows:
            print(f"\n## {name}\n\n{table(rows)}")
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
