"""The HTTP source's egress policy (issue 9, item 6): which resolved addresses a worker may connect to."""

from __future__ import annotations

import pytest

from exportjob.worker.egress import EgressConfigError, EgressPolicy, first_allowed, refusal

POD_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1"}


@pytest.mark.parametrize(
    "address, why",
    [
        ("169.254.169.254", "link-local"),
        ("169.254.0.1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("10.96.0.1", "API server"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_restricted_policy_refuses(address, why):
    assert why in (refusal(address, EgressPolicy.from_env(POD_ENV)) or "")


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.0.0.5", "93.184.216.34", "2001:db8::1"])
def test_restricted_policy_allows_ordinary_addresses(address):
    assert refusal(address, EgressPolicy.from_env(POD_ENV)) is None


def test_unrestricted_allows_everything():
    policy = EgressPolicy.from_env({**POD_ENV, "EXPORTJOB_HTTP_EGRESS": "unrestricted"})
    assert refusal("169.254.169.254", policy) is None and refusal("10.96.0.1", policy) is None


def test_extra_denied_networks():
    policy = EgressPolicy.from_env({"EXPORTJOB_HTTP_DENY_NETWORKS": "192.168.10.0/24, 2001:db8::/32"})
    assert "denied network" in (refusal("192.168.10.7", policy) or "")
    assert "denied network" in (refusal("2001:db8::5", policy) or "")
    assert refusal("192.168.11.7", policy) is None


def test_first_allowed_skips_refused_addresses():
    assert first_allowed(["169.254.169.254", "10.0.0.5"], EgressPolicy()) == ("10.0.0.5", None)
    address, why = first_allowed(["169.254.169.254"], EgressPolicy())
    assert address is None and "link-local" in (why or "")


@pytest.mark.parametrize("env", [{"EXPORTJOB_HTTP_EGRESS": "open"}, {"EXPORTJOB_HTTP_DENY_NETWORKS": "not-a-network"}])
def test_bad_settings_name_the_variable(env):
    with pytest.raises(EgressConfigError, match="EXPORTJOB_HTTP_"):
        EgressPolicy.from_env(env)
