"""Every failure reason, provoked for real, lands on the ExportJob as a CamelCase reason and an actionable message."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import threading

import pytest
from operator_harness import ExportJobs, free_port, wait_until

pytestmark = pytest.mark.cluster


def export(path: str, source: dict, **extra) -> dict:
    return {
        "format": "csv",
        "backoffLimit": 0,
        "source": source,
        "output": {"claimName": "exports", "path": path},
        **extra,
    }


def failed(exportjobs: ExportJobs, name: str, timeout: float = 90) -> dict:
    status = exportjobs.wait_for_phase(name, ("Succeeded", "Failed"), timeout)
    assert status["phase"] == "Failed", status
    assert {c["type"]: c["status"] for c in status["conditions"]}["Failed"] == "True"
    exportjobs.wait_for_events(name, {status["reason"]})  # the Warning event carries the failure reason
    return status


@pytest.fixture
def rows_server():
    """A local HTTP server; `routes` maps paths to (status, body)."""
    routes: dict[str, tuple[int, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code, body = routes.get(self.path, (404, b"not found"))
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()


def test_source_unreachable(exportjobs, start_operator):
    start_operator()
    exportjobs.create(
        "down", export("down.csv", {"http": {"url": f"http://127.0.0.1:{free_port()}/rows", "timeoutSeconds": 5}})
    )
    status = failed(exportjobs, "down")
    assert status["reason"] == "SourceUnreachable" and "127.0.0.1" in status["message"]


def test_malformed_source_names_the_line(exportjobs, start_operator, rows_server):
    base, routes = rows_server
    routes["/rows.ndjson"] = (200, b'{"id": 1}\n{"id": 2}\n{"id": 3,,}\n')
    start_operator()
    exportjobs.create("bad", export("bad.csv", {"http": {"url": f"{base}/rows.ndjson", "format": "ndjson"}}))
    status = failed(exportjobs, "bad")
    assert status["reason"] == "MalformedSource" and "line 3" in status["message"]


def test_unknown_column_is_invalid_spec_and_fails_at_once(exportjobs, start_operator):
    start_operator()
    exportjobs.create(
        "cols", export("cols.csv", {"synthetic": {"records": 5}}, backoffLimit=3, columns=[{"name": "nope"}])
    )
    status = failed(exportjobs, "cols")
    assert status["reason"] == "InvalidSpec" and "nope" in status["message"]
    assert status["attempts"] == 1  # a permanent failure is not retried (podFailurePolicy FailJob)


def test_deadline_exceeded(exportjobs, start_operator, devcluster, namespace):
    start_operator()
    exportjobs.create("slow", export("slow.csv", {"synthetic": {"records": 50_000_000}}, activeDeadlineSeconds=3))
    status = failed(exportjobs, "slow", timeout=120)
    assert status["reason"] == "DeadlineExceeded" and "activeDeadlineSeconds=3" in status["message"]
    volume = devcluster.volume_dir(namespace, "exports")
    wait_until(lambda: not list(volume.glob("*.part")), 30, "the interrupted worker to remove its partial file")
    assert not (volume / "slow.csv").exists()


def test_worker_killed_is_worker_crashed(exportjobs, start_operator, namespace):
    start_operator()
    exportjobs.create("victim", export("victim.csv", {"synthetic": {"records": 50_000_000}}))
    exportjobs.wait_for_phase("victim", "Running")

    def worker_pid():
        out = subprocess.run(["pgrep", "-f", f"exportjob-worker.*{namespace}"], capture_output=True, text=True).stdout
        return int(out.split()[0]) if out.strip() else None

    os.kill(wait_until(worker_pid, 30, "the worker process"), signal.SIGKILL)
    status = failed(exportjobs, "victim")
    assert status["reason"] == "WorkerCrashed" and "signal 9" in status["message"]


@pytest.fixture
def tiny_claim(exportjobs, devcluster, namespace):
    """A claim whose directory is a 256 KiB tmpfs: a real disk that really fills up."""
    exportjobs.create_claim("tiny")
    directory = devcluster.volume_dir(namespace, "tiny")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(directory)], check=True)
    yield directory
    subprocess.run(["umount", "-l", str(directory)], check=False)


def test_disk_full_removes_the_partial_file(exportjobs, start_operator, tiny_claim):
    start_operator()
    exportjobs.create(
        "big",
        {
            "format": "csv",
            "backoffLimit": 0,
            "source": {"synthetic": {"records": 100_000}},
            "output": {"claimName": "tiny", "path": "big.csv"},
        },
    )
    status = failed(exportjobs, "big")
    assert status["reason"] == "DiskFull"
    assert list(tiny_claim.iterdir()) == [], "a partial file was left behind"


def test_query_failed_carries_the_servers_message_and_never_the_secret(exportjobs, start_operator, postgres):
    exportjobs.create_secret("pg", {"dsn": postgres.dsn()})
    start_operator()
    source = {
        "postgres": {"query": "SELECT id FROM no_such_table", "connectionSecretRef": {"name": "pg", "key": "dsn"}}
    }
    exportjobs.create("sql", export("sql.csv", source, backoffLimit=3))
    status = failed(exportjobs, "sql")
    assert status["reason"] == "QueryFailed" and "no_such_table" in status["message"]
    assert status["attempts"] == 1  # permanent: not retried
    assert postgres.password not in str(exportjobs.get("sql"))
