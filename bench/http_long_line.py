"""Peak RSS of `exportjob-worker` on an HTTP CSV source with one line of N MiB and no newline (issue 9, item 5).

Usage: .venv/bin/python bench/http_long_line.py OPERATOR_SOURCE_DIR MIB
(OPERATOR_SOURCE_DIR: this tree's operator/, or an older checkout's, to compare). Loopback only.
Figures: bench/README.md, "HTTP CSV line without a newline".
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIZE = int(sys.argv[2]) * 1024 * 1024


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(SIZE + 5))
        self.end_headers()
        self.wfile.write(b"a,b\r\n")
        chunk = b"1," * 32768
        sent = 0
        try:
            while sent < SIZE:
                self.wfile.write(chunk[: SIZE - sent])
                sent += len(chunk)
        except OSError:
            pass


server = ThreadingHTTPServer(("127.0.0.1", 0), H)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
spec = {
    "format": "csv",
    "source": {"http": {"url": f"http://127.0.0.1:{server.server_address[1]}/x", "format": "csv"}},
    "output": {"path": "x.csv"},
}
with tempfile.TemporaryDirectory() as out:
    env = dict(os.environ, PYTHONPATH=sys.argv[1])
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "exportjob.worker.main",
            "--spec-json",
            json.dumps(spec),
            "--output-root",
            out,
            "--termination-log",
            out + "/t",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    r = json.loads(p.stdout.strip().splitlines()[-1])
    print(
        sys.argv[1],
        r.get("reason"),
        r.get("message", "")[:80],
        "peakMemoryBytes",
        r["peakMemoryBytes"] // 1_000_000,
        "MB",
    )
