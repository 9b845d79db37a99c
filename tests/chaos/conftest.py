"""Fixtures of the fault suite (`pytest -m chaos`, docs/reliability.md).

The suite kills and stops the control plane's components, so it gets a dev
cluster of its own: the fixtures of tests/cluster/conftest.py (`devcluster`,
`namespace`, `exportjobs`, `start_operator`, the failure report) are loaded
here under another module name and so start a second, separate cluster when
both directories run in one session. Added here:

* `intact_cluster` (autouse): after each test every component runs again, so
  one failing fault test cannot break the next;
* `chaos_figures` (session): each test records one row (scenario, injection,
  outcome, lost/duplicated/over-admitted, recovery seconds); the terminal
  summary prints the table that docs/reliability.md records.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

CLUSTER_TESTS = Path(__file__).resolve().parents[1] / "cluster"
sys.path.insert(0, str(CLUSTER_TESTS))  # operator_harness


def _load_cluster_fixtures():
    spec = importlib.util.spec_from_file_location("cluster_fixtures", CLUSTER_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_cluster = _load_cluster_fixtures()
devcluster = _cluster.devcluster
kube_api = _cluster.kube_api
k8s_client = _cluster.k8s_client
namespace = _cluster.namespace
exportjob_crd = _cluster.exportjob_crd
exportjobs = _cluster.exportjobs
start_operator = _cluster.start_operator
pytest_runtest_makereport = _cluster.pytest_runtest_makereport

_FIGURES: list[dict[str, Any]] = []
COLUMNS = ("scenario", "injection", "outcome", "lost", "duplicated", "over-admitted", "recovery s")


@pytest.fixture(autouse=True)
def intact_cluster(devcluster):
    """Every component is running again after the test (whatever it stopped)."""
    yield
    from devcluster.cluster import COMPONENTS

    for component in COMPONENTS:
        devcluster.start_component(component)


@pytest.fixture(scope="session")
def chaos_figures() -> list[dict[str, Any]]:
    """Rows for the figures table: `chaos_figures.append({column: value, ...})`."""
    return _FIGURES


def _table() -> list[str]:
    rows = [[str(figure.get(c, "")) for c in COLUMNS] for figure in _FIGURES]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault suite figures (docs/reliability.md)")
    for line in _table():
        terminalreporter.write_line(line)
