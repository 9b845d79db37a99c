"""Secrets never leave the worker, whatever encoding a library used to echo them (issue 9, item 1)."""

from __future__ import annotations

import io
import json
import urllib.parse

import pytest

from exportjob.worker.credentials import Credentials, token_problem
from exportjob.worker.errors import redact
from exportjob.worker.main import JsonLog

SECRET = 'tok"en\\with/odd é\nchars\x00!'


@pytest.mark.parametrize(
    "shown",
    [
        SECRET,
        repr(SECRET),
        repr(SECRET.encode()),
        json.dumps(SECRET),
        json.dumps(SECRET, ensure_ascii=False),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
    ],
    ids=["raw", "repr", "bytes-repr", "json", "json-unicode", "url", "url-plus"],
)
def test_every_encoded_form_is_redacted(shown):
    text = redact(f"Invalid header value {shown} in request", [SECRET])
    assert text.startswith("Invalid header value ") and text.endswith(" in request")
    for piece in ("tok", "odd", "chars"):
        assert piece not in text, text


def test_short_secrets_do_not_blank_ordinary_text():
    assert redact("a b c", ["a"]) == "a b c"


def test_json_log_redacts_fields_before_serialising():
    stream = io.StringIO()
    log = JsonLog(stream, [SECRET])
    log("export.crashed", error=f"ValueError: Invalid header value {SECRET.encode()!r}", nested={"x": [SECRET]})
    line = stream.getvalue()
    record = json.loads(line)
    assert "tok" not in line and "chars" not in line
    assert record["nested"] == {"x": ["***"]}


def test_credentials_strip_surrounding_whitespace_of_file_secrets():
    credentials = Credentials.from_env(
        {"EXPORTJOB_HTTP_BEARER_TOKEN": "  abc.def-ghi\r\n", "EXPORTJOB_POSTGRES_DSN": "host=db\n"}
    )
    assert credentials.http_bearer_token == "abc.def-ghi"
    assert credentials.postgres_dsn == "host=db"
    assert Credentials.from_env({"EXPORTJOB_HTTP_BEARER_TOKEN": " \n"}).http_bearer_token is None


@pytest.mark.parametrize("token, position", [("ab\ncd", 3), ("ab cd", 3), ("ab\x7fcd", 3), ("äbcd", 1)])
def test_token_problem_names_the_position_never_the_value(token, position):
    problem = token_problem(token) or ""
    assert f"character {position} of {len(token)}" in problem
    assert token not in problem


def test_token_problem_accepts_jwts_and_token68():
    assert token_problem("eyJhbGciOi.J9-_~+/abc==") is None
