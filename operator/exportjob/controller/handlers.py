"""Kopf registrations: watch unfinished ExportJobs, hand every event to the reconciler; start and stop.

The handlers are deliberately thin. Kopf gives the operator its ExportJob watch
stream (with reconnects and timeouts), the liveness endpoint and signal
handling; the reconciler (`exportjob.controller.reconciler`) keeps its picture
of the cluster from the events handed over here and takes every decision in
one loop. Worker Jobs are watched by the leaner `watchfeed.WatchFeed` threads,
started and stopped here with the loop. Both watches carry a server-side
selector (ExportJobs: `status.phase` not terminal, a field the CRD declares
selectable; Jobs: no `exportjob.io/finished` label), so finished exports and
their Jobs never reach the operator at all: its memory and work do not grow
with history.

Because only `on.event` handlers are registered, Kopf keeps no per-object
handler state: it adds no finalizers (deleting an ExportJob never waits for the
operator) and writes nothing into `status`, which the CRD's structural schema
would prune anyway. Progress and diff-base storage are still set explicitly,
to annotations under our own prefix, so that any handler added later cannot
clobber our status or be pruned from it.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from exportjob.controller.loop import LoopRunner
from exportjob.controller.manifests import UNFINISHED_EXPORTJOB_FIELD_SELECTOR
from exportjob.controller.reconciler import Reconciler
from exportjob.controller.watchfeed import WatchFeed
from exportjob.spec import API_GROUP, API_VERSION, PLURAL

log = logging.getLogger(__name__)

_reconciler: Reconciler | None = None
_loop: LoopRunner | None = None
_feeds: list[WatchFeed] = []


class EventsOnlyDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf's diff base, for an operator with only `on.event` handlers: never built, never stored.

    Kopf builds the "essence" of every object on every event (a deep copy of the
    whole body) to detect changes for `on.create`/`on.update` handlers. With only
    `on.event` handlers it is never used, and it was the largest single CPU cost
    per export (bench/README.md). Should a change handler ever be added, use
    `kopf.AnnotationsDiffBaseStorage` again.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def install(reconciler: Reconciler, loop: LoopRunner, feeds: list[WatchFeed]) -> None:
    """Give the handlers the reconciler to feed, its loop and the Job watches (once, before Kopf starts)."""
    global _reconciler, _loop, _feeds
    _reconciler, _loop, _feeds = reconciler, loop, feeds


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Persistence and watch settings, one reason per line."""
    # Our own prefix: never mix state with other Kopf operators on the same objects.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = EventsOnlyDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    # Long watches that the server ends cleanly, a client timeout just above it: no silent stalls.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # Handler failures are logged by us; Kopf's own events at WARNING and above only.
    settings.posting.level = logging.WARNING
    # No cluster-wide scans of CRDs or Namespaces: the watched resources and namespaces are fixed,
    # so the operator needs no RBAC on them.
    settings.scanning.disabled = True
    # Kopf keeps a worker task (and its queue and latest event) per object for `idle_timeout` after the
    # object's last event; at start-up every unfinished export has one at once. Short-lived workers
    # keep that peak small (bench/README.md: operator RSS with 5,000 queued exports).
    settings.batching.idle_timeout = 1.0
    # Server-side filter: only unfinished exports are ever sent, and the terminal status write makes the
    # API server send DELETED for it (the Job feeds have their own filter).
    settings.watching.field_selectors[API_GROUP, PLURAL] = UNFINISHED_EXPORTJOB_FIELD_SELECTOR
    assert _loop is not None, "handlers.install() must run before the operator starts"
    _loop.start()
    for feed in _feeds:
        feed.start()
    _loop.wake()


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    for feed in _feeds:
        feed.stop()
    if _loop is not None:
        _loop.stop()
    if _reconciler is not None:
        _reconciler.close()


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def exportjob_changed(event: kopf.RawEvent, **_: Any) -> None:
    if _reconciler is not None:
        _reconciler.observe("exportjob", event.get("type"), dict(event["object"]))
