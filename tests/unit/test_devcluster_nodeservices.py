"""The real node's DNS and ClusterIP backend choice (devcluster.nodeservices): pure parts."""

from __future__ import annotations

import socket
import struct

import pytest

from devcluster.nodeservices import build_answer, parse_query, pick_backend, resolve

SERVICES = {("exportjob-system", "exportjob-exportjob-operator"): "10.0.0.239", ("default", "kubernetes"): "10.0.0.1"}


def _query(name: str, qtype: int = 1, qid: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def test_a_query_for_a_service_is_answered_with_its_cluster_ip():
    qid, flags, name, qtype, question = parse_query(
        _query("exportjob-exportjob-operator.exportjob-system.svc.cluster.local")
    )
    assert (qid, name, qtype) == (0x1234, "exportjob-exportjob-operator.exportjob-system.svc.cluster.local", 1)
    rcode, ip = resolve(name, qtype, SERVICES)
    assert (rcode, ip) == (0, "10.0.0.239")
    answer = build_answer(qid, flags, question, rcode, ip)
    rid, rflags, qd, an = struct.unpack("!HHHH", answer[:8])
    assert (rid, rflags & 0x8000, rflags & 0xF, qd, an) == (0x1234, 0x8000, 0, 1, 1)
    assert socket.inet_ntoa(answer[-4:]) == "10.0.0.239"


@pytest.mark.parametrize(
    ("name", "qtype", "expected"),
    [
        ("kubernetes.default.svc.cluster.local", 28, (0, None)),  # AAAA: no data, not an error
        ("missing.default.svc.cluster.local", 1, (3, None)),  # NXDOMAIN in the cluster domain
        ("kubernetes.default.svc.cluster.local.default.svc.cluster.local", 1, (3, None)),  # search-list miss
        ("pypi.org", 1, (5, None)),  # REFUSED: no upstream on the node
    ],
)
def test_other_names_get_the_right_rcode(name, qtype, expected):
    assert resolve(name, qtype, SERVICES) == expected


def test_a_malformed_packet_is_rejected():
    with pytest.raises(ValueError):
        parse_query(b"\x00\x01")


def _pod(ip: str, labels: dict, ready: bool = True, ports: list | None = None) -> dict:
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"ports": ports or []}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_backend_is_a_ready_selected_pod_at_the_target_port():
    service = {"spec": {"selector": {"app": "op"}}}
    pods = [
        _pod("10.88.0.5", {"app": "other"}),
        _pod("10.88.0.6", {"app": "op"}, ready=False),
        _pod("10.88.0.7", {"app": "op"}, ports=[{"name": "metrics", "containerPort": 8080}]),
    ]
    assert pick_backend(service, {"port": 80, "targetPort": 9000}, pods) == ("10.88.0.7", 9000)
    assert pick_backend(service, {"port": 80, "targetPort": "metrics"}, pods) == ("10.88.0.7", 8080)
    assert pick_backend(service, {"port": 8080}, pods) == ("10.88.0.7", 8080)


def test_no_backend_without_a_selector_or_a_ready_pod():
    assert pick_backend({"spec": {}}, {"port": 80}, [_pod("10.88.0.7", {})]) is None
    assert pick_backend({"spec": {"selector": {"a": "b"}}}, {"port": 80}, [_pod("1.2.3.4", {"a": "b"}, False)]) is None
