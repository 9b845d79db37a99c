"""Prerequisite checks: found objects are trusted for a while, missing ones looked up every time."""

from exportjob.controller.prerequisites import Prerequisites
from exportjob.controller.settings import OperatorSettings
from exportjob.reasons import Reason
from exportjob.spec import parse_spec

SPEC = parse_spec(
    {
        "format": "csv",
        "output": {"claimName": "exports", "path": "a.csv"},
        "source": {"postgres": {"query": "select 1", "connectionSecretRef": {"name": "pg", "key": "dsn"}}},
    }
)


class Api:
    def __init__(self) -> None:
        self.claims = {"exports"}
        self.secret_ok = True
        self.gets = 0

    def claim_exists(self, namespace: str, name: str) -> bool:
        self.gets += 1
        return name in self.claims

    def service_account_exists(self, namespace: str, name: str) -> bool:
        self.gets += 1
        return True

    def usage_problem(self, kind, namespace, name, selector, setting):
        return None

    def secret_problem(self, namespace: str, name: str, key: str, selector: str | None = None) -> str | None:
        self.gets += 1
        return None if self.secret_ok else f'Secret "{name}" not found in namespace "{namespace}"'


def test_a_thousand_admissions_sharing_a_claim_and_secret_cost_three_lookups():
    api, clock = Api(), [0.0]
    checks = Prerequisites(api, OperatorSettings(), ttl=10, monotonic=lambda: clock[0])
    assert all(checks.missing("ns", SPEC) is None for _ in range(1000))
    assert api.gets == 3
    clock[0] = 11.0
    assert checks.missing("ns", SPEC) is None and api.gets == 6


def test_missing_objects_are_looked_up_again_and_named():
    api = Api()
    api.claims = set()
    checks = Prerequisites(api, OperatorSettings(), ttl=10, monotonic=lambda: 0.0)
    first = checks.missing("ns", SPEC)
    assert first is not None and first.reason == Reason.CLAIM_NOT_FOUND and '"exports" not found' in first.message
    api.claims = {"exports"}
    api.secret_ok = False
    second = checks.missing("ns", SPEC)
    assert second is not None and second.reason == Reason.SECRET_NOT_FOUND
    api.secret_ok = True
    assert checks.missing("ns", SPEC) is None
