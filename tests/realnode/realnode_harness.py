"""``RealNode``: the test-side handle on a node started by hack/realnode.sh (kubectl, ctr, cgroups)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from devcluster.paths import REPO_ROOT

BIN = REPO_ROOT / "bin"


class RealNode:
    def __init__(self, env: dict[str, str]) -> None:
        self.kubeconfig = env["KUBECONFIG"]
        self.registry = env["REALNODE_REGISTRY"]
        self.image = env["REALNODE_IMAGE"]
        self.node = env["REALNODE_NODE"]
        self.cgroup = env["REALNODE_CGROUP"]
        self.release = env["REALNODE_RELEASE"]
        self.release_namespace = env["REALNODE_RELEASE_NAMESPACE"]
        self.state = env["REALNODE_STATE"]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=300
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        return json.loads(self.kubectl(*args).stdout)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)["items"]

    def helm(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "helm"), *args], capture_output=True, text=True, env=self.env, timeout=600)

    def ctr(self, *args: str) -> subprocess.CompletedProcess:
        """containerd's own client against the node's containerd (the CRI namespace k8s.io)."""
        sock = Path(self.state) / "node" / "sock" / "containerd.sock"
        return subprocess.run(
            [str(BIN / "ctr"), "--address", str(sock), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    def oci_spec(self, container_id: str) -> dict[str, Any]:
        """The OCI runtime spec containerd handed to runc for a container (``ctr containers info``)."""
        info = json.loads(self.ctr("containers", "info", container_id.removeprefix("containerd://")).stdout)
        return info["Spec"]

    def memory_cgroup(self, pod: dict[str, Any]) -> Path:
        """The pod's memory cgroup (v1) under the node's cgroup root (kubepods/<qos>/pod<uid>)."""
        root = Path("/sys/fs/cgroup/memory") / self.cgroup / "kubepods"
        uid = pod["metadata"]["uid"]
        qos = pod["status"].get("qosClass", "")
        candidates = [root / f"pod{uid}", root / qos.lower() / f"pod{uid}"]
        for path in candidates:
            if path.is_dir():
                return path
        raise FileNotFoundError(f"no memory cgroup for pod {uid} under {root} (tried {candidates})")

    def volume_path(self, namespace: str, claim: str) -> Path:
        """Host directory of the static PersistentVolume a claim is bound to."""
        pv = self.get("pvc", claim, namespace)["spec"]["volumeName"]
        return Path(self.get("pv", pv)["spec"]["hostPath"]["path"])
