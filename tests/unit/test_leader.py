"""Leader election decisions and the elector's handling of races, expiry and release."""

from exportjob.controller.errors import Conflict
from exportjob.controller.leader import LeaderElector, Lease, next_lease

NOW = "2026-01-01T00:00:00.000000Z"


def test_an_absent_lease_is_acquired():
    lease = next_lease(None, "a", NOW, 15, unchanged_for=0)
    assert (lease.holder, lease.acquire_time, lease.renew_time, lease.transitions) == ("a", NOW, NOW, 0)


def test_the_holder_renews_without_a_transition():
    mine = Lease("a", 15, transitions=2, acquire_time="t0", renew_time="t1")
    renewed = next_lease(mine, "a", NOW, 15, unchanged_for=100)
    assert (renewed.holder, renewed.acquire_time, renewed.renew_time, renewed.transitions) == ("a", "t0", NOW, 2)


def test_a_valid_foreign_lease_is_respected_until_it_goes_unrenewed():
    theirs = Lease("b", 15, transitions=1, renew_time="t1")
    assert next_lease(theirs, "a", NOW, 15, unchanged_for=14.9) is None
    taken = next_lease(theirs, "a", NOW, 15, unchanged_for=15.0)
    assert (taken.holder, taken.transitions, taken.acquire_time) == ("a", 2, NOW)


def test_a_released_lease_is_taken_at_once():
    released = Lease(None, 15, transitions=3)
    assert next_lease(released, "a", NOW, 15, unchanged_for=0).holder == "a"


class FakeLeases:
    """An in-memory Lease store with resourceVersion checks, like the API server's."""

    def __init__(self):
        self.spec, self.version = None, 0

    def read_lease(self, namespace, name):
        return (dict(self.spec), str(self.version)) if self.spec is not None else None

    def write_lease(self, namespace, name, spec, resource_version):
        if (self.spec is None) != (resource_version is None) or (
            resource_version and int(resource_version) != self.version
        ):
            raise Conflict("stale")
        self.spec, self.version = dict(spec), self.version + 1


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_two_electors_never_lead_together_and_the_standby_takes_over_after_expiry():
    store, clock = FakeLeases(), Clock()
    a = LeaderElector(store, "ns", "lease", "a", 15, monotonic=clock)
    b = LeaderElector(store, "ns", "lease", "b", 15, monotonic=clock)
    assert a.lead() and not b.lead()
    clock.now = 10
    assert a.lead() and not b.lead()  # a renewed: b's view of the record changed, its timer restarts
    clock.now = 24
    assert not b.lead()  # only 14 s since b last saw a renewal
    clock.now = 26  # a died at t=10 and never renewed
    assert b.lead()
    assert store.spec["holderIdentity"] == "b" and store.spec["leaseTransitions"] == 1
    assert not a.lead()  # a comes back: b holds a valid lease


def test_a_lost_race_is_not_leadership():
    store, clock = FakeLeases(), Clock()
    a = LeaderElector(store, "ns", "lease", "a", 15, monotonic=clock)
    original = store.write_lease

    def racing_write(*args):
        store.spec, store.version = {"holderIdentity": "b", "leaseDurationSeconds": 15}, store.version + 1
        original(*args)

    store.write_lease = racing_write
    assert not a.lead()


def test_release_hands_over_immediately():
    store, clock = FakeLeases(), Clock()
    a = LeaderElector(store, "ns", "lease", "a", 15, monotonic=clock)
    b = LeaderElector(store, "ns", "lease", "b", 15, monotonic=clock)
    assert a.lead()
    a.release()
    assert store.spec["holderIdentity"] is None and not a.leading
    assert b.lead()
