"""Checks of the Helm chart with the real `helm` (bin/helm): lint, render, schema, RBAC, security.

`helm lint --strict` and `helm template` run with default values, with every
toggle on (charts/exportjob-operator/ci/all-toggles-values.yaml) and in
namespaced mode; the strict values schema must reject a misspelt key; the
chart's copies of the CRD, the rules and the dashboard must equal their sources
and render unchanged; every Pod the chart or the operator creates must satisfy
the restricted Pod Security Standard; the RBAC must equal the least-privilege
table below, which is itself checked against the API calls in
operator/exportjob/controller/kube.py, so a new call without a rule (or a rule
nothing uses) fails here. Marked `tools`: without bin/helm the tests fail with
"run `make tools`", they never skip.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exportjob.controller.manifests import build_worker_job
from exportjob.controller.settings import OperatorSettings, load_settings
from exportjob.spec import parse_spec

pytestmark = pytest.mark.tools

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / "bin" / "helm"
CHART = REPO / "charts" / "exportjob-operator"
ALL_TOGGLES = CHART / "ci" / "all-toggles-values.yaml"
NAMESPACE = "exportjob-system"
CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}

# The operator's RBAC: (API group, resource, verb). Nothing more, nothing less.
LEAST_PRIVILEGE = {
    ("exportjob.io", "exportjobs", "list"),
    ("exportjob.io", "exportjobs", "watch"),
    ("exportjob.io", "exportjobs/status", "patch"),
    ("batch", "jobs", "get"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("batch", "jobs", "create"),
    ("batch", "jobs", "delete"),
    ("batch", "jobs", "patch"),
    ("", "pods", "list"),
    ("", "persistentvolumeclaims", "get"),
    ("", "serviceaccounts", "get"),
    ("", "secrets", "get"),
    ("", "events", "create"),
}
# Kopf's watch stream (handlers.py: on.event for ExportJobs) needs watch; kube.py lists, and watches Jobs.
KOPF_WATCHES = {("exportjob.io", "exportjobs", "watch")}
# Leader election: kube.py's Lease calls, granted by a Role in the release namespace only.
LEASE_PRIVILEGE = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
LEADER_ROLE = "exportjob-operator-leader-election"


@pytest.fixture(scope="module")
def helm() -> Path:
    if not HELM.exists():
        pytest.fail(f"{HELM} not found: run `make tools` (hack/build-tools.sh helm) to build helm", pytrace=False)
    return HELM


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def render(helm: Path, *values: str, release: str = "exportjob-operator") -> list[dict[str, Any]]:
    """`helm template` (including the test hook) parsed into objects; `values` are extra helm arguments."""
    out = run_helm(helm, "template", release, str(CHART), "--namespace", NAMESPACE, *values).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def rule_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    out = set()
    for rule in rules:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    out.add((group, resource, verb))
    return out


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


# --- lint and render --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [[], ["-f", str(ALL_TOGGLES)], ["-f", str(ALL_TOGGLES), "--set", "watchNamespaces={a,b}"]],
    ids=["defaults", "all-toggles", "namespaced"],
)
def test_helm_lint_strict(helm: Path, values: list[str]) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in result.stdout


def test_default_render_has_the_core_objects_and_no_optional_ones(helm: Path) -> None:
    kinds = sorted(o["kind"] for o in render(helm))
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "Pod",
            "ValidatingAdmissionPolicy",  # the confused-deputy guard is on by default (docs/security.md)
            "ValidatingAdmissionPolicyBinding",
        ]
    )


def test_every_toggle_on_renders_the_monitoring_objects_and_the_claim(helm: Path) -> None:
    objects = render(helm, "-f", str(ALL_TOGGLES))
    kinds = {o["kind"] for o in objects}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "PersistentVolumeClaim"} <= kinds
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "http-metrics"
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    assert set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(service["metadata"]["labels"].items())
    assert one(objects, "PrometheusRule")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboard = one(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Exports"}
    claim = one(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert env_of(one(objects, "Deployment"))["EXPORTJOB_DEFAULT_CLAIM"] == claim["metadata"]["name"] == "exports"


@pytest.mark.parametrize(
    "args,expected",
    [
        ([], None),
        (["--set", "defaultClaim.storageClassName=fast"], "fast"),
        (["--set", "defaultClaim.storageClassName="], ""),
    ],
)
def test_default_claim_storage_class(helm: Path, args: list[str], expected: str | None) -> None:
    claim = one(
        render(helm, "--set", "defaultClaim.create=true", "--set", "defaultClaim.name=out", *args),
        "PersistentVolumeClaim",
    )
    assert claim["spec"].get("storageClassName") == expected
    assert claim["metadata"]["namespace"] == NAMESPACE


def test_dashboard_label_and_namespace_are_configurable(helm: Path) -> None:
    objects = render(
        helm,
        "--set",
        "dashboards.enabled=true",
        "--set",
        "dashboards.label=my_dashboards",
        "--set",
        "dashboards.labelValue=yes",
        "--set",
        "dashboards.namespace=monitoring",
    )
    configmap = one(objects, "ConfigMap")
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["my_dashboards"] == "yes"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]


@pytest.mark.parametrize(
    "typo,message",
    [
        ("limits.maxConcurent=3", "additional properties 'maxConcurent' not allowed"),
        ("metrics.serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("replicas=2", "additional properties 'replicas' not allowed"),
        ("logFormat=yaml", "logFormat"),
        ("limits.maxConcurrent=0", "maxConcurrent"),
    ],
)
def test_the_schema_rejects_typos_and_bad_values(helm: Path, typo: str, message: str) -> None:
    result = run_helm(helm, "template", "x", str(CHART), "--set", typo, check=False)
    assert result.returncode != 0, f"--set {typo} was accepted"
    assert message in result.stderr, result.stderr


def test_every_object_carries_the_standard_labels(helm: Path) -> None:
    for obj in render(helm, "-f", str(ALL_TOGGLES), release="prod"):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "exportjob-operator", obj["kind"]
        assert labels["app.kubernetes.io/instance"] == "prod", obj["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", obj["kind"]
        assert labels["helm.sh/chart"] == "exportjob-operator-0.1.0", obj["kind"]


def test_names_are_cut_to_63_characters(helm: Path) -> None:
    release = "r" * 53
    for obj in render(helm, "-f", str(ALL_TOGGLES), release=release):
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
        assert not obj["metadata"]["name"].endswith("-")


# --- single sources of truth -----------------------------------------------------------------------------------


def test_chart_copies_equal_their_sources() -> None:
    result = subprocess.run([str(REPO / "hack" / "check-chart-sync.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + "\nrun `make chart-sync`"
    pairs = subprocess.run(
        [str(REPO / "hack" / "sync-chart.sh"), "--list"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    sources = {Path(line.split()[0]).relative_to(REPO).as_posix() for line in pairs if line}
    assert sources == {
        "crds/exportjob.io_exportjobs.yaml",
        "rules/exportjob.rules.yml",
        "dashboards/exportjob-operator.json",
        "policies/exportjob-references.yaml",
    }
    for line in filter(None, pairs):
        source, copy = map(Path, line.split())
        assert source.read_bytes() == copy.read_bytes(), f"{copy} differs from {source}"
    assert not (CHART / "crds").exists(), "Helm never upgrades a chart's crds/ folder: render the CRD as a template"


def test_the_crd_renders_unchanged_with_a_keep_policy(helm: Path) -> None:
    source = yaml.safe_load((REPO / "crds" / "exportjob.io_exportjobs.yaml").read_text())
    rendered = one(render(helm), "CustomResourceDefinition")
    assert rendered["spec"] == source["spec"]
    assert rendered["metadata"]["name"] == source["metadata"]["name"]
    assert rendered["metadata"]["annotations"] == {
        **source["metadata"]["annotations"],
        "helm.sh/resource-policy": "keep",
    }
    assert set(source["metadata"]["labels"].items()) <= set(rendered["metadata"]["labels"].items())
    unkept = one(render(helm, "--set", "crds.keep=false"), "CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in unkept["metadata"]["annotations"]
    assert not [o for o in render(helm, "--set", "crds.enabled=false") if o["kind"] == "CustomResourceDefinition"]


def test_rules_and_dashboard_ship_unchanged(helm: Path) -> None:
    objects = render(helm, "-f", str(ALL_TOGGLES))
    rules = one(objects, "PrometheusRule")
    assert rules["spec"] == yaml.safe_load((REPO / "rules" / "exportjob.rules.yml").read_text())
    (data,) = one(objects, "ConfigMap")["data"].values()
    source = (REPO / "dashboards" / "exportjob-operator.json").read_text()
    assert data == source
    assert json.loads(data)["uid"] == "exportjob-operator"


@pytest.mark.parametrize(
    "release,overrides",
    [
        ("exportjob-operator", []),
        ("prod", []),
        ("x", ["--set", "fullnameOverride=exports"]),
        ("x", ["--set", "nameOverride=ej"]),
    ],
)
def test_the_scrape_job_matches_the_alerts_job_regex(helm: Path, release: str, overrides: list[str]) -> None:
    """The ServiceMonitor's jobLabel reads a Service label whose value matches job=~".*exportjob-operator.*"."""
    objects = render(helm, "--set", "metrics.serviceMonitor.enabled=true", *overrides, release=release)
    monitor, service = one(objects, "ServiceMonitor"), one(objects, "Service")
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert re.fullmatch(".*exportjob-operator.*", job), job
    if not overrides:
        assert job == service["metadata"]["name"]  # the default job (the Service name), as docs/monitoring.md says
    rules_text = (REPO / "rules" / "exportjob.rules.yml").read_text()
    assert 'job=~".*exportjob-operator.*"' in rules_text


# --- the Deployment and its settings ---------------------------------------------------------------------------


def test_one_replica_recreate_probe_and_ports(helm: Path) -> None:
    deployment = one(render(helm), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    (container,) = spec["template"]["spec"]["containers"]
    assert "command" not in container and "args" not in container  # the image's CMD: exportjob-operator
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http-metrics": 8080, "http-health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_the_deployment_sets_every_operator_setting_and_they_load(helm: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "limits": {"maxConcurrent": 7, "maxConcurrentPerNamespace": 2},
                "defaultClaim": {"name": "exports"},
                "worker": {"resources": {"limits": {"cpu": None}}},
                "jobDefaults": {"ttlSecondsAfterFinished": 10_000_000},
                "resyncSeconds": 2.5,
                "logFormat": "plain",
                "image": {"tag": "1.2.3"},
                "watchNamespaces": ["a", "b"],
            }
        )
    )
    objects = render(helm, "-f", str(values))
    env = env_of(one(objects, "Deployment"))
    # The Lease namespace comes from the Pod's own namespace (POD_NAMESPACE, downward API).
    expected = {f"EXPORTJOB_{name.upper()}" for name in OperatorSettings.model_fields} - {"EXPORTJOB_LEASE_NAMESPACE"}
    assert set(env) == expected, f"missing {expected - set(env)}, unknown {set(env) - expected}"
    settings = load_settings([], env)
    assert (settings.max_concurrent, settings.max_concurrent_per_namespace) == (7, 2)
    assert settings.namespaces == ["a", "b"] and settings.default_claim == "exports"
    assert settings.worker_image == "ghcr.io/exportjob-operator/exportjob-operator:1.2.3"
    assert settings.worker_service_account == "exportjob-worker"
    assert (settings.worker_cpu_limit, settings.worker_memory_limit) == ("", "512Mi")
    assert settings.job_ttl_seconds_after_finished == 10_000_000 and settings.resync_seconds == 2.5
    assert (settings.log_format, settings.metrics_port, settings.health_port) == ("plain", 8080, 8081)
    defaults = load_settings([], env_of(one(render(helm), "Deployment")))
    assert defaults.clusterwide and defaults.default_claim is None
    # The chart's defaults are the operator's, except two deliberate choices: the release's image for the
    # workers, and a dedicated worker ServiceAccount that the chart creates (no RBAC, no token).
    chart_choices = {"worker_image", "worker_service_account", "lease_name"}
    assert defaults.model_dump(exclude=chart_choices) == OperatorSettings().model_dump(exclude=chart_choices)
    assert defaults.worker_service_account == "exportjob-worker"
    assert defaults.leader_election and defaults.lease_name == "exportjob-operator"


def test_worker_image_override(helm: Path) -> None:
    env = env_of(
        one(
            render(helm, "--set", "worker.image.repository=reg.local/ej", "--set-string", "worker.image.tag=9"),
            "Deployment",
        )
    )
    assert env["EXPORTJOB_WORKER_IMAGE"] == "reg.local/ej:9"
    digest = "sha256:" + "a" * 64
    env = env_of(one(render(helm, "--set", f"image.digest={digest}"), "Deployment"))
    assert env["EXPORTJOB_WORKER_IMAGE"] == f"ghcr.io/exportjob-operator/exportjob-operator@{digest}"


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def assert_restricted(pod_spec: dict[str, Any], what: str) -> None:
    pod = pod_spec.get("securityContext") or {}
    assert pod.get("runAsNonRoot") is True and pod.get("seccompProfile") == {"type": "RuntimeDefault"}, what
    assert pod.get("runAsUser", 65532) == 65532, what
    assert not pod_spec.get("hostNetwork") and not pod_spec.get("hostPID") and not pod_spec.get("hostIPC"), what
    for container in pod_spec["containers"] + pod_spec.get("initContainers", []):
        assert RESTRICTED_CONTAINER.items() <= container["securityContext"].items(), f"{what}/{container['name']}"
        assert container["resources"].get("limits", {}).get("memory") or what == "worker", f"{what}: memory limit"
    for volume in pod_spec.get("volumes", []):
        assert "hostPath" not in volume, what


def test_every_pod_is_restricted(helm: Path) -> None:
    objects = render(helm, "-f", str(ALL_TOGGLES))
    deployment = one(objects, "Deployment")
    assert_restricted(deployment["spec"]["template"]["spec"], "operator Deployment")
    test_pod = one(objects, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["automountServiceAccountToken"] is False
    assert_restricted(test_pod["spec"], "helm test Pod")
    # The worker Job the operator builds with exactly the settings the chart gives it.
    settings = load_settings([], env_of(deployment))
    job = build_worker_job(
        name="orders",
        namespace="team-a",
        uid="u-1",
        settings=settings,
        spec=parse_spec({"format": "csv", "source": {"synthetic": {"records": 1}}, "output": {"path": "orders.csv"}}),
    )
    pod_spec = job["spec"]["template"]["spec"]
    assert_restricted(pod_spec, "worker")
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["serviceAccountName"] == one(objects, "ServiceAccount", "exportjob-worker")["metadata"]["name"]
    assert (
        pod_spec["volumes"][0]["persistentVolumeClaim"]["claimName"]
        == one(objects, "PersistentVolumeClaim")["metadata"]["name"]
    )


def test_the_test_pod_is_not_a_service_endpoint(helm: Path) -> None:
    objects = render(helm)
    selector = one(objects, "Service")["spec"]["selector"]
    assert not set(selector.items()) <= set(one(objects, "Pod")["metadata"]["labels"].items())
    assert set(selector.items()) <= set(one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"].items())


# --- RBAC ------------------------------------------------------------------------------------------------------


class RecordingApiClient:
    """Stands in for the kubernetes ApiClient under KubeApi: records (method, path) of every request and
    answers 200 with one JSON body that satisfies every caller, or 409 for the first Job create (so the
    adopt path's GET is sent too)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def param_serialize(self, method, resource_path, query_params=None, header_params=None, auth_settings=None):
        watch = "?watch=true" if ("watch", "true") in (query_params or []) else ""
        return method, resource_path + watch, header_params or {}, None, []

    def call_api(self, method, url, headers, body, post_params, _request_timeout=None):
        conflict = method == "POST" and url.endswith("/jobs") and not any(m == "POST" for m, _ in self.sent)
        self.sent.append((method, url))
        answer = {"items": [], "metadata": {"resourceVersion": "1", "name": "x", "uid": "u"}, "spec": {}}
        return RecordedResponse(409 if conflict else 200, json.dumps(answer).encode())


class RecordedResponse:
    def __init__(self, status: int, data: bytes) -> None:
        self.status, self.data, self.reason, self.headers = status, data, "recorded", {}
        self.response = self  # the streamed answer of a watch: urllib3's response under the RESTResponse

    def read(self) -> bytes:
        return self.data

    def stream(self, amount: int):
        yield self.data

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass

    def getheaders(self) -> dict:
        return {}


def permission(method: str, path: str) -> tuple[str, str, str]:
    """(API group, resource[/subresource], verb) a request needs, from its REST path (`?watch=true`: a watch)."""
    path, watch = path.removesuffix("?watch=true"), path.endswith("?watch=true")
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:1] == ["namespaces"]:
        rest = rest[2:]
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
    verbs = {
        "GET": "get" if name else "watch" if watch else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }
    return group, f"{resource}/{sub}" if sub else resource, verbs[method]


def every_request_of_kube_py() -> set[tuple[str, str, str]]:
    """Call each public KubeApi method (and both branches of the ones that branch) and collect the permissions
    of what they send; a method this does not call fails the test, so a new one cannot slip past."""
    from exportjob.controller.errors import NotOurs
    from exportjob.controller.kube import KubeApi

    client = RecordingApiClient()
    job = {"metadata": {"name": "j", "namespace": "ns", "uid": "u", "ownerReferences": [{"uid": "not-this"}]}}
    calls = {
        "list_exportjobs": lambda api: api.list_exportjobs("status.phase!=x"),
        "patch_exportjob_status": lambda api: api.patch_exportjob_status("ns", "e", {"phase": "Queued"}, "1"),
        "list_jobs": lambda api: api.list_jobs("!x"),
        "watch_jobs": lambda api: (list(api.watch_jobs(None, "!x", None)), list(api.watch_jobs("ns", "!x", "7"))),
        "label_job": lambda api: api.label_job("ns", "j", {"a": "b"}),
        "create_job": lambda api: api.create_job(job),  # 409, then the adopt GET: not ours
        "delete_job": lambda api: api.delete_job("ns", "j"),
        "list_job_pods": lambda api: api.list_job_pods("ns", job),
        "claim_exists": lambda api: api.claim_exists("ns", "c"),
        "service_account_exists": lambda api: api.service_account_exists("ns", "sa"),
        "secret_problem": lambda api: api.secret_problem("ns", "s", "k"),
        "object_labels": lambda api: (
            api.object_labels("Secret", "ns", "s"),
            api.object_labels("PersistentVolumeClaim", "ns", "c"),
        ),
        "usage_problem": lambda api: api.usage_problem("Secret", "ns", "s", "team=a", "secretSelector"),
        "read_lease": lambda api: api.read_lease("ns", "l"),
        "write_lease": lambda api: (api.write_lease("ns", "l", {}, None), api.write_lease("ns", "l", {}, "1")),
        "post_event": lambda api: api.post_event(
            {"metadata": {"name": "e", "namespace": "ns", "uid": "u"}}, "Normal", "R", "m"
        ),
    }
    public = {name for name in vars(KubeApi) if not name.startswith("_")}
    assert public == set(calls), f"KubeApi methods without a call here: {public - set(calls)}"
    for namespaces in ((), ("team-a", "team-b")):
        api = KubeApi(client, namespaces)  # type: ignore[arg-type]
        for call in calls.values():
            try:
                call(api)
            except NotOurs:
                pass
    return {permission(method, path) for method, path in client.sent}


def test_least_privilege_table_matches_the_requests_kube_py_sends() -> None:
    sent = every_request_of_kube_py()
    needed = {p for p in sent if p[0] != "coordination.k8s.io"} | KOPF_WATCHES
    assert needed == LEAST_PRIVILEGE, (
        f"missing from the chart: {needed - LEAST_PRIVILEGE}; unused: {LEAST_PRIVILEGE - needed}"
    )
    assert {p for p in sent if p[0] == "coordination.k8s.io"} == LEASE_PRIVILEGE


def test_leader_election_role_is_only_leases_in_the_release_namespace(helm: Path) -> None:
    for mode in ([], ["--set", "watchNamespaces={team-a}"]):
        objects = render(helm, *mode)
        role = one(objects, "Role", LEADER_ROLE)
        assert role["metadata"]["namespace"] == NAMESPACE and rule_set(role["rules"]) == LEASE_PRIVILEGE
        binding = one(objects, "RoleBinding", LEADER_ROLE)
        assert binding["roleRef"]["name"] == LEADER_ROLE and binding["subjects"][0]["namespace"] == NAMESPACE
    objects = render(helm, "--set", "leaderElection.enabled=false")
    assert not [o for o in objects if o["metadata"]["name"] == LEADER_ROLE]


def test_replicas_need_leader_election_and_roll_without_downtime(helm: Path) -> None:
    spec = one(render(helm, "--set", "replicaCount=2"), "Deployment")["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    result = run_helm(
        helm,
        "template",
        "x",
        str(CHART),
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.enabled=false",
        check=False,
    )
    assert result.returncode != 0 and "requires leaderElection.enabled" in result.stderr


def test_clusterwide_rbac_is_exactly_the_least_privilege_table(helm: Path) -> None:
    objects = render(helm)
    role, binding = one(objects, "ClusterRole"), one(objects, "ClusterRoleBinding")
    assert rule_set(role["rules"]) == LEAST_PRIVILEGE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    operator_sa = one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": operator_sa, "namespace": NAMESPACE}]
    assert [o["metadata"]["name"] for o in objects if o["kind"] in ("Role", "RoleBinding")] == [LEADER_ROLE] * 2


def test_namespaced_mode_renders_nothing_cluster_scoped_but_the_crd(helm: Path) -> None:
    objects = render(helm, "-f", str(ALL_TOGGLES), "--set", "watchNamespaces={team-a,team-b}")
    cluster_scoped = [o["kind"] for o in objects if o["kind"] in CLUSTER_SCOPED or not o["metadata"].get("namespace")]
    # The CRD, and the admission policy whose binding covers the listed namespaces only.
    assert sorted(cluster_scoped) == [
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    binding = one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
    ]
    roles = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] != LEADER_ROLE]
    bindings = [o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] != LEADER_ROLE]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:
        assert rule_set(role["rules"]) == LEAST_PRIVILEGE
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # The worker ServiceAccount and the default claim go where the exports run.
    workers = [o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "exportjob-worker"]
    assert sorted(w["metadata"]["namespace"] for w in workers) == ["team-a", "team-b"]
    assert all(w["automountServiceAccountToken"] is False for w in workers)
    claims = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert sorted(c["metadata"]["namespace"] for c in claims) == ["team-a", "team-b"]
    assert env_of(one(objects, "Deployment"))["EXPORTJOB_NAMESPACES"] == "team-a,team-b"


def test_worker_service_account_has_no_rbac_and_no_token(helm: Path) -> None:
    objects = render(helm, "--set", "worker.serviceAccount.namespaces={x,y}")
    workers = [o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "exportjob-worker"]
    assert sorted(w["metadata"]["namespace"] for w in workers) == ["x", "y"]
    subjects = [s["name"] for o in objects if o["kind"].endswith("RoleBinding") for s in o["subjects"]]
    assert "exportjob-worker" not in subjects
    default = [o for o in render(helm) if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "exportjob-worker"]
    assert [w["metadata"]["namespace"] for w in default] == [NAMESPACE]
    assert not [
        o
        for o in render(helm, "--set", "worker.serviceAccount.create=false")
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "exportjob-worker"
    ]


def test_rbac_and_service_account_can_be_turned_off(helm: Path) -> None:
    kinds = {o["kind"] for o in render(helm, "--set", "rbac.create=false")}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    result = run_helm(helm, "template", "x", str(CHART), "--set", "serviceAccount.create=false", check=False)
    assert result.returncode != 0 and "serviceAccount.name is required" in result.stderr
    objects = render(helm, "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=mine")
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


def test_clusters_older_than_podfailurepolicy_ga_are_refused(helm: Path) -> None:
    """podFailurePolicy (permanent worker failures fail the Job at once) is GA since Kubernetes 1.31."""
    assert run_helm(helm, "template", "x", str(CHART), "--kube-version", "1.31.0").returncode == 0
    old = run_helm(helm, "template", "x", str(CHART), "--kube-version", "1.30.9", check=False)
    assert old.returncode != 0 and "kubeVersion" in old.stderr


# --- security (issue 9; docs/security.md) ------------------------------------------------------------------------
POLICY_SOURCE = REPO / "policies" / "exportjob-references.yaml"
INSTALL_DOC = REPO / "docs" / "install.md"


def test_admission_policy_is_the_source_file_with_the_releases_names(helm: Path) -> None:
    objects = render(helm)
    policy, binding = one(objects, "ValidatingAdmissionPolicy"), one(objects, "ValidatingAdmissionPolicyBinding")
    source = {d["kind"]: d for d in yaml.safe_load_all(POLICY_SOURCE.read_text())}
    assert policy["spec"] == source["ValidatingAdmissionPolicy"]["spec"]
    assert policy["metadata"]["name"] == "exportjob-operator-references"
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    expressions = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "resource('secrets')" in expressions and "resource('persistentvolumeclaims')" in expressions
    assert not [o for o in render(helm, "--set", "admissionPolicy.enabled=false") if "Admission" in o["kind"]]


def test_security_settings_reach_the_operator(helm: Path) -> None:
    env = env_of(
        one(
            render(
                helm,
                "--set",
                "worker.httpEgress=unrestricted",
                "--set",
                "worker.httpDenyNetworks={10.0.0.1/32,fd00::/8}",
                "--set",
                "references.secretSelector=exportjob.io/usable=true",
                "--set",
                "references.claimSelector=exportjob.io/usable",
            ),
            "Deployment",
        )
    )
    settings = load_settings([], env)
    assert settings.worker_http_egress == "unrestricted"
    assert settings.worker_http_deny_networks == ["10.0.0.1/32", "fd00::/8"]
    assert (settings.secret_selector, settings.claim_selector) == ("exportjob.io/usable=true", "exportjob.io/usable")
    defaults = load_settings([], env_of(one(render(helm), "Deployment")))
    assert defaults.worker_http_egress == "restricted" and defaults.secret_selector is None
    bad = run_helm(helm, "template", "x", str(CHART), "--set", "worker.httpEgress=open", check=False)
    assert bad.returncode != 0 and "httpEgress" in bad.stderr


def test_network_policies_are_optional_and_keep_workers_from_metadata(helm: Path) -> None:
    assert not [o for o in render(helm) if o["kind"] == "NetworkPolicy"]
    objects = render(helm, "-f", str(ALL_TOGGLES), "--set", "watchNamespaces={team-a,team-b}")
    policies = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "NetworkPolicy"}
    assert set(policies) == {
        (NAMESPACE, "exportjob-operator"),
        ("team-a", "exportjob-operator-worker"),
        ("team-b", "exportjob-operator-worker"),
    }
    worker = policies[("team-a", "exportjob-operator-worker")]["spec"]
    assert worker["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert worker["ingress"] == [] and set(worker["policyTypes"]) == {"Ingress", "Egress"}
    assert {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}} in [
        t for r in worker["egress"] for t in r.get("to", [])
    ]
    operator = policies[(NAMESPACE, "exportjob-operator")]["spec"]
    assert [p["port"] for p in operator["ingress"][0]["ports"]] == ["http-metrics", "http-health"]
    # The worker Pods the operator builds carry the labels the worker policy selects.
    spec = parse_spec(
        {"format": "csv", "source": {"synthetic": {"records": 1}}, "output": {"claimName": "c", "path": "a"}}
    )
    job = build_worker_job(name="e", namespace="team-a", uid="u", spec=spec, settings=OperatorSettings())
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert worker["podSelector"]["matchLabels"].items() <= labels.items()


def test_the_install_doc_lists_exactly_the_verbs_the_chart_grants() -> None:
    text = INSTALL_DOC.read_text()
    table = text[text.index("| resource | verbs | why |") :].split("\n\n", 1)[0]
    documented = set()
    for line in table.splitlines()[2:]:
        resource, verbs = (cell.strip().strip("`") for cell in line.strip("|").split("|")[:2])
        name, _, group = resource.partition(".")
        if name == "exportjobs/status":
            group = "exportjob.io"
        documented |= {(group, name, verb.strip()) for verb in verbs.split(",")}
    assert documented == LEAST_PRIVILEGE | LEASE_PRIVILEGE, (
        f"undocumented: {(LEAST_PRIVILEGE | LEASE_PRIVILEGE) - documented}; not granted: "
        f"{documented - LEAST_PRIVILEGE - LEASE_PRIVILEGE}"
    )
