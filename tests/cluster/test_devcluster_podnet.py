"""The dev cluster's pod network and log endpoint, through the real API server.

Two Pods serve HTTP on the same port, each bound to its own `$POD_IP` (the
loopback twin of its Pod IP); the API server's Pod proxy reaches each one
(devcluster.podnet); `pods/log` (`kubectl logs`) reads the kubelet's log files
(devcluster.kubeletserver), `tailLines` included.
"""

from __future__ import annotations

import subprocess
import sys

import pykube
import pytest

from devcluster.waiting import wait_for

pytestmark = pytest.mark.cluster

SERVER = """
import http.server, os, sys
print("line one"); print("line two"); print("serving", os.environ["POD_IP"], flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        body = ("hello from " + os.environ["POD_NAME"]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"""


def server_pod(name: str) -> dict:
    field = lambda path: {"valueFrom": {"fieldRef": {"fieldPath": path}}}  # noqa: E731
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "web",
                    "image": "python:3.11-slim",
                    "command": [sys.executable, "-u", "-c", SERVER],
                    "env": [
                        {"name": "POD_IP", **field("status.podIP")},
                        {"name": "POD_NAME", **field("metadata.name")},
                    ],
                    "ports": [{"containerPort": 8080}],
                }
            ],
        },
    }


def test_pod_proxy_reaches_each_pod_and_logs_are_served(kube_api, devcluster, namespace):
    for name in ("web-a", "web-b"):
        obj = server_pod(name)
        obj["metadata"]["namespace"] = namespace
        pykube.Pod(kube_api, obj).create()
    pods = {}
    for name in ("web-a", "web-b"):
        pod = pykube.Pod.objects(kube_api, namespace=namespace).get(name=name)
        wait_for(lambda p=pod: p.reload() or p.obj["status"].get("phase") == "Running", timeout=60, description=name)
        pods[name] = pod.obj["status"]["podIP"]
    assert pods["web-a"] != pods["web-b"] and all(ip.startswith("10.88.") for ip in pods.values())

    def proxied(name: str) -> str | None:
        r = kube_api.session.get(f"{kube_api.url}/api/v1/namespaces/{namespace}/pods/{name}:8080/proxy/", timeout=10)
        return r.text if r.status_code == 200 else None

    for name in ("web-a", "web-b"):  # the same port, two servers: each Pod answers for itself
        assert wait_for(lambda n=name: proxied(n), timeout=30, description=f"{name} via the proxy") == (
            f"hello from {name}"
        )

    log = wait_for(
        lambda: (
            (r := kube_api.session.get(f"{kube_api.url}/api/v1/namespaces/{namespace}/pods/web-a/log", timeout=10))
            and r.status_code == 200
            and "serving" in r.text
            and r.text
        ),
        timeout=30,
        description="the log through pods/log",
    )
    assert log.splitlines()[:2] == ["line one", "line two"]
    twin = "127." + pods["web-a"].split(".", 1)[1]
    assert f"serving {twin}" in log  # inside the Pod, status.podIP is the loopback twin
    kubectl = ["kubectl", "--kubeconfig", str(devcluster.kubeconfig), "-n", namespace]
    last = subprocess.run([*kubectl, "logs", "web-a", "--tail=1"], capture_output=True, text=True, timeout=30)
    assert last.returncode == 0 and last.stdout.strip() == f"serving {twin}", last.stderr
    missing = subprocess.run([*kubectl, "exec", "web-a", "--", "true"], capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0  # exec is not served: an error, not a hang
