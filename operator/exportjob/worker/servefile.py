"""`exportjob-worker serve-file`: serve exactly one file over HTTP, for `exportjob download`.

Runs in the short-lived reader Pod the CLI starts (image: the operator's own). The
claim is mounted read-only with a `subPath` naming the exported file, so the Pod
sees that one file; this server adds no path handling at all: `GET /` (and
`HEAD /`) answers with the file given by `--file`, every other path is 404, so
there is nothing to traverse. `Range: bytes=...` (one range) gives a 206, which
lets the CLI resume an interrupted download; `If-Range` with the `ETag` guards
against a file that changed in between. `/healthz` answers 200 with a fixed text (HEALTHY) that the CLI checks.

It binds `--address` (default: `$POD_IP`, else all addresses) and exits 0 after
`--idle-timeout` seconds without a request, so a reader Pod whose CLI was killed
outright does not serve forever (the Pod's activeDeadlineSeconds is the second net).
One JSON line per request on stderr. Pure parsing in `parse_range`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

__all__ = ["UNSATISFIABLE", "etag_of", "main", "parse_range"]

UNSATISFIABLE = (-1, -1)
DEFAULT_PORT = 8470
HEALTHY = b"exportjob-serve-file ok\n"  # what /healthz answers: the CLI checks it is talking to this server


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range (first, last) a `Range` header asks for.

    None: serve the whole file (no header, a malformed one, several ranges, or not
    bytes). UNSATISFIABLE: a range that starts at or past the end (416).
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_text == "":  # suffix: the last N bytes
            count = int(last_text)
            if count <= 0:
                return UNSATISFIABLE if count == 0 else None
            return (max(size - count, 0), size - 1) if size else UNSATISFIABLE
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size:
        return UNSATISFIABLE
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)


def etag_of(st: os.stat_result) -> str:
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'


class _Handler(BaseHTTPRequestHandler):
    server_version = "exportjob-serve-file"
    protocol_version = "HTTP/1.1"
    path_to_serve = ""
    content_type = "application/octet-stream"
    activity: ClassVar[list[float]] = [time.monotonic()]

    def log_message(self, format: str, *args: object) -> None:  # one JSON line per request instead
        pass

    def _log(self, status: int, sent: int) -> None:
        record = {"event": "request", "method": self.command, "path": self.path, "status": status, "bytes": sent}
        sys.stderr.write(json.dumps(record) + "\n")
        sys.stderr.flush()

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _empty(self, status: int, extra: dict[str, str] | None = None, text: bytes = b"") -> None:
        self.send_response(status)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if text and self.command != "HEAD":
            self.wfile.write(text)
        self._log(status, len(text))

    def _serve(self, body: bool) -> None:
        self.activity[0] = time.monotonic()
        route = self.path.split("?", 1)[0]
        if route == "/healthz":
            return self._empty(200, text=HEALTHY)
        if route != "/":
            return self._empty(404, text=b"only / is served\n")
        try:
            file = open(self.path_to_serve, "rb")  # noqa: SIM115 - closed below, after sendfile
        except OSError as error:
            return self._empty(500, text=f"cannot open the file: {error.strerror}\n".encode())
        with file:
            st = os.fstat(file.fileno())
            etag = etag_of(st)
            wanted = parse_range(self.headers.get("Range"), st.st_size)
            if_range = self.headers.get("If-Range")
            if wanted is not None and if_range is not None and if_range != etag:
                wanted = None  # the file changed since the client's first part: send it whole
            headers = {"Accept-Ranges": "bytes", "ETag": etag, "Content-Type": self.content_type}
            if wanted == UNSATISFIABLE:
                return self._empty(416, {**headers, "Content-Range": f"bytes */{st.st_size}"})
            first, last = wanted if wanted is not None else (0, st.st_size - 1)
            count = max(last - first + 1, 0)
            status = 206 if wanted is not None else 200
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if wanted is not None:
                self.send_header("Content-Range", f"bytes {first}-{last}/{st.st_size}")
            self.send_header("Content-Length", str(count))
            self.end_headers()
            sent = 0
            if body and count:
                try:
                    sent = self.connection.sendfile(file, first, count)
                except OSError:
                    self.close_connection = True  # the client went away
            self.activity[0] = time.monotonic()
            self._log(status, sent)


def _idle_watch(server: ThreadingHTTPServer, activity: list[float], idle_timeout: float) -> None:
    while True:
        time.sleep(min(idle_timeout, 5.0))
        if time.monotonic() - activity[0] > idle_timeout:
            sys.stderr.write(json.dumps({"event": "idle", "seconds": idle_timeout}) + "\n")
            server.shutdown()
            return


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exportjob-worker serve-file", description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", required=True, help="the one file to serve (GET /)")
    parser.add_argument("--address", default=os.environ.get("POD_IP") or "0.0.0.0", help="default: $POD_IP")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--idle-timeout", type=float, default=900.0, help="exit after this many idle seconds")
    arguments = parser.parse_args(argv)
    try:
        st = os.stat(arguments.file)
    except OSError as error:
        print(json.dumps({"event": "missing", "file": arguments.file, "error": error.strerror}), file=sys.stderr)
        return 65
    if not stat.S_ISREG(st.st_mode):
        print(json.dumps({"event": "not-a-file", "file": arguments.file}), file=sys.stderr)
        return 65
    handler: type[_Handler] = type(
        "Handler", (_Handler,), {"path_to_serve": arguments.file, "activity": [time.monotonic()]}
    )
    server = ThreadingHTTPServer((arguments.address, arguments.port), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, _stop)
    threading.Thread(target=_idle_watch, args=(server, handler.activity, arguments.idle_timeout), daemon=True).start()
    print(json.dumps({"event": "serving", "address": arguments.address, "port": arguments.port}), file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
