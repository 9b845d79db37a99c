"""Every waiting export's place in the queue, computed on demand from one LIST. Pure.

Positions are not written into the ExportJobs (each admission would shift, and
rewrite, every one of them: O(queue) writes per export). Instead, like Kueue's
visibility API, they are computed when someone asks: `exportjob queue` (also
`kubectl exportjob queue`) lists the unfinished ExportJobs and worker Jobs and
runs the operator's own admission rule (`controller.admission.service_order`)
forward from the running counts it sees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from exportjob.controller.admission import Limits, QueueEntry, service_order
from exportjob.controller.manifests import LABEL_FINISHED
from exportjob.controller.outcome import job_finished


@dataclass(frozen=True)
class QueueRow:
    position: int  # 1 = admitted at the next free slot it may take
    namespace: str
    name: str
    priority: int
    created: str


def _priority(ej: dict[str, Any]) -> int:
    try:
        return int((ej.get("spec") or {}).get("priority") or 0)
    except (TypeError, ValueError):
        return 0


def queue_rows(exportjobs: Iterable[dict[str, Any]], jobs: Iterable[dict[str, Any]], limits: Limits) -> list[QueueRow]:
    """The Queued exports among `exportjobs`, numbered in the order the operator would admit them."""
    running: Counter[str] = Counter(
        job["metadata"]["namespace"]
        for job in jobs
        if not job_finished(job) and LABEL_FINISHED not in (job["metadata"].get("labels") or {})
    )
    waiting = [
        QueueEntry(
            ej["metadata"]["namespace"],
            ej["metadata"]["name"],
            ej["metadata"]["uid"],
            _priority(ej),
            ej["metadata"].get("creationTimestamp", ""),
        )
        for ej in exportjobs
        if (ej.get("status") or {}).get("phase") == "Queued" and not ej["metadata"].get("deletionTimestamp")
    ]
    return [
        QueueRow(position, e.namespace, e.name, e.priority, e.created)
        for position, e in enumerate(service_order(waiting, running, limits), start=1)
    ]
