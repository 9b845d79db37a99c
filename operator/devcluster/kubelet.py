"""The process kubelet: the dev cluster's only test double.

Started by :class:`devcluster.DevCluster` as ``python -m devcluster.kubelet``
(a detached daemon whose output is ``logs/kubelet.log``).  It talks to the real
kube-apiserver with pykube-ng and

* registers one Ready Node and keeps its heartbeat fresh;
* binds pending pods without ``nodeName`` to that Node (Binding subresource; there
  is no scheduler);
* runs each container's ``command``+``args`` as a local process (the image is
  never run) with the pod's environment, volumes mapped to host directories, output
  in ``<state_dir>/pods/<ns>/<pod>/<container>.log``;
* writes Pod status through the ``status`` subresource the way a real kubelet
  does, so the real Job controller counts completions and failures;
* honours deletion: SIGTERM, the grace period, SIGKILL, final status, delete.

The pure parts live in :mod:`devcluster.podenv`, :mod:`devcluster.podstatus`,
:mod:`devcluster.mounts` and :mod:`devcluster.expansion`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pykube
import requests

from . import processes
from .certs import Pki
from .kubeletserver import KubeletServer
from .paths import pod_dir
from .podenv import ContainerConfigError, PodResolver, VolumeError, launch_spec
from .podnet import ConnectProxy, PodAddresses, egress_socket, local_address
from .podstatus import MAX_TERMINATION_MESSAGE, ContainerRun, build_status, exit_code_of, now, pod_phase

log = logging.getLogger("devcluster.kubelet")

HEARTBEAT_SECONDS = 10.0
WATCH_SECONDS = 30
POLL_SECONDS = 0.1
RETRY_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 10.0
STATUS_MAX_BACKOFF_SECONDS = 10.0  # the longest wait between two tries to report a Pod's status
TERMINAL = ("Succeeded", "Failed")
SMP = {"Content-Type": "application/strategic-merge-patch+json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
KINDS = {"Secret": "secrets", "ConfigMap": "configmaps", "PersistentVolumeClaim": "persistentvolumeclaims"}


class Api:
    """Raw REST calls over a pykube-ng client (its session carries the kubeconfig's TLS identity)."""

    def __init__(self, kubeconfig: Path, timeout: float = 15.0) -> None:
        self.client = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)), timeout=timeout)
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
        stream: bool = False,
        timeout: Any = None,
    ) -> requests.Response:
        return self.client.session.request(
            method,
            self.client.url + path,
            params=params,
            headers=headers,
            stream=stream,
            data=json.dumps(body) if body is not None else None,
            timeout=timeout or self.timeout,
        )

    def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        r = self.request("GET", f"/api/v1/namespaces/{namespace}/{KINDS[kind]}/{name}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def request_token(self, namespace: str, service_account: str, spec: dict[str, Any]) -> str:
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": int(spec.get("expirationSeconds") or 3600)},
        }
        if spec.get("audience"):
            body["spec"]["audiences"] = [spec["audience"]]
        r = self.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token", body=body)
        if not r.ok:
            raise VolumeError(f"TokenRequest for serviceaccount {namespace}/{service_account}: {r.status_code}")
        return r.json()["status"]["token"]


def _meminfo_kib() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 4 * 1024 * 1024


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


class ProcessKubelet:
    """Registers the Node and keeps one :class:`PodWorker` per pod bound to it."""

    def __init__(self, kubeconfig: Path, state_dir: Path, node_name: str) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.state_dir = Path(state_dir)
        self.node_name = node_name
        self.api = Api(self.kubeconfig)
        self.watch_api = Api(self.kubeconfig)  # its own connection for the long-running watch
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.workers: dict[str, PodWorker] = {}
        self.done: set[str] = set()
        self.bin_dir = os.path.dirname(sys.executable)  # the venv's bin: exportjob-worker resolves
        self.registered_at = now()
        self.version = "v0.0.0"
        self.pod_addresses = PodAddresses()
        self.kubelet_port = 0  # the log endpoint's port (daemonEndpoints), once started

    # ------------------------------------------------------------------ events
    def event(
        self,
        pod: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        container: str | None = None,
        component: str = "kubelet",
    ) -> None:
        meta = pod["metadata"]
        ts = now()
        involved = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta.get("uid"),
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": component, "host": self.node_name},
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": self.node_name,
        }
        try:
            self.api.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=body)
        except requests.RequestException:
            pass  # events are best effort

    # -------------------------------------------------------------------- node
    def node_status(self) -> dict[str, Any]:
        ts = now()
        mem = f"{_meminfo_kib()}Ki"
        disk = f"{shutil.disk_usage(self.state_dir).total // 1024}Ki"
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": mem, "pods": "110", "ephemeral-storage": disk}

        def cond(t: str, s: str, reason: str, msg: str) -> dict[str, str]:
            return {
                "type": t,
                "status": s,
                "reason": reason,
                "message": msg,
                "lastHeartbeatTime": ts,
                "lastTransitionTime": self.registered_at,
            }

        return {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                cond(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
                ),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "devcluster process kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "devcluster process kubelet (container images are not run)",
                "containerRuntimeVersion": f"process://python-{platform.python_version()}",
                "kubeletVersion": self.version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }

    def register_node(self) -> None:
        with contextlib.suppress(requests.RequestException, ValueError):
            self.version = self.api.request("GET", "/version").json().get("gitVersion", self.version)
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": _arch(),
            "node.kubernetes.io/devcluster": "true",
        }
        node = pykube.Node(
            self.api.client,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": self.node_name, "labels": labels},
                "status": self.node_status(),
            },
        )
        if not node.exists():
            with contextlib.suppress(pykube.exceptions.HTTPError):  # lost a race with ourselves: fine
                node.create()
        node.reload()
        # TaintNodesByCondition adds a not-ready taint on creation; the node-lifecycle
        # controller (absent here) would lift it once Ready, so the kubelet does.
        taints = [
            t
            for t in node.obj.get("spec", {}).get("taints") or []
            if not t.get("key", "").startswith("node.kubernetes.io/not-ready")
        ]
        self.api.request(
            "PATCH", f"/api/v1/nodes/{self.node_name}", body={"spec": {"taints": taints or None}}, headers=MERGE
        ).raise_for_status()
        self.heartbeat()
        log.info("registered node %s (%s)", self.node_name, self.version)

    def heartbeat(self) -> None:
        r = self.api.request(
            "PATCH", f"/api/v1/nodes/{self.node_name}/status", body={"status": self.node_status()}, headers=MERGE
        )
        if r.status_code == 404:
            self.register_node()
            return
        r.raise_for_status()
        self.renew_lease(r.json()["metadata"]["uid"])

    def renew_lease(self, node_uid: str) -> None:
        """Renew the Node's Lease in kube-node-lease, as kubelets do (shown by ``kubectl describe node``)."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        renew = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": 40, "renewTime": renew}
        r = self.api.request("PATCH", path, body={"spec": spec}, headers=MERGE)
        if r.status_code == 404:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.node_name,
                    "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": node_uid}],
                },
                "spec": spec,
            }
            r = self.api.request("POST", path.rsplit("/", 1)[0], body=lease)
        if not r.ok and r.status_code != 409:
            log.warning("renewing the node lease failed: %s %s", r.status_code, r.text[:200])

    def _heartbeat_loop(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception as exc:
                log.warning("node heartbeat failed: %s", exc)

    # ------------------------------------------------------------- pod network
    def start_pod_network(self) -> ConnectProxy | None:
        """Serve the API server's egress CONNECT proxy (devcluster.podnet): pod proxy reaches Pod IPs.

        Also the kubelet's log endpoint (devcluster.kubeletserver), which the API server
        reaches through that proxy, so `pods/log` works.
        """
        pki = Pki(self.state_dir / "pki")
        try:
            server = KubeletServer(self.state_dir, pki.serving_cert, pki.serving_key, pki.ca_cert)
            self.kubelet_port = server.start().port
        except (OSError, ValueError) as exc:
            log.warning("kubelet log endpoint not started: %s (kubectl logs will not work)", exc)
        try:
            return ConnectProxy(egress_socket(self.state_dir)).start()
        except OSError as exc:
            log.warning("pod network: cannot serve the egress proxy: %s (pod proxy will not work)", exc)
            return None

    # -------------------------------------------------------------------- pods
    def worker_done(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)
            self.done.add(uid)
        self.pod_addresses.release(uid)

    def bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        r = self.api.request("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body=body)
        if r.ok:
            log.info("bound pod %s/%s", meta["namespace"], meta["name"])
            self.event(
                pod,
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.node_name}",
                component="default-scheduler",
            )
        elif r.status_code not in (404, 409):
            log.warning("binding %s/%s failed: %s %s", meta["namespace"], meta["name"], r.status_code, r.text[:200])

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        r = self.api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body=body)
        if r.ok or r.status_code in (404, 409):
            log.info("deleted pod %s/%s", namespace, name)
        else:
            log.warning("deleting pod %s/%s failed: %s %s", namespace, name, r.status_code, r.text[:200])

    def handle(self, pod: dict[str, Any], deleted: bool = False) -> None:
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        uid = meta["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            finished = uid in self.done
        if deleted:
            if worker:
                worker.pod_gone()
            elif finished:
                PodWorker.remove_empty_dirs(self.state_dir, meta["namespace"], meta["name"], uid)
            return
        node = spec.get("nodeName")
        if not node:
            if (
                not meta.get("deletionTimestamp")
                and not spec.get("schedulingGates")
                and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
            ):
                self.bind(pod)
            return
        if node != self.node_name:
            return
        if worker:
            worker.update(pod)
            return
        if finished or status.get("phase") in TERMINAL:
            if finished and meta.get("deletionTimestamp") and status.get("phase") in TERMINAL:
                self.delete_pod(meta["namespace"], meta["name"], uid)  # our delete did not reach the API
            return
        if meta.get("deletionTimestamp"):
            self.delete_pod(meta["namespace"], meta["name"], uid)  # never started here
            return
        if any(cs.get("containerID") for cs in status.get("containerStatuses") or []):
            self.fail_lost(pod)  # its processes died with a previous kubelet
            return
        worker = PodWorker(self, pod)
        with self.lock:
            self.workers[uid] = worker
        worker.start()

    def fail_lost(self, pod: dict[str, Any]) -> None:
        """Report containers of a previous kubelet incarnation as lost (exit 137), as the kubelet does."""
        spec = pod["spec"]
        runs = []
        for c in spec.get("containers", []):
            run = ContainerRun(c["name"], c.get("image", ""))
            run.set_terminated(
                137, "The container could not be located when the pod was terminated", reason="ContainerStatusUnknown"
            )
            runs.append(run)
        status = build_status(
            restart_policy=spec.get("restartPolicy", "Always"),
            init=[],
            main=runs,
            start_time=pod["status"].get("startTime") or now(),
            phase="Failed",
            previous_conditions=pod["status"].get("conditions"),
        )
        meta = pod["metadata"]
        self.api.request(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            body={"metadata": {"uid": meta["uid"]}, "status": status},
            headers=SMP,
        )
        with self.lock:
            self.done.add(meta["uid"])

    def relist(self) -> str:
        r = self.watch_api.request("GET", "/api/v1/pods")
        r.raise_for_status()
        data = r.json()
        seen = set()
        for pod in data.get("items") or []:
            seen.add(pod["metadata"]["uid"])
            self.handle(pod)
        with self.lock:
            vanished = [w for uid, w in self.workers.items() if uid not in seen]
            present = [w for uid, w in self.workers.items() if uid in seen]
        for w in vanished:
            w.pod_gone()
        for w in present:
            w.resync()  # the API answers again: statuses it missed are written now
        return data["metadata"]["resourceVersion"]

    def watch(self, resource_version: str) -> None:
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        with self.watch_api.request(
            "GET", "/api/v1/pods", params=params, stream=True, timeout=(5, WATCH_SECONDS + 15)
        ) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if self.stop_event.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    log.info("watch error (%s), re-listing", event.get("object", {}).get("message"))
                    return
                if event.get("type") == "BOOKMARK":
                    continue
                self.handle(event["object"], deleted=event.get("type") == "DELETED")

    def _pod_loop(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                rv = self.relist()
                self.watch(rv)
                backoff = 0.5
            except Exception as exc:
                log.warning("pod watch failed (%s: %s); re-listing in %.1fs", type(exc).__name__, exc, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    # --------------------------------------------------------------- lifecycle
    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        self.start_pod_network()
        while not self.stop_event.is_set():
            try:
                self.register_node()
                break
            except Exception as exc:
                log.warning("registering node failed: %s; retrying", exc)
                self.stop_event.wait(1.0)
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        threading.Thread(target=self._pod_loop, name="pods", daemon=True).start()
        while not self.stop_event.wait(1.0):
            pass
        log.info("shutting down: stopping all containers")
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.wake.set()
        for w in workers:
            w.join(timeout=15)
        log.info("stopped")
        return 0


class PodWorker(threading.Thread):
    """Runs one pod: volumes, init containers in order, then its containers concurrently."""

    def __init__(self, kubelet: ProcessKubelet, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.k = kubelet
        self.pod = pod
        self.namespace, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        spec = pod["spec"]
        self.restart_policy = spec.get("restartPolicy") or "Always"
        self.init_specs = spec.get("initContainers") or []
        self.main_specs = spec.get("containers") or []
        self.init = [ContainerRun(c["name"], c.get("image", ""), init=True) for c in self.init_specs]
        self.main = [ContainerRun(c["name"], c.get("image", "")) for c in self.main_specs]
        self.init_index = 0
        self.procs: dict[str, subprocess.Popen] = {}
        self.next_start: dict[str, float] = {}
        self.start_time = pod.get("status", {}).get("startTime") or now()
        self.prev_conditions = pod.get("status", {}).get("conditions")
        self.sandbox_ready = False
        self.terminal_written = False
        self.deleting = threading.Event()
        self.gone = threading.Event()
        self.wake = threading.Event()
        self.dir = pod_dir(kubelet.state_dir, self.namespace, self.pod_name)
        self.resolver = PodResolver(pod, kubelet.state_dir, self.dir, kubelet.api.get_object, kubelet.api.request_token)
        self.reported: dict[str, str] = {}
        self.unsynced = False  # a status write the API has not accepted yet ...
        self.unsynced_phase: str | None = None  # ... and the phase it was for
        self.resynced = threading.Event()
        self.assign_pod_ip()
        if meta.get("deletionTimestamp"):
            self.deleting.set()

    def assign_pod_ip(self) -> None:
        """A Pod IP of its own (devcluster.podnet); inside the Pod, status.podIP is its loopback twin."""
        self.pod_ip = self.k.pod_addresses.allocate(self.uid)
        self.resolver.local_pod_ip = local_address(self.pod_ip)

    # ---------------------------------------------------------------- signals
    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        self.resolver.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()
            self.wake.set()

    def pod_gone(self) -> None:
        self.gone.set()
        self.deleting.set()
        self.wake.set()

    # ------------------------------------------------------------------- api
    def write_status(self, phase: str | None = None, attempts: int = 3) -> bool:
        """PATCH the Pod's status; False if the API did not accept it after ``attempts`` tries.

        A failed write leaves ``self.unsynced`` set; :meth:`sync_status` repeats it.
        """
        if self.terminal_written:
            return False
        status = build_status(
            restart_policy=self.restart_policy,
            init=self.init,
            main=self.main,
            start_time=self.start_time,
            sandbox_ready=self.sandbox_ready,
            previous_conditions=self.prev_conditions,
            phase=phase,
            pod_ip=self.pod_ip,
        )
        body = {"metadata": {"uid": self.uid}, "status": status}
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}/status"
        self.unsynced, self.unsynced_phase = True, phase
        for attempt in range(attempts):
            if self.gone.is_set() or self.k.stop_event.is_set():
                return False
            try:
                r = self.k.api.request("PATCH", path, body=body, headers=SMP)
            except requests.RequestException as exc:
                log.warning("status of %s/%s: %s", self.namespace, self.pod_name, exc)
            else:
                if r.ok:
                    self.prev_conditions = r.json().get("status", {}).get("conditions")
                    self.terminal_written = status["phase"] in TERMINAL
                    self.unsynced = False
                    return True
                if r.status_code == 404 or (r.status_code == 409 and "UID" in r.text):
                    self.gone.set()
                    return False
                log.warning("status of %s/%s: %s %s", self.namespace, self.pod_name, r.status_code, r.text[:300])
            if attempt + 1 < attempts:
                time.sleep(min(0.25 * (attempt + 1), 2.0))
        return False

    def sync_status(self, phase: str | None) -> bool:
        """Write the status until the API accepts it, the Pod is gone or the kubelet stops.

        Like the real kubelet's status manager: a status the API server did not take
        (it is down, or etcd is) is retried with back-off, and at once when the pod
        watch reconnects (:meth:`resync`), so a Pod that finished during an outage is
        still reported and its Job completes.
        """
        backoff = 0.5
        while not self.write_status(phase):
            if self.gone.is_set() or self.k.stop_event.is_set() or self.terminal_written:
                return False
            log.info(
                "status of %s/%s not accepted; retrying in %.1fs or on reconnect",
                self.namespace,
                self.pod_name,
                backoff,
            )
            self.resynced.wait(backoff)
            self.resynced.clear()
            backoff = min(backoff * 2, STATUS_MAX_BACKOFF_SECONDS)
        return True

    def resync(self) -> None:
        """The pod watch (re)listed successfully: an unsynced status is retried now."""
        self.resynced.set()
        self.wake.set()

    def report_once(
        self, key: str, reason: str, message: str, type_: str = "Warning", container: str | None = None
    ) -> None:
        """Emit an event unless the same one was already emitted for ``key``."""
        if self.reported.get(key) != message:
            self.reported[key] = message
            self.k.event(self.pod, reason, message, type_, container)

    # ------------------------------------------------------------- containers
    def _base_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.dir),
            "HOSTNAME": self.pod_name,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        for name in filter(None, os.environ.get("DEVCLUSTER_PASSTHROUGH_ENV", "").split(",")):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def _start(self, spec: dict[str, Any], run: ContainerRun) -> None:
        name = spec["name"]
        term_file = self.dir / f"{name}.termination-log"
        try:
            launch = launch_spec(
                self.resolver,
                spec,
                termination_file=term_file,
                base_env=self._base_env(),
                bin_dir=self.k.bin_dir,
                default_cwd=self.dir,
            )
        except ContainerConfigError as exc:
            reason = (
                "CreateContainerError"
                if "command" in str(exc) or "workingDir" in str(exc)
                else "CreateContainerConfigError"
            )
            if run.reason != reason or run.message != str(exc):
                run.set_waiting(reason, str(exc))
                self.write_status()
            self.report_once(f"config-{name}", "Failed", f"Error: {exc}", container=name)
            self.next_start[name] = time.monotonic() + RETRY_SECONDS
            return
        except requests.RequestException as exc:
            log.warning("resolving %s/%s %s: %s", self.namespace, self.pod_name, name, exc)
            self.next_start[name] = time.monotonic() + RETRY_SECONDS
            return
        term_file.write_bytes(b"")
        log_path = self.dir / f"{name}.log"
        try:
            with open(log_path, "ab" if run.restart_count else "wb") as out:
                proc = subprocess.Popen(
                    launch.argv,
                    env=launch.env,
                    cwd=launch.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            message = f'exec: "{launch.argv[0]}": {exc.strerror or exc}'
            run.started_at = now()
            run.set_terminated(128, message, reason="StartError")
            self.report_once(f"start-{name}", "Failed", f"Error: {message}", container=name)
            log.info("container %s/%s/%s failed to start: %s", self.namespace, self.pod_name, name, message)
            return
        processes.write_pid_file(self.dir / f"{name}.pid", proc.pid)
        self.procs[name] = proc
        run.set_running(proc.pid)
        log.info(
            "started %s/%s/%s pid %d: %s", self.namespace, self.pod_name, name, proc.pid, shlex.join(launch.argv)[:300]
        )
        self.k.event(self.pod, "Started", f"Started container {name} (process {proc.pid})", container=name)

    def _termination_message(self, spec: dict[str, Any], run: ContainerRun, exit_code: int) -> str:
        try:
            with open(self.dir / f"{spec['name']}.termination-log", "rb") as fh:
                data = fh.read(MAX_TERMINATION_MESSAGE)
        except OSError:
            data = b""
        if not data and exit_code and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            with contextlib.suppress(OSError):
                tail = (self.dir / f"{spec['name']}.log").read_bytes()[-2048:]
                data = b"\n".join(tail.splitlines()[-80:])
        return data.decode("utf-8", "replace")

    def _reap(self, spec: dict[str, Any], run: ContainerRun) -> bool:
        """Collect an exited container; True if its state changed."""
        proc = self.procs.get(spec["name"])
        if proc is None or proc.poll() is None:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # like the runtime: the container's other processes go too
        del self.procs[spec["name"]]
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{spec['name']}.pid").unlink()
        code = exit_code_of(proc.returncode)
        run.set_terminated(code, self._termination_message(spec, run, code))
        log.info("container %s/%s/%s exited with %d", self.namespace, self.pod_name, spec["name"], code)
        return True

    def _maybe_restart(self, spec: dict[str, Any], run: ContainerRun) -> bool:
        if run.state != "terminated":
            return False
        if self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and run.exit_code):
            run.prepare_restart()
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (run.restart_count - 1))
            self.next_start[spec["name"]] = time.monotonic() + delay
            return True
        return False

    def _due(self, name: str) -> bool:
        return time.monotonic() >= self.next_start.get(name, 0.0)

    def _step(self) -> bool:
        """One supervision pass; True if anything changed."""
        changed = False
        if self.init_index < len(self.init):
            spec, run = self.init_specs[self.init_index], self.init[self.init_index]
            if run.state == "waiting" and self._due(spec["name"]):
                self._start(spec, run)
                changed |= run.state != "waiting"
            if self._reap(spec, run):
                changed = True
            if run.state == "terminated":
                if run.exit_code == 0:
                    self.init_index += 1
                    changed = True
                elif self.restart_policy != "Never":  # a failed init container is retried
                    run.prepare_restart()
                    self.next_start[spec["name"]] = time.monotonic() + min(
                        MAX_BACKOFF_SECONDS, 2.0 ** (run.restart_count - 1)
                    )
                    changed = True
            return changed
        for spec, run in zip(self.main_specs, self.main):
            if run.state == "waiting" and self._due(spec["name"]):
                self._start(spec, run)
                changed |= run.state != "waiting"
            if self._reap(spec, run):
                changed = True
            if run.state == "terminated" and self._maybe_restart(spec, run):
                changed = True
        return changed

    def _volumes(self) -> bool:
        try:
            self.resolver.setup_volumes()
        except (VolumeError, requests.RequestException) as exc:
            self.report_once("volumes", "FailedMount", f"MountVolume.SetUp failed: {exc}")
            return False
        for name in self.resolver.unsupported:
            self.report_once(
                f"vol-{name}",
                "UnsupportedVolume",
                f"volume {name!r}: type not implemented by the devcluster process kubelet; an empty directory is used",
                type_="Normal",
            )
        return True

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod worker %s/%s crashed", self.namespace, self.pod_name)
            self._kill_all(grace=1.0)
        finally:
            self.k.worker_done(self.uid)

    def _prepare_dir(self) -> None:
        marker = self.dir / ".uid"
        if self.dir.exists() and (not marker.exists() or marker.read_text() != self.uid):
            shutil.rmtree(self.dir, ignore_errors=True)  # an earlier pod of the same name
        self.dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(self.uid)

    def _run(self) -> None:
        self._prepare_dir()
        self.write_status()
        while not self.sandbox_ready:
            if self._interrupted():
                return self._finish_interrupted()
            if self._volumes():
                self.sandbox_ready = True
                self.write_status()
            else:
                self.wake.wait(RETRY_SECONDS)
                self.wake.clear()
        while True:
            if self._interrupted():
                return self._finish_interrupted()
            if self._step():
                phase = pod_phase(self.restart_policy, self.init, self.main)
                if phase in TERMINAL:
                    # the final status must reach the API whatever happens to it meanwhile,
                    # else the Job (and everything waiting for it) stays active forever
                    if self.sync_status(phase):
                        log.info("pod %s/%s %s", self.namespace, self.pod_name, phase)
                    return
                self.write_status(phase)
            elif self.unsynced and self.resynced.is_set():
                self.resynced.clear()
                self.write_status(self.unsynced_phase, attempts=1)
            self.wake.wait(POLL_SECONDS)
            self.wake.clear()

    def _interrupted(self) -> bool:
        return self.deleting.is_set() or self.k.stop_event.is_set()

    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace)

    def _kill_all(self, grace: float) -> None:
        for _name, proc in list(self.procs.items()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(POLL_SECONDS)
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def _finish_interrupted(self) -> None:
        if self.k.stop_event.is_set() and not self.deleting.is_set():
            self._kill_all(grace=5.0)  # kubelet shutdown: the pod stays as it is in the API
            return
        for name in self.procs:
            self.k.event(self.pod, "Killing", f"Stopping container {name}", container=name)
        grace = 2.0 if self.gone.is_set() else self._grace()
        self._kill_all(grace)
        for spec, run in zip(self.init_specs + self.main_specs, self.init + self.main):
            if not self._reap(spec, run) and run.state != "terminated":
                run.set_terminated(
                    137,
                    "The container could not be located when the pod was terminated",
                    reason="ContainerStatusUnknown",
                )
        if not self.gone.is_set():
            failed = any(r.exit_code for r in self.init + self.main)
            if self.sync_status("Failed" if failed else "Succeeded") or self.terminal_written:
                self.k.delete_pod(self.namespace, self.pod_name, self.uid)
        self.remove_empty_dirs(self.k.state_dir, self.namespace, self.pod_name, self.uid)

    @staticmethod
    def remove_empty_dirs(state_dir: Path, namespace: str, name: str, uid: str) -> None:
        """Drop a deleted pod's emptyDir/configMap/secret directories (logs are kept)."""
        d = pod_dir(state_dir, namespace, name)
        with contextlib.suppress(OSError):
            if (d / ".uid").read_text() == uid:
                shutil.rmtree(d / "volumes", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.kubelet", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--node-name", default="devcluster")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    return ProcessKubelet(args.kubeconfig, args.state_dir, args.node_name).run()


if __name__ == "__main__":
    sys.exit(main())
