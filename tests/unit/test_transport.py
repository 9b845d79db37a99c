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
        if self.path.endswith("/chunked"):  # as the API server answers a LIST: in chunks
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"items": [', b'{"n": 1}, ' * 5000, b'{"n": 2}]}'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.endswith("/close"):  # announced: Connection: close
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"{}")
            self.close_connection = True
            return
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


def test_a_chunked_answer_is_read_whole_and_the_connection_kept(server: Server) -> None:
    connections = pool(server)
    answer = connections.send("GET", f"{connections.origin}/apis/x/v1/chunked", {}, None)
    items = json.loads(answer.data)["items"]
    assert answer.status == 200 and answer.reason == "OK" and len(items) == 5001 and items[-1] == {"n": 2}
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert connections.send("GET", f"{connections.origin}/api/v1/ok", {}, None).status == 200
    assert server.connections == 1


def test_connection_close_is_honoured(server: Server) -> None:
    connections = pool(server)
    for _ in range(2):
        assert connections.send("GET", f"{connections.origin}/api/v1/close", {}, None).status == 200
    assert server.connections == 2 and connections._idle == []


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/api/v1/pods\r\nX-Smuggled: 1", {}),
        ("/api/v1/pods HTTP/1.1", {}),
        ("/api/v1/pods", {"Authorization": "Bearer token\r\nX-Smuggled: 1"}),
    ],
)
def test_a_control_character_in_the_target_or_a_header_is_refused_before_sending(
    server: Server, url: str, headers: dict[str, str]
) -> None:
    connections = pool(server)
    with pytest.raises(ValueError, match="control character"):
        connections.send("GET", f"{connections.origin}{url}", headers, None)
    assert server.connections == 0 and server.requests == []
