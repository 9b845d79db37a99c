"""`exportjob download|list|describe` (the `kubectl-exportjob` console script) against the dev cluster.

The real CLI, as a subprocess, against the real API server: the reader Pod is
created, run by the process kubelet (its own Pod IP, devcluster.podnet), and the
file is streamed through the API server's Pod proxy subresource. A user bound to
docs/download-role.yaml (and nothing else) can download; one without
`pods/proxy` cannot, and the reader Pod is deleted either way.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster.paths import REPO_ROOT
from devcluster.waiting import wait_for

pytestmark = pytest.mark.cluster

CLI = Path(sys.executable).parent / "kubectl-exportjob"
ROLE_FILE = REPO_ROOT / "docs" / "download-role.yaml"
READER_SELECTOR = "app.kubernetes.io/component=download"
RECORDS = 30_000  # about 2.4 MB of CSV


def run_cli(kubeconfig: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=180,
    )


def reader_pods(core: client.CoreV1Api, namespace: str) -> list[str]:
    return [p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector=READER_SELECTOR).items]


@pytest.fixture
def finished_export(devcluster, exportjobs, start_operator, namespace):
    """A Succeeded synthetic CSV export; returns (name, status, the file's bytes on the claim)."""
    start_operator()
    exportjobs.create(
        "orders",
        {"format": "csv", "source": {"synthetic": {"records": RECORDS}}, "output": {"path": "reports/orders.csv"}},
    )
    status = exportjobs.wait_for_phase("orders", "Succeeded", timeout=120)
    data = (devcluster.volume_dir(namespace, "exports") / "reports" / "orders.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() == status["sha256"]
    # the Succeeded event is posted after the status write: wait for it, not for time
    wait_for(lambda: "Succeeded" in exportjobs.events("orders"), timeout=30, description="the Succeeded event")
    return "orders", status, data


def test_download_list_describe(devcluster, k8s_client, namespace, finished_export, tmp_path):
    name, status, data = finished_export
    core = client.CoreV1Api(k8s_client)
    kubeconfig = devcluster.kubeconfig

    done = run_cli(kubeconfig, "download", name, "-n", namespace, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "orders.csv").read_bytes() == data  # default name: the file's own
    assert f"sha256 {status['sha256']} verified" in done.stderr
    assert not (tmp_path / "orders.csv.part").exists()
    wait_for(lambda: not reader_pods(core, namespace), timeout=60, description="the reader Pod to be deleted")

    # resume: a .part file left by an interrupted run is continued with a Range request through the proxy
    target = tmp_path / "again.csv"
    (tmp_path / "again.csv.part").write_bytes(data[:1_000_000])
    done = run_cli(kubeconfig, "download", name, "-n", namespace, "-o", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == data

    # stdout
    done = subprocess.run(
        [str(CLI), "download", name, "-n", namespace, "-o", "-", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == data

    listed = run_cli(kubeconfig, "list", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "STATUS", "FORMAT", "ROWS", "SIZE"]
    assert row.split()[:4] == [name, "Succeeded", "csv", str(RECORDS)]
    every = run_cli(kubeconfig, "list", "-A")
    assert any(line.split()[:2] == [namespace, name] for line in every.stdout.splitlines()), every.stdout

    described = run_cli(kubeconfig, "describe", name, "-n", namespace)
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "Phase:        Succeeded" in text and status["sha256"] in text
    assert "Complete" in text and "Succeeded" in text.split("Events:")[1]
    # the worker's last log lines, through pods/log (the process kubelet's log endpoint)
    assert "Worker log: pod exportjob-orders-" in text and "last 10 lines" in text
    assert '"event": "export.finished"' in text.split("Worker log:")[1]


def test_a_wrong_checksum_leaves_no_file(devcluster, k8s_client, namespace, finished_export, tmp_path):
    name, _, _ = finished_export
    custom = client.CustomObjectsApi(k8s_client)
    custom.patch_namespaced_custom_object_status(
        "exportjob.io", "v1alpha1", namespace, "exportjobs", name, {"status": {"sha256": "0" * 64}}
    )
    out = tmp_path / "downloads"
    out.mkdir()
    done = run_cli(devcluster.kubeconfig, "download", name, "-n", namespace, "-o", str(out / "x.csv"))
    assert done.returncode == 1
    assert "sha256 mismatch" in done.stderr
    assert list(out.iterdir()) == []  # neither x.csv nor x.csv.part
    core = client.CoreV1Api(k8s_client)
    wait_for(lambda: not reader_pods(core, namespace), timeout=60, description="the reader Pod to be deleted")


def _user_kubeconfig(devcluster, k8s_client, namespace: str, user: str, role: dict, tmp_path: Path) -> Path:
    """A kubeconfig for ServiceAccount `user`, bound to `role` in `namespace` (token from TokenRequest)."""
    core = client.CoreV1Api(k8s_client)
    rbac = client.RbacAuthorizationV1Api(k8s_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": user}})
    role = {**role, "metadata": {"name": f"{user}-role"}}
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{user}-role"},
            "subjects": [{"kind": "ServiceAccount", "name": user, "namespace": namespace}],
        },
    )
    token = core.create_namespaced_service_account_token(
        user, namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    admin = yaml.safe_load(devcluster.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user, "namespace": namespace}}],
        "current-context": user,
    }
    path = tmp_path / f"{user}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_documented_role_is_enough_and_pods_proxy_is_needed(
    devcluster, k8s_client, namespace, finished_export, tmp_path
):
    name, _, data = finished_export
    role = yaml.safe_load(ROLE_FILE.read_text())
    user = _user_kubeconfig(devcluster, k8s_client, namespace, "alice", role, tmp_path)
    # alice's context names the namespace: no -n needed
    done = run_cli(user, "download", name, "-o", str(tmp_path / "alice.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "alice.csv").read_bytes() == data
    assert run_cli(user, "describe", name).returncode == 0

    without_proxy = {**role, "rules": [r for r in role["rules"] if r["resources"] != ["pods/proxy"]]}
    bob = _user_kubeconfig(devcluster, k8s_client, namespace, "bob", without_proxy, tmp_path)
    done = run_cli(bob, "download", name, "-o", str(tmp_path / "bob.csv"))
    assert done.returncode == 1
    assert "forbidden" in done.stderr and "pods/proxy" in done.stderr
    assert not (tmp_path / "bob.csv").exists()
    core = client.CoreV1Api(k8s_client)
    wait_for(lambda: not reader_pods(core, namespace), timeout=60, description="bob's reader Pod to be deleted")


def test_sigterm_mid_transfer_deletes_the_reader_pod(devcluster, k8s_client, namespace, finished_export):
    name, _, data = finished_export
    assert len(data) > 1_000_000  # far more than a pipe buffer: the CLI cannot finish while nobody reads
    core = client.CoreV1Api(k8s_client)
    cli = subprocess.Popen(
        [str(CLI), "download", name, "-n", namespace, "-o", "-", "--kubeconfig", str(devcluster.kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert cli.stdout is not None
        first = cli.stdout.read(1)  # the transfer has begun; the CLI now blocks on the full pipe
        assert first == data[:1]
        pods = reader_pods(core, namespace)
        assert len(pods) == 1
        pod = core.read_namespaced_pod(pods[0], namespace)
        spec = pod.spec
        assert spec.automount_service_account_token is False and spec.security_context.run_as_non_root
        assert spec.volumes[0].persistent_volume_claim.read_only is True
        mount = spec.containers[0].volume_mounts[0]
        assert mount.read_only is True and mount.sub_path == "reports/orders.csv"
        assert pod.status.pod_ip.startswith("10.88.")  # devcluster.podnet: a Pod IP of its own
        cli.send_signal(signal.SIGTERM)
        _, err = cli.communicate(timeout=60)  # drains what the CLI had buffered for stdout
        assert cli.returncode == 130, err
        assert b"interrupted" in err
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    wait_for(lambda: not reader_pods(core, namespace), timeout=60, description="the reader Pod to be deleted")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod(pods[0], namespace)
    assert gone.value.status == 404
