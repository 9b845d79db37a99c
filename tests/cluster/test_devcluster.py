"""Proof that the dev cluster is a real cluster: API validation, Job controller,
garbage collection, TTL, and the process kubelet's pod semantics (env, volumes,
exit codes, termination messages, deletion).  See docs/devcluster.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pykube
import pytest

from devcluster.paths import REPO_ROOT
from devcluster.waiting import condition_status, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

PY = "python"  # resolved by the kubelet through the venv's bin directory


def expected_version() -> str:
    gomod = (REPO_ROOT / "hack" / "tools" / "kube" / "go.mod").read_text()
    return re.search(r"\bk8s\.io/kubernetes (v\d\S*)", gomod).group(1)


def job_doc(name: str, command: list[str], *, backoff_limit: int = 0, **spec) -> dict:
    container = {"name": "main", "image": "not-run.invalid/python:3.11", "command": command}
    container.update(spec.pop("container", {}))
    pod_spec = {"restartPolicy": "Never", "containers": [container]}
    pod_spec.update(spec.pop("pod", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": pod_spec}, **spec},
    }


def create(api: pykube.HTTPClient, cls, namespace: str, doc: dict):
    doc.setdefault("metadata", {})["namespace"] = namespace
    obj = cls(api, doc)
    obj.create()
    return obj


def wait_job_condition(api, namespace: str, name: str, ctype: str, timeout: float = 60) -> pykube.Job:
    def probe():
        job = pykube.Job.objects(api, namespace=namespace).get(name=name)
        return job if condition_status(job.obj, ctype) == "True" else None

    return wait_for(probe, timeout=timeout, description=f"Job {namespace}/{name} condition {ctype}")


def job_pods(api, namespace: str, name: str) -> list[pykube.Pod]:
    return list(pykube.Pod.objects(api, namespace=namespace).filter(selector={"job-name": name}))


def terminated(pod: pykube.Pod) -> dict:
    return pod.obj["status"]["containerStatuses"][0]["state"]["terminated"]


def test_version_is_the_pinned_release(k8s_client):
    from kubernetes import client

    assert client.VersionApi(k8s_client).get_code().git_version == expected_version()


def test_kubectl_sees_a_ready_node(devcluster):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(devcluster.kubeconfig), "get", "nodes", "--no-headers"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    rows = [line.split() for line in out.splitlines()]
    assert [r[:2] for r in rows] == [[devcluster.node_name, "Ready"]], out


def test_crd_cel_rule_rejects_bad_object(kube_api, namespace):
    group = f"{namespace}.devcluster.test"
    crd = pykube.CustomResourceDefinition(
        kube_api,
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {
                                            "replicas": {"type": "integer"},
                                            "minReplicas": {"type": "integer"},
                                        },
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self.minReplicas <= self.replicas",
                                                "message": "minReplicas must not exceed replicas",
                                            }
                                        ],
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        },
    )
    crd.create()
    try:
        wait_for(
            lambda: (crd.reload(), condition_status(crd.obj, "Established") == "True")[1],
            timeout=30,
            description="CRD Established",
        )
        Widget = pykube.object_factory(kube_api, f"{group}/v1", "Widget")

        def widget(name, replicas, minimum):
            return Widget(
                kube_api,
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"replicas": replicas, "minReplicas": minimum},
                },
            )

        # discovery of a new CRD can lag a moment behind Established
        wait_for(lambda: (widget("good", 3, 1).create(), True)[1], timeout=30, description="valid Widget")
        with pytest.raises(pykube.exceptions.HTTPError) as err:
            widget("bad", 1, 3).create()
        assert err.value.code == 422
        assert "minReplicas must not exceed replicas" in str(err.value)
        assert Widget.objects(kube_api, namespace=namespace).get_or_none(name="bad") is None
    finally:
        crd.delete()


def test_job_completes_and_output_is_logged(devcluster, kube_api, namespace):
    create(kube_api, pykube.Job, namespace, job_doc("ok", [PY, "-c", "import sys; print('hello from', sys.argv[0])"]))
    job = wait_job_condition(kube_api, namespace, "ok", "Complete")
    assert job.obj["status"]["succeeded"] == 1
    [pod] = job_pods(kube_api, namespace, "ok")
    state = terminated(pod)
    assert (state["exitCode"], state["reason"]) == (0, "Completed")
    assert pod.obj["status"]["phase"] == "Succeeded"
    assert "hello from -c" in devcluster.pod_log(namespace, pod.name, "main")


def test_failing_job_is_retried_up_to_backoff_limit(kube_api, namespace):
    # backoffLimit 1: two pods; the Job controller waits ~10s before the retry
    create(kube_api, pykube.Job, namespace, job_doc("fails", [PY, "-c", "raise SystemExit(3)"], backoff_limit=1))
    job = wait_job_condition(kube_api, namespace, "fails", "Failed", timeout=90)
    reasons = [c.get("reason") for c in job.obj["status"]["conditions"] if c["type"] == "Failed"]
    assert reasons == ["BackoffLimitExceeded"]
    assert job.obj["status"]["failed"] == 2
    pods = job_pods(kube_api, namespace, "fails")
    assert len(pods) == 2
    for pod in pods:
        assert pod.obj["status"]["phase"] == "Failed"
        assert (terminated(pod)["exitCode"], terminated(pod)["reason"]) == (3, "Error")


def test_pod_failure_policy_sees_exit_code_and_termination_message(kube_api, namespace):
    script = "import sys; open(sys.argv[1], 'w').write('bad input: row 7'); raise SystemExit(42)"
    doc = job_doc(
        "policy",
        [PY, "-c", script, "/dev/termination-log"],
        backoff_limit=5,
        podFailurePolicy={"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]},
    )
    create(kube_api, pykube.Job, namespace, doc)
    job = wait_job_condition(kube_api, namespace, "policy", "Failed", timeout=60)
    [failed] = [c for c in job.obj["status"]["conditions"] if c["type"] == "Failed"]
    assert failed["reason"] == "PodFailurePolicy"
    [pod] = job_pods(kube_api, namespace, "policy")  # FailJob: no retry despite backoffLimit 5
    state = terminated(pod)
    assert state["exitCode"] == 42
    assert state["message"] == "bad input: row 7"


def test_signal_death_is_reported_as_128_plus_n(kube_api, namespace):
    create(
        kube_api,
        pykube.Pod,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "killed"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": "x", "command": [PY, "-c", "import os; os.kill(os.getpid(), 9)"]}
                ],
            },
        },
    )

    def probe():
        pod = pykube.Pod.objects(kube_api, namespace=namespace).get(name="killed")
        return pod if pod.obj["status"].get("phase") == "Failed" else None

    pod = wait_for(probe, timeout=30, description="pod killed by SIGKILL to fail")
    assert terminated(pod)["exitCode"] == 137


def test_job_writes_into_pvc_directory(devcluster, kube_api, namespace):
    create(
        kube_api,
        pykube.PersistentVolumeClaim,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "exports"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}},
        },
    )
    script = (
        "import os, sys; out = sys.argv[1]; os.makedirs(os.path.dirname(out), exist_ok=True); "
        "open(out, 'w').write(os.environ['GREETING'])"
    )
    doc = job_doc(
        "writer",
        [PY, "-c", script, "--", "$(OUT_DIR)/run-1/result.txt"],
        container={
            "env": [{"name": "OUT_DIR", "value": "/exports/data"}, {"name": "GREETING", "value": "rows=42"}],
            "volumeMounts": [{"name": "out", "mountPath": "/exports"}],
        },
        pod={"volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": "exports"}}]},
    )
    doc["spec"]["template"]["spec"]["containers"][0]["command"].remove("--")
    create(kube_api, pykube.Job, namespace, doc)
    wait_job_condition(kube_api, namespace, "writer", "Complete")
    result = devcluster.volume_dir(namespace, "exports") / "data" / "run-1" / "result.txt"
    assert result.read_text() == "rows=42"


def test_secret_env_arrives_and_missing_secret_blocks_the_pod(devcluster, kube_api, namespace):
    script = "import os; print('|'.join(os.environ[k] for k in ('TOKEN', 'MODE', 'NS', 'DERIVED')))"
    doc = job_doc(
        "env",
        [PY, "-c", script],
        container={
            "env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "DERIVED", "value": "$(MODE)-$(TOKEN)-$$(TOKEN)"},
            ]
        },
    )
    create(
        kube_api,
        pykube.ConfigMap,
        namespace,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}},
    )
    create(kube_api, pykube.Job, namespace, doc)

    def blocked():
        pods = job_pods(kube_api, namespace, "env")
        if not pods:
            return None
        st = pods[0].obj.get("status", {})
        waiting = ((st.get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}
        return pods[0] if waiting.get("reason") == "CreateContainerConfigError" else None

    pod = wait_for(blocked, timeout=30, description="CreateContainerConfigError for the missing secret")
    assert pod.obj["status"]["phase"] == "Pending"
    assert 'secret "creds" not found' in pod.obj["status"]["containerStatuses"][0]["state"]["waiting"]["message"]

    create(
        kube_api,
        pykube.Secret,
        namespace,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}},
    )
    wait_job_condition(kube_api, namespace, "env", "Complete")
    assert devcluster.pod_log(namespace, pod.name, "main").strip() == f"s3cr3t|fast|{namespace}|fast-s3cr3t-$(TOKEN)"


def test_deleting_the_owner_garbage_collects_the_job(kube_api, namespace):
    owner = create(
        kube_api, pykube.ConfigMap, namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}
    )
    doc = job_doc("owned", [PY, "-c", "pass"], suspend=True)
    doc["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.obj["metadata"]["uid"]}
    ]
    create(kube_api, pykube.Job, namespace, doc)
    owner.delete()
    wait_for(
        lambda: pykube.Job.objects(kube_api, namespace=namespace).get_or_none(name="owned") is None,
        timeout=60,
        description="the garbage collector to delete the owned Job",
    )


def test_ttl_after_finished_removes_the_job(kube_api, namespace):
    create(kube_api, pykube.Job, namespace, job_doc("short", [PY, "-c", "pass"], ttlSecondsAfterFinished=0))
    wait_for(
        lambda: pykube.Job.objects(kube_api, namespace=namespace).get_or_none(name="short") is None,
        timeout=60,
        description="the TTL controller to delete the finished Job",
    )
    wait_for(
        lambda: not job_pods(kube_api, namespace, "short"),
        timeout=60,
        description="the Job's pods to be garbage-collected",
    )


def test_pod_deletion_sends_sigterm_then_removes_the_pod(devcluster, kube_api, namespace):
    script = (
        "import signal, sys, time\n"
        "def term(*_):\n"
        "    open(sys.argv[1], 'w').write('got SIGTERM'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    create(
        kube_api,
        pykube.PersistentVolumeClaim,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "scratch"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
        },
    )
    create(
        kube_api,
        pykube.Pod,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sleeper"},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 20,
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "scratch"}}],
                "containers": [
                    {
                        "name": "main",
                        "image": "x",
                        "command": [PY, "-c", script, "/v/term.txt"],
                        "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    }
                ],
            },
        },
    )

    def running():
        pod = pykube.Pod.objects(kube_api, namespace=namespace).get(name="sleeper")
        ready = pod.obj["status"].get("phase") == "Running" and condition_status(pod.obj, "Ready") == "True"
        return pod if ready and "ready" in devcluster.pod_log(namespace, "sleeper", "main") else None

    pod = wait_for(running, timeout=30, description="the pod to run")
    pid = int(pod.obj["status"]["containerStatuses"][0]["containerID"].split("://")[1])
    pod.delete()
    wait_for(
        lambda: pykube.Pod.objects(kube_api, namespace=namespace).get_or_none(name="sleeper") is None,
        timeout=30,
        description="the pod to be removed",
    )
    assert (devcluster.volume_dir(namespace, "scratch") / "term.txt").read_text() == "got SIGTERM"
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "zombie" in status.read_text().lower()


def test_start_is_idempotent(devcluster):
    from devcluster import DevCluster

    before = devcluster.running_components()
    again = DevCluster(devcluster.state_dir, bin_dir=devcluster.bin_dir)
    again.start(timeout=10)
    assert again.running_components() == before
    assert all(before.values())
    assert again.status()["healthy"]
