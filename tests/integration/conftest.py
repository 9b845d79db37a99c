"""Real things for the worker's integration tests: a PostgreSQL server, an HTTP server, a tiny filesystem.

- `postgres` and `unused_port` live in tests/conftest.py (shared with the cluster tests).
- `http_server`: a `ThreadingHTTPServer` on 127.0.0.1 serving routes the test
  registers (fixed bodies, or chunked streams).
- `tiny_volume`: a 1 MiB tmpfs mounted for one test (needs root), for real ENOSPC.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

Body = bytes | Callable[[], Iterable[bytes]]


@dataclass
class Route:
    status: int = 200
    body: Body = b""
    content_type: str = "application/octet-stream"
    chunked: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    header_trickle: float | None = None  # send the header block one byte per this many seconds


@dataclass
class HttpServer:
    base_url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    connections: int = 0  # TCP connections accepted

    def url(self, path: str) -> str:
        return self.base_url + path

    def serve(
        self,
        path: str,
        body: Body = b"",
        status: int = 200,
        content_type: str = "application/octet-stream",
        chunked: bool = False,
        headers: dict[str, str] | None = None,
        header_trickle: float | None = None,
    ) -> str:
        """Serve `body` at `path` (chunked: `body` is a callable returning the chunks); return the URL."""
        self.routes[path] = Route(status, body, content_type, chunked, dict(headers or {}), header_trickle)
        return self.url(path)


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    state = HttpServer("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            state.connections += 1
            super().setup()

        def do_GET(self) -> None:
            state.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            route = state.routes.get(self.path.split("?")[0])
            if route is None:
                route = Route(404, b"not found", "text/plain")
            if route.header_trickle is not None:  # a server too slow to finish its headers
                block = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Pad: {'x' * 40}\r\n\r\n".encode()
                try:
                    for byte in block:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(route.header_trickle)
                except OSError:
                    pass  # the client gave up
                self.close_connection = True
                return
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunks = route.body() if callable(route.body) else [route.body]
                for chunk in chunks:
                    if chunk:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            else:
                body = route.body if isinstance(route.body, bytes) else b"".join(route.body())
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def tiny_volume(tmp_path) -> Iterator[str]:
    """A real 1 MiB filesystem (tmpfs), so that writes hit a genuine ENOSPC."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root); the ENOSPC logic is unit-tested with a fake file")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    completed = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if completed.returncode != 0:
        pytest.fail(f"cannot mount a 1 MiB tmpfs for the disk-full test: {completed.stderr.strip()}")
    try:
        yield str(mount_point)
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
