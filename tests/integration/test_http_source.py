"""The HTTP source against a local HTTP server: NDJSON, CSV, JSON arrays, chunked streams, failures."""

from __future__ import annotations

import csv
import io
import json

import pytest

from exportjob.spec import parse_spec
from exportjob.worker.credentials import Credentials
from exportjob.worker.engine import execute

RECORDS = [{"id": i, "name": f"name {i}", "amount": -i * 1.5, "tag": "=x" if i == 2 else None} for i in range(1, 6)]


def export(tmp_path, url, fmt="ndjson", columns=None, token=None, **source):
    spec = {"format": "csv", "source": {"http": {"url": url, "format": fmt, **source}}, "output": {"path": "h/out.csv"}}
    if columns:
        spec["columns"] = columns
    return execute(parse_spec(spec), str(tmp_path), Credentials(http_bearer_token=token))


def rows(tmp_path):
    return list(csv.reader(io.StringIO((tmp_path / "h/out.csv").read_text(), newline="")))


EXPECTED = [["id", "name", "amount", "tag"]] + [
    [str(r["id"]), r["name"], repr(r["amount"]), "'=x" if r["tag"] else ""] for r in RECORDS
]


def test_ndjson_streamed_in_chunks(tmp_path, http_server):
    body = b"".join(json.dumps(r).encode() + b"\n" for r in RECORDS)
    http_server.serve("/rows.ndjson", body=lambda: [body[i : i + 7] for i in range(0, len(body), 7)], chunked=True)
    result = export(tmp_path, http_server.url("/rows.ndjson"))
    assert result.ok, result.message
    assert result.rows == 5 and rows(tmp_path) == EXPECTED
    assert http_server.requests[0]["accept"] == "application/x-ndjson"


def test_json_array_streamed_in_chunks(tmp_path, http_server):
    body = json.dumps(RECORDS, indent=2).encode()
    http_server.serve("/rows.json", body=lambda: [body[i : i + 5] for i in range(0, len(body), 5)], chunked=True)
    result = export(tmp_path, http_server.url("/rows.json"), fmt="json")
    assert result.ok, result.message
    assert rows(tmp_path) == EXPECTED


def test_csv_source_with_projection(tmp_path, http_server):
    body = '\ufeffid,name,note\r\n1,Ann,"multi\nline"\r\n2,Bob,-3.5\r\n3,Cy,-x\r\n'.encode()
    http_server.serve("/rows.csv", body=body, content_type="text/csv")
    result = export(
        tmp_path, http_server.url("/rows.csv"), fmt="csv", columns=[{"name": "note", "header": "Note"}, {"name": "id"}]
    )
    assert result.ok, result.message
    assert rows(tmp_path) == [["Note", "id"], ["multi\nline", "1"], ["-3.5", "2"], ["'-x", "3"]]


def test_spec_columns_select_keys_from_objects(tmp_path, http_server):
    http_server.serve("/r", body=b'{"a": 1, "b": 2}\n{"b": 3, "c": 4}\n')
    result = export(tmp_path, http_server.url("/r"), columns=[{"name": "b"}, {"name": "c", "header": "C"}])
    assert result.ok and rows(tmp_path) == [["b", "C"], ["2", ""], ["3", "4"]]


@pytest.mark.parametrize(
    "fmt, body, where",
    [
        ("ndjson", b'{"a": 1}\n{"a": 2}\n{"a": oops}\n', "line 3"),
        ("csv", b"a,b\n1,2\n3\n", "line 3"),
        ("json", b'[{"a": 1}, {"a": 2}, {"a": ]', "byte offset 27"),
    ],
)
def test_malformed_record_is_permanent_and_named(tmp_path, http_server, fmt, body, where):
    http_server.serve("/bad", body=body)
    result = export(tmp_path, http_server.url("/bad"), fmt=fmt)
    assert (result.reason, result.retryable) == ("MalformedSource", False)
    assert where in result.message
    assert not list(tmp_path.rglob("*.csv")) and not list(tmp_path.rglob("*.part"))


def test_server_error_is_retryable_and_client_error_permanent(tmp_path, http_server):
    http_server.serve("/down", status=503, body=b"busy")
    result = export(tmp_path, http_server.url("/down?token=secret123"))
    assert (result.reason, result.retryable, result.exit_code) == ("SourceUnreachable", True, 75)
    assert "503" in result.message and "secret123" not in result.message
    result = export(tmp_path, http_server.url("/missing"))
    assert (result.reason, result.retryable, result.exit_code) == ("SourceRejected", False, 65)
    assert "HTTP 404" in result.message


def test_connection_refused_is_retryable(tmp_path, unused_port):
    result = export(tmp_path, f"http://127.0.0.1:{unused_port}/rows.ndjson", timeoutSeconds=5)
    assert (result.reason, result.retryable) == ("SourceUnreachable", True)
    assert "refused" in result.message.lower()


def test_bearer_token_is_sent_and_required(tmp_path, http_server):
    http_server.serve("/private", body=b'{"a": 1}\n')
    ref = {"bearerTokenSecretRef": {"name": "api", "key": "token"}}
    result = export(tmp_path, http_server.url("/private"), **ref)
    assert result.reason == "MissingCredentials" and "EXPORTJOB_HTTP_BEARER_TOKEN" in result.message
    result = export(tmp_path, http_server.url("/private"), token="tok-abc-123", **ref)
    assert result.ok and http_server.requests[-1]["authorization"] == "Bearer tok-abc-123"
