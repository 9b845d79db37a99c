"""Every example manifest is valid against the API model, except the ones named invalid-*."""

from pathlib import Path

import pytest
import yaml

from exportjob.spec import SpecError, parse_manifest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def exportjobs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc and doc.get("kind") == "ExportJob"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example(path: Path):
    for manifest in exportjobs(path):
        if path.name.startswith("invalid-"):
            with pytest.raises(SpecError):
                parse_manifest(manifest)
        else:
            assert parse_manifest(manifest).metadata.namespace == "exportjob-demo"


def test_there_are_examples_of_every_source():
    kinds = {
        parse_manifest(m).spec.source.kind for p in EXAMPLES if not p.name.startswith("invalid-") for m in exportjobs(p)
    }
    assert kinds == {"synthetic", "inline", "postgres", "http"}
