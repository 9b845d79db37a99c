"""The Grafana dashboard conforms to Grafana's published dashboard schema.

bin/dashboard-lint (hack/tools/dashboard-lint, built by `make tools`) decodes the
dashboard strictly into the typed dashboard v1 structures of the Apache-licensed
grafana-foundation-sdk, with every core panel and query plugin registered, and
runs the SDK's validation. These tests run it on the shipped dashboard and on
broken copies, so the checker is seen to fail, naming the JSON path. Marked
`tools`; without the binary the tests fail and say to run `make tools`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.tools

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "exportjob-operator.json"
CHART_COPY = REPO / "charts" / "exportjob-operator" / "files" / "exportjob-operator.json"


def dashboard_lint() -> Path:
    path = Path(os.environ.get("DASHBOARD_LINT", REPO / "bin" / "dashboard-lint"))
    if not path.exists():
        pytest.fail(f"{path} not found: run `make tools` (hack/build-tools.sh dashboard-lint)", pytrace=False)
    return path


def lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(dashboard_lint()), *map(str, paths)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_the_dashboard_and_its_chart_copy_conform() -> None:
    proc = lint(DASHBOARD, CHART_COPY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("conforms to the Grafana dashboard schema") == 2


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        # an unknown key in a Prometheus query (a typo Grafana would silently drop)
        (
            lambda d: d["panels"][4]["targets"][0].update(exprr="up"),
            "panels[4].targets[0].Dataquery: unexpected field 'exprr'",
        ),
        # a wrong type in the layout
        (lambda d: d["panels"][5]["gridPos"].update(w="wide"), "panels[5].gridPos.w"),
        # a stat panel's options missing a required field
        (lambda d: d["panels"][0]["options"].pop("wideLayout"), "panels[0].options.wideLayout: required field"),
        # a schema constraint
        (lambda d: d.update(fiscalYearStartMonth=12), "fiscalYearStartMonth: must be < 12"),
    ],
    ids=["unknown-query-field", "wrong-type", "missing-required", "constraint"],
)
def test_a_broken_dashboard_fails_naming_the_path(tmp_path: Path, mutate, expected: str) -> None:
    broken = json.loads(DASHBOARD.read_text())
    mutate(broken)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    proc = lint(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert expected in proc.stderr, proc.stderr
