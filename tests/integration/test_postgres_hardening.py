"""The PostgreSQL source under hostile or odd input (issue 9, items 4, 10 and 12), against a real server.

- Injection: a query that closes the wrapping subquery, COMMITs and runs DDL must not change the database
  on either path (one statement per protocol message; the session itself read-only).
- The COPY path: headers longer than PostgreSQL's 63-byte identifiers, `xml`/`json` values under the formula
  guard, a delimiter that COPY cannot take.
- DSN parameter errors and a NUL delimiter are permanent failures, never retried.
"""

from __future__ import annotations

import csv
import io
import json

import psycopg
import pytest

from exportjob.spec import SpecError, parse_spec
from exportjob.worker.credentials import Credentials
from exportjob.worker.engine import execute
from exportjob.worker.errors import Reason

pytestmark = pytest.mark.postgres


def export(tmp_path, dsn, query, *, fmt="csv", columns=None, csv_options=None):
    spec = {
        "format": fmt,
        "source": {"postgres": {"query": query, "connectionSecretRef": {"name": "pg", "key": "dsn"}}},
        "output": {"path": "out/export." + fmt},
    }
    if columns is not None:
        spec["columns"] = columns
    if csv_options is not None:
        spec["csv"] = csv_options
    return execute(parse_spec(spec), str(tmp_path), Credentials(postgres_dsn=dsn))


def tables(postgres, prefix):
    with psycopg.connect(postgres.dsn()) as connection:
        rows = connection.execute("SELECT relname FROM pg_class WHERE relname LIKE %s", (prefix + "%",)).fetchall()
    return sorted(row[0] for row in rows)


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
@pytest.mark.parametrize(
    "query",
    [
        # Closes the wrapping `SELECT * FROM (` of the COPY path, commits the READ ONLY transaction, runs DDL.
        "SELECT 1 AS x) AS q; COMMIT; CREATE TABLE pwned_{n} (id int); SELECT * FROM (SELECT 1 AS x",
        # The same after switching the session back to read-write.
        "SELECT 1 AS x) AS q; COMMIT; SET default_transaction_read_only = off; CREATE TABLE pwned_{n} (id int); "
        "SELECT * FROM (SELECT 1 AS x",
        # Plain statement stacking (the cursor path does not wrap the query).
        "SELECT 1 AS x; COMMIT; CREATE TABLE pwned_{n} (id int)",
    ],
    ids=["close-subquery", "reset-read-only", "stacked"],
)
def test_injection_attempts_leave_the_database_unchanged(tmp_path, postgres, query, fmt):
    name = f"{fmt}_{abs(hash(query)) % 10_000}"
    result = export(tmp_path, postgres.dsn(), query.format(n=name), fmt=fmt)
    assert not result.ok and (result.reason, result.retryable) == (Reason.QUERY_FAILED, False), result.message
    assert tables(postgres, f"pwned_{name}") == []
    assert list(tmp_path.rglob(f"*.{fmt}")) == []


def test_the_session_is_read_only_even_after_commit(tmp_path, postgres):
    # A function body cannot COMMIT, but the session default must still say read-only (defence in depth).
    result = export(tmp_path, postgres.dsn(), "SELECT current_setting('default_transaction_read_only') AS ro")
    assert result.ok, result.message
    assert (tmp_path / "out/export.csv").read_bytes() == b"ro\r\non\r\n"


def read_csv(tmp_path, delimiter=","):
    text = (tmp_path / "out/export.csv").read_bytes().decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def test_headers_longer_than_63_bytes_are_written_in_full(tmp_path, postgres):
    long_ascii = "total amount in euros including value added tax, rounded to cents"  # 66 bytes
    long_utf8 = "Übersicht " + "ä" * 40  # 90 bytes
    result = export(
        tmp_path,
        postgres.dsn(),
        "SELECT 1 AS a, 'x' AS b, 2 AS c",
        columns=[{"name": "a", "header": long_ascii}, {"name": "b", "header": long_utf8}, {"name": "c"}],
    )
    assert result.ok, result.message
    assert read_csv(tmp_path) == [[long_ascii, long_utf8, "c"], ["1", "x", "2"]]
    manifest = json.loads((tmp_path / "out/export.csv.manifest.json").read_text())
    assert manifest["columns"] == [long_ascii, long_utf8, "c"]


def test_header_quoting_and_guard_match_the_python_writer(tmp_path, postgres):
    result = export(
        tmp_path,
        postgres.dsn(),
        "SELECT 1 AS a, 2 AS b, 3 AS c",
        columns=[{"name": "a", "header": "=cmd"}, {"name": "b", "header": 'say "hi", ok'}, {"name": "c"}],
        csv_options={"delimiter": ";", "lineTerminator": "lf"},
    )
    assert result.ok, result.message
    assert (tmp_path / "out/export.csv").read_bytes() == b'\'=cmd;"say ""hi"", ok";c\n1;2;3\n'


def test_xml_and_json_values_get_the_formula_guard(tmp_path, postgres):
    result = export(
        tmp_path,
        postgres.dsn(),
        "SELECT '=1+2'::xml AS x, E'\\t\"a\"'::json AS j, '-5'::jsonb AS n",
    )
    assert result.ok, result.message
    assert read_csv(tmp_path) == [["x", "j", "n"], ["'=1+2", '\'\t"a"', "-5"]]


@pytest.mark.parametrize("delimiter", ["€", "é", "→"])
def test_a_delimiter_copy_cannot_take_still_exports(tmp_path, postgres, delimiter):
    result = export(
        tmp_path,
        postgres.dsn(),
        "SELECT 1 AS id, 'a,b' AS t, NULL::text AS n UNION ALL SELECT 2, 'c' || chr(8364) || 'd', 'e'",
        csv_options={"delimiter": delimiter},
    )
    assert result.ok, result.message
    assert read_csv(tmp_path, delimiter) == [["id", "t", "n"], ["1", "a,b", ""], ["2", "c€d", "e"]]


@pytest.mark.parametrize(
    "overrides",
    [{"port": "notaport"}, {"sslmode": "bogus"}, {"target_session_attrs": "nonsense"}],
    ids=["port", "sslmode", "target_session_attrs"],
)
def test_invalid_dsn_parameters_are_permanent(tmp_path, postgres, overrides):
    dsn = postgres.dsn(**overrides)
    result = export(tmp_path, dsn, "SELECT 1 AS x")
    assert (result.reason, result.retryable, result.exit_code) == (Reason.INVALID_CREDENTIALS, False, 65)
    key = next(iter(overrides))
    assert key in result.message and postgres.password not in result.message


def test_a_nul_delimiter_is_a_permanent_spec_error():
    spec = {
        "format": "csv",
        "source": {"synthetic": {"records": 1}},
        "output": {"path": "a.csv"},
        "csv": {"delimiter": "\x00"},
    }
    with pytest.raises(SpecError, match=r"spec\.csv\.delimiter"):
        parse_spec(spec)
