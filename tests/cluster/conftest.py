"""Shared fixtures for tests against the dev cluster (real etcd, kube-apiserver and
kube-controller-manager from ./bin, plus the process kubelet; see docs/devcluster.md).

Fixtures:

* ``devcluster`` (session): a :class:`devcluster.DevCluster` started once in a
  pytest temporary directory (never the developer's ``.testenv``), stopped at the
  end of the session even when tests fail; its logs stay in that directory.
* ``kube_api`` (session): a ``pykube.HTTPClient`` for the cluster (admin).
* ``k8s_client`` (session): a ``kubernetes.client.ApiClient`` from the same kubeconfig.
* ``namespace`` (function): a fresh namespace per test, deleted afterwards.

When a test using the cluster fails, its report gets a "devcluster" section with
the namespace's pods, events and container logs and the tail of each component log.
Missing binaries fail the tests with a message saying to run ``make tools``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pykube
import pytest

from devcluster import DevCluster, DevClusterError, MissingToolsError
from devcluster.paths import REPO_ROOT
from devcluster.waiting import wait_for

LOG_TAIL_LINES = 30


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        data = path.read_bytes()[-32 * 1024 :]
    except FileNotFoundError:
        return "(missing)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def devcluster(tmp_path_factory: pytest.TempPathFactory) -> DevCluster:
    bin_dir = Path(os.environ.get("DEVCLUSTER_BIN_DIR") or REPO_ROOT / "bin")
    cluster = DevCluster(tmp_path_factory.mktemp("devcluster"), bin_dir=bin_dir)
    try:
        cluster.check_binaries()
    except MissingToolsError as exc:
        pytest.fail(f"{exc}", pytrace=False)
    try:
        cluster.start()
    except DevClusterError as exc:
        cluster.stop()
        pytest.fail(f"the dev cluster did not start: {exc}\n(logs in {cluster.log_dir})", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube_api(devcluster: DevCluster) -> pykube.HTTPClient:
    return pykube.HTTPClient(pykube.KubeConfig.from_file(str(devcluster.kubeconfig)))


@pytest.fixture(scope="session")
def k8s_client(devcluster: DevCluster):
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(devcluster.kubeconfig))
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def fresh_namespace(kube_api: pykube.HTTPClient):
    """A new namespace whose default ServiceAccount exists; deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    pykube.Namespace(kube_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).create()
    # pods are admitted only once the ServiceAccount controller created "default"
    wait_for(
        lambda: pykube.ServiceAccount.objects(kube_api, namespace=name).get_or_none(name="default"),
        timeout=30,
        description=f"ServiceAccount {name}/default",
    )
    try:
        yield name
    finally:
        pykube.Namespace(kube_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).delete()


@pytest.fixture
def namespace(kube_api: pykube.HTTPClient) -> str:
    with fresh_namespace(kube_api) as name:
        yield name


@pytest.fixture
def second_namespace(kube_api: pykube.HTTPClient) -> str:
    """Another tenant, for tests about more than one namespace."""
    with fresh_namespace(kube_api) as name:
        yield name


def _failure_report(cluster: DevCluster, namespace: str | None) -> str:
    out: list[str] = [f"state dir: {cluster.state_dir}"]
    if namespace:
        try:
            api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(cluster.kubeconfig)))
            out.append(f"--- pods in {namespace}:")
            for pod in pykube.Pod.objects(api, namespace=namespace):
                st = pod.obj.get("status", {})
                states = [cs.get("state") for cs in st.get("containerStatuses") or []]
                out.append(f"{pod.name}: phase={st.get('phase')} node={pod.obj['spec'].get('nodeName')} {states}")
            out.append(f"--- events in {namespace}:")
            events = sorted(
                pykube.Event.objects(api, namespace=namespace),
                key=lambda e: e.obj.get("lastTimestamp") or e.obj.get("eventTime") or "",
            )
            for ev in events:
                o = ev.obj
                io = o.get("involvedObject", {})
                out.append(
                    f"{o.get('lastTimestamp')} {o.get('type')} {io.get('kind')}/{io.get('name')} "
                    f"{o.get('reason')}: {o.get('message')}"
                )
        except Exception as exc:
            out.append(f"(could not read the namespace: {exc!r})")
        for log in sorted((cluster.state_dir / "pods" / namespace).glob("*/*.log")):
            out.append(f"--- container log {log.parent.name}/{log.name}:\n{_tail(log, 20)}")
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kubelet"):
        out.append(f"--- {cluster.log_file(component)} (tail):\n{_tail(cluster.log_file(component))}")
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when in ("setup", "call") and report.failed:
        funcargs = getattr(item, "funcargs", {})
        cluster = funcargs.get("devcluster")
        if isinstance(cluster, DevCluster):
            report.sections.append(("devcluster", _failure_report(cluster, funcargs.get("namespace"))))


# --- ExportJob operator fixtures (used by test_operator*.py) -------------------------------------


@pytest.fixture(scope="session")
def exportjob_crd(devcluster):
    """The ExportJob CRD from crds/, applied once and Established."""
    from operator_harness import CRD_FILE

    kubectl = ["kubectl", "--kubeconfig", str(devcluster.kubeconfig)]
    subprocess.run([*kubectl, "apply", "--server-side", "-f", str(CRD_FILE)], check=True, capture_output=True)
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "crd/exportjobs.exportjob.io"],
        check=True,
        capture_output=True,
    )
    return CRD_FILE


@pytest.fixture
def exportjobs(k8s_client, namespace, exportjob_crd):
    """ExportJob CRUD in the test's namespace, which already has a claim named `exports`."""
    from operator_harness import ExportJobs

    api = ExportJobs(k8s_client, namespace)
    api.create_claim("exports")
    return api


@pytest.fixture
def start_operator(devcluster, namespace, exportjob_crd, tmp_path):
    """Start `exportjob-operator` processes watching the test's namespace; all stopped at teardown."""
    from operator_harness import OperatorProcess

    started = []

    def start(**settings):
        operator = OperatorProcess(
            devcluster.kubeconfig, namespace, tmp_path / f"operator-{len(started)}.log", **settings
        )
        started.append(operator)
        return operator.start()

    yield start
    for operator in started:
        try:
            operator.stop()
        finally:
            print(f"--- operator log {operator.log_path} ---\n{operator.log_tail()}")
