#!/usr/bin/env python3
"""Where a PostgreSQL -> CSV export's time goes, against psql: the server's CPU and the client's start-up.

    .venv/bin/python bench/pg_cost.py                  # 2,000,000 rows, 5 interleaved rounds
    .venv/bin/python bench/pg_cost.py --rows 100000 --rounds 1

Two figures that `bench/run.py`'s wall times cannot separate:

- **Server backend CPU per statement** (`/proc/<backend pid>/stat`, user + system, around one
  `COPY ... TO STDOUT` drained with `get_copy_data` as the worker drains it): psql's statement
  (`COPY (SELECT * FROM table)`), the worker's with the formula guard off (booleans as true/false:
  a projection), and the worker's with the defaults (that and the guard on the text columns).
  The statements are the worker's own, built by `PostgresSource.copy_statements`.
- **Exec to COPY** (with `strace` on PATH): the time from the process's `execve` to the `sendto`
  that carries the COPY statement, and from there to `exit_group`, for `psql \\copy` and for
  `exportjob-worker` with the defaults. Until the COPY is sent the server has nothing to do.

Every round runs each case once, so that all cases see the same machine load; medians are printed.
The table is bench/run.py's (8 typed columns, generate_series) in a throw-away cluster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import pq

from cases import PG_TABLE, Case, Context, postgres_csv
from exportjob import lightspec
from exportjob.worker.sources.postgres import PostgresSource
from machine import cpu_seconds
from pgserver import TempPostgres
from run import fill_table

QUERY = f"SELECT * FROM {PG_TABLE}"
SOURCE = {"postgres": {"query": QUERY, "connectionSecretRef": {"name": "pg", "key": "dsn"}}}


def worker_statement(dsn: str, csv: dict[str, object]) -> str:
    spec = lightspec.parse({"format": "csv", "source": SOURCE, "output": {"path": "out.csv"}, "csv": csv})
    assert spec is not None and spec.source.postgres is not None and spec.csv is not None
    source = PostgresSource(spec.source.postgres, dsn)
    source.open()
    try:
        statements, _ = source.copy_statements(None, spec.csv)
        return statements[0].as_string(source.connection)
    finally:
        source.close()


def server_seconds(connection: psycopg.Connection, statement: str) -> float:
    """Backend CPU of one COPY ... TO STDOUT, drained record by record like the worker's loop."""
    pgconn, pid = connection.pgconn, connection.info.backend_pid
    before = cpu_seconds(pid)
    pgconn.send_query(statement.encode())
    started = pgconn.get_result()
    if started is None or started.status != pq.ExecStatus.COPY_OUT:
        raise SystemExit(f"COPY did not start: {started and started.error_message.decode()}")
    while pgconn.get_copy_data(0)[0] >= 0:
        pass
    while pgconn.get_result() is not None:
        pass
    return cpu_seconds(pid) - before


def exec_to_copy(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(execve -> COPY sent, COPY sent -> exit) in seconds, from strace timestamps."""
    with tempfile.TemporaryDirectory() as scratch:
        trace = Path(scratch) / "trace"
        strace = ["strace", "-f", "--seccomp-bpf", "-ttt", "-s", "64", "-e", "trace=execve,sendto,exit_group"]
        subprocess.run(
            [*strace, "-o", str(trace), *argv],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        lines = [line.split(None, 2) for line in trace.read_text().splitlines()]
    start = float(lines[0][1])
    copy = next(float(stamp) for _, stamp, call in lines if call.startswith("sendto(") and "COPY" in call)
    end = max(float(stamp) for _, stamp, call in lines if call.startswith("exit_group") or "exited" in call)
    return copy - start, end - copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with TempPostgres() as server:
        fill_table(server, args.rows)
        dsn = server.dsn()
        statements = {
            "psql's: COPY (SELECT * ...)": f"COPY ({QUERY}) TO STDOUT (FORMAT csv, HEADER true)",
            "worker, guard off (booleans)": worker_statement(dsn, {"formulaEscape": False}),
            "worker, defaults (+ guard)": worker_statement(dsn, {}),
        }
        work = Path(tempfile.mkdtemp(prefix="exportjob-pg-cost-"))
        # The commands of bench/run.py's `pg-psql` and `pg-worker` cases.
        context = Context(quick=False, workdir=work, dsn=dsn, pg_rows=args.rows, csv_rows=0, memory_rows=0)
        cases = {item.name: item for item in postgres_csv(context) if isinstance(item, Case)}
        processes = {
            "psql \\copy": (cases["pg-psql"].argv, cases["pg-psql"].env),
            "exportjob-worker, defaults": (cases["pg-worker"].argv, cases["pg-worker"].env),
        }
        timed = shutil.which("strace") is not None
        cpu: dict[str, list[float]] = {name: [] for name in statements}
        timelines: dict[str, list[tuple[float, float]]] = {name: [] for name in processes}
        with psycopg.connect(dsn, autocommit=True) as connection:
            for _ in range(args.rounds):
                for name, statement in statements.items():
                    cpu[name].append(server_seconds(connection, statement))
                for name, (argv, env) in processes.items() if timed else ():
                    timelines[name].append(exec_to_copy(argv, env))
        shutil.rmtree(work)
    print(f"{args.rows:,} rows, {args.rounds} rounds, load {os.getloadavg()[0]:.1f}; medians")
    print("server backend CPU per COPY:")
    psql_cpu = statistics.median(cpu["psql's: COPY (SELECT * ...)"])
    for name, values in cpu.items():
        median = statistics.median(values)
        print(
            f"  {name:32s} {median:5.2f} s  (+{median - psql_cpu:.2f} s)  runs {', '.join(f'{v:.2f}' for v in values)}"
        )
    if not timed:
        print("exec -> COPY: strace is not on PATH, left out")
        return
    print("client, from strace:")
    for name, values in timelines.items():
        before = statistics.median(value[0] for value in values)
        after = statistics.median(value[1] for value in values)
        print(f"  {name:32s} exec -> COPY sent {before * 1000:5.0f} ms   COPY sent -> exit {after:5.2f} s")


if __name__ == "__main__":
    main()
