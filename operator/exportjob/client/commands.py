"""The cluster verbs of the `exportjob` CLI (and of the kubectl plugin `kubectl exportjob`): download, list, describe.

Each verb is one `add_<verb>(commands)` function that adds its subparser and
sets its handler; `exportjob.cli.VERBS` lists them. A handler returns the exit
code: 0, 1 (an error, explained on stderr), 130 (interrupted).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from exportjob.terminal import StatusLine
from exportjob.worker.servefile import HEALTHY

from .readerpod import (
    DEFAULT_IMAGE,
    READER_PORT,
    NotDownloadable,
    download_target,
    pod_problem,
    pod_ready,
    reader_pod,
)
from .transfer import Response, TransferError, download_to_file, download_to_stream
from .views import describe_lines, list_lines

Subparsers = Any  # argparse's private _SubParsersAction
LOG_LINES = 10
WORKER_CONTAINER = "worker"
LABEL_EXPORT_UID = "exportjob.io/uid"


class CommandError(Exception):
    """A failure to report on stderr (exit 1)."""


def _cluster_options(parser: argparse.ArgumentParser, all_namespaces: bool = False) -> None:
    parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", default=None, help="kubeconfig context")


def _connect(arguments: argparse.Namespace) -> tuple[Any, str]:
    from .kubeapi import Cluster  # the Kubernetes client loads only for cluster verbs

    try:
        cluster = Cluster(arguments.kubeconfig, arguments.context)
    except Exception as error:  # kubernetes.config raises several types for a missing/broken kubeconfig
        raise CommandError(f"cannot load the kubeconfig: {error}") from None
    return cluster, arguments.namespace or cluster.default_namespace


def _api_error(error: Any, what: str) -> CommandError:
    status = getattr(error, "status", None)
    if status == 404:
        return CommandError(f"{what}: not found")
    if status == 403:
        return CommandError(f"{what}: forbidden by RBAC ({error.reason}); see docs/download.md for the Role you need")
    return CommandError(f"{what}: {status} {getattr(error, 'reason', error)}")


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(arguments: argparse.Namespace) -> int:
        from .kubeapi import ApiException

        try:
            return handler(arguments)
        except CommandError as error:
            print(f"exportjob {arguments.command}: {error}", file=sys.stderr)
            return 1
        except ApiException as error:
            print(f"exportjob {arguments.command}: {_api_error(error, 'API request')}", file=sys.stderr)
            return 1

    return wrapped


# ------------------------------------------------------------------------ list
def add_list(commands: Subparsers) -> None:
    parser = commands.add_parser("list", help="list ExportJobs with status, rows, size", description="List ExportJobs.")
    _cluster_options(parser, all_namespaces=True)
    parser.set_defaults(handler=_run(command_list))


def command_list(arguments: argparse.Namespace) -> int:
    cluster, namespace = _connect(arguments)
    items = cluster.list_exportjobs(None if arguments.all_namespaces else namespace)
    for line in list_lines(items, datetime.now(UTC), arguments.all_namespaces):
        print(line)
    return 0


# -------------------------------------------------------------------- describe
def add_describe(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "describe",
        help="status, conditions, events and the worker's last log lines of one ExportJob",
        description="Show one ExportJob: status, conditions, events, the worker's last log lines.",
    )
    parser.add_argument("name")
    _cluster_options(parser)
    parser.set_defaults(handler=_run(command_describe))


def _worker_log(cluster: Any, namespace: str, uid: str) -> tuple[str | None, str]:
    from .kubeapi import ApiException

    try:
        pods = cluster.list_pods(namespace, f"{LABEL_EXPORT_UID}={uid}")
    except ApiException as error:
        return None, f"cannot list the worker Pods ({error.status} {error.reason})"
    if not pods:
        return None, "no worker Pod (not started yet, or removed with its Job after ttlSecondsAfterFinished)"
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    name = pod["metadata"]["name"]
    try:
        text = cluster.pod_log_tail(namespace, name, WORKER_CONTAINER, LOG_LINES)
    except ApiException as error:
        body = (error.body or "").strip() if isinstance(error.body, str) else ""
        detail = body[:200] or f"{error.status} {error.reason}"
        return None, f"pod {name}: the log is not available through the API ({detail})"
    return text, f"pod {name}, last {LOG_LINES} lines"


def command_describe(arguments: argparse.Namespace) -> int:
    from .kubeapi import ApiException

    cluster, namespace = _connect(arguments)
    try:
        exportjob = cluster.get_exportjob(namespace, arguments.name)
    except ApiException as error:
        raise _api_error(error, f"ExportJob {namespace}/{arguments.name}") from None
    uid = exportjob["metadata"]["uid"]
    try:
        events = cluster.events_about(namespace, uid)
    except ApiException:
        events = []
    log_tail, log_note = _worker_log(cluster, namespace, uid)
    for line in describe_lines(exportjob, events, log_tail, log_note, datetime.now(UTC)):
        print(line)
    return 0


# -------------------------------------------------------------------- download
def add_download(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "download",
        help="download the file of a Succeeded ExportJob through the API server (checksum verified)",
        description=(
            "Start a short-lived reader Pod that mounts the claim read-only and serves only this file, stream it "
            "through the API server's Pod proxy, verify the sha256 on the ExportJob status, delete the Pod."
        ),
    )
    parser.add_argument("name")
    parser.add_argument("-o", "--output", help="file to write, or - for stdout (default: the file's own name)")
    _cluster_options(parser)
    parser.add_argument(
        "--image",
        default=os.environ.get("EXPORTJOB_IMAGE", DEFAULT_IMAGE),
        help="image of the reader Pod (the operator's image; env EXPORTJOB_IMAGE)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the reader Pod")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each step with its time on stderr")
    parser.set_defaults(handler=_run(command_download))


class ByteProgress:
    """One redrawn line on a terminal: bytes, percent, rate."""

    def __init__(self, stream: TextIO) -> None:
        self._line = StatusLine(stream)
        self._start = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last < 0.2 and (total is None or done < total):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9) / 1e6
        if total:
            text = f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB {done / total:6.1%}  {rate:,.1f} MB/s"
        else:
            text = f"{done / 1e6:,.1f} MB  {rate:,.1f} MB/s"
        self._line.draw(text)

    def finish(self) -> None:
        self._line.finish()


def _status_message(body: bytes, status: int) -> str:
    """The message of a Kubernetes `Status` body (e.g. RBAC's "... cannot get resource "pods/proxy" ...")."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    reason = "forbidden by RBAC (see docs/download.md for the Role you need)" if status == 403 else "unauthorized"
    return f"{reason}: {message or body.decode('utf-8', 'replace').strip() or status}"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_reader(cluster: Any, namespace: str, name: str, deadline: float) -> None:
    from .kubeapi import ApiException

    while True:
        pod = cluster.read_pod(namespace, name)
        problem = pod_problem(pod)
        if problem:
            raise CommandError(problem)
        if pod_ready(pod):
            try:
                response = cluster.proxy_get(namespace, name, READER_PORT, "/healthz", {})
                body = b"".join(response.chunks)[:2000]
                response.close()
                if response.status == 200 and body == HEALTHY:
                    return
                if response.status in (401, 403):
                    raise CommandError(f"reading through the Pod proxy: {_status_message(body, response.status)}")
            except ApiException as error:
                if error.status in (401, 403):
                    raise _api_error(error, f"reading from the reader Pod (pods/proxy) {namespace}/{name}") from None
                # 503 and friends: not listening yet
            except OSError:
                pass  # not listening yet
        if time.monotonic() > deadline:
            phase = (pod.get("status") or {}).get("phase")
            raise CommandError(f"the reader Pod {namespace}/{name} did not start serving in time (phase {phase})")
        time.sleep(0.5)


def command_download(arguments: argparse.Namespace) -> int:
    from .kubeapi import ApiException

    cluster, namespace = _connect(arguments)
    try:
        exportjob = cluster.get_exportjob(namespace, arguments.name)
    except ApiException as error:
        raise _api_error(error, f"ExportJob {namespace}/{arguments.name}") from None
    try:
        target = download_target(exportjob)
    except NotDownloadable as error:
        raise CommandError(str(error)) from None
    to_stdout = arguments.output == "-"
    destination = Path(arguments.output or PurePosixPath(target.path).name)
    if not to_stdout and destination.is_dir():
        destination = destination / PurePosixPath(target.path).name
    started = time.monotonic()

    def step(text: str) -> None:
        if arguments.verbose:
            print(f"[{time.monotonic() - started:7.2f}s] {text}", file=sys.stderr)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    pod_name: str | None = None
    progress = ByteProgress(sys.stderr) if sys.stderr.isatty() else None
    try:
        try:
            pod = cluster.create_pod(reader_pod(target, image=arguments.image))
        except ApiException as error:
            raise _api_error(error, "creating the reader Pod") from None
        pod_name = pod["metadata"]["name"]
        step(f"reader Pod {namespace}/{pod_name} created")
        _wait_for_reader(cluster, namespace, pod_name, time.monotonic() + arguments.timeout)
        step("the reader Pod serves; downloading through the Pod proxy")

        def fetch(offset: int, etag: str | None) -> Response:
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
                if etag:
                    headers["If-Range"] = etag
            try:
                return cluster.proxy_get(namespace, pod_name, READER_PORT, "/", headers)
            except ApiException as error:
                raise ConnectionError(f"{error.status} {error.reason}") from None

        if to_stdout:
            size = download_to_stream(fetch, sys.stdout.buffer, target.sha256, progress=progress)
        else:
            size = download_to_file(fetch, destination, target.sha256, expected_size=target.size, progress=progress)
        step("received and verified")
    except TransferError as error:
        raise CommandError(str(error)) from None
    except KeyboardInterrupt:
        if progress:
            progress.finish()
        kept = "" if to_stdout else f"; run the same command again to resume ({destination}.part is kept)"
        print(f"exportjob download: interrupted{kept}", file=sys.stderr)
        return 130
    finally:
        if progress:
            progress.finish()
        if pod_name:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cleanup itself is not interrupted
            try:
                cluster.delete_pod(namespace, pod_name)
                step("reader Pod deleted")
            except Exception as error:
                print(f"exportjob download: could not delete the reader Pod {pod_name}: {error}", file=sys.stderr)
            finally:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)
    where = "stdout" if to_stdout else str(destination)
    print(
        f"{namespace}/{target.export_name}: {size} bytes to {where}, sha256 {target.sha256} verified", file=sys.stderr
    )
    return 0
