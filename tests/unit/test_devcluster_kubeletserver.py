"""devcluster.kubeletserver: the log endpoint (tail, limit, follow) over mutual TLS with the dev cluster's CA."""

import pytest
import requests

from devcluster.certs import ensure_pki
from devcluster.kubeletserver import KubeletServer, tail
from devcluster.paths import pod_dir


@pytest.mark.parametrize(
    ("lines", "expected"),
    [(None, b"a\nb\nc"), (2, b"b\nc"), (5, b"a\nb\nc"), (0, b"")],
)
def test_tail(lines, expected):
    assert tail(b"a\nb\nc", lines) == expected


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    pki = ensure_pki(state / "pki")
    logs = pod_dir(state, "ns", "pod")
    logs.mkdir(parents=True)
    (logs / "main.log").write_bytes(b"one\ntwo\nthree\n")
    server = KubeletServer(state, pki.serving_cert, pki.serving_key, pki.ca_cert).start()
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki.ca_cert)
    session.cert = (str(pki.client_cert("admin")), str(pki.client_key("admin")))
    yield session, f"https://127.0.0.1:{server.port}", pki
    server.stop()


def test_logs_with_tail_limit_and_follow(served):
    session, base, _ = served
    assert session.get(f"{base}/containerLogs/ns/pod/main").text == "one\ntwo\nthree\n"
    assert session.get(f"{base}/containerLogs/ns/pod/main?tailLines=1").text == "three\n"
    assert session.get(f"{base}/containerLogs/ns/pod/main?limitBytes=3").text == "one"
    # follow ends when the container's process is gone (no .pid file)
    assert session.get(f"{base}/containerLogs/ns/pod/main?follow=true", timeout=10).text == "one\ntwo\nthree\n"


def test_errors(served):
    session, base, _ = served
    missing = session.get(f"{base}/containerLogs/ns/pod/other")
    assert missing.status_code == 404 and "has no log" in missing.json()["message"]
    exec_ = session.post(f"{base}/exec/ns/pod/main")
    assert exec_.status_code == 501  # only GET is served
    assert session.get(f"{base}/exec/ns/pod/main").status_code == 404
    assert session.get(f"{base}/containerLogs/ns/..%2f/main").status_code == 400
    assert session.get(f"{base}/containerLogs/ns/pod/main?tailLines=x").status_code == 400


def test_a_client_without_a_certificate_is_refused(served):
    _, base, pki = served
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(f"{base}/containerLogs/ns/pod/main", verify=str(pki.ca_cert), timeout=10)
