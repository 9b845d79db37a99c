"""bin/prometheus (the server the demo and the observability tests run) is promtool's Prometheus.

hack/build-tools.sh builds both from the same pinned module version
(hack/tools/prometheus and hack/tools/promtool, checked equal at build time);
this checks the binaries agree. Marked `tools`: without them the test fails and
says to run `make tools`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.tools

REPO = Path(__file__).resolve().parents[2]


def version(tool: str) -> str:
    path = REPO / "bin" / tool
    if not path.exists():
        pytest.fail(f"{path} not found: run `make tools` (hack/build-tools.sh {tool})", pytrace=False)
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    match = re.match(rf"{tool}, version (\S+)", out)
    assert match, out
    return match.group(1)


def pinned(wrapper: str) -> str:
    match = re.search(
        r"github\.com/prometheus/prometheus (v\S+)", (REPO / "hack/tools" / wrapper / "go.mod").read_text()
    )
    assert match, wrapper
    return match.group(1)


def test_server_and_promtool_are_the_same_prometheus() -> None:
    assert pinned("prometheus") == pinned("promtool")
    assert version("prometheus") == version("promtool")
    minor, patch = pinned("promtool").removeprefix("v0.").split(".")
    assert version("prometheus") == f"3.{int(minor) - 300}.{patch}"  # module v0.3MM.P is release 3.MM.P
