"""The confused-deputy guard (issue 9, item 3) on the real API server, with two impersonated users.

alice may create ExportJobs and get the Secret `db` and the claim `exports`;
bob may create ExportJobs but read neither. The ValidatingAdmissionPolicy in
policies/ must let alice's ExportJobs in and refuse bob's, naming what bob may
not read, and must not care about ExportJobs that reference nothing.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from operator_harness import REPO

from devcluster.waiting import wait_for

pytestmark = pytest.mark.cluster

POLICY_FILE = REPO / "policies" / "exportjob-references.yaml"


def exportjob(name, source, claim="exports"):
    output = {"path": f"{name}.csv", **({"claimName": claim} if claim else {})}
    return {
        "apiVersion": "exportjob.io/v1alpha1",
        "kind": "ExportJob",
        "metadata": {"name": name},
        "spec": {"format": "csv", "source": source, "output": output},
    }


POSTGRES = {"postgres": {"query": "select 1", "connectionSecretRef": {"name": "db", "key": "dsn"}}}
HTTP = {"http": {"url": "https://example.invalid/rows", "bearerTokenSecretRef": {"name": "db", "key": "token"}}}
SYNTHETIC = {"synthetic": {"records": 1}}


@pytest.fixture
def kubectl(devcluster, namespace):
    def run(*args, user=None, stdin=None):
        command = ["kubectl", "--kubeconfig", str(devcluster.kubeconfig), "-n", namespace]
        if user:
            command += ["--as", user]
        return subprocess.run([*command, *args], input=stdin, capture_output=True, text=True)

    return run


@pytest.fixture
def users(kubectl, exportjob_crd):
    """The policy applied, and alice/bob with their Roles, in the test's namespace."""
    applied = kubectl("apply", "--server-side", "-f", str(POLICY_FILE))
    assert applied.returncode == 0, applied.stderr
    documents = [
        {"kind": "Secret", "metadata": {"name": "db"}, "stringData": {"dsn": "host=db", "token": "t0ken-value"}},
        {
            "kind": "Role",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "exportjob-creator"},
            "rules": [{"apiGroups": ["exportjob.io"], "resources": ["exportjobs"], "verbs": ["create", "get"]}],
        },
        {
            "kind": "Role",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "db-reader"},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"]},
            ],
        },
    ]
    for user, roles in (("alice", ["exportjob-creator", "db-reader"]), ("bob", ["exportjob-creator"])):
        for role in roles:
            documents.append(
                {
                    "kind": "RoleBinding",
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "metadata": {"name": f"{user}-{role}"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
                }
            )
    for document in documents:
        document.setdefault("apiVersion", "v1")
        created = kubectl("apply", "-f", "-", stdin=json.dumps(document))
        assert created.returncode == 0, created.stderr

    # The policy takes effect once the API server has compiled it: probe with a server-side dry run.
    def refused():
        probe = kubectl(
            "create", "--dry-run=server", "-f", "-", user="bob", stdin=json.dumps(exportjob("probe", POSTGRES))
        )
        return probe.returncode != 0 and "exportjob-references" in probe.stderr

    wait_for(refused, timeout=60, description="the ValidatingAdmissionPolicy to refuse bob")
    return kubectl


def create(kubectl, user, manifest):
    return kubectl("create", "-f", "-", user=user, stdin=json.dumps(manifest))


@pytest.mark.parametrize("source", [POSTGRES, HTTP], ids=["postgres", "http"])
def test_user_who_can_read_the_secret_may_reference_it(users, source):
    created = create(users, "alice", exportjob("alice-export", source))
    assert created.returncode == 0, created.stderr


@pytest.mark.parametrize("source", [POSTGRES, HTTP], ids=["postgres", "http"])
def test_user_who_cannot_read_the_secret_is_refused(users, source):
    refused = create(users, "bob", exportjob("bob-export", source, claim=None))
    assert refused.returncode != 0
    assert 'may not get Secret "db"' in refused.stderr and "bob" in refused.stderr
    assert users("get", "exportjob", "bob-export").returncode != 0  # nothing stored


def test_user_who_cannot_get_the_claim_is_refused(users):
    refused = create(users, "bob", exportjob("bob-claim", SYNTHETIC))
    assert refused.returncode != 0
    assert 'may not get PersistentVolumeClaim "exports"' in refused.stderr


def test_exportjob_referencing_nothing_needs_no_extra_permission(users):
    created = create(users, "bob", exportjob("bob-default-claim", SYNTHETIC, claim=None))
    assert created.returncode == 0, created.stderr
