"""The CLI's calls to the Kubernetes API, with the user's kubeconfig (so the user's own RBAC applies).

The only module of `exportjob.client` that imports a Kubernetes client. Objects
come back as plain dictionaries in their wire form (camelCase), like
`kubectl get -o json`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from exportjob.spec import API_GROUP, API_VERSION, PLURAL

from .transfer import Response

__all__ = ["ApiException", "Cluster"]


class Cluster:
    """One API server, reached with a kubeconfig (default: $KUBECONFIG or ~/.kube/config)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        self.api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.default_namespace = "default"
        try:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c["name"] == context), active) if context else active
            self.default_namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
        except (config.ConfigException, KeyError, TypeError):
            pass

    def _wire(self, obj: Any) -> dict[str, Any]:
        return self.api_client.sanitize_for_serialization(obj)

    # ------------------------------------------------------------ ExportJobs
    def get_exportjob(self, namespace: str, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.custom.get_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, name)
        )

    def list_exportjobs(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            found = self.custom.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL)
        else:
            found = self.custom.list_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL)
        return list(cast(dict[str, Any], found).get("items") or [])

    def events_about(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        found = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.uid={uid}")
        return [self._wire(e) for e in found.items]

    # ------------------------------------------------------------------ pods
    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return [self._wire(p) for p in self.core.list_namespaced_pod(namespace, label_selector=selector).items]

    def pod_log_tail(self, namespace: str, name: str, container: str, lines: int) -> str:
        return self.core.read_namespaced_pod_log(name, namespace, container=container, tail_lines=lines)

    def create_pod(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return self._wire(self.core.create_namespaced_pod(manifest["metadata"]["namespace"], manifest))  # type: ignore[arg-type]

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._wire(self.core.read_namespaced_pod(name, namespace))

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=1)
        except ApiException as error:
            if error.status != 404:
                raise

    def proxy_get(self, namespace: str, pod: str, port: int, path: str, headers: dict[str, str]) -> Response:
        """`GET` through the Pod proxy subresource (RBAC: `pods/proxy` get), streamed."""
        method, url, header_params, _, _ = self.api_client.param_serialize(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}",
            header_params=dict(headers),
            auth_settings=["BearerToken"],
        )
        raw = self.api_client.call_api(method, url, header_params=header_params, _request_timeout=(15, 120)).response

        def chunks() -> Iterator[bytes]:
            try:
                yield from raw.stream(1024 * 1024, decode_content=False)
            except urllib3.exceptions.HTTPError as error:  # a broken connection: the transfer resumes
                raise ConnectionError(str(error)) from None

        return Response(
            status=raw.status,
            headers={k.lower(): v for k, v in raw.headers.items()},
            chunks=chunks(),
            close=raw.release_conn,
        )
