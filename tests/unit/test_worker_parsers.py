"""The HTTP source's incremental parsers, tested on byte chunks (no network): JSON array, NDJSON, objects."""

from __future__ import annotations

import json

import pytest

from exportjob.spec import Column
from exportjob.worker.errors import ExportFailure, Reason
from exportjob.worker.httpclient import public_url
from exportjob.worker.sources.http import ObjectRows, iter_json_array, iter_ndjson


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 5, 64, 100_000])
def test_json_array_parses_identically_whatever_the_chunking(size):
    records = [
        {"id": i, "name": "ü€😀"[i % 3] * (i % 4), "ok": i % 2 == 0, "none": None, "f": -1.5e-3} for i in range(300)
    ]
    data = b"\xef\xbb\xbf \n" + json.dumps(records, indent=1).encode()
    assert [value for value, _ in iter_json_array(chunked(data, size))] == records


def test_json_array_reports_byte_offsets():
    data = '[{"a":"é"}, {"a":1}]'.encode()
    assert [offset for _, offset in iter_json_array([data])] == [1, 13]


@pytest.mark.parametrize(
    "data, expected",
    [
        (b'[{"a":1} {"a":2}]', "byte offset 9: expected ',' or ']'"),
        (b'[{"a":1},{"a":2', "byte offset 15"),
        (b'{"a":1}', "byte offset 0: expected '['"),
        (b'[{"a":1},]', "byte offset 9: Expecting value"),
        (b'[{"\xc3\xa9":nope}]', "byte offset 7: Expecting value"),
        (b"[1] x", "byte offset 4: unexpected data"),
        (b"[", "the array is not closed"),
        (b'["\xff"]', "byte offset 2: invalid UTF-8"),
    ],
)
def test_json_array_malformed_input_names_the_byte_offset(data, expected):
    with pytest.raises(ExportFailure) as caught:
        list(iter_json_array(chunked(data, 3)))
    assert caught.value.reason == Reason.MALFORMED_SOURCE and not caught.value.retryable
    assert expected in caught.value.message


def test_empty_json_array():
    assert list(iter_json_array([b" [ ] "])) == []


def test_ndjson_rows_columns_from_first_object_missing_keys_null():
    objects = ObjectRows(None)
    lines = [b'{"a": 1, "b": "x"}\n', b"\n", b'{"b": "y"}\n', b'{"a": 3, "b": null}']
    assert list(iter_ndjson(lines, objects)) == [(1, "x"), (None, "y"), (3, None)]
    assert objects.columns == ["a", "b"]


def test_ndjson_malformed_line_is_named():
    with pytest.raises(ExportFailure, match=r"line 3: not valid JSON"):
        list(iter_ndjson([b'{"a":1}\n', b'{"a":2}\n', b'{"a":\n'], ObjectRows(None)))
    with pytest.raises(ExportFailure, match=r"line 1: expected a JSON object, got list"):
        list(iter_ndjson([b"[1, 2]\n"], ObjectRows(None)))


def test_extra_keys_fail_without_spec_columns_and_are_ignored_with_them():
    lines = [b'{"a": 1}\n', b'{"a": 2, "z": 9}\n']
    with pytest.raises(ExportFailure, match=r"line 2: key\(s\) 'z' are not among the columns"):
        list(iter_ndjson(lines, ObjectRows(None)))
    chosen = ObjectRows([Column(name="z"), Column(name="a")])
    assert list(iter_ndjson(lines, chosen)) == [(None, 1), (9, 2)]


def test_public_url_hides_credentials_and_query():
    assert public_url("https://user:pw@host:8443/p/rows.json?token=abc#x") == "https://host:8443/p/rows.json"
