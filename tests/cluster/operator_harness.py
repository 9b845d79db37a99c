"""Helpers for operator tests on the local control plane: the operator as a real process, ExportJob CRUD, polling.

The operator under test runs exactly as users run it: the `exportjob-operator`
console script in its own process, configured through EXPORTJOB_* variables,
watching only the test's namespace (so tests cannot see each other's exports).
Its worker Jobs are run by the dev cluster's process kubelet with the real
`exportjob-worker`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from exportjob.spec import API_GROUP, API_VERSION, PLURAL

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "exportjob.io_exportjobs.yaml"
OPERATOR_BIN = Path(sys.executable).parent / "exportjob-operator"
EXPORTJOB_BIN = Path(sys.executable).parent / "exportjob"


def queue_positions(kubeconfig: Path, namespace: str, **limits: Any) -> dict[str, int]:
    """`exportjob queue -n NAMESPACE -o json`, as a user runs it: export name -> position."""
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in limits.items()]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(
        [str(EXPORTJOB_BIN), "queue", "-n", namespace, "-o", "json", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {row["name"]: row["position"] for row in json.loads(done.stdout)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class OperatorProcess:
    """`exportjob-operator` in a subprocess, with its log in a file."""

    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path, **settings: Any) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_path
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.settings = {
            "namespaces": namespace,
            "resync_seconds": 2,
            "default_claim": "exports",
            # Each test's operators elect their leader in the test's own namespace, with a short lease.
            "lease_namespace": namespace,
            "lease_duration_seconds": 6,
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTJOB_")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["EXPORTJOB_METRICS_PORT"] = str(self.metrics_port)
        env["EXPORTJOB_HEALTH_PORT"] = str(self.health_port)
        env["EXPORTJOB_LOG_FORMAT"] = "plain"
        for key, value in self.settings.items():
            env[f"EXPORTJOB_{key.upper()}"] = str(value)
        return env

    def start(self) -> OperatorProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(OPERATOR_BIN)], env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        # Generous: on a loaded shared machine importing kopf and the clients alone took > 30 s (run 1 of 3).
        wait_until(self._healthy, 120, f"operator liveness (log: {self.log_path})")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics, keyed by (sample name, sorted labels)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers run, as in a node crash or OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError("operator did not stop within 30 s of SIGTERM") from None

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def metric(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for_metrics(operator: OperatorProcess, expected: dict[tuple[str, ...], float], timeout: float = 60) -> dict:
    """Wait until every metric in `expected` ((name, label=value, ...) -> value) has its value; return the samples.

    The operator counts a finished export after it writes the status (and labels the
    object), so a test that just saw the phase change must wait for the counters too.
    """

    def key_value(key: tuple[str, ...], samples: dict) -> float:
        labels = dict(item.split("=", 1) for item in key[1:])
        return metric(samples, key[0], **labels)

    return wait_until(
        lambda: (s := operator.metrics()) and all(key_value(k, s) == v for k, v in expected.items()) and s,
        timeout,
        f"metrics {expected}",
    )


class RunningSampler:
    """Counts unfinished worker Jobs continuously in a thread; `peak` is the most seen at once."""

    def __init__(self, exportjobs: ExportJobs) -> None:
        self.exportjobs = exportjobs
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            running = sum(
                1
                for job in self.exportjobs.worker_jobs()
                if not any(
                    c.status == "True" and c.type in ("Complete", "Failed") for c in (job.status.conditions or [])
                )
            )
            self.peak = max(self.peak, running)
            self.samples += 1

    def __enter__(self) -> RunningSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


class ExportJobs:
    """ExportJob CRUD in one namespace through the official client."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "ExportJob",
            "metadata": {"name": name},
            "spec": spec,
        }
        return self.custom.create_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace, PLURAL, name)

    def list(self, field_selector: str = "") -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, PLURAL, field_selector=field_selector
        )["items"]

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace, PLURAL, name)

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except ApiException as error:
            if error.status == 404:
                return False
            raise

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def wait_for_phase(self, name: str, phases: tuple[str, ...] | str, timeout: float = 90) -> dict[str, Any]:
        wanted = (phases,) if isinstance(phases, str) else phases
        return wait_until(
            lambda: (s := self.status(name)).get("phase") in wanted and s,
            timeout,
            f"ExportJob {self.namespace}/{name} to reach {wanted} (now {self.status(name).get('phase')})",
        )

    def wait_all_finished(self, timeout: float = 180) -> list[dict[str, Any]]:
        def done() -> list[dict[str, Any]] | None:
            items = self.list()
            return (
                items
                if items and all((i.get("status") or {}).get("phase") in ("Succeeded", "Failed") for i in items)
                else None
            )

        return wait_until(done, timeout, f"every ExportJob in {self.namespace} to finish", interval=0.5)

    def worker_jobs(self) -> list[Any]:
        return self.batch.list_namespaced_job(
            self.namespace, label_selector="app.kubernetes.io/managed-by=exportjob-operator"
        ).items

    def create_claim(self, name: str = "exports") -> None:
        self.core.create_namespaced_persistent_volume_claim(
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        )

    def create_secret(self, name: str, data: dict[str, str]) -> None:
        self.core.create_namespaced_secret(
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "stringData": data,
            },
        )

    def events(self, name: str) -> list[str]:
        """Reasons of the Events on ExportJob `name` (order not guaranteed)."""
        items = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}").items
        return [event.reason for event in items]

    def wait_for_events(self, name: str, reasons: set[str], timeout: float = 60) -> list[str]:
        """Wait until Events with every reason in `reasons` exist on ExportJob `name`.

        The operator posts events after it writes the status, so they may lag a phase change.
        """
        return wait_until(
            lambda: reasons <= set(found := self.events(name)) and found,
            timeout,
            f"events {sorted(reasons)} on ExportJob {self.namespace}/{name} (so far: {self.events(name)})",
        )
