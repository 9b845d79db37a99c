"""The Helm chart against the local control plane: install, run with the chart's own RBAC, prove it is not excessive.

1. The prometheus-operator CRDs (ServiceMonitor, PrometheusRule; generated from
   the prometheus-operator Go module by hack/prometheus-operator-crds.sh) are
   applied, then `helm install` with every toggle on: the API server must accept
   every object (CRD, RBAC, Deployment under the `restricted` Pod Security level,
   Service, ServiceMonitor, PrometheusRule, dashboard ConfigMap, PVC, worker
   ServiceAccount); the `helm test` Pod passes a server-side dry run.
2. The operator runs as a local process (the process kubelet never runs images)
   with a token of the chart's ServiceAccount (TokenRequest), not admin
   credentials, and with the environment of the rendered Deployment (only the
   two ports differ: a local process needs free ones). An ExportJob that names
   no claim (so it uses the chart's default claim) must succeed: the chart's RBAC
   is sufficient.
3. `kubectl auth can-i --as=system:serviceaccount:...` shows it is not excessive:
   no listing or watching Secrets, no Pod creation or exec, no changing or
   deleting ExportJobs, no RBAC; in namespaced mode nothing outside the listed
   namespaces and nothing cluster-wide. The worker's ServiceAccount can do nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pykube
import pytest
import yaml
from operator_harness import ExportJobs, OperatorProcess, wait_for_metrics, wait_until

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / "bin" / "helm"
CHART = REPO / "charts" / "exportjob-operator"
ALL_TOGGLES = CHART / "ci" / "all-toggles-values.yaml"
CRDS_SCRIPT = REPO / "hack" / "prometheus-operator-crds.sh"
CRD_NAME = "exportjobs.exportjob.io"
INLINE = {
    "format": "csv",
    "source": {
        "inline": {"columns": ["sku", "name", "price"], "rows": [["A-1", "Widget, large", 12.5], ["B-2", "Zürich", 99]]}
    },
    "output": {"path": "reports/first.csv"},  # no claimName: the chart's default claim
}


# --- helpers -------------------------------------------------------------------------------------------------------


class Cli:
    """kubectl and helm against the dev cluster (admin), with Helm's state in a temp dir."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *cmd: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.env, timeout=180)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, stdin=stdin, check=check)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(HELM), *args, check=check)

    def can_i(self, subject: str, verb: str, resource: str, *flags: str) -> bool:
        result = self.kubectl("auth", "can-i", verb, resource, f"--as={subject}", *flags, check=False)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), f"kubectl auth can-i {verb} {resource} {flags}: {result.stdout}{result.stderr}"
        return answer == "yes"


def service_account_kubeconfig(cli: Cli, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig whose only credential is a TokenRequest token of `namespace/account`."""
    token = cli.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cli.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sa",
        "clusters": [
            {
                "name": "devcluster",
                "cluster": {
                    "server": cluster["server"],
                    "certificate-authority-data": cluster["certificate-authority-data"],
                },
            }
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "devcluster", "user": account, "namespace": namespace}}],
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    # The token really is the ServiceAccount's (and not an admin credential).
    whoami = cli.run(
        "kubectl", "--kubeconfig", str(path), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert whoami.stdout == f"system:serviceaccount:{namespace}:{account}"
    return path


def manifest_objects(cli: Cli, release: str, namespace: str) -> list[dict[str, Any]]:
    out = cli.helm("get", "manifest", release, "-n", namespace).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def deployment_settings(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The rendered Deployment's EXPORTJOB_* environment as OperatorProcess settings (name -> value)."""
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = {k.removeprefix("EXPORTJOB_").lower(): v for k, v in env.items() if k.startswith("EXPORTJOB_")}
    # POD_NAMESPACE (downward API) puts the leader-election Lease in the release namespace.
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
    assert downward["POD_NAMESPACE"] == "metadata.namespace"
    settings["lease_namespace"] = deployment["metadata"]["namespace"]
    # The only difference from the Pod: a local process needs free ports (OperatorProcess picks them).
    settings.pop("metrics_port")
    settings.pop("health_port")
    return settings


def unexpected_forbidden(log_path: Path) -> list[str]:
    """Lines of the operator log reporting a 403, except Kopf's optional cluster scans.

    Unless `settings.scanning.disabled` is set, Kopf also lists/watches
    CustomResourceDefinitions (to notice CRDs appearing later) and, in namespaced
    mode, Namespaces (to expand namespace patterns). The chart grants neither
    (they are cluster-scoped reads the operator does not need: its CRD and its
    namespaces are fixed); Kopf then falls back as documented, logging the 403s.
    Any other 403 means the chart's RBAC is missing something.
    """
    lines = log_path.read_text(errors="replace").splitlines()

    def kopf_scan(line: str) -> bool:
        return (
            "customresourcedefinitions" in line
            or "Not enough permissions" in line
            or ("namespaces" in line and "at the cluster scope" in line)
        )

    # 403 as a status, not inside a number (a random port such as 40331 is not a refusal)
    status_403 = re.compile(r"(?<!\d)403(?!\d)")
    return [line for line in lines if (status_403.search(line) or "orbidden" in line) and not kopf_scan(line)]


def notes_example(cli: Cli, release: str, namespace: str) -> str:
    """The ExportJob manifest in the release's NOTES (between `<<'YAML'` and `YAML`)."""
    notes = cli.helm("get", "notes", release, "-n", namespace).stdout
    block = notes.split("<<'YAML'\n", 1)[1].split("\n   YAML\n", 1)[0]
    manifest = yaml.safe_load(textwrap.dedent(block))
    assert manifest["kind"] == "ExportJob" and manifest["metadata"]["namespace"] == namespace, manifest
    return yaml.safe_dump(manifest)


def adopt_crd(kube_api: pykube.HTTPClient, release: str, namespace: str) -> None:
    """Let `release` manage an ExportJob CRD that other tests applied with kubectl (Helm's adoption metadata)."""
    crd = pykube.CustomResourceDefinition.objects(kube_api).get_or_none(name=CRD_NAME)
    if crd is None:
        return
    crd.obj["metadata"].setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
    crd.obj["metadata"].setdefault("annotations", {}).update(
        {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}
    )
    crd.update()


def create_namespace(kube_api: pykube.HTTPClient, name: str) -> None:
    pykube.Namespace(kube_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).create()


def delete_namespace(kube_api: pykube.HTTPClient, name: str) -> None:
    ns = pykube.Namespace.objects(kube_api).get_or_none(name=name)
    if ns is not None:
        ns.delete()


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    if not HELM.exists():
        pytest.fail(f"{HELM} not found: run `make tools` (hack/build-tools.sh helm) to build helm", pytrace=False)
    return HELM


@pytest.fixture(scope="module")
def cli(devcluster, helm_bin, tmp_path_factory) -> Cli:
    return Cli(devcluster.kubeconfig, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def prometheus_operator_crds(cli: Cli) -> list[str]:
    """ServiceMonitor and PrometheusRule CRDs from the prometheus-operator Go module, applied and Established."""
    result = subprocess.run([str(CRDS_SCRIPT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{CRDS_SCRIPT} failed:\n{result.stderr}"
    paths = result.stdout.split()
    names = []
    for path in paths:
        cli.kubectl("apply", "--server-side", "--force-conflicts", "-f", path)
        names.append(yaml.safe_load(Path(path).read_text())["metadata"]["name"])
    for name in names:
        cli.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    assert sorted(names) == ["prometheusrules.monitoring.coreos.com", "servicemonitors.monitoring.coreos.com"]
    return names


@pytest.fixture
def release(cli: Cli, namespace: str):
    """A release name unique to the test (its ClusterRole is cluster-scoped); uninstalled afterwards."""
    name = f"ej-{namespace.removeprefix('t-')}"
    yield name
    cli.helm("uninstall", name, "-n", namespace, "--wait", "--timeout=60s", check=False)


# --- tests ---------------------------------------------------------------------------------------------------------


def test_clusterwide_install_with_every_toggle_runs_an_export_with_the_charts_rbac(
    cli, devcluster, kube_api, k8s_client, namespace, release, prometheus_operator_crds, tmp_path
):
    # The release namespace is also where the export runs: enforce the restricted Pod Security level there.
    cli.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    adopt_crd(kube_api, release, namespace)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"resyncSeconds": 2}))

    started = time.monotonic()
    cli.helm("install", release, str(CHART), "-n", namespace, "-f", str(ALL_TOGGLES), "-f", str(values))
    install_seconds = time.monotonic() - started

    # 1. The API server accepted every object of the release.
    objects = manifest_objects(cli, release, namespace)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ServiceAccount",
            "ConfigMap",
            "PersistentVolumeClaim",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "PrometheusRule",
            "ServiceMonitor",
            "NetworkPolicy",  # operator
            "NetworkPolicy",  # workers, in the release namespace
            "ValidatingAdmissionPolicy",  # the confused-deputy guard (docs/security.md), on by default
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    manifest = yaml.safe_dump_all(objects)
    listed = cli.kubectl(
        "get", "-f", "-", "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}{'\\n'}{end}", stdin=manifest
    ).stdout.split()
    assert sorted(listed) == sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    cli.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
    crd = pykube.CustomResourceDefinition.objects(kube_api).get(name=CRD_NAME)
    assert crd.annotations["helm.sh/resource-policy"] == "keep"
    # The Deployment's Pod passed the restricted Pod Security admission (the process kubelet
    # does not run images, so it stays waiting: the operator runs below as a local process).
    wait_until(
        lambda: list(
            pykube.Pod.objects(kube_api, namespace=namespace).filter(
                selector={"app.kubernetes.io/instance": release, "app.kubernetes.io/component": "operator"}
            )
        ),
        60,
        "the operator Deployment's Pod",
    )
    # The `helm test` Pod is admitted too (server-side dry run: it needs a running operator to pass).
    test_pod = cli.helm(
        "template",
        release,
        str(CHART),
        "-n",
        namespace,
        "-f",
        str(ALL_TOGGLES),
        "--show-only",
        "templates/tests/test-metrics.yaml",
    ).stdout
    cli.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=test_pod)

    # 2. The operator, with the chart's ServiceAccount token and the Deployment's environment.
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = service_account_kubeconfig(cli, namespace, account, tmp_path / "operator-sa.kubeconfig")
    settings = deployment_settings(objects)
    assert settings["namespaces"] == "" and settings["default_claim"] == "exports"
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log", **settings)
    exportjobs = ExportJobs(k8s_client, namespace)
    try:
        operator.start()
        started = time.monotonic()
        exportjobs.create("first", INLINE)
        status = exportjobs.wait_for_phase("first", ("Succeeded", "Failed"), timeout=120)
        export_seconds = time.monotonic() - started
        assert status["phase"] == "Succeeded", f"{status}\n{operator.log_tail()}"
        assert status["claimName"] == "exports" and status["rows"] == 2
        file = devcluster.volume_dir(namespace, "exports") / "reports" / "first.csv"
        assert file.read_text(encoding="utf-8").splitlines()[0] == "sku,name,price"
        (job,) = exportjobs.worker_jobs()
        assert job.spec.template.spec.service_account_name == "exportjob-worker"
        exportjobs.wait_for_events("first", {"Admitted", "Succeeded"})
        wait_for_metrics(operator, {("exportjob_exports_total", "format=csv", "result=succeeded"): 1})
        assert not unexpected_forbidden(operator.log_path)
        # The first ExportJob the install notes tell users to apply works as written.
        cli.kubectl("apply", "-f", "-", stdin=notes_example(cli, release, namespace))
        hello = exportjobs.wait_for_phase("hello", ("Succeeded", "Failed"), timeout=120)
        assert hello["phase"] == "Succeeded", hello
    finally:
        operator.stop()
        print(f"--- operator log ---\n{operator.log_tail()}")
    print(f"helm install: {install_seconds:.1f}s; ExportJob created -> Succeeded: {export_seconds:.1f}s")

    # 3. Not excessive.
    sa = f"system:serviceaccount:{namespace}:{account}"
    can = lambda verb, resource, *flags: cli.can_i(sa, verb, resource, *flags)  # noqa: E731
    assert can("list", "exportjobs.exportjob.io", "--all-namespaces")
    assert can("patch", "exportjobs.exportjob.io", "--subresource=status", "-n", "elsewhere")
    assert not can("patch", "exportjobs.exportjob.io", "-n", "elsewhere")  # status is all it writes
    assert can("create", "jobs.batch", "-n", "elsewhere") and can("get", "secrets", "-n", "elsewhere")
    # patch adds the finished label to worker Jobs; no more than create/delete, which it already has
    assert can("patch", "jobs.batch", "-n", "elsewhere")
    for verb, resource, *flags in [
        ("list", "secrets", "--all-namespaces"),
        ("watch", "secrets", "-n", namespace),
        ("list", "secrets", "-n", namespace),
        ("create", "pods", "-n", namespace),
        ("create", "pods", "--subresource=exec", "-n", namespace),
        ("delete", "pods", "-n", namespace),
        ("get", "pods", "--subresource=log", "-n", namespace),
        ("delete", "exportjobs.exportjob.io", "-n", namespace),
        ("create", "exportjobs.exportjob.io", "-n", namespace),
        ("update", "exportjobs.exportjob.io", "-n", namespace),
        ("update", "jobs.batch", "-n", namespace),
        ("get", "configmaps", "-n", namespace),
        ("create", "persistentvolumeclaims", "-n", namespace),
        ("create", "serviceaccounts", "--subresource=token", "-n", namespace),
        ("list", "namespaces"),
        ("list", "nodes"),
        ("create", "clusterrolebindings"),
        ("escalate", "clusterroles"),
        ("bind", "clusterroles"),
        ("impersonate", "serviceaccounts"),
        ("update", "customresourcedefinitions"),
        ("*", "*", "--all-namespaces"),
    ]:
        assert not can(verb, resource, *flags), f"the operator can {verb} {resource} {' '.join(flags)}"
    # The worker's ServiceAccount has no permissions at all.
    worker = f"system:serviceaccount:{namespace}:exportjob-worker"
    for verb, resource in [
        ("get", "secrets"),
        ("list", "pods"),
        ("list", "exportjobs.exportjob.io"),
        ("get", "persistentvolumeclaims"),
        ("create", "events"),
    ]:
        assert not cli.can_i(worker, verb, resource, "-n", namespace), f"the worker can {verb} {resource}"


def test_namespaced_install_works_in_its_namespaces_and_nowhere_else(
    cli, devcluster, kube_api, k8s_client, namespace, release, exportjob_crd, tmp_path
):
    suffix = uuid.uuid4().hex[:6]
    team_a, team_b, other = f"team-a-{suffix}", f"team-b-{suffix}", f"other-{suffix}"
    for name in (team_a, team_b, other):
        create_namespace(kube_api, name)
    try:
        # The CRD exists already (another release or kubectl manages it): this release leaves it alone.
        values = tmp_path / "values.yaml"
        values.write_text(
            yaml.safe_dump(
                {
                    "watchNamespaces": [team_a, team_b],
                    "crds": {"enabled": False},
                    "resyncSeconds": 2,
                    "defaultClaim": {"name": "exports", "create": True},
                }
            )
        )
        cli.helm("install", release, str(CHART), "-n", namespace, "-f", str(values))
        objects = manifest_objects(cli, release, namespace)
        scoped = {(o["kind"], o["metadata"].get("namespace")) for o in objects}
        # Nothing cluster-scoped but the admission policy, whose binding covers the listed namespaces only.
        cluster_scoped = sorted(k for k, ns in scoped if ns is None)
        assert cluster_scoped == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"], scoped
        assert {
            ("Role", team_a),
            ("Role", team_b),
            ("RoleBinding", team_a),
            ("RoleBinding", team_b),
            ("ServiceAccount", team_a),
            ("ServiceAccount", team_b),
        } <= scoped

        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        kubeconfig = service_account_kubeconfig(cli, namespace, account, tmp_path / "operator-sa.kubeconfig")
        settings = deployment_settings(objects)
        assert settings["namespaces"] == f"{team_a},{team_b}"
        operator = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log", **settings)
        in_a, in_other = ExportJobs(k8s_client, team_a), ExportJobs(k8s_client, other)
        try:
            operator.start()
            in_other.create_claim("exports")
            in_other.create("ignored", INLINE)
            in_a.create("first", INLINE)
            status = in_a.wait_for_phase("first", ("Succeeded", "Failed"), timeout=120)
            assert status["phase"] == "Succeeded", f"{status}\n{operator.log_tail()}"
            assert (devcluster.volume_dir(team_a, "exports") / "reports" / "first.csv").is_file()
            assert in_other.status("ignored") == {} and not in_other.worker_jobs()
            assert not unexpected_forbidden(operator.log_path)
        finally:
            operator.stop()
            print(f"--- operator log ---\n{operator.log_tail()}")

        sa = f"system:serviceaccount:{namespace}:{account}"
        for ns in (team_a, team_b):
            assert cli.can_i(sa, "list", "exportjobs.exportjob.io", "-n", ns)
            assert cli.can_i(sa, "create", "jobs.batch", "-n", ns)
            assert not cli.can_i(sa, "list", "secrets", "-n", ns)
            assert not cli.can_i(sa, "create", "pods", "--subresource=exec", "-n", ns)
            assert not cli.can_i(sa, "delete", "exportjobs.exportjob.io", "-n", ns)
        for ns in (other, namespace, "default"):
            for verb, resource in [
                ("list", "exportjobs.exportjob.io"),
                ("get", "secrets"),
                ("create", "jobs.batch"),
                ("list", "pods"),
                ("create", "events"),
            ]:
                assert not cli.can_i(sa, verb, resource, "-n", ns), f"the operator can {verb} {resource} in {ns}"
        for verb, resource in [
            ("list", "exportjobs.exportjob.io"),
            ("list", "jobs.batch"),
            ("get", "secrets"),
            ("list", "namespaces"),
            ("get", "customresourcedefinitions"),
        ]:
            assert not cli.can_i(sa, verb, resource, "--all-namespaces" if resource != "namespaces" else "-A"), (
                f"the operator can {verb} {resource} cluster-wide"
            )
    finally:
        cli.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=60s", check=False)
        for name in (team_a, team_b, other):
            delete_namespace(kube_api, name)
