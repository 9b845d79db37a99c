"""Resolving a container's environment, volumes and command line for the process kubelet.

Used by :mod:`devcluster.kubelet`: it asks :class:`PodResolver` for the
environment (``env``/``envFrom`` with ``valueFrom`` secret/configMap/field
references read through the API, then ``$(VAR)`` expansion), the host
directories of the pod's volumes, and the final argv/env/workingDir with the
container's mount paths rewritten to those directories.  A missing Secret,
ConfigMap or key raises :class:`ContainerConfigError`, which the kubelet reports
as ``CreateContainerConfigError`` like the real one.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .expansion import expand_command, expand_env
from .mounts import PathMap
from .paths import volume_dir

__all__ = [
    "ContainerConfigError",
    "LaunchSpec",
    "PodResolver",
    "VolumeError",
    "field_ref_value",
    "launch_spec",
]

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ContainerConfigError(Exception):
    """The container cannot be configured yet (reported as CreateContainerConfigError)."""


class VolumeError(Exception):
    """A volume cannot be set up yet (reported as a FailedMount event; the pod stays Pending)."""


# A getter returns the object's JSON for (kind, namespace, name), or None when it does not exist.
Getter = Callable[[str, str, str], "dict[str, Any] | None"]


def field_ref_value(pod: dict[str, Any], path: str, local_pod_ip: str | None = None) -> str:
    """Value of a downward-API ``fieldRef.fieldPath`` for ``pod``.

    ``local_pod_ip`` is the loopback twin of the Pod IP (devcluster.podnet): what the
    Pod's processes see as ``status.podIP``, since that is the address they can bind.
    """
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
        "status.hostIPs": status.get("hostIP") or "127.0.0.1",
        "status.podIP": local_pod_ip or status.get("podIP") or "127.0.0.1",
        "status.podIPs": local_pod_ip or status.get("podIP") or "127.0.0.1",
    }
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    if path not in simple:
        raise ContainerConfigError(f"unsupported fieldPath {path!r}")
    return simple[path]


def _object_data(obj: dict[str, Any], kind: str) -> dict[str, bytes]:
    """Key -> raw bytes of a Secret's or ConfigMap's data."""
    out: dict[str, bytes] = {}
    if kind == "Secret":
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = v.encode()
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = v.encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    return out


@dataclass
class LaunchSpec:
    """Everything needed to start one container as a local process."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    termination_file: Path


class PodResolver:
    """Resolves one pod's volumes and containers against the API (through ``get``)."""

    def __init__(
        self,
        pod: dict[str, Any],
        state_dir: Path,
        pod_dir: Path,
        get: Getter,
        request_token: Callable[[str, str, dict[str, Any]], str] | None = None,
    ) -> None:
        self.pod = pod
        self.namespace = pod["metadata"]["namespace"]
        self.state_dir = Path(state_dir)
        self.pod_dir = Path(pod_dir)
        self.get = get
        self.request_token = request_token
        self.local_pod_ip: str | None = None  # set by the kubelet (devcluster.podnet)
        self.volumes: dict[str, str] = {}
        self.unsupported: list[str] = []

    # ------------------------------------------------------------------- env
    def _key_ref(self, kind: str, ref: dict[str, Any]) -> str | None:
        name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
        obj = self.get(kind, self.namespace, name)
        if obj is None:
            if optional:
                return None
            raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
        data = _object_data(obj, kind)
        if key not in data:
            if optional:
                return None
            raise ContainerConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{name}")
        return data[key].decode("utf-8", "replace")

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        entries: list[tuple[str, str, bool]] = []
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            kind, ref = (
                ("ConfigMap", source.get("configMapRef"))
                if source.get("configMapRef")
                else ("Secret", source.get("secretRef"))
            )
            ref = ref or {}
            obj = self.get(kind, self.namespace, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for key, raw in sorted(_object_data(obj, kind).items()):
                if _ENV_NAME.match(prefix + key):
                    entries.append((prefix + key, raw.decode("utf-8", "replace"), False))
        for var in container.get("env") or []:
            name = var["name"]
            source = var.get("valueFrom")
            if not source:
                entries.append((name, var.get("value", ""), True))
                continue
            if "secretKeyRef" in source:
                value = self._key_ref("Secret", source["secretKeyRef"])
            elif "configMapKeyRef" in source:
                value = self._key_ref("ConfigMap", source["configMapKeyRef"])
            elif "fieldRef" in source:
                value = field_ref_value(self.pod, source["fieldRef"].get("fieldPath", ""), self.local_pod_ip)
            else:
                raise ContainerConfigError(
                    f"env {name}: {', '.join(source)} is not supported by the devcluster process kubelet"
                )
            if value is not None:
                entries.append((name, value, False))
        return expand_env(entries)

    # --------------------------------------------------------------- volumes
    def _write_items(
        self, target: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None, mode: int | None
    ) -> None:
        target.mkdir(parents=True, exist_ok=True)
        chosen = (
            [(i["key"], i.get("path") or i["key"], i.get("mode")) for i in items]
            if items
            else [(k, k, None) for k in data]
        )
        for key, rel, item_mode in chosen:
            if key not in data:
                raise VolumeError(f"configmap/secret key {key!r} not found")
            path = (target / rel).resolve()
            if target.resolve() not in path.parents:
                raise VolumeError(f"invalid item path {rel!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[key])
            file_mode = item_mode or mode
            if file_mode:
                os.chmod(path, file_mode & 0o777)

    def _object_volume(self, kind: str, target: Path, name: str, items, optional: bool, mode) -> None:
        obj = self.get(kind, self.namespace, name)
        if obj is None:
            if optional:
                target.mkdir(parents=True, exist_ok=True)
                return
            raise VolumeError(f'{kind.lower()} "{name}" not found')
        self._write_items(target, _object_data(obj, kind), items, mode)

    def setup_volumes(self) -> dict[str, str]:
        """Create/locate the host directory of every pod volume; returns name -> host path."""
        out: dict[str, str] = {}
        vol_root = self.pod_dir / "volumes"
        for vol in self.pod.get("spec", {}).get("volumes") or []:
            name = vol["name"]
            if "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                if self.get("PersistentVolumeClaim", self.namespace, claim) is None:
                    raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
                path = volume_dir(self.state_dir, self.namespace, claim)
                path.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in vol:
                path = Path(vol["hostPath"]["path"])
                if vol["hostPath"].get("type") == "DirectoryOrCreate":
                    path.mkdir(parents=True, exist_ok=True)
            elif "secret" in vol:
                src = vol["secret"]
                path = vol_root / name
                self._object_volume(
                    "Secret",
                    path,
                    src.get("secretName", ""),
                    src.get("items"),
                    bool(src.get("optional")),
                    src.get("defaultMode"),
                )
            elif "configMap" in vol:
                src = vol["configMap"]
                path = vol_root / name
                self._object_volume(
                    "ConfigMap",
                    path,
                    src.get("name", ""),
                    src.get("items"),
                    bool(src.get("optional")),
                    src.get("defaultMode"),
                )
            elif "projected" in vol:
                path = vol_root / name
                self._projected(path, vol["projected"])
            else:
                # emptyDir, and (as an empty directory) any type the double does not implement
                path = vol_root / name
                path.mkdir(parents=True, exist_ok=True)
                if "emptyDir" not in vol:
                    self.unsupported.append(name)
            out[name] = str(path)
        self.volumes = out
        return out

    def _projected(self, target: Path, spec: dict[str, Any]) -> None:
        target.mkdir(parents=True, exist_ok=True)
        mode = spec.get("defaultMode")
        for source in spec.get("sources") or []:
            if "secret" in source:
                s = source["secret"]
                self._object_volume("Secret", target, s.get("name", ""), s.get("items"), bool(s.get("optional")), mode)
            elif "configMap" in source:
                s = source["configMap"]
                self._object_volume(
                    "ConfigMap", target, s.get("name", ""), s.get("items"), bool(s.get("optional")), mode
                )
            elif "downwardAPI" in source:
                data, items = {}, []
                for item in source["downwardAPI"].get("items") or []:
                    if "fieldRef" in item:
                        data[item["path"]] = field_ref_value(
                            self.pod, item["fieldRef"]["fieldPath"], self.local_pod_ip
                        ).encode()
                        items.append({"key": item["path"], "path": item["path"]})
                self._write_items(target, data, items, mode)
            elif "serviceAccountToken" in source and self.request_token is not None:
                s = source["serviceAccountToken"]
                sa = self.pod.get("spec", {}).get("serviceAccountName") or "default"
                token = self.request_token(self.namespace, sa, s)
                self._write_items(target, {"token": token.encode()}, [{"key": "token", "path": s["path"]}], mode)

    # -------------------------------------------------------------- launching
    def path_map(self, container: dict[str, Any], termination_file: Path) -> PathMap:
        pm = PathMap()
        for vm in container.get("volumeMounts") or []:
            host = self.volumes.get(vm["name"])
            if host is None:
                raise ContainerConfigError(f"volumeMount {vm['name']!r} refers to no volume of the pod")
            if vm.get("subPath"):
                host = str(Path(host) / vm["subPath"])
            try:
                pm.add(vm["mountPath"], host)
            except ValueError as exc:
                raise ContainerConfigError(str(exc)) from None
        pm.add(container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH, str(termination_file))
        return pm


def launch_spec(
    resolver: PodResolver,
    container: dict[str, Any],
    *,
    termination_file: Path,
    base_env: dict[str, str],
    bin_dir: str,
    default_cwd: Path,
) -> LaunchSpec:
    """The argv/env/cwd of ``container``: env resolved and expanded, mount paths rewritten."""
    command = list(container.get("command") or [])
    if not command:
        raise ContainerConfigError(
            "the devcluster process kubelet runs no container images: the container needs an explicit `command`"
        )
    env = resolver.env(container)
    pm = resolver.path_map(container, termination_file)
    argv = pm.apply_all(expand_command(command + list(container.get("args") or []), env))
    env = {k: pm.apply(v) for k, v in env.items()}
    full = dict(base_env)
    full.update(env)
    full["PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("PATH") or base_env.get("PATH")) if p)
    working_dir = container.get("workingDir")
    cwd = pm.apply(working_dir) if working_dir else str(default_cwd)
    if not Path(cwd).is_dir():
        raise ContainerConfigError(f"workingDir {working_dir!r} ({cwd}) does not exist on this host")
    return LaunchSpec(argv=argv, env=full, cwd=cwd, termination_file=termination_file)
