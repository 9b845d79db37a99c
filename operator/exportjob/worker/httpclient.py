"""The HTTP source's client: one GET, with the egress policy, redirects and the credential handled safely.

`open_url` replaces `urllib.request.urlopen`, whose defaults do not fit a worker
that fetches URLs chosen by whoever creates an ExportJob:

- **Resolve, check, connect** (`egress.py`): the host name is resolved once,
  every address is checked against the egress policy, and the connection goes
  to a checked address (never a second lookup). A refused address fails with
  `EgressDenied` before any packet is sent to it.
- **Redirects**: at most `MAX_REDIRECTS` (5), to `http`/`https` only (an `ftp:`
  or `file:` Location is a permanent `SourceRejected`); every hop is checked
  against the egress policy again.
- **The credential stays at its origin**: the `Authorization` header is sent
  only to the configured URL's origin (scheme, host, port). A redirect to
  another origin is followed *without* it (as curl and requests do), so a
  signed download link on a CDN still works and the token never leaves.
- **No proxy** from the environment (`http_proxy`...): the worker's traffic
  goes where the policy checked.
- **Deadline**: connecting, sending the request and receiving the response
  headers — all redirects included — must finish within `timeout` seconds in
  total; after that, `timeout` bounds each read of the body (a body that keeps
  flowing is bounded by the Job's `activeDeadlineSeconds`, not by this).
- **Clean messages**: a URL is shown by `public_url` (no user info, query or
  fragment), and a URL that carries user info (`http://user:pass@host`) or
  characters outside printable ASCII is refused up front as a permanent
  `InvalidSpec` without echoing it.

`resolve` and `connect` are injectable so tests can prove the order (the
check runs before any connection) without touching a non-loopback address.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .egress import EgressPolicy, first_allowed
from .errors import ExportFailure, Reason, permanent, redact, retryable

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}

Resolver = Callable[..., list[tuple[Any, ...]]]
Connector = Callable[[tuple[str, int], float | None], socket.socket]


def public_url(url: str) -> str:
    """The URL without user info, query or fragment: safe to show in messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _connect(address: tuple[str, int], timeout: float | None) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


@dataclass(frozen=True)
class Target:
    """One parsed, checked URL: what to connect to and what to send."""

    scheme: str
    host: str
    port: int
    request_path: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host.lower(), self.port)


def parse_target(url: str, shown: str, *, redirected: bool) -> Target:
    """`url` as a Target; InvalidSpec (the configured URL) or SourceRejected (a redirect) when unusable."""

    def refuse(problem: str) -> ExportFailure:
        if redirected:
            return permanent(Reason.SOURCE_REJECTED, f"{shown} redirected to a URL that {problem}")
        return permanent(Reason.INVALID_SPEC, f"spec.source.http.url {shown} {problem}")

    if any(not (0x21 <= ord(c) <= 0x7E) for c in url):
        raise refuse("contains spaces, control or non-ASCII characters (percent-encode them)")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise refuse("is not a valid URL (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise refuse(f"has the scheme {scheme!r}; only http and https are followed")
    if "@" in parts.netloc:
        raise refuse("carries user info (user:password@); put a token in a Secret and use bearerTokenSecretRef")
    if not parts.hostname:
        raise refuse("has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], path)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to an already checked address (the Host header keeps the name)."""

    def __init__(self, host: str, port: int, address: str, timeout: float, connect: Connector) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self._connector = connect

    def connect(self) -> None:
        self.sock = self._connector((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to an already checked address; the certificate is verified against the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float, connect: Connector) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address
        self._connector = connect

    def connect(self) -> None:
        sock = self._connector((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class Response:
    """The open response: a binary stream (`read`, `readline`), `status`, `reason`; `close()` it."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse, url: str) -> None:
        self._connection = connection
        self._response = response
        self.status = response.status
        self.reason = response.reason
        self.url = url  # public form of the final URL

    def read(self, size: int = -1) -> bytes:
        return self._response.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._response.readline(size)

    def close(self) -> None:
        self._response.close()
        self._connection.close()


def open_url(
    url: str,
    headers: Mapping[str, str],
    credential: Mapping[str, str],
    timeout: float,
    policy: EgressPolicy,
    *,
    resolve: Resolver = socket.getaddrinfo,
    connect: Connector = _connect,
) -> Response:
    """GET `url` following redirects; `credential` headers go to the configured origin only.

    Returns the first non-redirect response, whatever its status (the caller judges it).
    Raises ExportFailure: InvalidSpec, EgressDenied, SourceRejected (redirects), SourceUnreachable, SourceTimeout.
    """
    shown = public_url(url)
    target = parse_target(url, shown, redirected=False)
    home = target.origin
    deadline = time.monotonic() + timeout
    secrets = [url, urllib.parse.urlsplit(url).query, urllib.parse.urlsplit(url).netloc.rpartition("@")[0]]
    for hop in range(MAX_REDIRECTS + 1):
        sent = dict(headers)
        if target.origin == home:
            sent.update(credential)
        connection = _open(target, shown, deadline, timeout, policy, resolve, connect, secrets)
        response = _exchange(connection, target, sent, shown, deadline, timeout, secrets)
        location = response.getheader("Location")
        if response.status not in _REDIRECT_STATUSES or not location:
            return Response(connection, response, shown)
        response.close()
        connection.close()
        if hop == MAX_REDIRECTS:
            raise permanent(Reason.SOURCE_REJECTED, f"{shown} redirected more than {MAX_REDIRECTS} times")
        url = urllib.parse.urljoin(url, location)
        secrets += [url, urllib.parse.urlsplit(url).query]
        next_shown = public_url(url)
        target = parse_target(url, shown, redirected=True)
        shown = next_shown
    raise AssertionError("unreachable")


def _open(
    target: Target,
    shown: str,
    deadline: float,
    timeout: float,
    policy: EgressPolicy,
    resolve: Resolver,
    connect: Connector,
    secrets: list[str],
) -> http.client.HTTPConnection:
    try:
        infos = resolve(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        detail = error.strerror if isinstance(error, socket.gaierror) and error.strerror else type(error).__name__
        raise retryable(Reason.SOURCE_UNREACHABLE, f"cannot resolve the host of {shown}: {detail}") from None
    addresses = [str(info[4][0]) for info in infos]
    address, why = first_allowed(addresses, policy)
    if address is None:
        raise permanent(
            Reason.EGRESS_DENIED,
            f"{shown} resolves to {addresses[0] if addresses else 'nothing'}, {why or 'no address'}; "
            "the worker's egress policy refuses it before connecting (see docs/security.md)",
        )
    remaining = max(deadline - time.monotonic(), 0.001)
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target.host, target.port, address, min(timeout, remaining), connect)
    try:
        connection.connect()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        raise transport_failure(error, shown, timeout, secrets) from None
    return connection


def _exchange(
    connection: http.client.HTTPConnection,
    target: Target,
    headers: Mapping[str, str],
    shown: str,
    deadline: float,
    timeout: float,
    secrets: list[str],
) -> http.client.HTTPResponse:
    """Send the request and read the response headers before `deadline`, whatever the server's pace."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), expire)
    timer.daemon = True
    timer.start()
    try:
        connection.request("GET", target.request_path, headers=dict(headers))
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        if expired.is_set():
            raise _timeout(shown, timeout) from None
        raise transport_failure(error, shown, timeout, secrets) from None
    finally:
        timer.cancel()
    if expired.is_set():
        response.close()
        connection.close()
        raise _timeout(shown, timeout)
    if connection.sock is not None:
        connection.sock.settimeout(timeout)  # from now on: per read of the body
    return response


def _timeout(shown: str, timeout: float) -> ExportFailure:
    return retryable(
        Reason.SOURCE_TIMEOUT, f"{shown} did not connect and answer within timeoutSeconds ({timeout:g}s) in total"
    )


def transport_failure(error: BaseException, shown: str, timeout: float, secrets: list[str]) -> ExportFailure:
    """A connection or protocol error as a retryable failure, its text cleaned of the URL's secret parts."""
    if isinstance(error, (socket.timeout, TimeoutError)):
        return retryable(
            Reason.SOURCE_TIMEOUT, f"{shown} did not answer within timeoutSeconds ({timeout:g}s) (one read)"
        )
    if isinstance(error, ssl.SSLError):
        detail = getattr(error, "verify_message", None) or error.reason or type(error).__name__
    elif isinstance(error, OSError) and error.strerror:
        detail = error.strerror
    else:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return retryable(Reason.SOURCE_UNREACHABLE, f"cannot read {shown}: {redact(str(detail), secrets)}")
