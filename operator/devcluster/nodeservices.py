"""The real node's stand-ins for kube-scheduler, kube-proxy and cluster DNS.

``python -m devcluster.nodeservices --kubeconfig K --node N --api-socket S`` runs
inside the real node's network namespace (hack/realnode.sh) and does three small
jobs there, none of which touches the host:

* **binding**: Pods without ``nodeName`` are bound to the node (Binding
  subresource), as the process kubelet does; the dev cluster has no scheduler.
* **ClusterIP relays**: every ClusterIP of a Service gets a /32 on the node's
  ``lo`` and a TCP relay per port. ``default/kubernetes`` (10.0.0.1:443) relays to
  the API server through the unix socket ``S`` (the host side is a socat on the
  host's loopback); other Services relay to a Ready Pod selected by the Service,
  at the target port. Pods reach them through their default route (the CNI
  bridge's gateway in the node's namespace), so no iptables is needed.
* **DNS** on 10.0.0.10:53/udp (the kubelet's ``clusterDNS``): A records of
  ``<service>.<namespace>.svc.cluster.local``; NXDOMAIN for other names in the
  cluster domain, REFUSED for the rest (Pods on the node have no outside network).

Pure parts (DNS wire format, backend choice) are functions without I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import logging
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pykube

log = logging.getLogger("nodeservices")

DNS_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"
API_SERVICE = ("default", "kubernetes")


# ----------------------------------------------------------------------------- pure: DNS
def parse_query(packet: bytes) -> tuple[int, int, str, int, bytes]:
    """(id, flags, name, qtype, question bytes) of a single-question DNS query."""
    if len(packet) < 12:
        raise ValueError("short DNS packet")
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError("expected one question")
    labels, pos = [], 12
    while True:
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(packet[pos : pos + length].decode("ascii", "replace"))
        pos += length
    qtype, _qclass = struct.unpack("!HH", packet[pos : pos + 4])
    return qid, flags, ".".join(labels).lower(), qtype, packet[12 : pos + 4]


def build_answer(qid: int, flags: int, question: bytes, rcode: int, ipv4: str | None, ttl: int = 5) -> bytes:
    """A response to ``question``: rcode, and one A record when ``ipv4`` is given."""
    rd = flags & 0x0100
    out_flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode  # QR, AA, RD copied, RA, RCODE
    answers = b""
    if ipv4 is not None:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + ipaddress.IPv4Address(ipv4).packed
    header = struct.pack("!HHHHHH", qid, out_flags, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


def resolve(name: str, qtype: int, services: dict[tuple[str, str], str]) -> tuple[int, str | None]:
    """(rcode, A address) for ``name``; ``services`` maps (namespace, name) to ClusterIP."""
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if not name.endswith(suffix) and name != CLUSTER_DOMAIN and not name.endswith("." + CLUSTER_DOMAIN):
        return 5, None  # REFUSED: no upstream resolver on the node
    parts = name[: -len(suffix)].split(".") if name.endswith(suffix) else []
    if len(parts) != 2 or (parts[1], parts[0]) not in services:
        return 3, None  # NXDOMAIN
    ip = services[(parts[1], parts[0])]
    return 0, ip if qtype == 1 else None  # AAAA and others: NOERROR, no data


# ----------------------------------------------------------------------------- pure: backends
def _ready(pod: dict[str, Any]) -> bool:
    st = pod.get("status", {})
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions", [])
    )


def _selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    labels = pod.get("metadata", {}).get("labels", {}) or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pick_backend(service: dict[str, Any], port: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[str, int] | None:
    """(pod IP, port) of the first Ready Pod the Service selects, at the Service port's target."""
    selector = service.get("spec", {}).get("selector") or {}
    target = port.get("targetPort", port["port"])
    for pod in pods:
        if not _selects(selector, pod) or not _ready(pod) or not pod.get("status", {}).get("podIP"):
            continue
        if isinstance(target, int):
            return pod["status"]["podIP"], target
        for c in pod.get("spec", {}).get("containers", []):
            for p in c.get("ports", []) or []:
                if p.get("name") == target:
                    return pod["status"]["podIP"], int(p["containerPort"])
        if str(target).isdigit():
            return pod["status"]["podIP"], int(target)
    return None


# ----------------------------------------------------------------------------- I/O
@dataclass
class State:
    services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by namespace
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cluster_ips(self) -> dict[tuple[str, str], str]:
        with self.lock:
            return {k: s["spec"]["clusterIP"] for k, s in self.services.items()}


class NodeServices:
    def __init__(self, api: pykube.HTTPClient, node: str, api_socket: str) -> None:
        self.api = api
        self.node = node
        self.api_socket = api_socket
        self.state = State()
        self.listening: set[tuple[str, int]] = set()
        self.addresses: set[str] = set()

    # -- polling (a thread: pykube is blocking)
    def _get(self, path: str) -> dict[str, Any]:
        r = self.api.session.get(self.api.url + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def poll_once(self) -> None:
        pending = self._get("/api/v1/pods?fieldSelector=spec.nodeName%3D")["items"]
        for pod in pending:
            meta = pod["metadata"]
            if pod["spec"].get("schedulerName", "default-scheduler") != "default-scheduler":
                continue
            body = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
            }
            url = f"{self.api.url}/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding"
            r = self.api.session.post(url, json=body, timeout=10)
            if r.status_code not in (200, 201, 409):
                log.warning("binding %s/%s: %s %s", meta["namespace"], meta["name"], r.status_code, r.text[:200])
        services = {}
        for s in self._get("/api/v1/services")["items"]:
            ip = s.get("spec", {}).get("clusterIP")
            if ip and ip != "None":
                services[(s["metadata"]["namespace"], s["metadata"]["name"])] = s
        pods: dict[str, list[dict[str, Any]]] = {}
        for p in self._get("/api/v1/pods")["items"]:
            pods.setdefault(p["metadata"]["namespace"], []).append(p)
        with self.state.lock:
            self.state.services = services
            self.state.pods = pods

    def poll_forever(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                self.poll_once()
                asyncio.run_coroutine_threadsafe(self.sync_listeners(), loop)
            except Exception as exc:  # keep serving; the API may be restarting
                log.warning("poll failed: %s", exc)
            time.sleep(0.5)

    # -- ClusterIP relays
    async def sync_listeners(self) -> None:
        with self.state.lock:
            wanted = [
                (key, s["spec"]["clusterIP"], p)
                for key, s in self.state.services.items()
                for p in s["spec"].get("ports", [])
                if p.get("protocol", "TCP") == "TCP"
            ]
        for key, ip, port in wanted:
            if (ip, port["port"]) in self.listening:
                continue
            if ip not in self.addresses:
                subprocess.run(["ip", "addr", "replace", f"{ip}/32", "dev", "lo"], check=True)
                self.addresses.add(ip)
            await asyncio.start_server(functools.partial(self.relay, key=key, port=port), host=ip, port=port["port"])
            self.listening.add((ip, port["port"]))
            log.info("relaying %s:%s for service %s/%s", ip, port["port"], *key)

    async def relay(self, reader, writer, key: tuple[str, str], port: dict[str, Any]) -> None:
        try:
            if key == API_SERVICE:
                up_r, up_w = await asyncio.open_unix_connection(self.api_socket)
            else:
                with self.state.lock:
                    service = self.state.services.get(key)
                    pods = list(self.state.pods.get(key[0], []))
                backend = pick_backend(service, port, pods) if service else None
                if backend is None:
                    writer.close()
                    return
                up_r, up_w = await asyncio.open_connection(*backend)
        except OSError:
            writer.close()
            return

        async def pipe(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    # -- DNS
    def dns_answer(self, packet: bytes) -> bytes | None:
        try:
            qid, flags, name, qtype, question = parse_query(packet)
        except (ValueError, IndexError, struct.error):
            return None
        rcode, ip = resolve(name, qtype, self.state.cluster_ips())
        return build_answer(qid, flags, question, rcode, ip)


class _Dns(asyncio.DatagramProtocol):
    def __init__(self, services: NodeServices) -> None:
        self.services = services
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        answer = self.services.dns_answer(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


async def serve(services: NodeServices) -> None:
    loop = asyncio.get_running_loop()
    subprocess.run(["ip", "addr", "replace", f"{DNS_IP}/32", "dev", "lo"], check=True)
    await loop.create_datagram_endpoint(lambda: _Dns(services), local_addr=(DNS_IP, 53))
    threading.Thread(target=services.poll_forever, args=(loop,), daemon=True).start()
    log.info("binding pods to %s, relaying ClusterIPs, DNS on %s:53", services.node, DNS_IP)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devcluster.nodeservices", description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--api-socket", required=True, help="unix socket relayed to the API server")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(args.kubeconfig))
    asyncio.run(serve(NodeServices(api, args.node, args.api_socket)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
