"""Label selectors in Kubernetes' text form, and the admin's restriction of which Secrets and claims may be used.

The operator settings `secretSelector` and `claimSelector` (docs/security.md)
narrow what a worker may be given at all: a Secret or PersistentVolumeClaim
whose labels do not match is never mounted or injected, whoever asks. The
syntax is kubectl's `-l`: comma-separated terms `key=value`, `key==value`,
`key!=value`, `key`, `!key`, `key in (a,b)`, `key notin (a,b)`.

`reference_problem` is what the reconciler's prerequisite step calls with the
labels `KubeApi.object_labels` read (None when the object does not exist).
Its messages never say whether an object the requester may not see exists.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_TERM = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ_TERM = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS_TERM = re.compile(rf"^\s*(?P<not>!?)\s*(?P<key>{_KEY})\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in, notin, exists, !exists
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # notin: also true when the key is absent


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for character in text:
        if character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
        if character == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += character
    terms.append(current)
    return terms


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """The requirements of a selector; ValueError naming the bad term."""
    requirements = []
    for term in _split_terms(text):
        if not term.strip():
            raise ValueError(f"empty term in the label selector {text!r}")
        if match := _SET_TERM.match(term):
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            for value in values:
                if not re.fullmatch(_VALUE, value):
                    raise ValueError(f"bad value {value!r} in the label selector term {term.strip()!r}")
            requirements.append(Requirement(match["key"], match["op"], values))
        elif match := _EQ_TERM.match(term):
            operator = "notin" if match["op"] == "!=" else "in"
            requirements.append(Requirement(match["key"], operator, frozenset({match["value"]})))
        elif match := _EXISTS_TERM.match(term):
            requirements.append(Requirement(match["key"], "!exists" if match["not"] else "exists"))
        else:
            raise ValueError(f"cannot parse the label selector term {term.strip()!r}")
    return tuple(requirements)


def selector_matches(selector: str | None, labels: Mapping[str, str]) -> bool:
    """True when `labels` satisfy every term of `selector`; an empty selector matches everything."""
    if not selector:
        return True
    return all(requirement.matches(labels) for requirement in parse_selector(selector))


def reference_problem(
    kind: str, name: str, namespace: str, labels: Mapping[str, str] | None, selector: str | None, setting: str
) -> str | None:
    """Why the ExportJob may not use object `name`, or None.

    `labels` is None when the object does not exist. Not found and not allowed read the same to
    the requester (who may not be allowed to know which Secrets exist); the admin's setting is named
    so that they can tell the two apart from the operator's configuration.
    """
    if labels is not None and selector_matches(selector, labels):
        return None
    hint = f"; the operator only uses {kind}s matching {setting}={selector!r}" if selector else ""
    return f'{kind} "{name}" in namespace "{namespace}" is not available to exports (missing or not allowed{hint})'
