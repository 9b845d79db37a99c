"""`exportjob queue` (also `kubectl exportjob queue`): where every waiting export stands, computed now.

Lists the unfinished ExportJobs and worker Jobs once (with the user's own
credentials and RBAC) and numbers the Queued exports by the operator's
admission rule (`exportjob.queueview`). The cross-namespace order depends on
the operator's per-namespace limit and weights: pass the same values with the
flags or the operator's environment variables (EXPORTJOB_MAX_CONCURRENT_PER_NAMESPACE,
EXPORTJOB_NAMESPACE_WEIGHTS). A user who may list only one namespace sees
that namespace's exports in their own order (positions within the namespace).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from exportjob.controller.admission import Limits
from exportjob.controller.manifests import UNFINISHED_EXPORTJOB_FIELD_SELECTOR, WORKER_JOB_SELECTOR
from exportjob.controller.settings import OperatorSettings, SettingsError, load_settings
from exportjob.queueview import QueueRow, queue_rows
from exportjob.spec import API_GROUP, API_VERSION, PLURAL


def register(commands: Any) -> None:
    queue = commands.add_parser(
        "queue",
        help="show the waiting exports in the order they will be admitted",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    scope = queue.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="only this namespace's exports (default: every namespace)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace (the default)")
    queue.add_argument("--max-concurrent-per-namespace", type=int, help="the operator's per-namespace limit")
    queue.add_argument("--namespace-weights", help="the operator's namespace weights, ns=weight,...")
    queue.add_argument("-o", "--output", choices=("table", "json"), default="table")
    queue.set_defaults(handler=command_queue)


def _limits(arguments: argparse.Namespace) -> Limits:
    argv = []
    if arguments.max_concurrent_per_namespace is not None:
        argv += ["--max-concurrent-per-namespace", str(arguments.max_concurrent_per_namespace)]
    if arguments.namespace_weights is not None:
        argv += ["--namespace-weights", arguments.namespace_weights]
    settings: OperatorSettings = load_settings(argv)
    return Limits(settings.max_concurrent, settings.max_concurrent_per_namespace, dict(settings.namespace_weights))


def _list(namespace: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """(unfinished ExportJobs, worker Jobs, whether the view is cluster-wide)."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.ApiClient()
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)

    def data(response: Any) -> list[dict[str, Any]]:
        return json.loads(response.data)["items"]

    try:  # the whole queue: positions exactly as the operator will admit
        exportjobs = data(
            custom.list_cluster_custom_object(
                API_GROUP,
                API_VERSION,
                PLURAL,
                field_selector=UNFINISHED_EXPORTJOB_FIELD_SELECTOR,
                _preload_content=False,
            )
        )
        jobs = data(batch.list_job_for_all_namespaces(label_selector=WORKER_JOB_SELECTOR, _preload_content=False))
        return exportjobs, jobs, True
    except ApiException as error:
        if error.status != 403 or not namespace:
            raise
    exportjobs = data(
        custom.list_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            namespace,
            PLURAL,
            field_selector=UNFINISHED_EXPORTJOB_FIELD_SELECTOR,
            _preload_content=False,
        )
    )
    jobs = data(batch.list_namespaced_job(namespace, label_selector=WORKER_JOB_SELECTOR, _preload_content=False))
    return exportjobs, jobs, False


def command_queue(arguments: argparse.Namespace) -> int:
    try:
        limits = _limits(arguments)
    except SettingsError as error:
        print(f"exportjob queue: {error}", file=sys.stderr)
        return 2
    namespace = None if arguments.all_namespaces else arguments.namespace
    exportjobs, jobs, cluster_wide = _list(namespace)
    rows = queue_rows(exportjobs, jobs, limits)
    if namespace:
        rows = [row for row in rows if row.namespace == namespace]
    print_rows(rows, arguments.output, cluster_wide)
    return 0


def print_rows(rows: list[QueueRow], output: str, cluster_wide: bool) -> None:
    if output == "json":
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return
    if not rows:
        print("no exports are waiting for a slot")
        return
    header = ("POSITION", "NAMESPACE", "NAME", "PRIORITY", "CREATED")
    table = [header] + [(str(r.position), r.namespace, r.name, str(r.priority), r.created) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("   ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    if not cluster_wide:
        print("(positions within this namespace: listing every namespace was not allowed)", file=sys.stderr)
