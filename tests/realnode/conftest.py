"""Fixtures of the real-node suite (``pytest -m realnode``; docs/devcluster.md, "A real node").

The session fixture ``realnode`` runs ``hack/realnode.sh up`` in a pytest temp
dir (control plane + kubelet + containerd + runc + CNI, loopback registry, the
image built from the Dockerfile, the chart installed) and ``down`` at the end,
then checks that no process, mount or cgroup of it is left. With
``REALNODE_STATE=<dir>`` it uses a node started by ``make realnode-up`` instead
and leaves it running.

These tests are deselected unless ``-m`` names ``realnode`` (they need root, a
cgroup v1 host and several minutes of set-up): ``make realnode-test``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from realnode_harness import RealNode

from devcluster.paths import REPO_ROOT
from devcluster.waiting import wait_for


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "realnode" in (config.getoption("markexpr") or ""):
        return
    selected = [i for i in items if "realnode" not in i.keywords]
    deselected = [i for i in items if "realnode" in i.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="session")
def realnode(tmp_path_factory: pytest.TempPathFactory):
    script = REPO_ROOT / "hack" / "realnode.sh"
    existing = os.environ.get("REALNODE_STATE")
    if existing:
        yield RealNode(_read_env(Path(existing) / "realnode.env"))
        return
    state = tmp_path_factory.mktemp("realnode")
    up = subprocess.run([str(script), "up", str(state)], capture_output=True, text=True)
    if up.returncode != 0:
        subprocess.run([str(script), "down", str(state)], capture_output=True)
        pytest.fail(f"hack/realnode.sh up failed:\n{up.stderr[-4000:]}\n(logs in {state}/logs)", pytrace=False)
    assert up.stdout.strip().splitlines()[-1] == f"KUBECONFIG={state}/cluster/kubeconfig"
    node = RealNode(_read_env(state / "realnode.env"))
    try:
        yield node
    finally:
        down = subprocess.run([str(script), "down", str(state)], capture_output=True, text=True)
        assert down.returncode == 0, down.stderr[-3000:]
        leftovers = [line for line in Path("/proc/self/mounts").read_text().splitlines() if str(state) in line]
        assert not leftovers, leftovers
        cgroups = [p for p in Path("/sys/fs/cgroup").glob(f"*/{node.cgroup}")]
        assert not cgroups, cgroups
        # images, build cache and registry blobs are GBs; the logs stay for pytest's temp-dir retention
        for bulky in ("buildkit", "registry", "node"):
            shutil.rmtree(state / bulky, ignore_errors=True)


@pytest.fixture
def export_ns(realnode: RealNode):
    """A namespace with the worker ServiceAccount (no token) and a claim `exports` bound to a static PV."""
    name = f"rn-{uuid.uuid4().hex[:8]}"
    realnode.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "exportjob-worker", "namespace": name},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "exports", "namespace": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    wait_for(
        lambda: realnode.get("pvc", "exports", name)["status"].get("phase") == "Bound",
        timeout=60,
        description=f"claim {name}/exports Bound",
    )
    wait_for(lambda: realnode.get("serviceaccount", "default", name), timeout=30, description="default SA")
    yield name
    realnode.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or "realnode" not in item.keywords:
        return
    node = item.funcargs.get("realnode")
    if not isinstance(node, RealNode):
        return
    ns = item.funcargs.get("export_ns")
    parts = []
    for args in (
        ["get", "pods", "-A", "-o", "wide"],
        ["get", "events", "-A", "--sort-by=.lastTimestamp"],
        *([["get", "exportjobs", "-n", ns, "-o", "json"]] if ns else []),
    ):
        parts.append(f"$ kubectl {' '.join(args)}\n{node.kubectl(*args, check=False).stdout[-6000:]}")
    logs = Path(node.state) / "logs"
    for name in ("kubelet", "containerd", "nodeservices"):
        path = logs / f"{name}.log"
        if path.exists():
            parts.append(f"--- {path} (tail)\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
    report.sections.append(("realnode", "\n".join(parts)))
