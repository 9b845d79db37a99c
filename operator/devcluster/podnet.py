"""The dev cluster's pod network: one address per Pod, reachable by the API server only.

A real kubelet gives each Pod its own network namespace and an IP from the
node's pod CIDR; the API server's ``pods/<name>:<port>/proxy`` subresource then
dials ``podIP:port``. The process kubelet has no network namespaces, and the
API server refuses to proxy to a loopback Pod IP (``address not allowed``: it
only dials global unicast addresses), so the dev cluster does this instead:

* each Pod gets an API-visible IP ``10.88.x.y`` (:data:`POD_CIDR`) and a local
  twin ``127.88.x.y`` (:func:`local_address`) that its processes bind; the
  downward API's ``status.podIP`` resolves to the local twin inside the Pod,
  the way mount paths are rewritten to host directories;
* the API server is started with an egress selector (:func:`egress_selector_config`)
  that sends its ``cluster`` traffic (pod/node proxy, logs) through an HTTP
  CONNECT proxy on a Unix socket, served by the kubelet (:class:`ConnectProxy`,
  the role konnectivity plays in real clusters). The proxy maps ``10.88.x.y``
  to ``127.88.x.y`` and dials only loopback addresses: no packet ever leaves
  127.0.0.0/8, and a Pod IP is never routed anywhere.

Other Pods cannot reach a Pod IP (there is no routing); only the API server can.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import select
import socket
import socketserver
import threading
from pathlib import Path

__all__ = [
    "POD_CIDR",
    "ConnectProxy",
    "PodAddresses",
    "connect_target",
    "egress_selector_config",
    "egress_socket",
    "local_address",
]

log = logging.getLogger("devcluster.podnet")

POD_CIDR = ipaddress.IPv4Network("10.88.0.0/16")
_LOCAL_CIDR = ipaddress.IPv4Network("127.88.0.0/16")
_MAX_UDS_PATH = 107  # sun_path is 108 bytes, NUL included
_MAX_HEADER = 8192
_CHUNK = 256 * 1024


def local_address(pod_ip: str) -> str | None:
    """The loopback twin of a Pod IP (``10.88.x.y`` -> ``127.88.x.y``); None outside :data:`POD_CIDR`."""
    try:
        address = ipaddress.IPv4Address(pod_ip)
    except ValueError:
        return None
    if address not in POD_CIDR:
        return None
    return str(_LOCAL_CIDR.network_address + (int(address) - int(POD_CIDR.network_address)))


def connect_target(authority: str) -> tuple[str, int] | None:
    """Where a ``CONNECT host:port`` may go: a Pod IP's twin or a loopback address; None for anything else."""
    host, sep, port_text = authority.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    host = host.strip("[]")
    twin = local_address(host)
    if twin is not None:
        return twin, int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return (str(address), int(port_text)) if address.is_loopback else None


class PodAddresses:
    """Hands out distinct Pod IPs from :data:`POD_CIDR` (``.0.0``, ``.0.1`` and the broadcast are skipped)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
        self._next = 2
        self._size = POD_CIDR.num_addresses

    def allocate(self, uid: str) -> str:
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            used = set(self._by_uid.values())
            for _ in range(self._size):
                offset, self._next = self._next, self._next + 1 if self._next + 1 < self._size - 1 else 2
                candidate = str(POD_CIDR.network_address + offset)
                if candidate not in used:
                    self._by_uid[uid] = candidate
                    return candidate
            raise RuntimeError(f"pod network {POD_CIDR} is exhausted")

    def release(self, uid: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)


def egress_socket(state_dir: Path) -> Path:
    """Where the kubelet serves the CONNECT proxy and where the API server's egress config points."""
    return Path(state_dir) / "run" / "egress.sock"


def egress_selector_config(socket_path: Path) -> str:
    """kube-apiserver's ``--egress-selector-config-file``: ``cluster`` traffic through the CONNECT proxy."""
    if len(str(socket_path)) > _MAX_UDS_PATH:
        raise ValueError(
            f"{socket_path}: too long for a Unix socket path (max {_MAX_UDS_PATH}); use a shorter state dir"
        )
    return (
        "apiVersion: apiserver.k8s.io/v1beta1\n"
        "kind: EgressSelectorConfiguration\n"
        "egressSelections:\n"
        "- name: cluster\n"
        "  connection:\n"
        "    proxyProtocol: HTTPConnect\n"
        "    transport:\n"
        "      uds:\n"
        f"        udsName: {socket_path}\n"
    )


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (half-closes are forwarded)."""
    open_ends = {a: b, b: a}
    while open_ends:
        readable, _, _ = select.select(list(open_ends), [], [], 300)
        if not readable:
            return  # idle for 5 minutes
        for source in readable:
            sink = open_ends[source]
            try:
                data = source.recv(_CHUNK)
            except OSError:
                data = b""
            if data:
                try:
                    sink.sendall(data)
                except OSError:
                    return
            else:
                del open_ends[source]
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        header = b""
        while b"\r\n\r\n" not in header:
            chunk = client.recv(1024)
            if not chunk or len(header) > _MAX_HEADER:
                return
            header += chunk
        head, _, rest = header.partition(b"\r\n\r\n")
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or parts[0] != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        target = connect_target(parts[1])
        if target is None:
            log.warning("egress: refusing CONNECT %s (neither a pod IP nor loopback)", parts[1])
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError as exc:
            log.info("egress: CONNECT %s -> %s:%d failed: %s", parts[1], *target, exc)
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            upstream.settimeout(None)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            _splice(client, upstream)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class ConnectProxy:
    """An HTTP CONNECT proxy on a Unix socket for the API server's egress (see the module docstring)."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a stale socket of an earlier kubelet
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self._server = _Server(str(self.socket_path), _Handler)
        os.chmod(self.socket_path, 0o600)

    def start(self) -> ConnectProxy:
        threading.Thread(target=self._server.serve_forever, name="egress-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
