"""Builds the worker `batch/v1` Job of an admitted ExportJob. Pure: dictionaries in, a dictionary out.

One Job per export, with a name derived from the ExportJob's uid, so creating
it again (after a restart, or a retry of a failed API call) finds the existing
Job instead of starting a duplicate. The controller owner reference lets the
garbage collector remove the Job (and its Pods) when the ExportJob is deleted.

Failure handling is delegated to the Job controller: retryable worker failures
(exit 75, or a crash) are retried up to `backoffLimit`; the worker's permanent
failure exit code fails the Job at once through `podFailurePolicy`; disruptions
(evictions, preemption) are not counted against the limit.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from exportjob.controller.settings import OperatorSettings
from exportjob.spec import API_GROUP, API_VERSION, KIND, ExportJobSpec, spec_to_wire
from exportjob.status import TERMINAL_PHASES
from exportjob.worker.egress import DENY_NETWORKS_ENV, EGRESS_ENV
from exportjob.worker.errors import PERMANENT_FAILURE

MANAGED_BY = "exportjob-operator"
WORKER_CONTAINER = "worker"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_EXPORT_NAME = f"{API_GROUP}/name"
LABEL_EXPORT_UID = f"{API_GROUP}/uid"
WORKER_JOB_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}=worker"
# Unfinished ExportJobs, by the status phase the CRD declares selectable (`selectableFields`): the
# operator's watch and LISTs never see finished ones, however many users keep, and the terminal
# status write itself takes an export out of the watch (no second write to label it).
UNFINISHED_EXPORTJOB_FIELD_SELECTOR = ",".join(f"status.phase!={phase}" for phase in sorted(TERMINAL_PHASES))
# Set on a worker Job once its export is finished, so that the Job watch sends only unfinished ones
# (Jobs have no selectable field that tells a failed Job from a running one).
LABEL_FINISHED = f"{API_GROUP}/finished"
UNFINISHED_SELECTOR = f"!{LABEL_FINISHED}"
UNFINISHED_WORKER_JOB_SELECTOR = f"{WORKER_JOB_SELECTOR},{UNFINISHED_SELECTOR}"
TERMINATION_LOG = "/dev/termination-log"
ENV_SPEC = "EXPORTJOB_SPEC"
ENV_POSTGRES_DSN = "EXPORTJOB_POSTGRES_DSN"
ENV_HTTP_BEARER_TOKEN = "EXPORTJOB_HTTP_BEARER_TOKEN"
RUN_AS_USER = 65532  # the image's non-root user
_MAX_NAME = 63  # Job names become the `job-name` label of their Pods


def worker_job_name(export_name: str, uid: str) -> str:
    """`exportjob-<name>-<hash>`: readable, unique per ExportJob, at most 63 characters, stable."""
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9-]", "-", export_name.lower())
    stem = stem[: _MAX_NAME - len("exportjob--") - len(digest)].strip("-")
    return f"exportjob-{stem}-{digest}" if stem else f"exportjob-{digest}"


def _label_value(value: str) -> str:
    """A label value (≤ 63 chars, alphanumeric at both ends); long names are cut and hashed."""
    if len(value) <= 63:
        return value
    return value[:54].rstrip("-.") + "-" + hashlib.sha256(value.encode()).hexdigest()[:8]


def claim_name(spec: ExportJobSpec, settings: OperatorSettings) -> str | None:
    """The claim this export writes to: its own, else the operator's default (None: neither is set)."""
    return spec.output.claim_name or settings.default_claim


def secret_refs(spec: ExportJobSpec) -> list[tuple[str, str, str]]:
    """(env var, secret name, key) for every Secret the worker needs."""
    source = spec.source
    refs = []
    if source.postgres is not None:
        ref = source.postgres.connection_secret_ref
        refs.append((ENV_POSTGRES_DSN, ref.name, ref.key))
    if source.http is not None and source.http.bearer_token_secret_ref is not None:
        ref = source.http.bearer_token_secret_ref
        refs.append((ENV_HTTP_BEARER_TOKEN, ref.name, ref.key))
    return refs


def _resources(settings: OperatorSettings) -> dict[str, Any]:
    requests = {"cpu": settings.worker_cpu_request, "memory": settings.worker_memory_request}
    limits = {k: v for k, v in (("cpu", settings.worker_cpu_limit), ("memory", settings.worker_memory_limit)) if v}
    return {"requests": requests, **({"limits": limits} if limits else {})}


def build_worker_job(
    *, name: str, namespace: str, uid: str, spec: ExportJobSpec, settings: OperatorSettings
) -> dict[str, Any]:
    """The worker Job manifest for ExportJob `namespace/name` (uid `uid`)."""
    claim = claim_name(spec, settings)
    if claim is None:
        raise ValueError(
            "no output claim: the ExportJob sets no output.claimName and the operator has no default claim"
        )
    labels = {
        "app.kubernetes.io/name": "exportjob-worker",
        "app.kubernetes.io/instance": _label_value(name),
        LABEL_COMPONENT: "worker",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_EXPORT_NAME: _label_value(name),
        LABEL_EXPORT_UID: uid,
    }
    env: list[dict[str, Any]] = [
        {"name": ENV_SPEC, "value": json.dumps(spec_to_wire(spec), separators=(",", ":"), sort_keys=True)},
    ]
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for var, secret, key in secret_refs(spec)
    ]
    if spec.source.http is not None:  # the HTTP source's egress policy (docs/security.md)
        env.append({"name": EGRESS_ENV, "value": settings.worker_http_egress})
        if settings.worker_http_deny_networks:
            env.append({"name": DENY_NETWORKS_ENV, "value": ",".join(settings.worker_http_deny_networks)})
    mount = settings.output_mount_path
    container = {
        "name": WORKER_CONTAINER,
        "image": settings.worker_image,
        "imagePullPolicy": settings.worker_image_pull_policy,
        "command": ["exportjob-worker"],
        "args": [f"--output-root={mount}", f"--termination-log={TERMINATION_LOG}"],
        "env": env,
        "resources": _resources(settings),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"name": "output", "mountPath": mount},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": worker_job_name(name, uid),
            "namespace": namespace,
            "labels": labels,
            "annotations": {f"{API_GROUP}/export": f"{namespace}/{name}"},
            "ownerReferences": [
                {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": KIND,
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": spec.backoff_limit if spec.backoff_limit is not None else settings.job_backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_seconds or settings.job_active_deadline_seconds,
            "ttlSecondsAfterFinished": (
                spec.ttl_seconds_after_finished
                if spec.ttl_seconds_after_finished is not None
                else settings.job_ttl_seconds_after_finished
            ),
            "completions": 1,
            "parallelism": 1,
            # a replacement Pod starts only once its predecessor is gone: attempts never overlap
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": WORKER_CONTAINER,
                            "operator": "In",
                            "values": [PERMANENT_FAILURE],
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.worker_service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "fsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "output", "persistentVolumeClaim": {"claimName": claim}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }
