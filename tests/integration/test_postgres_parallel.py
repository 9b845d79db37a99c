"""`source.postgres.parallelism`: N ranges of `splitColumn` over N connections sharing one snapshot, written in
order into the one file (real server; a writer commits concurrently to prove the snapshot is shared)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from exportjob.spec import SpecError, parse_spec
from exportjob.worker.credentials import Credentials
from exportjob.worker.engine import execute
from exportjob.worker.errors import Reason
from exportjob.worker.sources.postgres import split_points

pytestmark = pytest.mark.postgres

WORKER = str(Path(sys.executable).parent / "exportjob-worker")


def range_processes(parent: int) -> list[int]:
    """The live range processes (`postgres_copy`) whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, ...
        if int(fields[1]) == parent and fields[0] != "Z" and b"postgres_copy" in cmdline:
            found.append(int(entry.name))
    return found


def sleeping_queries(postgres, marker: str) -> int:
    """Server backends running a query that contains `marker` (other than this one)."""
    with psycopg.connect(postgres.dsn(), autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
            "AND strpos(query, %s) > 0",
            (marker,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="module")
def nap(postgres):
    """par_nap(seconds, value): sleeps in the server, then returns value::int. STABLE, so that it does not keep
    the planner from flattening the query: the bounds query (min/max of the key) never calls it."""
    postgres.execute(
        "CREATE OR REPLACE FUNCTION par_nap(seconds float8, value text) RETURNS int STABLE LANGUAGE plpgsql "
        "AS $$ BEGIN PERFORM pg_sleep(seconds); RETURN value::int; END $$"
    )
    return "par_nap"


def wait_for(condition, seconds: float = 60) -> bool:
    """Poll `condition` until it holds or `seconds` pass (a bound for slow machines, not a measurement)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def orders(postgres):
    postgres.execute("DROP TABLE IF EXISTS par_orders")
    postgres.execute(
        "CREATE TABLE par_orders AS SELECT g AS id, 'name ' || g AS name, (g % 7 = 0) AS flag, "
        "CASE WHEN g % 11 = 0 THEN '=cmd' || g ELSE 'n' || g END AS note FROM generate_series(1, 20000) g"
    )
    postgres.execute("INSERT INTO par_orders VALUES (NULL, 'no key', false, 'x'), (NULL, 'no key 2', true, 'y')")
    return "par_orders"


def spec_for(query: str, path: str, **source) -> dict:
    return {
        "format": "csv",
        "source": {"postgres": {"query": query, "connectionSecretRef": {"name": "pg", "key": "dsn"}, **source}},
        "output": {"path": path},
    }


def export(tmp_path, postgres, query, name, **source):
    spec = spec_for(query, f"out/{name}.csv", **source)
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


@pytest.mark.parametrize("parallelism", [2, 4, 16])
def test_block_ranges_of_a_plain_table_write_the_same_file_as_one_connection(tmp_path, postgres, orders, parallelism):
    postgres.execute("DELETE FROM par_orders WHERE id % 97 = 0")  # holes: pages of different fill
    postgres.execute("INSERT INTO par_orders SELECT -id, name, flag, note FROM par_orders WHERE id % 89 = 0")
    try:
        query = 'SELECT  *  from public."par_orders"'
        single = export(tmp_path, postgres, query, "one")
        many = export(tmp_path, postgres, query, "many", parallelism=parallelism)
        assert single.ok and many.ok, (single.message, many.message)
        data = (tmp_path / "out/many.csv").read_bytes()
        assert data == (tmp_path / "out/one.csv").read_bytes()
        assert many.sha256 == single.sha256 and many.rows == single.rows
        assert many.rows == 20_002 - 20_000 // 97 + (20_000 // 89 - 20_000 // (89 * 97))
    finally:
        postgres.execute("DELETE FROM par_orders WHERE id < 0")
        postgres.execute(
            "INSERT INTO par_orders SELECT g, 'name ' || g, (g % 7 = 0), CASE WHEN g % 11 = 0 THEN '=cmd' || g "
            "ELSE 'n' || g END FROM generate_series(1, 20000) g WHERE g % 97 = 0"
        )


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
    assert range_processes(os.getpid()) == []


def test_a_failing_range_fails_the_export_while_the_first_range_still_runs(tmp_path, postgres, nap):
    # Range 0 (k < 2001) sleeps, then fails with its own error; range 1 (a range process) fails at once.
    # The export reports range 1's error: it did not wait for range 0, whose query was cancelled.
    query = (
        "SELECT g AS k, CASE WHEN g = 1 THEN par_nap(60, 'late') ELSE 1 / (g - 3999) END AS x "
        "FROM generate_series(1, 4000) g"
    )
    result = export(tmp_path, postgres, query, "fast", parallelism=2, splitColumn="k")
    assert (result.reason, result.retryable) == (Reason.QUERY_FAILED, False)
    assert "division by zero" in result.message and "late" not in result.message
    assert list((tmp_path / "out").iterdir()) == []
    assert range_processes(os.getpid()) == []
    assert wait_for(lambda: sleeping_queries(postgres, "par_nap(60") == 0)  # range 0's query was cancelled


def test_a_range_process_that_dies_without_an_answer_is_a_crash_and_leaves_nothing(
    tmp_path, postgres, orders, monkeypatch
):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the range processes exit 1 at once
    with pytest.raises(RuntimeError, match="exited with code 1 without a result"):
        export(tmp_path, postgres, "SELECT * FROM par_orders", "dead", parallelism=3, splitColumn="id")
    assert list((tmp_path / "out").iterdir()) == []
    assert range_processes(os.getpid()) == []


def test_a_range_process_that_hits_a_full_disk_fails_the_export(tiny_volume, postgres):
    # Keys 1..10, then 1,000,011..: range 0 holds 10 short rows, range 1 (a range process) ~4 MB for 1 MiB.
    query = (
        "SELECT CASE WHEN g <= 10 THEN g ELSE g + 1000000 END AS k, "
        "CASE WHEN g > 10 THEN repeat('x', 1000) END AS pad FROM generate_series(1, 4000) g"
    )
    spec = spec_for(query, "reports/full.csv", parallelism=2, splitColumn="k")
    result = execute(parse_spec(spec), tiny_volume, Credentials(postgres_dsn=postgres.dsn()))
    assert (result.reason, result.retryable) == (Reason.DISK_FULL, True)
    assert "No space left on device" in result.message and "reports/full.csv" in result.message
    assert sorted(p.name for p in Path(tiny_volume).rglob("*")) == ["reports"]
    assert range_processes(os.getpid()) == []


def test_sigterm_stops_the_range_processes_and_leaves_nothing(tmp_path, postgres, nap):
    # Range 1 sleeps in the server; the worker is told to stop while it waits for that range.
    query = "SELECT g AS k, CASE WHEN g = 4000 THEN par_nap(61, '1') END AS x FROM generate_series(1, 4000) g"
    spec = spec_for(query, "out/term.csv", parallelism=3, splitColumn="k")
    log = tmp_path / "log"
    root = tmp_path / "root"
    root.mkdir()
    process = subprocess.Popen(
        [WORKER, "--spec-json", json.dumps(spec), "--output-root", str(root), "--termination-log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "EXPORTJOB_POSTGRES_DSN": postgres.dsn()},
    )
    try:
        started = wait_for(lambda: sleeping_queries(postgres, "par_nap(61") == 1 or process.poll() is not None)
        assert started and process.poll() is None, process.communicate(timeout=60)
        children = range_processes(process.pid)
        assert children  # range 2's, sleeping (range 1's may be done: it exits once it has answered)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 75
    assert json.loads(log.read_text())["reason"] == "Interrupted"
    assert [p for p in root.rglob("*") if p.is_file()] == []  # no partial file, no spill file
    assert range_processes(process.pid) == [] and not any(Path(f"/proc/{pid}").exists() for pid in children)
    assert wait_for(lambda: sleeping_queries(postgres, "par_nap(61") == 0)  # the range cancelled its query


def test_split_column_errors_are_permanent(tmp_path, postgres, orders):
    result = export(tmp_path, postgres, "SELECT * FROM par_orders", "x", parallelism=2, splitColumn="nope")
    assert (result.reason, result.retryable) == (Reason.INVALID_SPEC, False)
    assert "'nope' is not a column" in result.message and "id, name" in result.message
    result = export(tmp_path, postgres, "SELECT * FROM par_orders", "x", parallelism=2, splitColumn="name")
    assert (result.reason, result.retryable) == (Reason.INVALID_SPEC, False) and "integer" in result.message
    # Neither splitColumn nor SELECT * FROM table: refused by the spec's validation, before any worker runs.
    with pytest.raises(SpecError, match=r"needs splitColumn .* SELECT \* FROM table"):
        parse_spec(spec_for("SELECT 1 AS x", "x", parallelism=2))
    postgres.execute("CREATE OR REPLACE VIEW par_view AS SELECT * FROM par_orders")
    result = export(tmp_path, postgres, "SELECT * FROM par_view", "x", parallelism=2)
    assert (result.reason, result.retryable) == (Reason.INVALID_SPEC, False)
    assert "par_view is not a plain table" in result.message
    assert list((tmp_path / "out").iterdir()) == []


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


# Range 1 (k 2001..4000) writes ~1 MB, sleeps 2 s in the server, then writes the rest: the worker, done with
# range 0 long before, copies range 1's spill file while range 1 is still writing it.
SLOW_SECOND_RANGE = (
    "SELECT g AS k, CASE WHEN g = 3100 THEN par_nap(2, '3100') ELSE g END AS v, repeat('x', 1000) AS pad "
    "FROM generate_series(1, 4000) g"
)


def test_a_spill_file_is_followed_while_its_range_still_writes_it(tmp_path, postgres, nap, monkeypatch):
    reads: list[int] = []
    pread = os.pread

    def recorded(fd: int, size: int, offset: int) -> bytes:
        data = pread(fd, size, offset)
        reads.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", recorded)
    single = export(tmp_path, postgres, SLOW_SECOND_RANGE, "one")
    many = export(tmp_path, postgres, SLOW_SECOND_RANGE, "many", parallelism=2, splitColumn="k")
    assert single.ok and many.ok, (single.message, many.message)
    assert (tmp_path / "out/many.csv").read_bytes() == (tmp_path / "out/one.csv").read_bytes()
    assert many.sha256 == single.sha256 and many.rows == 4000
    # caught up with the file (an empty read) and read more of it afterwards: it was followed while written
    first_empty = reads.index(0)
    assert any(size > 0 for size in reads[first_empty:]), reads


def test_a_failing_range_fails_the_export_while_an_earlier_spill_is_followed(tmp_path, postgres, nap):
    # Range 1 (k 2001..4000) writes ~1 MB, then sleeps 600 s; range 2 fails after 1 s. The worker, following
    # range 1's spill file, reports range 2's error at once and stops range 1 (its query is cancelled).
    query = (
        "SELECT g AS k, CASE WHEN g = 3100 THEN par_nap(600, '1') WHEN g = 4001 THEN par_nap(1, '0') / 0 "
        "ELSE g END AS v, repeat('x', 1000) AS pad FROM generate_series(1, 6000) g"
    )
    outcome: list = []
    thread = threading.Thread(
        target=lambda: outcome.append(export(tmp_path, postgres, query, "f", parallelism=3, splitColumn="k")),
        daemon=True,
    )
    thread.start()
    thread.join(120)  # a bound for slow machines: waiting for range 1 would take 600 s
    assert outcome, "the export waited for the range it was following"
    result = outcome[0]
    assert (result.reason, "division by zero" in result.message) == (Reason.QUERY_FAILED, True), result.message
    assert list((tmp_path / "out").iterdir()) == []
    assert wait_for(lambda: sleeping_queries(postgres, "par_nap(600") == 0)
    assert range_processes(os.getpid()) == []
