"""Admission decisions: limits, priority, age, fairness between namespaces, queue positions."""

import pytest

from exportjob.controller.admission import Limits, Waiting, plan_admission


def waiting(namespace: str, name: str, priority: int = 0, second: int = 0) -> Waiting:
    return Waiting(namespace, name, priority, f"2026-01-01T00:00:{second:02d}Z", uid=f"uid-{namespace}-{name}")


def names(plan) -> list[str]:
    return [w.name for w in plan.admit]


def test_admits_up_to_the_global_limit_oldest_first():
    queue = [waiting("a", f"e{i}", second=i) for i in range(6)]
    plan = plan_admission(reversed(queue), {}, Limits(total=3, per_namespace=10))
    assert names(plan) == ["e0", "e1", "e2"]
    assert plan.positions == {("a", "e3"): 1, ("a", "e4"): 2, ("a", "e5"): 3}
    assert plan.queue_depth == 3


def test_running_exports_hold_their_slots():
    plan = plan_admission([waiting("a", "x")], {"a": 2, "b": 1}, Limits(total=3, per_namespace=10))
    assert plan.admit == ()
    assert plan.positions == {("a", "x"): 1}


def test_higher_priority_first_then_age():
    queue = [waiting("a", "old", 0, 1), waiting("a", "urgent", 10, 9), waiting("a", "low", -5, 0)]
    plan = plan_admission(queue, {}, Limits(total=1, per_namespace=5))
    assert names(plan) == ["urgent"]
    assert plan.positions == {("a", "old"): 1, ("a", "low"): 2}


def test_per_namespace_limit_lets_other_namespaces_through():
    queue = [waiting("busy", f"b{i}", second=i) for i in range(5)] + [waiting("quiet", "q", second=30)]
    plan = plan_admission(queue, {}, Limits(total=4, per_namespace=2))
    assert sorted(names(plan)) == ["b0", "b1", "q"]  # the fourth slot stays free: busy is at its limit
    assert plan.positions[("busy", "b2")] == 1


def test_a_flooding_namespace_cannot_starve_a_later_one():
    flood = [waiting("flood", f"f{i:03d}", second=i % 60) for i in range(200)]
    late = waiting("late", "one", second=59)
    plan = plan_admission([*flood, late], {"flood": 3}, Limits(total=4, per_namespace=4))
    # One free slot: the namespace with nothing running gets it despite being younger.
    assert names(plan) == ["one"]


def test_positions_follow_the_service_order_across_namespaces():
    queue = [waiting("a", "a1", second=1), waiting("a", "a2", second=2), waiting("b", "b1", second=3)]
    plan = plan_admission(queue, {"a": 1}, Limits(total=1, per_namespace=5))
    assert plan.admit == ()
    # b has nothing running, so b1 is served before a's second export.
    assert plan.positions == {("b", "b1"): 1, ("a", "a1"): 2, ("a", "a2"): 3}


def test_never_over_admits_whatever_the_queue():
    import random

    rng = random.Random(7)
    for _ in range(200):
        limits = Limits(total=rng.randint(1, 6), per_namespace=rng.randint(1, 6))
        running = {ns: rng.randint(0, 3) for ns in "abc"}
        queue = [
            waiting(rng.choice("abc"), f"e{i}", rng.randint(-1, 1), rng.randint(0, 59))
            for i in range(rng.randint(0, 15))
        ]
        plan = plan_admission(queue, running, limits)
        total_before = sum(running.values())
        assert len(plan.admit) <= max(0, limits.total - total_before)
        for ns in "abc":
            admitted_here = sum(1 for w in plan.admit if w.namespace == ns)
            assert admitted_here == 0 or running[ns] + admitted_here <= limits.per_namespace
        assert len(plan.admit) + plan.queue_depth == len(queue)
        assert sorted(plan.positions.values()) == list(range(1, plan.queue_depth + 1))


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Limits(total=0, per_namespace=1)
