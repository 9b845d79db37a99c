#!/usr/bin/env python3
"""Check that every PromQL query of the Grafana dashboard parses, with promtool.

Used by `make rules-check` and tests/tools/test_rules.py, so no panel ships with
a broken query. Grafana sends a panel's `expr` to Prometheus only after
replacing its variables, so this script does the same: it substitutes every
`$variable` (dashboard variables and Grafana's built-ins such as
`$__rate_interval`) with a valid value, writes each query as a recording rule
(one rule group per panel target, named after the panel) to a temporary file and
runs `promtool check rules` on it. promtool parses and type-checks each
expression (e.g. rate() of an instant vector, or a range given as a bare number,
fail) and names the group, hence the panel, of any broken query.

Exit status: 0 when every query is valid, 1 otherwise (the failing panels are
named), 2 on usage errors (dashboard or promtool missing, no queries found).

    hack/check-dashboard-queries.py [--promtool bin/promtool] [dashboards/exportjob-operator.json ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DASHBOARDS = [REPO / "dashboards" / "exportjob-operator.json"]

# Values Grafana would put in place of its built-in variables. Durations must be
# valid PromQL durations; the *_s / *_ms forms are plain numbers.
BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "6h",
    "__rate_interval_ms": "300000",
    "__interval_ms": "60000",
    "__range_s": "21600",
    "__range_ms": "21600000",
    "__auto": "1m",
}
# Grafana's three variable syntaxes: $name, ${name} / ${name:format}, [[name]].
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def iter_targets(panels: list[dict]) -> Iterator[tuple[dict, dict]]:
    """Yield (panel, target) for every query target, including panels nested in collapsed rows."""
    for panel in panels:
        yield from iter_targets(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel, target


def variable_values(dashboard: dict) -> dict[str, str]:
    """A valid value for every dashboard variable: its All value for multi-value ones."""
    values = dict(BUILTINS)
    for var in dashboard.get("templating", {}).get("list", []):
        name = var.get("name")
        if not name:
            continue
        if var.get("type") in ("interval",):
            values[name] = "5m"
        else:
            # A regex that matches anything is what Grafana sends for "All" and
            # is valid wherever a variable may stand inside a label matcher.
            values[name] = var.get("allValue") or ".*"
    return values


def substitute(expr: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Replace Grafana variables in expr; return the result and the unknown variable names."""
    unknown: list[str] = []

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            unknown.append(name)
            return match.group(0)
        return values[name]

    return VARIABLE.sub(repl, expr), unknown


def panel_name(panel: dict, target: dict) -> str:
    return f'panel {panel.get("id")} "{panel.get("title", "")}" target {target.get("refId", "?")}'


def build_rule_file(dashboard_path: Path) -> tuple[dict, list[str], int]:
    """Return (rule file content, errors found before promtool, number of queries)."""
    dashboard = json.loads(dashboard_path.read_text())
    values = variable_values(dashboard)
    groups: list[dict] = []
    errors: list[str] = []
    for index, (panel, target) in enumerate(iter_targets(dashboard.get("panels", []))):
        name = f"{dashboard_path.name}: {panel_name(panel, target)}"
        expr, unknown = substitute(target["expr"], values)
        if unknown:
            errors.append(f"{name}: unknown Grafana variable(s) {', '.join(sorted(set(unknown)))}")
            continue
        groups.append(
            {
                "name": name,
                "rules": [{"record": f"dashboard_query:check_{index}", "expr": expr}],
            }
        )
    return {"groups": groups}, errors, len(groups) + len(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--promtool", default=str(REPO / "bin" / "promtool"), help="promtool binary (default: bin/promtool)"
    )
    parser.add_argument("dashboards", nargs="*", type=Path, default=DEFAULT_DASHBOARDS)
    args = parser.parse_args(argv)

    promtool = Path(args.promtool)
    if not promtool.exists():
        print(f"error: {promtool} not found; run `make tools` (hack/build-tools.sh promtool) first", file=sys.stderr)
        return 2

    failed = False
    for dashboard_path in args.dashboards:
        if not dashboard_path.is_file():
            print(f"error: {dashboard_path} not found", file=sys.stderr)
            return 2
        rules, errors, count = build_rule_file(dashboard_path)
        if count == 0:
            print(f"error: {dashboard_path}: no panel target with an expr", file=sys.stderr)
            return 2
        for error in errors:
            print(f"FAIL {error}", file=sys.stderr)
            failed = True
        with tempfile.NamedTemporaryFile("w", suffix=".rules.json", prefix="dashboard-queries-") as tmp:
            # JSON is YAML: promtool reads it, and no YAML quoting of PromQL is needed.
            json.dump(rules, tmp, indent=2)
            tmp.flush()
            proc = subprocess.run([str(promtool), "check", "rules", tmp.name], capture_output=True, text=True)
        if proc.returncode != 0:
            failed = True
            output = (proc.stdout + proc.stderr).strip()
            for group in rules["groups"]:
                # promtool names the group with its quotes escaped; the record name is plain and unique.
                record = group["rules"][0]["record"]
                for line in output.splitlines():
                    if f'"{record}"' in line:
                        reason = line.split(f'"{record}": ', 1)[-1]
                        print(f"FAIL {group['name']}: {reason}", file=sys.stderr)
            print(f"promtool check rules failed for {dashboard_path}:\n{output}", file=sys.stderr)
        else:
            print(
                f"ok   {dashboard_path.relative_to(REPO) if dashboard_path.is_relative_to(REPO) else dashboard_path}: "
                f"{len(rules['groups'])} queries parse"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
