"""Result JSON (fields, 4 KiB cap), exit codes and secret redaction."""

from __future__ import annotations

import datetime
import json

from exportjob.worker.credentials import Credentials
from exportjob.worker.errors import (
    PERMANENT_FAILURE,
    RETRYABLE_FAILURE,
    SUCCESS,
    ExportFailure,
    Reason,
    permanent,
    redact,
    retryable,
)
from exportjob.worker.result import MAX_RESULT_BYTES, ExportResult, fit_json

START = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
END = START + datetime.timedelta(seconds=2.5)


def test_success_result_fields():
    result = ExportResult(
        ok=True,
        path="r/o.csv",
        format="csv",
        source="synthetic",
        started_at=START,
        finished_at=END,
        rows=10,
        bytes=100,
        sha256="ab" * 32,
        manifest_path="r/o.csv.manifest.json",
    )
    data = json.loads(result.to_json())
    assert data["ok"] is True and data["rows"] == 10 and data["bytes"] == 100 and data["path"] == "r/o.csv"
    assert data["startedAt"] == "2024-05-01T12:00:00.000Z" and data["finishedAt"] == "2024-05-01T12:00:02.500Z"
    assert data["durationSeconds"] == 2.5 and data["peakMemoryBytes"] > 1_000_000
    assert "reason" not in data and result.exit_code == SUCCESS


def test_failure_result_and_exit_codes():
    failure = permanent(Reason.QUERY_FAILED, "syntax error")
    result = ExportResult.failed(failure, path="x.csv", format="csv", source="postgres", started_at=START)
    data = json.loads(result.to_json())
    assert data["ok"] is False and data["reason"] == "QueryFailed" and data["retryable"] is False
    assert data["message"] == "syntax error" and data["sha256"] is None
    assert result.exit_code == PERMANENT_FAILURE == 65
    again = ExportResult.failed(
        retryable(Reason.SOURCE_TIMEOUT, "t"), path="x", format="csv", source="http", started_at=START
    )
    assert again.exit_code == RETRYABLE_FAILURE == 75
    assert ExportFailure("X", "m", retryable=True).exit_code == 75


def test_result_json_never_exceeds_4_kib_even_with_huge_messages_and_paths():
    for message in ("m" * 10_000, "é" * 5_000, '"\\' * 3_000, "\x01" * 3_000):
        result = ExportResult.failed(
            permanent(Reason.QUERY_FAILED, message),
            path="p/" * 500 + "x.csv",
            format="csv",
            source="postgres",
            started_at=START,
        )
        text = result.to_json()
        assert len(text.encode()) <= MAX_RESULT_BYTES
        data = json.loads(text)
        assert data["reason"] == "QueryFailed" and data["message"].endswith("...")


def test_fit_json_leaves_small_documents_alone():
    assert json.loads(fit_json({"message": "short", "path": "p"})) == {"message": "short", "path": "p"}


def test_redact_hides_the_dsn_and_its_password():
    credentials = Credentials(postgres_dsn="postgresql://app:s3cr3tpw@db:5432/shop", http_bearer_token="tok-123456")
    text = "failed for postgresql://app:s3cr3tpw@db:5432/shop with s3cr3tpw and tok-123456"
    assert redact(text, credentials.secrets()) == "failed for *** with *** and ***"
    assert "s3cr3tpw" not in repr(credentials)


def test_credentials_from_env():
    credentials = Credentials.from_env({"EXPORTJOB_POSTGRES_DSN": "dbname=x", "EXPORTJOB_HTTP_BEARER_TOKEN": ""})
    assert credentials.postgres_dsn == "dbname=x" and credentials.http_bearer_token is None
