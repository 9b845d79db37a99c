"""devcluster.podnet: Pod IPs, their loopback twins, which CONNECT targets are allowed, the CONNECT proxy."""

import socket
import threading

import pytest

from devcluster.podnet import (
    POD_CIDR,
    ConnectProxy,
    PodAddresses,
    connect_target,
    egress_selector_config,
    local_address,
)
from devcluster.podstatus import ContainerRun, build_status


def test_pod_ips_are_distinct_global_unicast_and_reused_after_release():
    addresses = PodAddresses()
    a, b = addresses.allocate("uid-a"), addresses.allocate("uid-b")
    assert a != b and addresses.allocate("uid-a") == a
    assert a == "10.88.0.2" and b == "10.88.0.3"
    addresses.release("uid-a")
    assert addresses.allocate("uid-c") == "10.88.0.4"  # no immediate reuse: a stale proxy never hits a new Pod


def test_local_twin():
    assert local_address("10.88.1.7") == "127.88.1.7"
    assert local_address("10.89.1.7") is None and local_address("nonsense") is None


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("10.88.0.5:8080", ("127.88.0.5", 8080)),
        ("127.0.0.1:10250", ("127.0.0.1", 10250)),
        ("[::1]:80", ("::1", 80)),
        ("192.168.1.1:80", None),  # never anything outside loopback
        ("example.com:443", None),
        ("10.88.0.5", None),
        ("10.88.0.5:0", None),
    ],
)
def test_connect_targets_stay_on_loopback(authority, expected):
    assert connect_target(authority) == expected


def test_egress_config_and_its_path_limit(tmp_path):
    text = egress_selector_config(tmp_path / "e.sock")
    assert "name: cluster" in text and "proxyProtocol: HTTPConnect" in text and f"udsName: {tmp_path}/e.sock" in text
    with pytest.raises(ValueError, match="too long"):
        egress_selector_config(tmp_path / ("x" * 120))


def test_pod_status_carries_the_pod_ip():
    status = build_status(restart_policy="Never", init=[], main=[ContainerRun("c")], start_time="t", pod_ip="10.88.0.9")
    assert status["podIP"] == "10.88.0.9" and status["podIPs"] == [{"ip": "10.88.0.9"}]
    assert status["hostIP"] == "127.0.0.1"


def test_the_proxy_tunnels_to_a_pods_twin_and_refuses_others(tmp_path):
    server = socket.socket()
    server.bind(("127.88.0.2", 0))
    server.listen()
    port = server.getsockname()[1]

    def echo():
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=echo, daemon=True).start()
    proxy = ConnectProxy(tmp_path / "egress.sock").start()
    try:
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(tmp_path / "egress.sock"))
            c.sendall(f"CONNECT 10.88.0.2:{port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert c.recv(100) == b"HTTP/1.1 200 Connection established\r\n\r\n"
            c.sendall(b"hello")
            assert c.recv(100) == b"HELLO"
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(tmp_path / "egress.sock"))
            c.sendall(b"CONNECT 8.8.8.8:53 HTTP/1.1\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 403")
    finally:
        proxy.stop()
        server.close()
    assert POD_CIDR.is_private
