"""The worker Job manifest: naming, ownership, failure policy, security context, secrets by reference."""

import json

import pytest

from exportjob.controller.manifests import build_worker_job, worker_job_name
from exportjob.controller.settings import OperatorSettings
from exportjob.spec import parse_spec
from exportjob.worker.errors import PERMANENT_FAILURE

SETTINGS = OperatorSettings(default_claim="exports", worker_image="registry.example/exportjob:1.2.3")


def spec(**overrides):
    body = {"format": "csv", "source": {"synthetic": {"records": 10}}, "output": {"path": "r/orders.csv"}}
    body.update(overrides)
    return parse_spec(body)


def job(s=None, settings=SETTINGS):
    return build_worker_job(name="orders", namespace="team-a", uid="0a1b2c3d-uid", spec=s or spec(), settings=settings)


def test_name_is_deterministic_short_and_valid():
    assert worker_job_name("orders", "u1") == worker_job_name("orders", "u1")
    assert worker_job_name("orders", "u1") != worker_job_name("orders", "u2")
    long = worker_job_name("x" * 250, "u1")
    assert len(long) <= 63 and long.startswith("exportjob-x") and not long.endswith("-")
    assert worker_job_name("Weird.Name_1", "u").startswith("exportjob-weird-name-1-")


def test_owner_reference_makes_the_exportjob_the_controller():
    (owner,) = job()["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "exportjob.io/v1alpha1",
        "kind": "ExportJob",
        "name": "orders",
        "uid": "0a1b2c3d-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_spec_is_passed_to_the_worker_and_secrets_only_by_reference():
    s = spec(source={"postgres": {"query": "select 1", "connectionSecretRef": {"name": "pg", "key": "dsn"}}})
    container = job(s)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert json.loads(env["EXPORTJOB_SPEC"]["value"])["source"]["postgres"]["query"] == "select 1"
    assert env["EXPORTJOB_POSTGRES_DSN"] == {
        "name": "EXPORTJOB_POSTGRES_DSN",
        "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}},
    }
    assert container["command"] == ["exportjob-worker"]
    assert container["image"] == "registry.example/exportjob:1.2.3"


def test_failure_policy_fails_fast_on_permanent_exit_code_only():
    job_spec = job()["spec"]
    rules = job_spec["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "worker", "operator": "In", "values": [PERMANENT_FAILURE]},
    }
    assert rules[1]["action"] == "Ignore"
    assert job_spec["template"]["spec"]["restartPolicy"] == "Never"  # required by podFailurePolicy
    assert job_spec["podReplacementPolicy"] == "Failed"  # a retry starts only after the killed attempt is gone


def test_job_limits_come_from_the_spec_or_the_operator_defaults():
    defaults = job()["spec"]
    assert (defaults["backoffLimit"], defaults["activeDeadlineSeconds"], defaults["ttlSecondsAfterFinished"]) == (
        3,
        3600,
        86400,
    )
    own = job(spec(backoffLimit=0, activeDeadlineSeconds=60, ttlSecondsAfterFinished=0))["spec"]
    assert (own["backoffLimit"], own["activeDeadlineSeconds"], own["ttlSecondsAfterFinished"]) == (0, 60, 0)


def test_restricted_security_context():
    pod = job()["spec"]["template"]["spec"]
    container = pod["containers"][0]["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False


def test_claim_is_mounted_and_the_spec_claim_wins_over_the_default():
    pod = job(spec(output={"claimName": "mine", "path": "x.csv"}))["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {"name": "output", "persistentVolumeClaim": {"claimName": "mine"}}
    assert "--output-root=/var/lib/exportjob/output" in pod["containers"][0]["args"]


def test_no_claim_anywhere_is_an_error():
    with pytest.raises(ValueError, match="claim"):
        job(settings=OperatorSettings())


def test_resources_come_from_settings():
    res = job()["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
