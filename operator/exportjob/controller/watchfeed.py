"""A lean watch of the worker Jobs: one thread per watched namespace, each event handed to the reconciler.

ExportJobs reach the operator through Kopf (`handlers.py`). Worker Jobs do not
need Kopf's per-object machinery (handler state, per-object worker tasks,
loggers): the reconciler only wants each Job as it changes, and a Job changes
about six times in its life (created, started, ready, its Pod counted, finished,
labelled finished). Through Kopf's `on.event` that machinery cost about 1 ms of
CPU per event, the largest single share of the operator's CPU per export
(bench/README.md); here an event costs one `json.loads` and one append.

What it does, like client-go's reflector:
- The first watch has no resourceVersion: the API server sends every matching
  Job as a synthetic ADDED event, then the changes (list and watch in one request).
- Every event and BOOKMARK moves the resourceVersion on; when the server ends the
  watch (`timeoutSeconds`) the next one resumes from there, so nothing is missed
  or sent twice.
- `410 Gone` (the resourceVersion is too old to resume from) starts over without
  one, and tells the reconciler to re-list (`on_restart`): objects deleted during
  the gap are only found by a LIST.
- Any other failure (connection refused, timeout, a 5xx) is logged and retried
  after a back-off of 1, 2, 4 … 30 s, from the last resourceVersion.

The store orders what it is given by resourceVersion (`store.py`), so events from
this feed and LISTs from the reconciler may interleave in any order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
Deliver = Callable[[str | None, dict[str, Any]], None]
Watch = Callable[[str | None, str, str | None], Iterator[dict[str, Any]]]


class Gone(Exception):
    """The resourceVersion to resume from is no longer available (HTTP 410, or an ERROR event with code 410)."""


def resource_version(event: dict[str, Any]) -> str | None:
    return ((event.get("object") or {}).get("metadata") or {}).get("resourceVersion") or None


def take(event: dict[str, Any], deliver: Deliver) -> str | None:
    """Hand an object event to `deliver`; the resourceVersion to resume from after it (None: unknown).

    Raises Gone for an ERROR event with code 410, ApiException for another ERROR event.
    """
    kind = event.get("type")
    if kind == "ERROR":
        status = event.get("object") or {}
        if status.get("code") == 410:
            raise Gone(status.get("message", "resourceVersion too old"))
        raise ApiException(status=status.get("code") or 500, reason=status.get("message", "watch error"))
    if kind != "BOOKMARK":
        deliver(kind, event["object"])
    return resource_version(event)


class WatchFeed:
    """Watch one namespace (None: all) for objects matching `label_selector`; deliver each change."""

    def __init__(
        self,
        watch: Watch,
        namespace: str | None,
        label_selector: str,
        deliver: Deliver,
        on_restart: Callable[[], None],
        *,
        name: str = "watch",
    ) -> None:
        self.watch = watch
        self.namespace = namespace
        self.label_selector = label_selector
        self.deliver = deliver
        self.on_restart = on_restart
        self.name = name
        self.resume_from: str | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-{self.namespace or 'all'}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current request (a daemon thread: a watch in flight does not hold up the exit)."""
        self._stopping.set()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self.step()
                failures = 0
            except Exception as error:  # the feed must survive API hiccups
                failures += 1
                delay = min(2.0 ** (failures - 1), MAX_BACKOFF_SECONDS)
                log.warning(
                    "watch failed; retrying",
                    extra={"watch": self.name, "namespace": self.namespace, "error": str(error), "retry_in": delay},
                )
                self._stopping.wait(delay)

    def step(self) -> None:
        """One watch request, from `resume_from` (None: every object first), which moves on with every event
        taken, also when the request then fails; back to the start after 410."""
        try:
            for event in self.watch(self.namespace, self.label_selector, self.resume_from):
                self.resume_from = take(event, self.deliver) or self.resume_from
        except (Gone, ApiException) as error:
            if isinstance(error, ApiException) and error.status != 410:
                raise
            log.info("watch expired; starting over", extra={"watch": self.name, "namespace": self.namespace})
            self.resume_from = None
            self.on_restart()
