"""Generates the ExportJob CustomResourceDefinition from the typed API models.

`crds/exportjob.io_exportjobs.yaml` is this module's output (`exportjob crd`),
and a unit test fails when the committed file differs from what the models
generate, so the schema the API server enforces and the models the code uses
cannot drift. Pure: builds dictionaries only.

pydantic emits JSON Schema; a CRD needs a *structural* OpenAPI v3 schema:
every node typed, no `$ref`, optional fields expressed by omission rather than
`anyOf: [..., null]`. `structural_schema` performs that conversion, and the
CEL rules below add what a schema alone cannot say.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from exportjob.spec import API_GROUP, API_VERSION, KIND, PLURAL, ExportJobSpec
from exportjob.status import ExportJobStatus

CRD_NAME = f"{PLURAL}.{API_GROUP}"

# CEL rules keyed by the dotted path (within spec) of the node that carries them;
# a path part ending in `[]` goes on to the list's items. The path rules repeat
# check_relative_path (spec.py) so the API server refuses what the model refuses.
# (Inline cells are untyped JSON scalars, which CEL cannot see: objects and lists
# are refused by value validations instead, see `_resolve`; the row width is
# checked by the operator, which fails such an ExportJob with InvalidSpec.)
SPEC_RULES: dict[str, list[dict[str, str]]] = {
    "": [
        {
            "rule": "self == oldSelf",
            "message": "spec is immutable: an ExportJob is a request; create a new ExportJob instead",
        },
        {"rule": "!has(self.pdf) || self.format == 'pdf'", "message": "pdf options are only allowed with format: pdf"},
        {"rule": "!has(self.csv) || self.format == 'csv'", "message": "csv options are only allowed with format: csv"},
    ],
    "source": [
        {
            "rule": "[has(self.synthetic), has(self.inline), has(self.postgres), has(self.http)]"
            ".filter(x, x).size() == 1",
            "message": "exactly one of synthetic, inline, postgres, http must be set",
        },
    ],
    "output.path": [
        {"rule": "!self.startsWith('/')", "message": "must be relative to the volume root, not absolute"},
        {"rule": "!self.split('/').exists(s, s == '..')", "message": "must not contain '..' segments"},
        {"rule": "!self.endsWith('/')", "message": "must name a file, not a directory"},
        {"rule": "!self.contains('\\\\')", "message": "must not contain backslash characters"},
        {"rule": "!self.contains('\\u0000')", "message": "must not contain NUL characters"},
        {"rule": "self != '.' && !self.endsWith('/.')", "message": "must name a file, not a directory"},
    ],
    "csv.delimiter": [
        {"rule": "self != '\"' && self != '\\r' && self != '\\n'", "message": "must not be a double quote, CR or LF"},
    ],
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Status",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Queued, Waiting, Running, Succeeded or Failed.",
    },
    {"name": "Format", "type": "string", "jsonPath": ".spec.format"},
    {"name": "Rows", "type": "integer", "jsonPath": ".status.rows"},
    {"name": "Size", "type": "string", "jsonPath": ".status.size"},
    {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority", "priority": 1},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
    {"name": "Path", "type": "string", "jsonPath": ".spec.output.path", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

_DROPPED_KEYS = {"title", "$defs"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s, drop JSON-Schema-only keys, turn `anyOf [X, null]` into X."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(branches) == 1:
            return _resolve({**branches[0], **rest}, defs)
        # A union of JSON scalars (inline cells): a structural schema cannot type it, and CEL cannot
        # see an untyped node, so objects and lists are refused by value validations that only apply
        # to them: `maxProperties: 0` (an object) and `maxItems: 0` (a list); scalars pass untouched.
        # (An empty {} or [] still passes here; the operator fails it with InvalidSpec.)
        rest.pop("default", None)
        return _resolve(
            {**rest, "nullable": True, "x-kubernetes-preserve-unknown-fields": True, "maxProperties": 0, "maxItems": 0},
            defs,
        )
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields instead
        if key == "properties":
            result[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        else:
            result[key] = _resolve(value, defs)
    return result


def structural_schema(model: type, by_alias: bool = True) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model."""
    raw = model.model_json_schema(by_alias=by_alias)  # type: ignore[attr-defined]
    defs = raw.get("$defs", {})
    return _resolve(raw, defs)


def _node(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = schema
    for part in filter(None, dotted.split(".")):
        name, *items = part.split("[]")
        node = node["properties"][name]
        for _ in items:
            node = node["items"]
    return node


def spec_schema() -> dict[str, Any]:
    schema = structural_schema(ExportJobSpec)
    for path, rules in SPEC_RULES.items():
        _node(schema, path).setdefault("x-kubernetes-validations", []).extend(copy.deepcopy(rules))
    return schema


def status_schema() -> dict[str, Any]:
    schema = structural_schema(ExportJobStatus)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions.pop("default", None)
    return schema


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition as a dictionary."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "annotations": {
                "exportjob.io/generated-by": "exportjob crd (from operator/exportjob/spec.py and status.py)"
            },
            "labels": {
                "app.kubernetes.io/name": "exportjob-operator",
                "app.kubernetes.io/part-of": "exportjob-operator",
            },
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["ej"],
                "categories": ["exports"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    # `--field-selector status.phase!=Succeeded,...`: the operator watches only unfinished exports.
                    "selectableFields": [{"jsonPath": ".status.phase"}],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "ExportJob asks for one CSV or PDF export, run as a bounded worker Job "
                            "that writes a file onto a PersistentVolumeClaim.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as the YAML committed in crds/ (stable key order)."""
    header = "# Generated by `exportjob crd` from operator/exportjob/spec.py and status.py. DO NOT EDIT.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120, allow_unicode=True)
