"""The API server rejects what the schema can reject, with the rule's message; nothing invalid is stored."""

from __future__ import annotations

import copy
import json

import pytest
from kubernetes.client.exceptions import ApiException
from operator_harness import ExportJobs

pytestmark = pytest.mark.cluster

VALID = {"format": "csv", "source": {"synthetic": {"records": 10}}, "output": {"claimName": "exports", "path": "a.csv"}}


def variant(**changes):
    spec = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        node = spec
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return spec


INVALID = [
    (
        "two sources",
        variant(source={"synthetic": {"records": 1}, "inline": {"columns": ["a"]}}),
        "exactly one of synthetic, inline, postgres, http must be set",
    ),
    ("no source", variant(source={}), "exactly one of synthetic, inline, postgres, http must be set"),
    ("absolute path", variant(output__path="/etc/passwd"), "must be relative to the volume root, not absolute"),
    ("dot-dot path", variant(output__path="reports/../../x.csv"), "must not contain '..' segments"),
    ("directory path", variant(output__path="reports/"), "must name a file, not a directory"),
    ("pdf options on csv", variant(pdf={"title": "x"}), "pdf options are only allowed with format: pdf"),
    (
        "csv options on pdf",
        variant(format="pdf", csv={"header": False}),
        "csv options are only allowed with format: csv",
    ),
    ("unknown format", variant(format="xlsx"), 'Unsupported value: "xlsx"'),
    ("negative records", variant(source={"synthetic": {"records": -1}}), "should be greater than or equal to 0"),
    ("quote delimiter", variant(csv={"delimiter": '"'}), "must not be a double quote, CR or LF"),
    ("bad claim name", variant(output__claimName="Not_A_Name"), "spec.output.claimName"),
    ("http url scheme", variant(source={"http": {"url": "ftp://x/rows"}}), "spec.source.http.url"),
    (
        "secret inlined instead of referenced",
        variant(source={"postgres": {"query": "select 1", "dsn": "postgres://u:p@h/db"}}),
        "connectionSecretRef",
    ),
    ("priority out of range", variant(priority=5000), "spec.priority"),
    # issue 9, item 14: what the model refuses, the API server refuses too.
    ("NUL in path", variant(output__path="a\u0000b.csv"), "must not contain NUL characters"),
    ("dot as file name", variant(output__path="reports/."), "must name a file, not a directory"),
    (
        "object as an inline cell",
        variant(source={"inline": {"columns": ["a"], "rows": [[{"nested": "object"}]]}}),
        "spec.source.inline.rows[0][0]",  # refused by maxProperties/maxItems 0 (CEL cannot see untyped cells)
    ),
    (
        "list as an inline cell",
        variant(source={"inline": {"columns": ["a"], "rows": [["ok"], [[1, 2]]]}}),
        "spec.source.inline.rows[1][0]",
    ),
]


@pytest.mark.parametrize("case, spec, message", INVALID, ids=[case for case, _, _ in INVALID])
def test_invalid_manifests_are_rejected_with_the_rules_message(exportjobs: ExportJobs, case, spec, message):
    with pytest.raises(ApiException) as raised:
        exportjobs.create("invalid", spec)
    assert raised.value.status == 422, raised.value.body
    assert message in json.loads(raised.value.body)["message"], raised.value.body
    assert not exportjobs.exists("invalid")


def test_valid_manifest_is_stored_with_defaults_applied(exportjobs: ExportJobs):
    exportjobs.create("ok", variant(csv={}))
    stored = exportjobs.get("ok")["spec"]
    assert stored["priority"] == 0 and stored["source"]["synthetic"]["seed"] == 0
    assert stored["csv"] == {
        "delimiter": ",",
        "header": True,
        "encoding": "utf-8",
        "formulaEscape": True,
        "lineTerminator": "crlf",
    }


def test_spec_is_immutable(exportjobs: ExportJobs):
    exportjobs.create("fixed", VALID)
    body = exportjobs.get("fixed")
    body["spec"]["source"]["synthetic"]["records"] = 99
    with pytest.raises(ApiException) as raised:
        exportjobs.custom.replace_namespaced_custom_object(
            "exportjob.io", "v1alpha1", exportjobs.namespace, "exportjobs", "fixed", body
        )
    assert raised.value.status == 422 and "spec is immutable" in raised.value.body
    # Labels and annotations may still change.
    body = exportjobs.get("fixed")
    body["metadata"].setdefault("labels", {})["team"] = "data"
    exportjobs.custom.replace_namespaced_custom_object(
        "exportjob.io", "v1alpha1", exportjobs.namespace, "exportjobs", "fixed", body
    )
