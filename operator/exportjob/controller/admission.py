"""Admission: which waiting exports may start now, and everyone's place in the queue.

This is the one place where admission is decided. The reconciler feeds it what
it has just listed from the API server (the waiting ExportJobs and how many
worker Jobs are unfinished in each namespace) and gets back the exports to start
and the queue position of every export left waiting. Being a pure function of
the cluster's state, it gives the same answer after an operator restart as
before it, and because the reconciler calls it from a single loop, a burst of
creations cannot be admitted twice over.

Order: higher `spec.priority` first. Among equal priorities the namespace with
the fewest exports running goes first (so a namespace that queued a thousand
exports cannot starve one that queued a single export later), then the older
export, then the name (a total order, so positions are stable).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Waiting:
    """An export that is ready to run (its claim and secrets exist) but has no slot."""

    namespace: str
    name: str
    priority: int = 0
    created: str = ""  # RFC 3339 creationTimestamp; sorts chronologically as a string
    uid: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class Limits:
    total: int
    per_namespace: int

    def __post_init__(self) -> None:
        if self.total < 1 or self.per_namespace < 1:
            raise ValueError("limits must be at least 1")


@dataclass(frozen=True)
class AdmissionPlan:
    admit: tuple[Waiting, ...]
    # 1-based queue position of each export that stays waiting, by (namespace, name).
    positions: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @property
    def queue_depth(self) -> int:
        return len(self.positions)


def _service_order(waiting: Iterable[Waiting], running: Counter[str], per_namespace: int) -> list[Waiting]:
    """The order in which `waiting` would be served if slots kept freeing up.

    Greedy: each step picks the best export whose namespace is under its limit,
    counting the ones already picked as running. Exports of namespaces at their
    limit are served after everyone else, in the same order.
    """
    queues: dict[str, deque[Waiting]] = {}
    for item in sorted(waiting, key=lambda w: (-w.priority, w.created, w.name)):
        queues.setdefault(item.namespace, deque()).append(item)
    counts = Counter(running)
    order: list[Waiting] = []
    while queues:
        heads = [queue[0] for queue in queues.values()]
        eligible = [w for w in heads if counts[w.namespace] < per_namespace] or heads
        best = min(eligible, key=lambda w: (-w.priority, counts[w.namespace], w.created, w.namespace, w.name))
        order.append(best)
        queues[best.namespace].popleft()
        if not queues[best.namespace]:
            del queues[best.namespace]
        counts[best.namespace] += 1
    return order


def plan_admission(
    waiting: Iterable[Waiting], running_by_namespace: Mapping[str, int], limits: Limits
) -> AdmissionPlan:
    """Decide which exports start now; number the rest.

    `running_by_namespace` counts every unfinished worker Job, including those
    of exports being deleted: a slot is free only once its Job is gone.
    """
    running = Counter({ns: count for ns, count in running_by_namespace.items() if count > 0})
    free = limits.total - sum(running.values())
    admit: list[Waiting] = []
    left: list[Waiting] = []
    for candidate in _service_order(waiting, running, limits.per_namespace):
        if free > 0 and running[candidate.namespace] < limits.per_namespace:
            admit.append(candidate)
            running[candidate.namespace] += 1
            free -= 1
        else:
            left.append(candidate)
    positions = {w.key: index for index, w in enumerate(_service_order(left, running, limits.per_namespace), start=1)}
    return AdmissionPlan(admit=tuple(admit), positions=positions)
