"""ruff finds nothing to reformat and nothing to report (pyproject.toml [tool.ruff]); `make lint` runs the same."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize(
    "command",
    [["format", "--check", "--no-cache", "."], ["check", "--no-cache", "."]],
    ids=["ruff-format", "ruff-check"],
)
def test_ruff_is_clean(command):
    result = subprocess.run([str(RUFF), *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
