"""`exportjob-worker serve-file` and the CLI's transfer code, against each other over loopback HTTP.

Real process, real sockets, real files; the cluster path (reader Pod, Pod proxy)
is in tests/cluster/test_download.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devcluster.processes import free_port
from devcluster.waiting import wait_for
from exportjob.client.transfer import (
    ChecksumMismatch,
    Response,
    TransferError,
    download_to_file,
    download_to_stream,
    part_path,
)

WORKER = Path(sys.executable).parent / "exportjob-worker"


@pytest.fixture
def served(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    port = free_port()
    proc = subprocess.Popen(
        [str(WORKER), "serve-file", f"--file={path}", "--address=127.0.0.1", f"--port={port}"],
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(base + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(up, timeout=30, description="serve-file listening")
    yield base, data, path
    proc.terminate()
    assert proc.wait(10) == 0  # SIGTERM is a clean stop


def fetcher(base, log=None, cut_after=None):
    """fetch(offset, etag) over requests; `cut_after` bytes into the first response the stream breaks."""
    state = {"calls": 0}

    def fetch(offset, etag):
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if etag:
                headers["If-Range"] = etag
        r = requests.get(base + "/", headers=headers, stream=True, timeout=10)
        state["calls"] += 1
        if log is not None:
            log.append((r.status_code, headers.get("Range")))

        def chunks():
            sent = 0
            for chunk in r.iter_content(256 * 1024):
                if cut_after is not None and state["calls"] == 1 and sent + len(chunk) > cut_after:
                    yield chunk[: cut_after - sent]
                    raise ConnectionError("cut")
                sent += len(chunk)
                yield chunk

        return Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, chunks(), r.close)

    return fetch


def test_only_the_one_file_is_served(served):
    base, data, _ = served
    assert requests.get(base + "/").content == data
    for path in ("/export.csv", "/../export.csv", "/etc/passwd", "/%2e%2e/"):
        assert requests.get(base + path).status_code == 404, path
    head = requests.head(base + "/")
    assert head.headers["Content-Length"] == str(len(data)) and head.headers["Accept-Ranges"] == "bytes"


def test_ranges(served):
    base, data, _ = served
    r = requests.get(base + "/", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert requests.get(base + "/", headers={"Range": "bytes=-5"}).content == data[-5:]
    r = requests.get(base + "/", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
    stale = requests.get(base + "/", headers={"Range": "bytes=10-", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data


def test_download_verifies_and_renames(served, tmp_path):
    base, data, _ = served
    dest = tmp_path / "out" / "orders.csv"
    dest.parent.mkdir()
    size = download_to_file(fetcher(base), dest, hashlib.sha256(data).hexdigest(), expected_size=len(data))
    assert size == len(data) and dest.read_bytes() == data and not part_path(dest).exists()


def test_a_broken_connection_resumes_with_range(served, tmp_path):
    base, data, _ = served
    dest = tmp_path / "orders.csv"
    log = []
    download_to_file(fetcher(base, log, cut_after=1_000_000), dest, hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == data
    assert log == [(200, None), (206, "bytes=1000000-")]


def test_an_interrupted_run_resumes_from_the_part_file(served, tmp_path):
    base, data, _ = served
    dest = tmp_path / "orders.csv"
    part_path(dest).write_bytes(data[:2_000_000])  # what a run stopped by Ctrl-C leaves
    log = []
    download_to_file(fetcher(base, log), dest, hashlib.sha256(data).hexdigest(), expected_size=len(data))
    assert dest.read_bytes() == data and log == [(206, "bytes=2000000-")]


def test_a_complete_part_file_needs_no_body(served, tmp_path):
    base, data, _ = served
    dest = tmp_path / "orders.csv"
    part_path(dest).write_bytes(data)
    log = []
    download_to_file(fetcher(base, log), dest, hashlib.sha256(data).hexdigest(), expected_size=len(data))
    assert dest.read_bytes() == data and log == [(416, f"bytes={len(data)}-")]


def test_a_checksum_mismatch_leaves_no_file(served, tmp_path):
    base, _, _ = served
    dest = tmp_path / "orders.csv"
    with pytest.raises(ChecksumMismatch, match="sha256 mismatch"):
        download_to_file(fetcher(base), dest, "0" * 64)
    assert not dest.exists() and not part_path(dest).exists()


def test_a_corrupt_part_file_is_caught_by_the_checksum(served, tmp_path):
    base, data, _ = served
    dest = tmp_path / "orders.csv"
    part_path(dest).write_bytes(b"x" * 1000)  # not a prefix of the file
    with pytest.raises(ChecksumMismatch):
        download_to_file(fetcher(base), dest, hashlib.sha256(data).hexdigest())
    assert not dest.exists() and not part_path(dest).exists()


def test_stream_download(served, tmp_path):
    base, data, _ = served
    with open(tmp_path / "stdout", "wb") as sink:
        assert download_to_stream(fetcher(base), sink, hashlib.sha256(data).hexdigest()) == len(data)
    assert (tmp_path / "stdout").read_bytes() == data


def test_a_missing_file_is_an_error_exit(tmp_path):
    done = subprocess.run(
        [str(WORKER), "serve-file", f"--file={tmp_path / 'nope'}", "--port=1"], capture_output=True, text=True
    )
    assert done.returncode == 65 and '"missing"' in done.stderr


def test_an_http_error_is_reported(tmp_path):
    def fetch(offset, etag):
        return Response(403, {}, iter([b"forbidden: pods/proxy"]))

    with pytest.raises(TransferError, match=r"HTTP 403 .*pods/proxy"):
        download_to_file(fetch, tmp_path / "x", "0" * 64)
