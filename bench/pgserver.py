"""A throw-away PostgreSQL cluster for the benchmarks and the integration tests (one implementation for both).

`TempPostgres()` is a context manager: `initdb` into a temporary directory
(Debian package `postgresql`, binaries under /usr/lib/postgresql/*/bin), start
on a free port on 127.0.0.1 with a unix socket in the same directory and scram
password authentication over TCP, stop and delete everything on exit. As
root, the server runs as the `postgres` user via `runuser` (PostgreSQL refuses
to run as root). Durability is off (fsync=off): this is for tests and
benchmarks only.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

PACKAGE_HINT = "install the Debian package 'postgresql' (apt-get install postgresql)"
PASSWORD = "exportjob-test-pw"


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the cluster did not start; the message says what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bin_dir() -> str:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)
    if not found:
        raise PostgresUnavailable(
            f"PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: {PACKAGE_HINT}"
        )
    return os.path.dirname(found[-1])


class TempPostgres:
    host = "127.0.0.1"
    user = "postgres"
    database = "postgres"
    password = PASSWORD

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = bin_dir()
        self.port = 0
        self._settings = {"fsync": "off", "full_page_writes": "off", **(settings or {})}
        self._base = ""
        self._options = ""
        self._as_root = os.geteuid() == 0

    def dsn(self, **overrides: object) -> str:
        params: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
            **overrides,
        }
        return " ".join(f"{key}={value}" for key, value in params.items())

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        done = subprocess.run(prefix + list(command), capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            log = os.path.join(self._base, "server.log")
            server_log = Path(log).read_text(errors="replace")[-4000:] if os.path.exists(log) else ""
            raise PostgresUnavailable(
                f"{os.path.basename(command[0])} failed ({done.returncode}): {done.stderr.strip()}\n{server_log}"
            )

    def start(self) -> TempPostgres:
        self._base = tempfile.mkdtemp(prefix="exportjob-pg-")
        data, sockets = os.path.join(self._base, "data"), os.path.join(self._base, "sock")
        os.mkdir(sockets)
        password_file = os.path.join(self._base, "pw")
        with open(password_file, "w") as file:
            file.write(self.password + "\n")
        if self._as_root:
            for path in (self._base, sockets, password_file):
                shutil.chown(path, "postgres")
        self._run(
            f"{self.bin_dir}/initdb",
            "-D",
            data,
            "-U",
            self.user,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        self.port = free_port()
        options = f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1 " + " ".join(
            f"-c {key}={value}" for key, value in self._settings.items()
        )
        self._options = options
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server (again, after `halt`) on the same port with the same data."""
        self._run(
            f"{self.bin_dir}/pg_ctl",
            "-D",
            os.path.join(self._base, "data"),
            "-o",
            self._options,
            "-l",
            os.path.join(self._base, "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def halt(self) -> None:
        """Stop the server but keep its data (`resume` starts it again): open connections are cut."""
        self._run(f"{self.bin_dir}/pg_ctl", "-D", os.path.join(self._base, "data"), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        if not self._base:
            return
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        subprocess.run(
            [*prefix, f"{self.bin_dir}/pg_ctl", "-D", os.path.join(self._base, "data"), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(self._base, ignore_errors=True)
        self._base = ""

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(statement, params or None)  # type: ignore[arg-type]

    def __enter__(self) -> TempPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
