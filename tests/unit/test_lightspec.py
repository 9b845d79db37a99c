"""`exportjob.lightspec`, the worker's check without pydantic, against the models of `exportjob.spec`.

The rule under test: lightspec accepts a subset of what the models accept, never more, and what it
accepts it reads to the same values (what it returns None for, the worker hands to the models). Every
field of every model is mutated with a pool of values at and beyond its limits, keys are removed,
added and respelled; the valid specs the operator writes must take the fast path.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from exportjob import lightspec, spec
from exportjob.spec import SpecError, parse_spec

REF = {"name": "pg", "key": "dsn"}
FULL = [
    {
        "format": "csv",
        "source": {
            "postgres": {
                "query": "SELECT * FROM orders",
                "connectionSecretRef": REF,
                "fetchSize": 500,
                "statementTimeoutSeconds": 60,
                "parallelism": 2,
                "splitColumn": "id",
            }
        },
        "columns": [{"name": "id", "header": "Order"}, {"name": "email"}],
        "output": {"claimName": "exports", "path": "reports/orders.csv"},
        "csv": {
            "delimiter": ";",
            "header": False,
            "encoding": "latin-1",
            "formulaEscape": False,
            "lineTerminator": "lf",
        },
        "priority": 5,
        "backoffLimit": 2,
        "activeDeadlineSeconds": 600,
        "ttlSecondsAfterFinished": 0,
    },
    {
        "format": "pdf",
        "source": {"synthetic": {"records": 10, "seed": 3}},
        "output": {"path": "a.pdf"},
        "pdf": {"title": "T", "orientation": "portrait", "pageSize": "Letter", "fontSize": 9, "fonts": ["DejaVuSans"]},
    },
    {
        "format": "csv",
        "source": {"inline": {"columns": ["a", "b"], "rows": [["x", 1], [None, 1.5], [True, "=1"]]}},
        "output": {"path": "inline.csv"},
    },
    {
        "format": "csv",
        "source": {
            "http": {
                "url": "https://example.com/rows",
                "format": "csv",
                "timeoutSeconds": 5,
                "bearerTokenSecretRef": {"name": "tok", "key": "t"},
            }
        },
        "output": {"path": "h.csv"},
    },
    {
        "format": "csv",
        "source": {"postgres": {"query": "SELECT 1", "connectionSecretRef": REF}},
        "output": {"path": "p"},
    },
]

POOL: list[Any] = [
    None, True, False, 0, 1, -1, 2, 4.9, 5, 5.0, 14, 14.1, 16, 17, 20, 21, 99, 100, 3600, 3601, 86_400, 86_401,
    604_800, 604_801, 2_592_000, 2_592_001, 1_000_000, 1_000_001, 1_000_000_000, 1_000_000_001, 2**31 - 1, 2**31,
    -1000, -1001, 1000, 1001, 1.5, "5", "true", "", "a", "A", "ab c", "x" * 63, "x" * 253, "x" * 254, "x" * 256,
    "x" * 257, "x" * 1024, "x" * 1025, "x" * 4097, "q" * 65_537, "abc\n", "a-b.c", "-a", "a-", "a..b", "a_b",
    "csv", "pdf", "lf", "crlf", "utf-8", "utf-8-sig", "latin-1", "ndjson", "json", "portrait", "landscape", "A3",
    "Legal", "DejaVuSans", "NotoSansCJK-JP", ",", ";", '"', "\n", "\x00", "é", "\ud800", "../x", "/abs", "dir/",
    "a\\b", ".", "http://h", "https://h/x", "ftp://h", " https://h", "SELECT id FROM t", "SELECT * FROM t",
    [], ["a"], [{}], ["DejaVuSans"] * 7, [{"name": "id"}], {}, {"name": "s", "key": "k"}, math.inf, math.nan,
]  # fmt: skip


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    data = copy.deepcopy(data)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def value_at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def removed(data: Any, path: tuple[Any, ...]) -> Any:
    data = copy.deepcopy(data)
    target = data
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return data


def plain(value: Any) -> Any:
    """A lightspec object as the dict `model_dump()` gives for the model."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def mutations() -> list[Any]:
    found = []
    for base in FULL:
        for path in paths(base):
            found += [replaced(base, path, value) for value in POOL]
            if isinstance(path[-1], str):
                found.append(removed(base, path))
                parent = path[:-1]
                found.append(replaced(base, (*parent, "unknownField"), 1))
                snake = "".join("_" + c.lower() if c.isupper() else c for c in path[-1])
                if snake != path[-1]:
                    found.append(replaced(removed(base, path), (*parent, snake), value_at(base, path)))
    for base in FULL:  # a second source, no source, options of the other format
        found.append(replaced(base, ("source", "synthetic"), {"records": 1}))
        found.append(replaced(base, ("source",), {}))
        found.append(replaced(base, ("csv",), {}))
        found.append(replaced(base, ("pdf",), {}))
    return found


def agrees(data: Any) -> bool:
    """Assert the subset rule for `data`; True when lightspec accepted it."""
    light = lightspec.parse(data)
    if light is None:
        return False
    model = parse_spec(data)  # raises SpecError if lightspec accepted something invalid
    assert plain(light) == model.model_dump(), data
    return True


def test_mutations_are_accepted_only_when_valid_and_read_to_the_same_values():
    cases = mutations()
    accepted = rejected_by_models = 0
    for data in cases:
        try:
            accepted += agrees(data)
        except SpecError as error:
            pytest.fail(f"lightspec accepted a spec the models reject ({error}): {data}")
        if lightspec.parse(data) is None:
            try:
                parse_spec(data)
            except SpecError:
                rejected_by_models += 1
    # the generated cases exercise both sides: many valid mutations take the fast path, many invalid ones don't
    assert len(cases) > 5000
    assert accepted > 1000 and rejected_by_models > 1000, (accepted, rejected_by_models)


@pytest.mark.parametrize("data", FULL)
def test_full_specs_take_the_fast_path(data):
    assert agrees(data)


def test_examples_take_the_fast_path():
    checked = 0
    for path in sorted((Path(__file__).parents[2] / "examples").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "ExportJob":
                try:
                    parse_spec(document["spec"])
                except SpecError:
                    assert lightspec.parse(document["spec"]) is None, path
                    continue
                assert agrees(document["spec"]), path
                checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    "data",
    [
        {**FULL[4], "priority": "5"},  # lax spellings the models accept: left to them
        {**FULL[4], "priority": 5.0},
        {**FULL[4], "csv": {"header": 1}},
        {**FULL[4], "output": {"path": "p", "claim_name": "c"}},
    ],
)
def test_unusual_but_valid_spellings_are_left_to_the_models(data):
    assert lightspec.parse(data) is None
    parse_spec(data)


def test_sources_properties_and_defaults_read_as_the_models_do():
    light = lightspec.parse(FULL[4])
    model = parse_spec(FULL[4])
    assert light is not None
    assert light.source.kind == model.source.kind == "postgres"
    assert light.csv_options == lightspec.CsvOptions() and plain(light.csv_options) == model.csv_options.model_dump()
    assert plain(light.pdf_options) == model.pdf_options.model_dump()
    columns = lightspec.parse(FULL[0]).columns  # type: ignore[union-attr]
    assert [c.title for c in columns] == [c.title for c in parse_spec(FULL[0]).columns] == ["Order", "email"]


MODELS = {
    lightspec.SecretKeyRef: spec.SecretKeyRef,
    lightspec.SyntheticSource: spec.SyntheticSource,
    lightspec.InlineSource: spec.InlineSource,
    lightspec.PostgresSource: spec.PostgresSource,
    lightspec.HttpSource: spec.HttpSource,
    lightspec.Source: spec.Source,
    lightspec.Column: spec.Column,
    lightspec.Output: spec.Output,
    lightspec.CsvOptions: spec.CsvOptions,
    lightspec.PdfOptions: spec.PdfOptions,
    lightspec.ExportJobSpec: spec.ExportJobSpec,
}


@pytest.mark.parametrize(("light", "model"), MODELS.items(), ids=[m.__name__ for m in MODELS.values()])
def test_every_model_field_and_default_is_mirrored(light, model):
    """A field added to a model fails here until lightspec knows it (else the fast path would refuse it)."""
    assert set(light._fields) == set(model.model_fields)
    for name, default in light._field_defaults.items():
        assert model.model_fields[name].get_default(call_default_factory=True) == default, name
