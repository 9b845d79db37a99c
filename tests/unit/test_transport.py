"""PooledConnections against a real HTTP/1.1 server on loopback: reuse, a stale connection, error answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client

from exportjob.controller.transport import ClientTransport, PooledConnections, transport_for


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.requests: list[tuple[str, str, bytes]] = []
        self.close_after_answer = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, *args: object) -> None:
        pass

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, body))
        status = 404 if self.path.endswith("/missing") else 200
        data = json.dumps({"kind": "Status", "code": status, "echo": body.decode()}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.close_after_answer:  # as a server closing an idle kept-alive connection would
            self.close_connection = True

    do_GET = do_PATCH = do_POST = answer


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def pool(server: Server) -> PooledConnections:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    return PooledConnections(configuration, timeout=5)


def test_requests_share_one_kept_alive_connection(server: Server) -> None:
    connections = pool(server)
    base = connections.origin
    for i in range(5):
        answer = connections.send("PATCH", f"{base}/apis/x/v1/things/t?dryRun=All", {}, {"n": i})
        assert answer.status == 200 and json.loads(answer.data)["echo"] == json.dumps({"n": i})
    assert server.connections == 1
    assert server.requests[0][:2] == ("PATCH", "/apis/x/v1/things/t?dryRun=All")


def test_a_connection_the_server_closed_is_replaced_and_the_request_sent_again(server: Server) -> None:
    connections = pool(server)
    server.close_after_answer = True  # every answer closes its connection, unannounced to the client
    for _ in range(3):
        assert connections.send("GET", f"{connections.origin}/api/v1/pods", {}, None).status == 200
    assert len(server.requests) == 3  # each request answered once
    assert server.connections >= 3


def test_error_answers_are_returned_with_their_body(server: Server) -> None:
    connections = pool(server)
    answer = connections.send("GET", f"{connections.origin}/api/v1/missing", {}, None)
    assert answer.status == 404 and json.loads(answer.data)["code"] == 404
    assert connections.send("GET", f"{connections.origin}/api/v1/ok", {}, None).status == 200
    assert server.connections == 1  # an error answer keeps the connection


def test_configurations_it_does_not_cover_use_the_clients_rest_layer() -> None:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    assert isinstance(transport_for(client.ApiClient(configuration)), PooledConnections)
    configuration.proxy = "http://127.0.0.1:3128"
    assert isinstance(transport_for(client.ApiClient(configuration)), ClientTransport)
