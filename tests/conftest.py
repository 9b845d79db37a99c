"""Fixtures shared by every test directory.

- `postgres`: a throw-away PostgreSQL cluster (`bench/pgserver.py`, shared with
  the benchmarks: Debian package `postgresql`, initdb in a temporary directory,
  127.0.0.1 on a free port, scram password auth, run as the `postgres` user
  when we are root); started once per session, stopped at the end. Missing
  binaries fail the tests with the package to install; never skipped silently.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _load_pgserver():
    """bench/pgserver.py: the one throw-away PostgreSQL cluster helper, shared with the benchmarks."""
    path = Path(__file__).resolve().parents[1] / "bench" / "pgserver.py"
    spec = importlib.util.spec_from_file_location("exportjob_bench_pgserver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pgserver = _load_pgserver()


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for connection-refused cases)."""
    return pgserver.free_port()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A started `TempPostgres`: `.dsn(**overrides)`, `.execute(sql, params)`, `.password`, `.port`."""
    try:
        server = pgserver.TempPostgres()
    except pgserver.PostgresUnavailable as error:  # no server binaries: say which package, never skip
        pytest.fail(str(error))
    try:
        server.start()
    except pgserver.PostgresUnavailable as error:
        server.stop()
        pytest.fail(str(error))
    try:
        yield server
    finally:
        server.stop()
