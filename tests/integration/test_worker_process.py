"""`exportjob-worker` and `exportjob run` as real processes: exit codes 0/65/75, the termination log,
JSON logs without secrets, a real full disk, and SIGTERM cleanup."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
WORKER = str(BIN / "exportjob-worker")
CLI = str(BIN / "exportjob")


def synthetic(records: int, path: str = "exports/data.csv") -> dict:
    return {"format": "csv", "source": {"synthetic": {"records": records, "seed": 1}}, "output": {"path": path}}


def postgres_spec(query: str) -> dict:
    return {
        "format": "csv",
        "output": {"path": "pg.csv"},
        "source": {"postgres": {"query": query, "connectionSecretRef": {"name": "pg", "key": "dsn"}}},
    }


def run_worker(spec: dict, root: Path, log: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WORKER, "--spec-json", json.dumps(spec), "--output-root", str(root), "--termination-log", str(log)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_success_exit_0_result_in_termination_log_and_stdout(tmp_path):
    log = tmp_path / "termination-log"
    done = run_worker(synthetic(20_000), tmp_path, log)
    assert done.returncode == 0, done.stderr
    result = json.loads(log.read_text())
    assert result == json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["rows"] == 20_000 and result["path"] == "exports/data.csv"
    assert len(log.read_bytes()) <= 4096
    with open(tmp_path / "exports/data.csv", newline="") as file:
        assert sum(1 for _ in csv.reader(file)) == 20_001
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert next(e["event"] for e in events) == "export.started" and events[-1]["event"] == "export.finished"


@pytest.mark.postgres
def test_bad_sql_exits_65_and_never_logs_the_dsn(tmp_path, postgres):
    log = tmp_path / "log"
    done = run_worker(
        postgres_spec("SELECT * FROM missing_table"), tmp_path, log, {"EXPORTJOB_POSTGRES_DSN": postgres.dsn()}
    )
    assert done.returncode == 65, done.stderr
    result = json.loads(log.read_text())
    assert result["reason"] == "QueryFailed" and 'relation "missing_table" does not exist' in result["message"]
    assert postgres.password not in done.stderr + done.stdout + log.read_text()


@pytest.mark.postgres
def test_unreachable_database_exits_75(tmp_path, postgres, unused_port):
    log = tmp_path / "log"
    done = run_worker(
        postgres_spec("SELECT 1"),
        tmp_path,
        log,
        {"EXPORTJOB_POSTGRES_DSN": postgres.dsn(port=unused_port, connect_timeout=3)},
    )
    assert done.returncode == 75, done.stderr
    assert json.loads(log.read_text())["reason"] == "SourceUnreachable"


@pytest.mark.postgres
def test_postgres_export_through_the_worker(tmp_path, postgres):
    log = tmp_path / "log"
    done = run_worker(
        postgres_spec("SELECT g AS n, 'row ' || g AS label FROM generate_series(1, 1000) g"),
        tmp_path,
        log,
        {"EXPORTJOB_POSTGRES_DSN": postgres.dsn()},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(log.read_text())["rows"] == 1000
    assert (tmp_path / "pg.csv").read_text().splitlines()[:2] == ["n,label", "1,row 1"]


def test_disk_full_on_a_real_tiny_filesystem(tmp_path, tiny_volume):
    log = tmp_path / "log"
    done = run_worker(synthetic(100_000, "reports/big.csv"), Path(tiny_volume), log)  # ~12 MB into 1 MiB
    assert done.returncode == 75, done.stderr
    result = json.loads(log.read_text())
    assert result["reason"] == "DiskFull" and result["retryable"] is True
    assert "partial file was removed" in result["message"] and "No space left on device" in result["message"]
    assert sorted(p.name for p in Path(tiny_volume).rglob("*")) == ["reports"]  # no .part, no final file


def test_sigterm_removes_the_partial_file_and_exits_75(tmp_path):
    log = tmp_path / "log"
    process = subprocess.Popen(
        [
            WORKER,
            "--spec-json",
            json.dumps(synthetic(500_000_000)),
            "--output-root",
            str(tmp_path),
            "--termination-log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.rglob("*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp_path.rglob("*.part")), "the worker never started writing"
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 75
    assert json.loads(log.read_text())["reason"] == "Interrupted"
    assert not list(tmp_path.rglob("*.part")) and not (tmp_path / "exports/data.csv").exists()


MANIFEST = """\
apiVersion: exportjob.io/v1alpha1
kind: ExportJob
metadata: {name: orders}
spec:
  format: csv
  source:
    postgres:
      query: "SELECT g AS id, (g * 1.5)::numeric(10,2) AS amount FROM generate_series(1, 500) g"
      connectionSecretRef: {name: pg, key: dsn}
  columns: [{name: id, header: Order ID}, {name: amount}]
  output: {path: reports/orders.csv}
  csv: {encoding: utf-8-sig}
"""


@pytest.mark.postgres
def test_exportjob_run_with_dsn_flag(tmp_path, postgres):
    manifest = tmp_path / "orders.yaml"
    manifest.write_text(MANIFEST)
    out = tmp_path / "out"
    done = subprocess.run(
        [CLI, "run", "-f", str(manifest), "--output-dir", str(out), "--dsn", postgres.dsn()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == 500 and result["path"] == "reports/orders.csv"
    data = (out / "reports/orders.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfOrder ID,amount\r\n1,1.50\r\n") and result["bytes"] == len(data)
    assert postgres.password not in done.stdout + done.stderr


def test_exportjob_run_invalid_manifest_exits_2(tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(MANIFEST.replace("path: reports/orders.csv", "path: /abs/orders.csv"))
    done = subprocess.run(
        [CLI, "run", "-f", str(manifest), "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "spec.output.path" in done.stderr and done.stdout == ""


@pytest.mark.parametrize("example, rows", [("inline-csv.yaml", 3), ("synthetic-csv.yaml", 50_000)])
def test_exportjob_run_on_the_example_manifests(tmp_path, example, rows):
    manifest = Path(__file__).resolve().parents[2] / "examples" / example
    done = subprocess.run(
        [CLI, "run", "-f", str(manifest), "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == rows and (tmp_path / result["path"]).stat().st_size == result["bytes"]
