"""End to end on a real node: kubelet + containerd + runc + CNI, the image built from the
Dockerfile, the operator installed by the chart (hack/realnode.sh; docs/devcluster.md).

What only a real node proves (the process kubelet cannot): the image builds and runs,
the chart's operator Pod works in-cluster on its own ServiceAccount, securityContext
(uid, read-only root) and the absence of a token are enforced by runc, memory limits
are enforced by the kernel's cgroup (a hog is OOM-killed and reported), `helm test`
runs its Pod, `kubectl logs` / `kubectl exec` reach the kubelet.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from realnode_harness import RealNode

from devcluster.waiting import wait_for

pytestmark = pytest.mark.realnode

UID = 65532
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
OPERATOR_SELECTOR = "app.kubernetes.io/name=exportjob-operator,app.kubernetes.io/component!=test"


def _export_job(name: str, namespace: str, source: dict[str, Any], path: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "exportjob.io/v1alpha1",
        "kind": "ExportJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"format": "csv", "source": source, "output": {"claimName": "exports", "path": path}, **spec},
    }


def _finished(node: RealNode, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = node.get("exportjob", name, namespace).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    return wait_for(probe, timeout=timeout, description=f"ExportJob {namespace}/{name} finished")


def _worker_pod(node: RealNode, namespace: str, job_name: str) -> dict[str, Any]:
    pods = node.pods(namespace, f"job-name={job_name}")
    assert pods, f"no worker Pod of Job {job_name}"
    return pods[-1]


def _reader_sha256(node: RealNode, namespace: str, path: str) -> str:
    """sha256 of a file on the claim, computed inside a Pod that mounts it (kubectl exec + sha256sum).

    (`exportjob download` is being built in parallel; this reads the file back the same
    way, through the cluster, without touching the host directory.)"""
    pod = f"reader-{uuid.uuid4().hex[:6]}"
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "namespace": namespace},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {"runAsUser": UID, "runAsGroup": UID, "runAsNonRoot": True},
                "containers": [
                    {
                        "name": "reader",
                        "image": node.image,
                        "command": ["sleep", "infinity"],
                        "volumeMounts": [{"name": "exports", "mountPath": "/exports", "readOnly": True}],
                        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
                    }
                ],
                "volumes": [{"name": "exports", "persistentVolumeClaim": {"claimName": "exports", "readOnly": True}}],
            },
        }
    )
    node.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "-n", namespace, "--timeout=120s")
    out = node.kubectl("exec", "-n", namespace, pod, "--", "sha256sum", f"/exports/{path}").stdout
    node.kubectl("delete", "pod", pod, "-n", namespace, "--wait=false")
    return out.split()[0]


def test_export_applied_with_kubectl_succeeds_and_the_file_matches_its_status(realnode: RealNode, export_ns: str):
    job = _export_job("orders", export_ns, {"synthetic": {"records": 20000, "seed": 3}}, "out/orders.csv")
    realnode.kubectl("apply", "-f", "-", stdin=json.dumps(job))
    status = _finished(realnode, export_ns, "orders", timeout=300)
    assert status["phase"] == "Succeeded", status
    assert status["rows"] == 20000
    assert _reader_sha256(realnode, export_ns, "out/orders.csv") == status["sha256"]
    # the worker ran on the real node, from the image built from the Dockerfile
    pod = _worker_pod(realnode, export_ns, status["jobName"])
    assert pod["spec"]["nodeName"] == realnode.node
    assert pod["spec"]["containers"][0]["image"] == realnode.image


def test_worker_runs_as_65532_with_read_only_root_and_no_token(realnode: RealNode, export_ns: str):
    job = _export_job("secure", export_ns, {"synthetic": {"records": 1000}}, "secure.csv")
    realnode.apply(job)
    status = _finished(realnode, export_ns, "secure", timeout=300)
    assert status["phase"] == "Succeeded", status
    pod = _worker_pod(realnode, export_ns, status["jobName"])
    spec = realnode.oci_spec(pod["status"]["containerStatuses"][0]["containerID"])
    assert spec["process"]["user"]["uid"] == UID and spec["process"]["user"]["gid"] == UID
    assert spec["root"]["readonly"] is True
    mounts = [m["destination"] for m in spec["mounts"]]
    assert not any(d.startswith(TOKEN_DIR) for d in mounts), mounts
    # the file on the volume was created by that uid (as the kernel saw it)
    written = realnode.volume_path(export_ns, "exports") / "secure.csv"
    assert written.stat().st_uid == UID


def test_operator_pod_runs_as_65532_with_read_only_root_and_its_own_token(realnode: RealNode):
    ns = realnode.release_namespace
    pod = realnode.pods(ns, OPERATOR_SELECTOR)[0]
    assert pod["spec"]["serviceAccountName"] != "default"
    name = pod["metadata"]["name"]
    assert realnode.kubectl("exec", "-n", ns, name, "--", "id", "-u").stdout.strip() == str(UID)
    denied = realnode.kubectl("exec", "-n", ns, name, "--", "touch", "/probe", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert realnode.kubectl("exec", "-n", ns, name, "--", "test", "-s", f"{TOKEN_DIR}/token").returncode == 0
    spec = realnode.oci_spec(pod["status"]["containerStatuses"][0]["containerID"])
    assert spec["process"]["user"]["uid"] == UID and spec["root"]["readonly"] is True


def test_kubectl_logs_and_exec_reach_the_node(realnode: RealNode):
    ns = realnode.release_namespace
    pod = realnode.pods(ns, OPERATOR_SELECTOR)[0]["metadata"]["name"]
    logs = realnode.kubectl("logs", "-n", ns, pod).stdout.splitlines()
    assert logs and all(json.loads(line) for line in logs if line.startswith("{"))
    out = realnode.kubectl("exec", "-n", ns, pod, "--", "python", "-c", "print(6 * 7)").stdout
    assert out.strip() == "42"


def test_five_million_rows_stay_within_128_mib(realnode: RealNode, export_ns: str):
    job = _export_job("big", export_ns, {"synthetic": {"records": 5_000_000, "seed": 1}}, "big.csv")
    realnode.apply(job)

    def running_pod() -> dict[str, Any] | None:
        status = realnode.get("exportjob", "big", export_ns).get("status") or {}
        if not status.get("jobName"):
            return None
        pods = realnode.pods(export_ns, f"job-name={status['jobName']}")
        return pods[0] if pods and pods[0]["status"].get("phase") in ("Running", "Succeeded") else None

    pod = wait_for(running_pod, timeout=180, description="the 5M-row worker Pod running")
    cgroup = realnode.memory_cgroup(pod)
    # The kubelet removes a Pod's cgroup as soon as the Pod has finished, so the cgroup
    # is read on every poll while the export runs; max_usage_in_bytes only grows.
    seen: dict[str, int] = {"samples": 0, "max_usage": 0, "rss": 0, "oom_kill": 0, "limit": 0}

    def sample_until_finished() -> dict[str, Any] | None:
        try:
            limit = int((cgroup / "memory.limit_in_bytes").read_text())
            max_usage = int((cgroup / "memory.max_usage_in_bytes").read_text())
            stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
            oom = dict(line.split() for line in (cgroup / "memory.oom_control").read_text().splitlines())
        except FileNotFoundError:
            pass  # the Pod has finished and its cgroup is gone
        else:
            seen["samples"] += 1
            seen["limit"] = limit
            seen["max_usage"] = max(seen["max_usage"], max_usage)
            seen["rss"] = max(seen["rss"], int(stat["total_rss"]))
            seen["oom_kill"] = max(seen["oom_kill"], int(oom.get("oom_kill", 0)))
        status = realnode.get("exportjob", "big", export_ns).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_for(sample_until_finished, timeout=1500, description="the 5M-row export finished")
    assert status["phase"] == "Succeeded", status
    assert status["rows"] == 5_000_000
    size = (realnode.volume_path(export_ns, "exports") / "big.csv").stat().st_size
    print(f"5M rows: file {size} B, worker status peak {status.get('workerPeakMemoryBytes')} B, pod cgroup {seen}")
    assert seen["samples"] > 0
    assert seen["limit"] == 128 * 1024 * 1024  # the kernel enforced the chart's worker limit
    assert size > 3 * seen["limit"]  # the file is far larger than the memory the worker may use
    assert seen["oom_kill"] == 0  # and nothing in the Pod was OOM-killed
    assert seen["max_usage"] <= seen["limit"]
    # max_usage counts the page cache of the 600 MB being written (reclaimable, so it sits
    # at the limit); the anonymous memory the kernel could not reclaim stays far below it
    assert seen["rss"] < seen["limit"] // 2


HOG_SERVER = """
import http.server
# one NDJSON record of 5 million empty lists: 15 MB on the wire (under the 16 MiB record
# cap), ~300 MB once json.loads has built it -- a memory hog injected through the input
BODY = b"[" + b"[]," * 5_000_000 + b"[]]\\n"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def test_memory_hog_is_oom_killed_and_reported_as_worker_crashed(realnode: RealNode, export_ns: str):
    realnode.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hog-server", "namespace": export_ns},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {"runAsUser": UID, "runAsNonRoot": True},
                "containers": [
                    {
                        "name": "http",
                        "image": realnode.image,
                        "command": ["python", "-c", HOG_SERVER],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }
                ],
            },
        }
    )
    realnode.kubectl("wait", "--for=condition=Ready", "pod/hog-server", "-n", export_ns, "--timeout=120s")
    ip = realnode.get("pod", "hog-server", export_ns)["status"]["podIP"]
    job = _export_job(
        "hog",
        export_ns,
        {"http": {"url": f"http://{ip}:8080/records.ndjson", "format": "ndjson"}},
        "hog.csv",
        columns=[{"name": "id"}],
        backoffLimit=0,
    )
    realnode.apply(job)
    status = _finished(realnode, export_ns, "hog", timeout=300)
    assert status["phase"] == "Failed", status
    assert status["reason"] == "WorkerCrashed"
    assert "OOMKilled" in status["message"], status["message"]
    pod = _worker_pod(realnode, export_ns, status["jobName"])
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137


def test_helm_test_passes(realnode: RealNode):
    # The chart's test Pod resolves <release>.<ns>.svc (node DNS), connects to the metrics
    # Service's ClusterIP (node relay) and exits 1 unless the operator's metrics are there.
    # (It is deleted on success -- hook-delete-policy -- so its log cannot be read back.)
    result = realnode.helm("test", realnode.release, "-n", realnode.release_namespace, "--timeout", "3m")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Phase:          Succeeded" in result.stdout


def test_static_volumes_bind_through_the_pv_controller(realnode: RealNode, export_ns: str):
    pvc = realnode.get("pvc", "exports", export_ns)
    pv = realnode.get("pv", pvc["spec"]["volumeName"])
    assert pv["spec"]["storageClassName"] == "realnode-static"
    assert Path(pv["spec"]["hostPath"]["path"]).is_dir()
