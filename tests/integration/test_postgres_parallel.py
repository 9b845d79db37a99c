"""`source.postgres.parallelism`: N ranges of `splitColumn` over N connections sharing one snapshot, written in
order into the one file (real server; a writer commits concurrently to prove the snapshot is shared)."""

from __future__ import annotations

import hashlib
import threading

import psycopg
import pytest

from exportjob.spec import SpecError, parse_spec
from exportjob.worker.credentials import Credentials
from exportjob.worker.engine import execute
from exportjob.worker.errors import Reason
from exportjob.worker.sources.postgres import split_points

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def orders(postgres):
    postgres.execute("DROP TABLE IF EXISTS par_orders")
    postgres.execute(
        "CREATE TABLE par_orders AS SELECT g AS id, 'name ' || g AS name, (g % 7 = 0) AS flag, "
        "CASE WHEN g % 11 = 0 THEN '=cmd' || g ELSE 'n' || g END AS note FROM generate_series(1, 20000) g"
    )
    postgres.execute("INSERT INTO par_orders VALUES (NULL, 'no key', false, 'x'), (NULL, 'no key 2', true, 'y')")
    return "par_orders"


def export(tmp_path, postgres, query, name, **source):
    spec = {
        "format": "csv",
        "source": {"postgres": {"query": query, "connectionSecretRef": {"name": "pg", "key": "dsn"}, **source}},
        "output": {"path": f"out/{name}.csv"},
    }
    return execute(parse_spec(spec), str(tmp_path), Credentials(postgres_dsn=postgres.dsn()))


@pytest.mark.parametrize("parallelism", [2, 3, 4, 16])
def test_parallel_ranges_write_the_same_file_as_one_connection(tmp_path, postgres, orders, parallelism):
    single = export(tmp_path, postgres, "SELECT * FROM par_orders", "one")
    many = export(tmp_path, postgres, "SELECT * FROM par_orders", "many", parallelism=parallelism, splitColumn="id")
    assert single.ok and many.ok, (single.message, many.message)
    data = (tmp_path / "out/many.csv").read_bytes()
    assert data == (tmp_path / "out/one.csv").read_bytes()
    assert many.sha256 == single.sha256 == hashlib.sha256(data).hexdigest()
    assert many.rows == single.rows == 20_002
    assert data.count(b"'=cmd") == 20_000 // 11  # the formula guard holds on every range
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "many.csv",
        "many.csv.manifest.json",
        "one.csv",
        "one.csv.manifest.json",
    ]  # no spill file is left behind


def test_all_ranges_read_one_snapshot_while_others_commit(tmp_path, postgres):
    postgres.execute("CREATE TABLE IF NOT EXISTS par_churn (id serial, at timestamptz default now())")
    stop = threading.Event()

    def churn() -> None:
        with psycopg.connect(postgres.dsn(), autocommit=True) as connection:
            while not stop.is_set():
                connection.execute("INSERT INTO par_churn DEFAULT VALUES")

    writer = threading.Thread(target=churn, daemon=True)
    writer.start()
    try:
        query = (
            "SELECT g AS k, pg_current_snapshot()::text AS snapshot, (SELECT count(*) FROM par_churn) AS seen "
            "FROM generate_series(1, 40000) g"
        )
        result = export(tmp_path, postgres, query, "snap", parallelism=4, splitColumn="k")
    finally:
        stop.set()
        writer.join()
    assert result.ok, result.message
    lines = (tmp_path / "out/snap.csv").read_text().splitlines()[1:]
    assert len(lines) == 40_000
    assert len({line.split(",", 1)[1] for line in lines}) == 1  # one snapshot, one count, in every range


def test_a_failing_range_fails_the_export_and_leaves_nothing(tmp_path, postgres):
    query = "SELECT g AS k, 1 / (g - 39000) AS x FROM generate_series(1, 40000) g"
    result = export(tmp_path, postgres, query, "fail", parallelism=4, splitColumn="k")
    assert (result.reason, result.retryable) == (Reason.QUERY_FAILED, False)
    assert "division by zero" in result.message
    assert list((tmp_path / "out").iterdir()) == []


def test_split_column_errors_are_permanent(tmp_path, postgres, orders):
    result = export(tmp_path, postgres, "SELECT * FROM par_orders", "x", parallelism=2, splitColumn="nope")
    assert (result.reason, result.retryable) == (Reason.INVALID_SPEC, False)
    assert "'nope' is not a column" in result.message and "id, name" in result.message
    result = export(tmp_path, postgres, "SELECT * FROM par_orders", "x", parallelism=2, splitColumn="name")
    assert (result.reason, result.retryable) == (Reason.INVALID_SPEC, False) and "integer" in result.message
    with pytest.raises(SpecError, match="parallelism > 1 needs splitColumn"):
        export(tmp_path, postgres, "SELECT 1", "x", parallelism=2)


def test_empty_results_and_tiny_key_ranges(tmp_path, postgres, orders):
    empty = export(tmp_path, postgres, "SELECT * FROM par_orders WHERE false", "e", parallelism=4, splitColumn="id")
    assert empty.ok and empty.rows == 0
    assert (tmp_path / "out/e.csv").read_bytes() == b"id,name,flag,note\r\n"
    two = export(tmp_path, postgres, "SELECT id FROM par_orders WHERE id <= 2", "t", parallelism=8, splitColumn="id")
    assert two.ok and (tmp_path / "out/t.csv").read_bytes() == b"id\r\n1\r\n2\r\n"


def test_split_points():
    assert split_points(1, 100, 4) == [26, 51, 76]
    assert split_points(1, 2, 8) == [2]
    assert split_points(5, 5, 3) == []
    assert split_points(-10, 9, 2) == [0]
