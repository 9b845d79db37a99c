"""The loop runner's leader gating: act between renewals, re-list on (re)gaining the lead, stand by otherwise."""

from exportjob.controller.loop import LoopRunner
from exportjob.controller.metrics import Metrics


class Target:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def reconcile_once(self) -> None:
        self.calls.append("pass")

    def invalidate(self) -> None:
        self.calls.append("relist")

    def stand_by(self) -> None:
        self.calls.append("standby")


class Elector:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.asked = 0

    def lead(self) -> bool:
        self.asked += 1
        return self.answers.pop(0)


def runner(answers: list[bool], clock: list[float]) -> tuple[LoopRunner, Target, Elector]:
    target, elector = Target(), Elector(answers)
    loop = LoopRunner(target, interval=1, metrics=Metrics(), leader=elector, renew_every=5, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    return loop, target, elector


def test_the_lease_is_renewed_once_per_period_not_once_per_pass():
    clock = [0.0]
    loop, target, elector = runner([True, True], clock)
    for _ in range(10):
        assert loop._may_reconcile()
    assert elector.asked == 1 and target.calls == ["relist"]  # taking the lead re-lists once
    clock[0] = 5.0
    assert loop._may_reconcile() and elector.asked == 2 and target.calls == ["relist"]


def test_losing_the_lead_stands_by_and_regaining_it_relists():
    clock = [0.0]
    loop, target, _ = runner([True, False, True], clock)
    assert loop._may_reconcile()
    clock[0] = 5.0
    assert not loop._may_reconcile()
    clock[0] = 7.0  # a standby does not ask on every wake-up either
    assert not loop._may_reconcile()
    clock[0] = 10.0
    assert loop._may_reconcile()
    assert target.calls == ["relist", "standby", "standby", "relist"]


def test_without_leader_election_every_pass_runs():
    target = Target()
    loop = LoopRunner(target, interval=1, metrics=Metrics())  # type: ignore[arg-type]
    assert loop._may_reconcile() and target.calls == []
