"""$(VAR) expansion of the process kubelet, against the cases of Kubernetes' expansion tests."""

import pytest

from devcluster.expansion import expand, expand_command, expand_env, mapping_for

CTX = {"VAR_A": "A", "VAR_B": "B", "VAR_EMPTY": "", "VAR_REF": "$(VAR_A)"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_A)___", "___A___"),
        ("$(VAR_A)-$(VAR_B)", "A-B"),
        ("$(VAR_EMPTY)", ""),
        ("$(VAR_REF)", "$(VAR_A)"),  # values are not expanded recursively
        ("$$(VAR_A)", "$(VAR_A)"),  # $$ escapes
        ("$$$(VAR_A)", "$A"),
        ("$$$$(VAR_A)", "$$(VAR_A)"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("$(VAR_A", "$(VAR_A"),  # unterminated
        ("$VAR_A", "$VAR_A"),
        ("$", "$"),
        ("foo$", "foo$"),
        ("$()", "$()"),
        ("no refs", "no refs"),
        ("", ""),
    ],
)
def test_expand(value, expected):
    assert expand(value, mapping_for(CTX)) == expected


def test_env_entries_see_only_earlier_entries():
    env = expand_env(
        [
            ("LATE_REF", "$(LATER)", True),
            ("BASE", "/data", True),
            ("OUT", "$(BASE)/out", True),
            ("SECRET", "$(BASE)", False),  # valueFrom values are taken verbatim
            ("LATER", "x", True),
        ]
    )
    assert env == {"LATE_REF": "$(LATER)", "BASE": "/data", "OUT": "/data/out", "SECRET": "$(BASE)", "LATER": "x"}


def test_command_uses_final_env():
    assert expand_command(["echo", "$(A)", "$$(A)", "$(MISSING)"], {"A": "1"}) == ["echo", "1", "$(A)", "$(MISSING)"]
