"""How `KubeApi`'s requests reach the API server: kept-alive connections from the standard library.

`KubeApi` builds every request with the `kubernetes` client's `ApiClient`
(`param_serialize`: the configured host, and the credentials with their refresh
hooks: a rotated service-account token is read again when it changes). Sending
it through the client's REST layer (urllib3's pool manager, then its connection
pool, then `http.client`) cost 0.68 ms of CPU per request here; the same
request on a kept-alive `http.client` connection costs 0.35 ms, and the
operator sends about ten per export (bench/README.md). `PooledConnections`
does only that: a stack of idle connections, one request at a time on each.

It covers what a cluster's kubeconfig or in-cluster configuration sets: HTTPS
with the cluster's CA (file or data) or without verification, client
certificates, bearer tokens (in the headers `param_serialize` makes). A proxy,
a TLS server name other than the host or a hostname override are not covered:
for those `transport_for` picks `ClientTransport`, the client's own REST layer.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from kubernetes import client

REQUEST_TIMEOUT_SECONDS = 30
# A kept-alive connection the server closed meanwhile fails like this on its next request: send it
# again on a new connection (once). Every request the operator sends is safe to repeat: merge patches
# and PUTs with a resourceVersion are idempotent, a repeated Job create answers 409 and adopts.
STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


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


class PooledConnections:
    """Kept-alive `http.client` connections to one API server; any number of threads may send at once."""

    def __init__(self, configuration: client.Configuration, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        parts = urlsplit(configuration.host)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "localhost", parts.port
        self.context = ssl_context(configuration) if self.https else None
        self.timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(connection)

    def send(self, method: str, url: str, headers: dict[str, str], body: Any) -> Answer:
        target = url.removeprefix(self.origin)
        payload = json.dumps(body).encode() if body is not None else None
        while True:
            connection, reused = self._take()
            try:
                connection.request(method, target, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except STALE_CONNECTION:
                connection.close()
                if reused:
                    continue  # the next idle one, or a new one, which cannot be stale
                raise
            except BaseException:
                connection.close()
                raise
            if response.will_close:
                connection.close()
            else:
                self._give_back(connection)
            return Answer(response.status, response.reason, data, dict(response.getheaders()))

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
