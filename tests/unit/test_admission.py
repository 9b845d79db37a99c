"""Admission order: priority within a namespace, fair shares across namespaces, limits never exceeded."""

from collections import Counter

import pytest

from exportjob.controller.admission import FairQueue, Limits, QueueEntry, service_order


def entry(ns: str, name: str, priority: int = 0, created: str = "2026-01-01T00:00:00Z") -> QueueEntry:
    return QueueEntry(ns, name, uid=f"{ns}/{name}", priority=priority, created=created)


def t(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}Z"


def admit_all(queue: FairQueue, running: Counter[str], limits: Limits) -> list[str]:
    """What the reconciler does with free slots: pop until full (counting each admitted as running)."""
    admitted = []
    while sum(running.values()) < limits.total:
        chosen = queue.next_to_admit(running, limits)
        if chosen is None:
            break
        queue.take(chosen)
        running[chosen.namespace] += 1
        admitted.append(chosen.uid)
    return admitted


def test_priority_orders_a_namespace_then_age_then_name():
    queue = FairQueue([entry("a", "old", 0, t(1)), entry("a", "urgent", 10, t(5)), entry("a", "b", 0, t(1))])
    assert admit_all(queue, Counter(), Limits(10, 10)) == ["a/urgent", "a/b", "a/old"]


def test_a_high_priority_burst_cannot_starve_another_namespace():
    # Issue 8: B queued first at priority 0 while A keeps sending priority-1000 exports (limits 5/5).
    limits = Limits(5, 5)
    queue = FairQueue([entry("b", "patient", 0, t(0))] + [entry("a", f"x{i}", 1000, t(i + 1)) for i in range(20)])
    running = Counter({"a": 5})
    assert admit_all(queue, running, limits) == []  # full
    running["a"] -= 1  # one of A's exports finishes
    assert admit_all(queue, running, limits) == ["b/patient"]


def test_free_slots_are_shared_in_proportion_to_weights():
    limits = Limits(6, 6, weights={"big": 2.0})
    queue = FairQueue([entry("big", f"b{i}", created=t(i)) for i in range(10)])
    for i in range(10):
        queue.push(entry("small", f"s{i}", created=t(i)))
    admitted = Counter(uid.split("/")[0] for uid in admit_all(queue, Counter(), limits))
    assert admitted == Counter({"big": 4, "small": 2})


def test_limits_are_never_exceeded():
    limits = Limits(total=4, per_namespace=2)
    queue = FairQueue([entry(ns, f"e{i}", created=t(i)) for ns in "abc" for i in range(5)])
    running = Counter({"a": 2})
    admitted = admit_all(queue, running, limits)
    assert len(admitted) == 2 and all(not uid.startswith("a/") for uid in admitted)
    assert max(running.values()) <= 2 and sum(running.values()) == 4


def test_the_namespace_waiting_longest_wins_a_tie():
    queue = FairQueue([entry("late", "x", created=t(9)), entry("early", "y", created=t(1))])
    assert queue.next_to_admit(Counter(), Limits(1, 1)).uid == "early/y"


def test_discarded_and_repushed_entries_are_not_served_twice():
    queue = FairQueue([entry("a", "x", created=t(1)), entry("a", "y", created=t(2))])
    queue.discard("a/x")
    queue.push(entry("a", "y", created=t(2)))  # unchanged: no duplicate
    assert len(queue) == 1
    assert admit_all(queue, Counter(), Limits(5, 5)) == ["a/y"]
    assert queue.next_to_admit(Counter(), Limits(5, 5)) is None


def test_stale_heap_items_are_compacted_away_as_entries_come_and_go():
    """Re-ranked and discarded entries leave stale heap items behind; a namespace's heap is rebuilt
    once it holds four times its live entries, so it stays proportional to what is queued."""
    queue = FairQueue()
    for round_ in range(50):
        for i in range(40):
            queue.push(entry("a", f"e{i}", priority=round_, created=t(i % 60)))  # re-ranked each round
        queue.discard(f"a/e{round_ % 40}")
        assert len(queue._heaps["a"]) <= 4 * 40 + 1  # never more than 40 live in "a"
    queue.push(entry("b", "other"))
    assert len(queue) == 40 and queue._counts == Counter({"a": 39, "b": 1})
    admitted = admit_all(queue, Counter(), Limits(100, 100))
    assert len(admitted) == len(set(admitted)) == 40 and len(queue) == 0


def test_service_order_numbers_every_waiting_export_by_the_same_rule():
    waiting = [entry("a", f"a{i}", 1000, t(i)) for i in range(3)] + [entry("b", "b0", 0, t(30))]
    order = [e.uid for e in service_order(waiting, Counter({"a": 1}), Limits(10, 2))]
    # b has nothing running, so it goes first despite its priority; a's own order is by priority then age;
    # once a is at its limit (2) the rest follow in the same order.
    assert order == ["b/b0", "a/a0", "a/a1", "a/a2"]


def test_limits_reject_nonsense():
    with pytest.raises(ValueError):
        Limits(0, 1)
    with pytest.raises(ValueError):
        Limits(1, 1, weights={"a": 0})


def test_equally_loaded_namespaces_take_turns():
    # One slot: whoever had the last turn waits, even if its exports are older or more urgent.
    limits = Limits(1, 1)
    queue = FairQueue([entry("a", f"a{i}", 1000, t(i)) for i in range(3)] + [entry("b", "b0", 0, t(9))])
    turns = []
    for _ in range(4):
        chosen = queue.next_to_admit(Counter(), limits)
        queue.take(chosen)
        turns.append(chosen.uid)
    assert turns == ["a/a0", "b/b0", "a/a1", "a/a2"]
