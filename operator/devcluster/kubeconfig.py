"""Writing kubeconfig files with embedded credentials.

Used by :mod:`devcluster.cluster` for the admin kubeconfig handed to tests,
``kubectl`` and the demo (``DevCluster.kubeconfig``), and for the identities of
kube-controller-manager and the process kubelet.  Certificates are embedded as
``*-data`` fields, so each file is self-contained.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

__all__ = ["write_kubeconfig"]


def _b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    client_cert: Path,
    client_key: Path,
    user: str,
    cluster: str = "devcluster",
    namespace: str = "default",
) -> Path:
    """Write a single-context kubeconfig (mode 0600) and return its path."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)}}],
        "users": [
            {"name": user, "user": {"client-certificate-data": _b64(client_cert), "client-key-data": _b64(client_key)}}
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user, "namespace": namespace}}],
        "current-context": cluster,
        "preferences": {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)
    os.replace(tmp, path)
    return path
