"""Admission: which ready export gets the next free slot. Pure.

The rule (docs/operator.md, "Admission and the queue"):

* Within a namespace, exports are served by `spec.priority` (higher first),
  then age (older first), then name. Priority is set by whoever creates the
  ExportJob, so it only orders that namespace's own exports.
* Across namespaces, free slots are shared fairly: the next slot goes to the
  namespace with the fewest running exports relative to its weight
  (`running / weight`, weights from the operator's settings, default 1); among
  equals, to the namespace served longest ago (round robin), then to the one
  whose first waiting export is oldest. A namespace that
  sends a thousand priority-1000 exports cannot hold back another namespace's
  single priority-0 export for longer than one free slot.
* Never more than `Limits.total` running cluster-wide nor `Limits.per_namespace`
  in one namespace; a slot is free only once its Job has finished or is gone.

`FairQueue` keeps the ready exports in one heap per namespace, so admitting the
next export costs O(namespaces + log n), not O(queue): the reconciler feeds it
as exports become ready and pops from it as slots free up. `service_order`
runs the same rule forward over a whole queue to number every waiting export;
that is what `exportjob queue` prints, computed on demand from one LIST instead
of being written into every object on every shift of the queue.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Rank = tuple[int, str, str]  # (-priority, created, name): the order within one namespace


@dataclass(frozen=True)
class QueueEntry:
    """An export that is ready to run (its claim and Secrets exist) and waits for a slot."""

    namespace: str
    name: str
    uid: str
    priority: int = 0
    created: str = ""  # RFC 3339 creationTimestamp; sorts chronologically as a string

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def rank(self) -> Rank:
        return (-self.priority, self.created, self.name)


@dataclass(frozen=True)
class Limits:
    total: int
    per_namespace: int
    weights: Mapping[str, float] = field(default_factory=dict)  # namespace -> share weight (default 1)

    def __post_init__(self) -> None:
        if self.total < 1 or self.per_namespace < 1:
            raise ValueError("limits must be at least 1")
        if any(weight <= 0 for weight in self.weights.values()):
            raise ValueError("namespace weights must be positive")

    def weight(self, namespace: str) -> float:
        return self.weights.get(namespace, 1.0)


class FairQueue:
    """Ready exports: one heap per namespace, ordered by rank; removal is lazy (O(1))."""

    def __init__(self, entries: Iterable[QueueEntry] = ()) -> None:
        self._heaps: dict[str, list[tuple[Rank, str]]] = {}
        self._live: dict[str, QueueEntry] = {}  # uid -> entry
        self._counts: Counter[str] = Counter()  # namespace -> live entries (when to compact its heap)
        self._served: dict[str, int] = {}  # namespace -> when it last got a slot (a serial number)
        self._serial = 0
        for entry in entries:
            self.push(entry)

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, uid: object) -> bool:
        return uid in self._live

    def entries(self) -> list[QueueEntry]:
        return list(self._live.values())

    def push(self, entry: QueueEntry) -> None:
        held = self._live.get(entry.uid)
        if held == entry:
            return
        if held is not None:
            self._counts[held.namespace] -= 1
        self._live[entry.uid] = entry
        self._counts[entry.namespace] += 1
        heap = self._heaps.setdefault(entry.namespace, [])
        heapq.heappush(heap, (entry.rank, entry.uid))
        if len(heap) > 64 and len(heap) > 4 * self._counts[entry.namespace]:
            self._compact(entry.namespace)

    def discard(self, uid: str) -> None:
        held = self._live.pop(uid, None)
        if held is not None:
            self._counts[held.namespace] -= 1

    def take(self, entry: QueueEntry) -> None:
        """`entry` got a slot: out of the queue, and its namespace goes to the back of the round robin."""
        self.discard(entry.uid)
        self._serial += 1
        self._served[entry.namespace] = self._serial

    def head(self, namespace: str) -> QueueEntry | None:
        """The namespace's next export (stale heap items are dropped on the way)."""
        heap = self._heaps.get(namespace)
        while heap:
            rank, uid = heap[0]
            entry = self._live.get(uid)
            if entry is not None and entry.namespace == namespace and entry.rank == rank:
                return entry
            heapq.heappop(heap)
        self._heaps.pop(namespace, None)
        return None

    def next_to_admit(self, running: Mapping[str, int], limits: Limits) -> QueueEntry | None:
        """The export the next free slot goes to, or None (queue empty or every namespace at its limit)."""
        best: tuple[float, int, str, str] | None = None
        chosen: QueueEntry | None = None
        for namespace in list(self._heaps):
            if running.get(namespace, 0) >= limits.per_namespace:
                continue
            head = self.head(namespace)
            if head is None:
                continue
            share = running.get(namespace, 0) / limits.weight(namespace)
            key = (share, self._served.get(namespace, 0), head.created, namespace)
            if best is None or key < best:
                best, chosen = key, head
        return chosen

    def _compact(self, namespace: str) -> None:
        live = [(e.rank, e.uid) for e in self._live.values() if e.namespace == namespace]
        heapq.heapify(live)
        self._heaps[namespace] = live


def service_order(waiting: Iterable[QueueEntry], running: Mapping[str, int], limits: Limits) -> list[QueueEntry]:
    """The order in which `waiting` would be admitted if slots kept freeing up and nothing else arrived.

    Runs the admission rule forward, counting each export picked as running.
    Once every waiting namespace is at its own limit, the rest follow in the
    same fair order (they wait for their namespace's exports to finish).
    """
    queue = FairQueue(waiting)
    counts: Counter[str] = Counter({ns: n for ns, n in running.items() if n > 0})
    relaxed = Limits(total=limits.total, per_namespace=10**9, weights=limits.weights)
    order: list[QueueEntry] = []
    while len(queue):
        entry = queue.next_to_admit(counts, limits) or queue.next_to_admit(counts, relaxed)
        assert entry is not None  # the relaxed limits admit any non-empty queue
        order.append(entry)
        queue.take(entry)
        counts[entry.namespace] += 1
    return order
