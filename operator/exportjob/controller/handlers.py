"""Kopf registrations: watch ExportJobs and worker Jobs, and wake the reconciler on every change.

The handlers are deliberately thin. Kopf gives the operator its watch streams
(with reconnects and timeouts), credentials, the liveness endpoint and signal
handling; all decisions are taken by the single reconcile loop
(`exportjob.controller.reconciler`), which rebuilds status from the state of
the world. Because only `on.event` handlers are registered, Kopf keeps no
per-object handler state: it adds no finalizers (deleting an ExportJob never
waits for the operator) and writes nothing into `status`, which the CRD's
structural schema would prune anyway. Progress and diff-base storage are still
set explicitly, to annotations under our own prefix, so that any handler added
later cannot clobber our status or be pruned from it.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from exportjob.controller.manifests import LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY
from exportjob.controller.reconciler import Reconciler
from exportjob.spec import API_GROUP, API_VERSION, PLURAL

log = logging.getLogger(__name__)

_reconciler: Reconciler | None = None


def install(reconciler: Reconciler) -> None:
    """Give the handlers the reconciler to wake (called once by `main` before Kopf starts)."""
    global _reconciler
    _reconciler = reconciler


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Persistence and watch settings, one reason per line."""
    # Our own prefix: never mix state with other Kopf operators on the same objects.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
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
    assert _reconciler is not None, "handlers.install() must run before the operator starts"
    _reconciler.start()
    _reconciler.wake()


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    if _reconciler is not None:
        _reconciler.stop()


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
def exportjob_changed(**_: Any) -> None:
    if _reconciler is not None:
        _reconciler.wake()


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: "worker"})
def worker_job_changed(**_: Any) -> None:
    if _reconciler is not None:
        _reconciler.wake()
