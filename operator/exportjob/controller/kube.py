"""The operator's only door to the Kubernetes API (the official `kubernetes` client).

Everything returns plain dictionaries as the API server sent them (no model
classes), so the pure modules can be fed the same shapes in unit tests. Reads
are direct LISTs and GETs against the API server — consistent reads, not a
cache — because admission must count what exists now; the one exception is a
finished Job's Pods, read from the API server's watch cache at least as new as
the Job (`list_job_pods`).

Requests are built by the client's `ApiClient` (its configuration, credentials
with their refresh hooks) but not through its generated API classes: those
validate every call's arguments with pydantic and import some 27 MB of models,
and this module only ever sends and receives JSON (bench/README.md: about a
tenth of the operator's CPU per export). They are sent by a `transport`
(`transport.py`: kept-alive connections); watches are streamed through the
client's REST layer.

RBAC this module needs (the chart grants exactly this, and tests/tools/test_chart.py
checks the two agree): exportjobs list/watch/patch (patch: the `finished` label),
exportjobs/status patch; leases get/create/update (in the operator's own
namespace, for leader election); jobs
get/list/watch/create/delete/patch (get: adopting an existing Job; patch: the `finished` label); pods list;
persistentvolumeclaims get; serviceaccounts get; secrets get (only to check that a referenced key
exists, and the labels `secretSelector` requires; values are never read into logs or status); events create.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from exportjob.controller.errors import Conflict, NamespaceTerminating, NotOurs
from exportjob.controller.selectors import reference_problem, selector_matches
from exportjob.controller.transport import REQUEST_TIMEOUT_SECONDS, ClientTransport, Transport
from exportjob.spec import API_GROUP, API_VERSION, PLURAL

log = logging.getLogger(__name__)
COMPONENT = "exportjob-operator"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"  # no Secret values


MERGE_PATCH = "application/merge-patch+json"
# A watch ends on the server after WATCH_SECONDS (then resumes); the client gives up on a silent one
# a little later: bookmarks arrive about every minute, so silence that long means a dead connection.
WATCH_SECONDS = 300
WATCH_READ_TIMEOUT_SECONDS = WATCH_SECONDS + 30


def load_client_configuration(connections: int = 10) -> client.ApiClient:
    """In-cluster credentials when running in a Pod, else the current kubeconfig.

    `connections`: the pool keeps this many connections to the API server; it must cover every
    thread that sends requests at once, or each request beyond it pays a new TLS handshake.
    """
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, connections)
    return client.ApiClient(configuration)


EXPORTJOBS = ("apis", API_GROUP, API_VERSION, PLURAL)
JOBS = ("apis", "batch", "v1", "jobs")
LEASES = ("apis", "coordination.k8s.io", "v1", "leases")
CORE = ("api", "v1")


def _url(api: tuple[str, ...], namespace: str | None, *rest: str) -> str:
    """The REST path of a resource (`api`: its group/version path, then its plural), in a namespace or
    across all of them, then a name and a subresource (`rest`), each segment escaped."""
    *group_version, resource = api
    scope = ("namespaces", namespace) if namespace else ()
    return "/" + "/".join(quote(segment, safe="") for segment in (*group_version, *scope, resource, *rest))


def _merge(listings: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    items = [item for listing in listings for item in listing["items"]]
    versions = [listing["metadata"].get("resourceVersion", "") for listing in listings]
    numeric = [int(v) for v in versions if v.isdigit()]
    return items, str(min(numeric)) if numeric else ""


def _namespace_terminating(error: ApiException) -> bool:
    """The NamespaceLifecycle admission refused a create: the namespace is being deleted."""
    return error.status == 403 and "being terminated" in str(error.body or "")


def controlled_by(obj: dict[str, Any], uid: str) -> bool:
    """`obj` has a controller ownerReference to `uid`."""
    return any(ref.get("uid") == uid and ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or [])


def secret_unavailable(namespace: str, name: str, key: str, selector: str | None = None) -> str:
    """One message for a missing Secret, a missing key and a Secret the admin's selector excludes.

    The requester learns nothing about which Secrets exist.
    """
    excluded = f", or does not match the operator's secretSelector {selector!r}" if selector else ""
    return f'Secret "{name}" in namespace "{namespace}" does not exist or has no key "{key}"{excluded}'


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeApi:
    def __init__(
        self, api_client: client.ApiClient, namespaces: Iterable[str] = (), transport: Transport | None = None
    ) -> None:
        """`api_client` builds each request (host, credentials) and streams watches; `transport` sends the
        others (default: through `api_client` too; `transport.transport_for` picks the leaner one)."""
        self.namespaces = list(namespaces)
        self.api_client = api_client
        self.transport = transport or ClientTransport(api_client)

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        decode: bool = True,
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer (`decode=False`: the caller does not read it, {}).
        Raises ApiException (with status and body) unless 2xx."""
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        # The body is a plain dictionary, serialised as it is by the transport; `param_serialize` would
        # walk it first to turn model objects into dictionaries (there are none).
        method, url, headers, _none, _post_params = self.api_client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        answer = self.transport.send(method, url, headers, body)
        if not 200 <= answer.status <= 299:
            raise ApiException.from_response(http_resp=answer, body=None, data=None)
        return json.loads(answer.data) if decode and answer.data else {}

    def _stream(self, path: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        """A streamed GET (a watch): each line of the answer, decoded, as it arrives."""
        method, url, headers, _none, post_params = self.api_client.param_serialize(
            "GET",
            path,
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method,
            url,
            headers,
            None,
            post_params,
            _request_timeout=(REQUEST_TIMEOUT_SECONDS, WATCH_READ_TIMEOUT_SECONDS),
        )
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        raw = response.response
        complete = False
        try:
            pending = b""
            for chunk in raw.stream(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if pending.strip():
                yield json.loads(pending)
            complete = True
        finally:
            if not complete:  # stopped halfway: the connection cannot be reused
                raw.close()
            raw.release_conn()

    def _list(self, paths: list[str], query: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
        """LIST every path; the items and the lowest resourceVersion (several namespaces: several LISTs)."""
        listings = [self._request("GET", path, query=query) for path in paths]
        if len(listings) == 1:
            return listings[0]["items"], listings[0]["metadata"].get("resourceVersion", "")
        return _merge(listings)

    # --- ExportJobs -------------------------------------------------------
    def list_exportjobs(self, field_selector: str) -> tuple[list[dict[str, Any]], str]:
        """The matching ExportJobs and the LIST's resourceVersion (the lowest one, watching several namespaces)."""
        paths = [_url(EXPORTJOBS, ns) for ns in self.namespaces] or [_url(EXPORTJOBS, None)]
        return self._list(paths, {"fieldSelector": field_selector})

    def patch_exportjob_status(
        self, namespace: str, name: str, status_patch: dict[str, Any], resource_version: str | None = None
    ) -> dict[str, Any]:
        """Merge-patch the status; with `resource_version`, fail with Conflict if the object changed meanwhile."""
        body: dict[str, Any] = {"status": status_patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            return self._request(
                "PATCH", _url(EXPORTJOBS, namespace, name, "status"), body=body, content_type=MERGE_PATCH
            )
        except ApiException as error:
            if error.status == 409:
                raise Conflict(f"{namespace}/{name} changed meanwhile") from None
            raise

    # --- worker Jobs ------------------------------------------------------
    def list_jobs(self, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        """The matching Jobs and the LIST's resourceVersion (the lowest one, watching several namespaces)."""
        paths = [_url(JOBS, ns) for ns in self.namespaces] or [_url(JOBS, None)]
        return self._list(paths, {"labelSelector": label_selector})

    def watch_jobs(
        self, namespace: str | None, label_selector: str, resource_version: str | None
    ) -> Iterator[dict[str, Any]]:
        """Watch events of the matching Jobs in `namespace` (None: all), from `resource_version`.

        Without one, every matching Job comes first as a synthetic ADDED event (the API server's list
        and watch in one request). Bookmarks are asked for, so a quiet watch still moves on.
        """
        query = {
            "watch": "true",
            "labelSelector": label_selector,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        return self._stream(_url(JOBS, namespace), query)

    def label_job(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        """Merge-patch labels onto a worker Job (the `finished` label drops it out of the operator's watch)."""
        try:
            self._request(
                "PATCH",
                _url(JOBS, namespace, name),
                body={"metadata": {"labels": labels}},
                content_type=MERGE_PATCH,
                decode=False,
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def create_job(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the Job, or adopt the existing one of the same name and owner. Returns (job, created)."""
        namespace = manifest["metadata"]["namespace"]
        try:
            return self._request("POST", _url(JOBS, namespace), body=manifest), True
        except ApiException as error:
            if _namespace_terminating(error):
                raise NamespaceTerminating(f"namespace {namespace} is being deleted") from None
            if error.status != 409:
                raise
        existing = self._request("GET", _url(JOBS, namespace, manifest["metadata"]["name"]))
        wanted = manifest["metadata"]["ownerReferences"][0]["uid"]
        owners = [ref.get("uid") for ref in existing["metadata"].get("ownerReferences") or []]
        if wanted not in owners:
            raise NotOurs(f"Job {namespace}/{manifest['metadata']['name']} exists and is not owned by this ExportJob")
        return existing, False

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a worker Job; foreground, so it stays listed (holding its slot) until its Pods are gone."""
        try:
            self._request("DELETE", _url(JOBS, namespace, name), query={"propagationPolicy": "Foreground"})
        except ApiException as error:
            if error.status != 404:
                raise

    def list_job_pods(self, namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The Pods the Job controller made for `job`: selected by the Job's uid, controller ownerReference checked.

        Never by the `job-name` label alone: anyone who may create Pods in the
        namespace could make one with that label and a forged result.

        Read from the API server's watch cache, at least as new as `job`: the Job controller counts a Pod
        only after the Pod's final status is stored, so that status (and its termination message, the
        result) is in any state not older than the Job's. A quorum read instead would fetch and decode
        every Pod of the namespace from etcd to filter by label, a cost that grows with the finished
        Pods kept there (bench/README.md: kube-apiserver CPU per export).
        """
        uid = job["metadata"]["uid"]
        query = {"labelSelector": f"batch.kubernetes.io/controller-uid={uid}"}
        if job["metadata"].get("resourceVersion"):
            query |= {"resourceVersion": job["metadata"]["resourceVersion"], "resourceVersionMatch": "NotOlderThan"}
        found = self._request("GET", _url((*CORE, "pods"), namespace), query=query)
        return [pod for pod in found["items"] if controlled_by(pod, uid)]

    # --- prerequisites ------------------------------------------------------
    def claim_exists(self, namespace: str, name: str) -> bool:
        """The claim exists and is not being deleted (a Terminating claim cannot be mounted by a new Pod)."""
        try:
            claim = self._request("GET", _url((*CORE, "persistentvolumeclaims"), namespace, name))
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return not claim["metadata"].get("deletionTimestamp")

    def service_account_exists(self, namespace: str, name: str) -> bool:
        try:
            self._request("GET", _url((*CORE, "serviceaccounts"), namespace, name), accept=METADATA_ONLY)
            return True
        except ApiException as error:
            if error.status == 404:
                return False
            raise

    def secret_problem(self, namespace: str, name: str, key: str, selector: str | None = None) -> str | None:
        """None when Secret `name` has `key` (and matches `selector`, the admin's secretSelector); otherwise one
        message that does not say which of the three is wrong. Never returns or logs the value."""
        try:
            secret = self._request("GET", _url((*CORE, "secrets"), namespace, name))
        except ApiException as error:
            if error.status == 404:
                return secret_unavailable(namespace, name, key, selector)
            raise
        has_key = key in (secret.get("data") or {}) or key in (secret.get("stringData") or {})
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if not has_key or not selector_matches(selector, labels):
            return secret_unavailable(namespace, name, key, selector)
        return None

    def object_labels(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        """The labels of a PersistentVolumeClaim or Secret (metadata only: a Secret's values are not transferred).

        None when it does not exist.
        """
        resource = {"Secret": "secrets", "PersistentVolumeClaim": "persistentvolumeclaims"}[kind]
        try:
            found = self._request("GET", _url((*CORE, resource), namespace, name), accept=METADATA_ONLY)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict((found.get("metadata") or {}).get("labels") or {})

    def usage_problem(self, kind: str, namespace: str, name: str, selector: str | None, setting: str) -> str | None:
        """Why the admin's `selector` (operator setting `setting`) forbids using the object, or None."""
        if not selector:
            return None
        return reference_problem(kind, name, namespace, self.object_labels(kind, namespace, name), selector, setting)

    # --- leader election -------------------------------------------------------
    def read_lease(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        """(spec, resourceVersion) of the Lease, or None when it does not exist."""
        try:
            lease = self._request("GET", _url(LEASES, namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return lease.get("spec") or {}, lease["metadata"]["resourceVersion"]

    def write_lease(self, namespace: str, name: str, spec: dict[str, Any], resource_version: str | None) -> None:
        """Create the Lease, or replace it if still at `resource_version`; Conflict if someone else wrote first."""
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
        try:
            if resource_version is None:
                self._request("POST", _url(LEASES, namespace), body=body)
            else:
                body["metadata"]["resourceVersion"] = resource_version
                self._request("PUT", _url(LEASES, namespace, name), body=body)
        except ApiException as error:
            if error.status == 409:  # AlreadyExists on create, Conflict on replace
                raise Conflict(f"Lease {namespace}/{name} was written by someone else") from None
            raise

    # --- events ------------------------------------------------------------
    def post_event(self, exportjob: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on the ExportJob (what `kubectl describe` and `kubectl get events` show)."""
        meta = exportjob["metadata"]
        now = _now()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": "ExportJob",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
        }
        try:
            self._request("POST", _url((*CORE, "events"), meta["namespace"]), body=body, decode=False)
        except ApiException as error:  # events are best effort; never fail a reconcile over one
            if _namespace_terminating(error):
                # the namespace is being deleted (with its ExportJobs): nothing left to tell anyone
                log.info("namespace is being deleted; event dropped", extra={"reason": reason})
                return
            log.warning("could not post event", extra={"reason": reason, "status": error.status})
