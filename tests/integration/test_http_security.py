"""The HTTP source as an attacker would use it (issue 9): credentials, redirects, egress, bounds, clean errors.

Every server here listens on 127.0.0.1; addresses the policy refuses are only
ever *resolved* (by an injected resolver), never connected to: the injected
connector fails the test if it is called.
"""

from __future__ import annotations

import csv
import io
import json
import socket

import pytest

from exportjob.spec import parse_spec
from exportjob.worker import egress
from exportjob.worker.credentials import Credentials
from exportjob.worker.egress import EgressPolicy
from exportjob.worker.engine import execute
from exportjob.worker.sources import http as http_source
from exportjob.worker.sources.http import HttpSource

TOKEN = "tok-abc-123-secret"
REF = {"bearerTokenSecretRef": {"name": "api", "key": "token"}}


def export(tmp_path, url, fmt="ndjson", token=None, **source):
    spec = {"format": "csv", "source": {"http": {"url": url, "format": fmt, **source}}, "output": {"path": "h/out.csv"}}
    return execute(parse_spec(spec), str(tmp_path), Credentials(http_bearer_token=token))


def rows(tmp_path):
    return list(csv.reader(io.StringIO((tmp_path / "h/out.csv").read_text(), newline="")))


# --- item 1: the token -------------------------------------------------------------------------------------
def test_token_from_a_file_secret_loses_its_trailing_newline(tmp_path, http_server, monkeypatch):
    monkeypatch.setenv("EXPORTJOB_HTTP_BEARER_TOKEN", TOKEN + "\n")
    http_server.serve("/private", body=b'{"a": 1}\n')
    spec = {
        "format": "csv",
        "source": {"http": {"url": http_server.url("/private"), **REF}},
        "output": {"path": "h/out.csv"},
    }
    result = execute(parse_spec(spec), str(tmp_path), Credentials.from_env())
    assert result.ok, result.message
    assert http_server.requests[-1]["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("bad", [TOKEN + "\nX-Injected: 1", "tok\x00en-value", "tok en-value", "tökén-value"])
def test_unusable_token_is_invalid_credentials_naming_the_key_never_the_value(tmp_path, http_server, bad):
    http_server.serve("/private", body=b'{"a": 1}\n')
    result = export(tmp_path, http_server.url("/private"), token=bad, **REF)
    assert (result.reason, result.retryable) == ("InvalidCredentials", False)
    assert 'key "token" of Secret "api"' in result.message
    text = result.to_json()
    for part in ("tok", "en-value", "X-Injected", json.dumps(bad)[1:-1], repr(bad)[1:-1]):
        assert part not in text.replace("token", "").replace("Invalid", "")
    assert http_server.connections == 0  # refused before connecting


# --- item 2: redirects -------------------------------------------------------------------------------------
def test_same_origin_redirect_keeps_the_token(tmp_path, http_server):
    http_server.serve("/old", status=302, headers={"Location": "/new"})
    http_server.serve("/new", body=b'{"a": 1}\n')
    result = export(tmp_path, http_server.url("/old"), token=TOKEN, **REF)
    assert result.ok, result.message
    assert http_server.requests[-1]["path"] == "/new"
    assert http_server.requests[-1]["authorization"] == f"Bearer {TOKEN}"


def test_cross_origin_redirect_is_followed_without_the_token(tmp_path, http_server):
    # 127.0.0.1 and localhost are different origins (the host differs), both on loopback.
    port = http_server.base_url.rsplit(":", 1)[1]
    http_server.serve("/old", status=307, headers={"Location": f"http://localhost:{port}/elsewhere"})
    http_server.serve("/elsewhere", body=b'{"a": 1}\n')
    result = export(tmp_path, http_server.url("/old"), token=TOKEN, **REF)
    assert result.ok, result.message
    first, second = http_server.requests
    assert first["authorization"] == f"Bearer {TOKEN}"
    assert second["path"] == "/elsewhere" and "authorization" not in second


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/rows", "file:///etc/passwd"])
def test_redirect_to_a_non_http_scheme_is_refused(tmp_path, http_server, location):
    http_server.serve("/old", status=302, headers={"Location": location})
    result = export(tmp_path, http_server.url("/old"))
    assert (result.reason, result.retryable) == ("SourceRejected", False)
    assert "only http and https" in result.message


def test_redirects_are_bounded(tmp_path, http_server):
    http_server.serve("/loop", status=302, headers={"Location": "/loop"})
    result = export(tmp_path, http_server.url("/loop"))
    assert (result.reason, result.retryable) == ("SourceRejected", False)
    assert "more than 5" in result.message
    assert len(http_server.requests) == 6


# --- item 6: egress --------------------------------------------------------------------------------------
class NoConnection:
    """A connector that must never be called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, address, timeout):
        self.calls.append(address)
        raise AssertionError(f"connected to {address} although the policy refuses it")


def resolving_to(address):
    def resolve(host, port, **_):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


def open_with(url, policy, resolve, connect, token=None):
    spec = parse_spec({"format": "csv", "source": {"http": {"url": url}}, "output": {"path": "x.csv"}})
    source = HttpSource(spec.source.http, None, token, policy, resolve=resolve, connect=connect)
    with pytest.raises(Exception) as caught:
        source.open()
    return caught.value


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254"])
def test_metadata_and_link_local_refused_before_connecting(address):
    connect = NoConnection()
    failure = open_with("http://metadata.example/latest", EgressPolicy(), resolving_to(address), connect)
    assert (failure.reason, failure.retryable) == ("EgressDenied", False)
    assert connect.calls == []


def test_api_server_address_refused_before_connecting(tmp_path, http_server, monkeypatch):
    # The API server of this test is the loopback HTTP server: the worker must not even connect to it.
    host, port = http_server.base_url.removeprefix("http://").split(":")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    http_server.serve("/api/v1/secrets", body=b'{"a": 1}\n')
    result = export(tmp_path, http_server.url("/api/v1/secrets"))
    assert (result.reason, result.retryable) == ("EgressDenied", False)
    assert "Kubernetes API server" in result.message
    assert http_server.connections == 0


def test_redirect_towards_a_refused_address_is_refused(tmp_path, http_server, monkeypatch):
    monkeypatch.setenv(egress.DENY_NETWORKS_ENV, "127.0.0.2/32")
    http_server.serve("/old", status=302, headers={"Location": "http://127.0.0.2:9/inside"})
    result = export(tmp_path, http_server.url("/old"))
    assert (result.reason, result.retryable) == ("EgressDenied", False)


def test_unrestricted_setting_allows_the_api_server_address(tmp_path, http_server, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv(egress.EGRESS_ENV, egress.UNRESTRICTED)
    http_server.serve("/r", body=b'{"a": 1}\n')
    assert export(tmp_path, http_server.url("/r")).ok


# --- item 11: URL secrets ------------------------------------------------------------------------------------
def test_user_info_in_the_url_is_a_permanent_spec_error_that_does_not_echo_it(tmp_path, http_server):
    http_server.serve("/r", body=b'{"a": 1}\n')
    url = http_server.url("/r").replace("http://", "http://alice:hunter2-pass@")
    result = export(tmp_path, url + "?sig=query-secret")
    assert (result.reason, result.retryable) == ("InvalidSpec", False)
    assert "hunter2" not in result.message and "alice" not in result.message and "query-secret" not in result.message
    assert http_server.connections == 0


@pytest.mark.parametrize("url", ["/r?sig=query-secret x", "/r?sig=query-secret\x7f", "PORT"])
def test_unusable_urls_give_a_permanent_error_without_the_query(tmp_path, http_server, url):
    url = "http://127.0.0.1:99999/r?sig=query-secret" if url == "PORT" else http_server.url(url)
    result = export(tmp_path, url)
    assert (result.reason, result.retryable) == ("InvalidSpec", False)
    assert "query-secret" not in result.message


# --- item 13: total deadline ---------------------------------------------------------------------------------
def test_headers_trickling_in_are_bounded_by_timeout_seconds_in_total(tmp_path, http_server):
    http_server.serve("/slow", header_trickle=0.05)  # about 4 s for the header block, 0.05 s per byte
    result = export(tmp_path, http_server.url("/slow"), timeoutSeconds=1)
    assert (result.reason, result.retryable) == ("SourceTimeout", True)
    assert "in total" in result.message


# --- item 5: one line without a newline ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"a,b\r\n" + b"1," * 600_000 + b"2\r\n",  # one huge line of small fields
        b'a,b\r\n1,"' + b"x\n" * 600_000 + b'"\r\n',  # one huge record of short lines (a quoted field)
    ],
)
def test_csv_record_longer_than_the_limit_is_malformed(tmp_path, http_server, monkeypatch, body):
    monkeypatch.setattr(http_source, "MAX_RECORD_BYTES", 64 * 1024)
    http_server.serve("/big.csv", body=lambda: [body[i : i + 65536] for i in range(0, len(body), 65536)], chunked=True)
    result = export(tmp_path, http_server.url("/big.csv"), fmt="csv")
    assert (result.reason, result.retryable) == ("MalformedSource", False)
    assert "line 2: record longer than 65536 bytes" in result.message


def test_csv_records_under_the_limit_still_parse(tmp_path, http_server, monkeypatch):
    monkeypatch.setattr(http_source, "MAX_RECORD_BYTES", 64 * 1024)
    body = b"a,b\r\n" + b"".join(b"%d,%s\r\n" % (i, b"y" * 1000) for i in range(200))
    http_server.serve("/ok.csv", body=body)
    result = export(tmp_path, http_server.url("/ok.csv"), fmt="csv")
    assert result.ok and result.rows == 200


# --- item 8: deep JSON and huge numbers ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["ndjson", "json"])
@pytest.mark.parametrize("record", [b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"a": ' + b"9" * 5000 + b"}"])
def test_deep_json_and_huge_integers_are_malformed_not_crashes(tmp_path, http_server, fmt, record):
    body = record + b"\n" if fmt == "ndjson" else b"[" + record + b"]"
    http_server.serve("/r", body=body)
    result = export(tmp_path, http_server.url("/r"), fmt=fmt)
    assert (result.reason, result.retryable) == ("MalformedSource", False), result.message


# --- item 1, every channel: the worker process's termination log, stdout, stderr; the CLI ----------------------
@pytest.mark.parametrize("program", ["exportjob-worker", "exportjob"])
def test_a_token_with_an_inner_newline_leaks_into_no_channel(tmp_path, http_server, program):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    http_server.serve("/private", body=b'{"a": 1}\n')
    spec = {
        "format": "csv",
        "source": {"http": {"url": http_server.url("/private"), **REF}},
        "output": {"path": "h/out.csv"},
    }
    binary = str(Path(sys.executable).parent / program)
    termination = tmp_path / "termination-log"
    if program == "exportjob-worker":
        args = [binary, "--spec-json", json.dumps(spec), "--output-root", str(tmp_path / "out")]
        args += ["--termination-log", str(termination)]
    else:
        manifest = tmp_path / "export.yaml"
        manifest.write_text(yaml.safe_dump({"apiVersion": "exportjob.io/v1alpha1", "kind": "ExportJob", "spec": spec}))
        args = [binary, "run", "-f", str(manifest), "--output-dir", str(tmp_path / "out")]
    env = {**os.environ, "EXPORTJOB_HTTP_BEARER_TOKEN": "secret-part-one\nsecret-part-two\n"}
    completed = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert completed.returncode == 65, completed.stderr
    channels = completed.stdout + completed.stderr + (termination.read_text() if termination.exists() else "")
    assert "InvalidCredentials" in channels
    assert "secret-part" not in channels
    assert http_server.connections == 0
