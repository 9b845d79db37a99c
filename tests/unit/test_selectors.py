"""The admin's restriction of usable Secrets and claims (issue 9, item 3): label selectors, one message."""

from __future__ import annotations

import pytest

from exportjob.controller.kube import secret_unavailable
from exportjob.controller.selectors import parse_selector, reference_problem, selector_matches
from exportjob.controller.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    "selector, labels, expected",
    [
        ("exportjob.io/usable=true", {"exportjob.io/usable": "true"}, True),
        ("exportjob.io/usable=true", {"exportjob.io/usable": "false"}, False),
        ("exportjob.io/usable==true", {}, False),
        ("tier!=prod", {}, True),
        ("tier!=prod", {"tier": "prod"}, False),
        ("exportjob.io/usable", {"exportjob.io/usable": ""}, True),
        ("!kubernetes.io/service-account.name", {"kubernetes.io/service-account.name": "x"}, False),
        ("team in (a, b),exportjob.io/usable", {"team": "b", "exportjob.io/usable": "1"}, True),
        ("team notin (a,b)", {"team": "a"}, False),
        ("", {}, True),
    ],
)
def test_selector_matches(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


@pytest.mark.parametrize("bad", ["a=b,", "a in (b", "=x", "a b"])
def test_bad_selector_is_refused(bad):
    with pytest.raises(ValueError):
        parse_selector(bad)


def test_bad_selector_setting_names_the_variable():
    with pytest.raises(SettingsError, match="EXPORTJOB_SECRET_SELECTOR"):
        load_settings([], {"EXPORTJOB_SECRET_SELECTOR": "a in (b"})
    assert load_settings([], {"EXPORTJOB_CLAIM_SELECTOR": "x=y"}).claim_selector == "x=y"


def test_missing_and_forbidden_read_the_same_to_the_requester():
    kind = "PersistentVolumeClaim"
    missing = reference_problem(kind, "data", "team-a", None, "usable=yes", "claimSelector")
    forbidden = reference_problem(kind, "data", "team-a", {"other": "1"}, "usable=yes", "claimSelector")
    assert missing == forbidden and "claimSelector" in (missing or "")
    assert reference_problem(kind, "data", "team-a", {"usable": "yes"}, "usable=yes", "claimSelector") is None


def test_secret_message_does_not_tell_a_missing_secret_from_a_missing_key():
    assert "does not exist or has no key" in secret_unavailable("team-a", "db", "dsn")
    assert "secretSelector 'usable=yes'" in secret_unavailable("team-a", "db", "dsn", "usable=yes")


def test_http_egress_settings_reach_the_worker_env():
    from exportjob.controller.manifests import build_worker_job
    from exportjob.spec import parse_spec

    settings = load_settings(
        [],
        {"EXPORTJOB_WORKER_HTTP_EGRESS": "unrestricted", "EXPORTJOB_WORKER_HTTP_DENY_NETWORKS": "10.0.0.1,10.1.0.0/16"},
    )
    spec = parse_spec(
        {
            "format": "csv",
            "source": {"http": {"url": "https://x.example/r"}},
            "output": {"claimName": "c", "path": "a.csv"},
        }
    )
    job = build_worker_job(name="e", namespace="n", uid="u", spec=spec, settings=settings)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EXPORTJOB_HTTP_EGRESS"] == "unrestricted"
    assert env["EXPORTJOB_HTTP_DENY_NETWORKS"] == "10.0.0.1,10.1.0.0/16"
    with pytest.raises(SettingsError, match="EXPORTJOB_WORKER_HTTP_DENY_NETWORKS"):
        load_settings([], {"EXPORTJOB_WORKER_HTTP_DENY_NETWORKS": "nope"})
