"""The committed CRD is exactly what the API models generate, and it is structural."""

from pathlib import Path

import yaml

from exportjob.crd import build_crd, render_crd_yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "exportjob.io_exportjobs.yaml"


def test_committed_crd_matches_the_models():
    assert CRD_FILE.read_text() == render_crd_yaml(), "crds/ is stale: run `make crds`"


def _walk(node, path="$"):
    yield path, node
    for key in ("properties",):
        for name, child in (node.get(key) or {}).items():
            yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def test_every_schema_node_is_typed_and_ref_free():
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"


def test_descriptions_reach_kubectl_explain():
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "exactly one" in spec["properties"]["source"]["description"].lower()
    assert spec["properties"]["output"]["properties"]["path"]["description"]


def test_names_printer_columns_and_status_subresource():
    crd = build_crd()["spec"]
    assert crd["names"]["shortNames"] == ["ej"] and crd["names"]["categories"]
    version = crd["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Status"]["jsonPath"] == ".status.phase"
    assert "Queue" not in columns  # positions are computed on demand (exportjob queue), not stored
    assert {"Format", "Rows", "Size", "Age"} <= set(columns)


def test_conditions_are_a_map_list_keyed_by_type():
    status = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_yaml_round_trips():
    assert yaml.safe_load(CRD_FILE.read_text()) == build_crd()
