"""The reader Pod of `exportjob download`, and what a finished ExportJob must say before one is started. Pure.

The Pod mounts the ExportJob's claim read-only with a `subPath` naming the
exported file, so it can see that file and nothing else, and runs the
operator's image as `python -m exportjob.worker.servefile` (the same as `exportjob-worker serve-file`).
It runs with the restricted Pod Security profile's settings, no
service-account token, no service links, and an `activeDeadlineSeconds`, so a
Pod whose CLI died without deleting it ends on its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from exportjob.controller.settings import OperatorSettings
from exportjob.spec import API_GROUP

# Not 8080: on the dev cluster Pods share the host's ports, and the operator's metrics listen on 8080.
READER_PORT = 8470
READER_CONTAINER = "serve"
MOUNTED_FILE = "/export/file"
RUN_AS_USER = 65532  # the image's non-root user (as the worker's)
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "exportjob-cli"
# The operator's image (its worker runs `serve-file` too): the same default as the operator's settings.
DEFAULT_IMAGE: str = OperatorSettings.model_fields["worker_image"].default


class NotDownloadable(Exception):
    """The ExportJob has no file to download (yet); the message says why and what to do."""


@dataclass(frozen=True)
class DownloadTarget:
    namespace: str
    export_name: str
    claim_name: str
    path: str
    sha256: str
    size: int | None


def download_target(exportjob: dict[str, Any]) -> DownloadTarget:
    """What to download for an ExportJob object; NotDownloadable unless it Succeeded with a checksum."""
    meta = exportjob.get("metadata") or {}
    name, namespace = meta.get("name", "?"), meta.get("namespace", "?")
    status = exportjob.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase == "Failed":
        reason = status.get("reason") or "Failed"
        raise NotDownloadable(f"ExportJob {namespace}/{name} failed ({reason}): {status.get('message') or ''}".strip())
    if phase != "Succeeded":
        raise NotDownloadable(
            f"ExportJob {namespace}/{name} is {phase}, not Succeeded: nothing to download yet "
            f"(watch it with `kubectl get exportjob {name} -n {namespace} -w`)"
        )
    missing = [field for field in ("claimName", "path", "sha256") if not status.get(field)]
    if missing:
        raise NotDownloadable(f"ExportJob {namespace}/{name} status lacks {', '.join(missing)}; cannot download")
    path = str(status["path"])
    parts = PurePosixPath(path).parts
    if path.startswith("/") or not parts or any(part in ("..", ".") for part in parts):
        raise NotDownloadable(f"ExportJob {namespace}/{name} status.path {path!r} is not a plain relative path")
    sha256 = str(status["sha256"]).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise NotDownloadable(f"ExportJob {namespace}/{name} status.sha256 is not a SHA-256 hex digest")
    size = status.get("bytes")
    return DownloadTarget(
        namespace, name, str(status["claimName"]), path, sha256, size if isinstance(size, int) else None
    )


def _stem(name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]", "-", name.lower())[:30].strip("-")
    return stem or hashlib.sha256(name.encode()).hexdigest()[:8]


def reader_pod(target: DownloadTarget, *, image: str, deadline_seconds: int = 3600) -> dict[str, Any]:
    """The reader Pod manifest (created with generateName; the API server picks the name)."""
    labels = {
        "app.kubernetes.io/name": "exportjob-download",
        LABEL_COMPONENT: "download",
        LABEL_MANAGED_BY: MANAGED_BY,
        f"{API_GROUP}/name": target.export_name[:63].rstrip("-."),
    }
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "name": READER_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # `exportjob-worker serve-file` without the worker's imports (pydantic, psycopg): starts in a blink
        "command": ["python", "-m", "exportjob.worker.servefile"],
        "args": [f"--file={MOUNTED_FILE}", f"--port={READER_PORT}", "--idle-timeout=600"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "http", "containerPort": READER_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": "export", "mountPath": MOUNTED_FILE, "subPath": target.path, "readOnly": True}],
        "securityContext": restricted,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"exportjob-download-{_stem(target.export_name)}-",
            "namespace": target.namespace,
            "labels": labels,
            "annotations": {f"{API_GROUP}/download": f"{target.namespace}/{target.export_name}:{target.path}"},
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline_seconds,
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "export", "persistentVolumeClaim": {"claimName": target.claim_name, "readOnly": True}}
            ],
        },
    }


def pod_problem(pod: dict[str, Any]) -> str | None:
    """Why a reader Pod will never serve (None: it may still come up)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Failed", "Succeeded"):
        for cs in status.get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                return (
                    f"the reader Pod ended (exit {term.get('exitCode')}, {term.get('reason')}); "
                    "is the file still on the claim?"
                )
        return f"the reader Pod is {status.get('phase')}"
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerError"):
            return f"the reader Pod cannot start: {waiting.get('reason')}: {waiting.get('message', '')}".strip()
    return None


def pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and bool(status.get("podIP"))
