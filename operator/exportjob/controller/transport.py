"""How `KubeApi`'s requests reach the API server: kept-alive connections from the standard library.

`KubeApi` builds every request with the `kubernetes` client's `ApiClient`
(`param_serialize`: the configured host, and the credentials with their refresh
hooks: a rotated service-account token is read again when it changes). Sending
it through the client's REST layer (urllib3's pool manager, then its connection
pool, then `http.client`) cost 0.68 ms of CPU per request here, on a kept-alive
`http.client` connection 0.35-0.47 ms, and the operator sends about nine per
export (bench/README.md). `PooledConnections` keeps a stack of idle
connections, one request at a time on each, writes each request in one piece and
has llhttp (`httptools`) parse the answers: 0.25 ms.

It covers what a cluster's kubeconfig or in-cluster configuration sets: HTTPS
with the cluster's CA (file or data) or without verification, client
certificates, bearer tokens (in the headers `param_serialize` makes). A proxy,
a TLS server name other than the host or a hostname override are not covered:
for those `transport_for` picks `ClientTransport`, the client's own REST layer.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import urlsplit

import httptools
from kubernetes import client

REQUEST_TIMEOUT_SECONDS = 30
# A kept-alive connection the server closed meanwhile fails like this on its next request: send it
# again on a new connection (once). Every request the operator sends is safe to repeat: merge patches
# and PUTs with a resourceVersion are idempotent, a repeated Job create answers 409 and adopts.
STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
RECEIVE_BYTES = 256 * 1024
# CR, LF and the other control characters (tab aside) could end a header early or smuggle a request.
_FORBIDDEN_IN_HEAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class Answer:
    """The parts of an HTTP response `KubeApi` and `ApiException.from_response` read."""

    status: int
    reason: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Transport(Protocol):
    def send(self, method: str, url: str, headers: dict[str, str], body: Any) -> Answer: ...


class ClientTransport:
    """Through the `kubernetes` client's REST layer (urllib3): every configuration it supports."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    def send(self, method: str, url: str, headers: dict[str, str], body: Any) -> Answer:
        response = self.api_client.call_api(method, url, headers, body, [], _request_timeout=REQUEST_TIMEOUT_SECONDS)
        data = response.read()  # to the end: the connection goes back to the pool
        return Answer(response.status, response.reason, data, dict(response.headers or {}))


def ssl_context(configuration: client.Configuration) -> ssl.SSLContext:
    """The TLS settings of a kubeconfig or in-cluster configuration, as urllib3 would apply them."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class _Parsed:
    """What llhttp (through `httptools`) reports of one response, as it arrives."""

    __slots__ = ("body", "complete", "headers", "keep_alive")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1")] = value.decode("latin-1")
        if name.lower() == b"connection" and value.strip().lower() == b"close":
            self.keep_alive = False

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    """One kept-alive HTTP/1.1 connection: a request written in one piece, the answer parsed by llhttp."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def exchange(self, request: bytes) -> tuple[int, str, _Parsed]:
        self.sock.sendall(request)
        parsed = _Parsed()
        parser = httptools.HttpResponseParser(parsed)
        received = False
        while not parsed.complete:
            data = self.sock.recv(RECEIVE_BYTES)
            if not data:
                if received:
                    raise http.client.IncompleteRead(b"".join(parsed.body))
                raise http.client.RemoteDisconnected("the server closed the connection without answering")
            received = True
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as error:
                raise http.client.HTTPException(f"malformed answer from the API server: {error}") from error
        if parser.get_http_version() != "1.1":
            parsed.keep_alive = False
        status = parser.get_status_code()
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        return status, reason, parsed

    def close(self) -> None:
        self.sock.close()


class PooledConnections:
    """Kept-alive HTTP/1.1 connections to one API server; any number of threads may send at once.

    Each request is written in one `sendall` (`http.client` writes the headers
    and the body separately: two TLS records, two system calls) and each answer
    is parsed by llhttp, the C parser of Node.js, through `httptools`
    (`http.client` parses the headers with the `email` package). Measured on
    the local API server, one PATCH and its answer: 0.25 ms of CPU against
    0.47 ms through `http.client` (bench/README.md).
    """

    def __init__(self, configuration: client.Configuration, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        parts = urlsplit(configuration.host)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.authority = parts.netloc.rpartition("@")[2]  # host[:port], for the Host header
        self.context = ssl_context(configuration) if self.https else None
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> _Connection:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _take(self) -> tuple[_Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            self._idle.append(connection)

    def request_bytes(self, method: str, url: str, headers: dict[str, str], body: Any) -> bytes:
        """The whole request: request line, headers, body. Refuses what would let a value end a header."""
        target = url.removeprefix(self.origin) or "/"
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(payload)}")
        if " " in target or any(_FORBIDDEN_IN_HEAD.search(line) for line in lines):
            raise ValueError(f"refusing a request with a control character in its target or headers: {target!r}")
        return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + payload

    def send(self, method: str, url: str, headers: dict[str, str], body: Any) -> Answer:
        request = self.request_bytes(method, url, headers, body)
        while True:
            connection, reused = self._take()
            try:
                status, reason, parsed = connection.exchange(request)
            except STALE_CONNECTION:
                connection.close()
                if reused:
                    continue  # the next idle one, or a new one, which cannot be stale
                raise
            except BaseException:
                connection.close()
                raise
            if parsed.keep_alive:
                self._give_back(connection)
            else:
                connection.close()
            return Answer(status, reason, b"".join(parsed.body), parsed.headers)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def transport_for(api_client: client.ApiClient) -> Transport:
    """`PooledConnections` when it covers the configuration, else the client's own REST layer."""
    configuration = api_client.configuration
    if configuration.proxy or configuration.tls_server_name or configuration.assert_hostname is not None:
        return ClientTransport(api_client)
    return PooledConnections(configuration)
