"""Where things live: the repository root and the per-claim / per-pod directories.

Shared by :mod:`devcluster.cluster` (``DevCluster.volume_dir``/``pod_log``) and
the process kubelet (:mod:`devcluster.kubelet`), so both sides agree on the
on-disk layout of a state directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_STATE_DIR", "REPO_ROOT", "pod_dir", "volume_dir"]


def _repo_root() -> Path:
    here = Path(__file__).resolve().parent.parent.parent  # operator/devcluster/paths.py -> repo
    if (here / "pyproject.toml").is_file():
        return here
    return Path(os.getcwd())


REPO_ROOT = _repo_root()
DEFAULT_STATE_DIR = REPO_ROOT / ".testenv"


def _safe(part: str) -> str:
    if not part or "/" in part or part in (".", ".."):
        raise ValueError(f"not a valid object name: {part!r}")
    return part


def volume_dir(state_dir: Path, namespace: str, claim_name: str) -> Path:
    """Directory backing PersistentVolumeClaim ``claim_name`` in ``namespace``."""
    return Path(state_dir) / "volumes" / _safe(namespace) / _safe(claim_name)


def pod_dir(state_dir: Path, namespace: str, pod: str) -> Path:
    """Directory with a pod's container logs, termination-message files and emptyDirs."""
    return Path(state_dir) / "pods" / _safe(namespace) / _safe(pod)
