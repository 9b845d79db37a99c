"""The process kubelet's HTTPS endpoint: container logs, so `pods/log` (`kubectl logs`) works.

A real kubelet serves `/containerLogs/<ns>/<pod>/<container>` and the API server
proxies `GET pods/<name>/log` to it (the Node's InternalIP and
`status.daemonEndpoints.kubeletEndpoint.Port`). This server does that one
thing, from the log files the process kubelet writes
(`<state>/pods/<ns>/<pod>/<container>.log`), with `tailLines`, `limitBytes`
and `follow` (until the container's process ends). It listens on 127.0.0.1
only, with the API server's serving certificate, and accepts only clients with
a certificate from the dev cluster's CA (the API server presents one:
`--kubelet-client-certificate`). exec, attach and port-forward are not served
(404 with a message saying so).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .paths import pod_dir

__all__ = ["KubeletServer", "tail"]

FOLLOW_POLL_SECONDS = 0.2


def tail(data: bytes, lines: int | None) -> bytes:
    """The last `lines` lines of `data` (all of it for None; a final line without newline counts)."""
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


class _Handler(BaseHTTPRequestHandler):
    state_dir = Path(".")
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: simple for follow

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _error(self, status: int, message: str) -> None:
        body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._error(404, f"{url.path}: not served by the devcluster process kubelet (only containerLogs)")
        _, namespace, pod, container = parts
        try:
            log = pod_dir(self.state_dir, namespace, pod) / f"{container}.log"
        except ValueError as error:
            return self._error(400, str(error))
        query = parse_qs(url.query)
        try:
            tail_lines = int(query["tailLines"][0]) if "tailLines" in query else None
            limit = int(query["limitBytes"][0]) if "limitBytes" in query else None
        except ValueError:
            return self._error(400, "tailLines and limitBytes must be integers")
        follow = query.get("follow", ["false"])[0] == "true"
        try:
            data = log.read_bytes()
        except FileNotFoundError:
            return self._error(404, f'container "{container}" in pod "{pod}" has no log (yet)')
        data = tail(data, tail_lines)
        if limit is not None:
            data = data[:limit]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(data)
        if not follow:
            return
        position = log.stat().st_size
        pid_file = log.with_suffix(".pid")  # exists while the container's process runs
        while True:
            running = pid_file.exists()
            with open(log, "rb") as file:
                file.seek(position)
                new = file.read()
            if new:
                position += len(new)
                self.wfile.write(new)
                self.wfile.flush()
            if not running:
                return
            time.sleep(FOLLOW_POLL_SECONDS)


class KubeletServer:
    """HTTPS on 127.0.0.1:<free port>; `port` goes into the Node's daemonEndpoints."""

    def __init__(self, state_dir: Path, cert: Path, key: Path, client_ca: Path) -> None:
        handler = type("Handler", (_Handler,), {"state_dir": Path(state_dir)})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        context.load_verify_locations(str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]

    def start(self) -> KubeletServer:
        threading.Thread(target=self._server.serve_forever, name="kubelet-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
