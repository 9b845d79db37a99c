"""Checks of the monitoring artefacts: Prometheus rules, their promtool unit tests, runbooks and the Grafana dashboard.

Runs the real tools (`promtool check rules`, `promtool test rules`,
hack/check-dashboard-queries.py) and asserts in Python the structural facts
promtool cannot see: every alert carries severity, `for:`, summary, description
and a runbook that exists; every alert and recording rule is exercised by the
unit tests; the dashboard keeps its uid, uses `$datasource` and the namespace
filter everywhere; and no query names a metric the operator does not expose.
Marked `tools` because it needs bin/promtool (built by `make tools`); without
it the tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.tools

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "exportjob.rules.yml"
RULE_TESTS = REPO / "rules" / "exportjob.test.yml"
DASHBOARD = REPO / "dashboards" / "exportjob-operator.json"
RUNBOOKS = REPO / "docs" / "runbooks"
MONITORING_DOC = REPO / "docs" / "monitoring.md"
RUNBOOK_URL = "https://github.com/exportjob-operator/exportjob-operator/blob/main/docs/runbooks/{}.md"

# What the operator exposes (issue 4); histograms are listed by their base name.
COUNTERS = {
    "exportjob_exports_total",
    "exportjob_output_bytes_total",
    "exportjob_rows_total",
    "exportjob_failures_total",
}
GAUGES = {"exportjob_running", "exportjob_queue_depth", "exportjob_max_concurrent"}
HISTOGRAMS = {
    "exportjob_export_duration_seconds",
    "exportjob_queue_wait_seconds",
    "exportjob_worker_peak_memory_bytes",
}
EXPOSED = COUNTERS | GAUGES | {f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")}

# Alerts issue 5 asks for, with the severities each must have.
EXPECTED_ALERTS = {
    "ExportJobLatencyP95High": {"warning", "critical"},
    "ExportJobFailureSpike": {"warning", "critical"},
    "ExportJobBytesAnomaly": {"warning"},
    "ExportJobSuccessRateLow": {"warning", "critical"},
    "ExportJobQueueBacklog": {"warning"},
    "ExportJobConcurrencySaturated": {"warning"},
    "ExportJobOperatorDown": {"critical"},
    "ExportJobOperatorAbsent": {"critical"},
}
# absent() with a regex matcher has no labels to template from.
STATIC_DESCRIPTION_ALLOWED = {"ExportJobOperatorAbsent"}

PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "Inf",
    "NaN",
    "atan2",
}


# ---------------------------------------------------------------- helpers


def promtool() -> Path:
    path = Path(os.environ.get("PROMTOOL", REPO / "bin" / "promtool"))
    if not path.exists():
        pytest.fail(
            f"{path} not found: run `make tools` (hack/build-tools.sh promtool) to build promtool", pytrace=False
        )
    return path


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def alerts() -> list[dict]:
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def records() -> list[dict]:
    return [r for g in rule_groups() for r in g["rules"] if "record" in r]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out


def dashboard_targets() -> list[tuple[dict, dict]]:
    return [(p, t) for p in all_panels(dashboard()["panels"]) for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexical approximation, enough for our queries)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # range / subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name in PROMQL_WORDS:
            continue
        names.add(name)
    return names


# ---------------------------------------------------------------- promtool


def test_promtool_check_rules() -> None:
    proc = run([str(promtool()), "check", "rules", str(RULES.relative_to(REPO))])
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_promtool_unit_tests() -> None:
    proc = run([str(promtool()), "test", "rules", str(RULE_TESTS.relative_to(REPO))])
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_dashboard_queries_parse() -> None:
    run([sys.executable, "hack/check-dashboard-queries.py", "--promtool", str(promtool())])


def test_dashboard_check_names_the_broken_panel(tmp_path: Path) -> None:
    """The checker fails, naming the panel, when a query does not parse."""
    broken = dashboard()
    broken["panels"][0]["targets"][0]["expr"] = 'sum(rate(exportjob_rows_total{namespace=~"$namespace"}))'
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    proc = subprocess.run(
        [sys.executable, "hack/check-dashboard-queries.py", "--promtool", str(promtool()), str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = broken["panels"][0]
    assert f'panel {first["id"]} "{first["title"]}"' in proc.stderr


# ---------------------------------------------------------------- alerts and recording rules


def test_expected_alerts_and_severities() -> None:
    found: dict[str, set[str]] = {}
    for rule in alerts():
        found.setdefault(rule["alert"], set()).add(rule.get("labels", {}).get("severity"))
    assert found == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_is_complete(rule: dict) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"ExportJob[A-Z][A-Za-z0-9]+", name), "CamelCase with the ExportJob prefix"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "`for:` must be set"
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip() and "{{" not in annotations["summary"], "summary must be static"
    assert annotations["description"].strip()
    if name not in STATIC_DESCRIPTION_ALLOWED:
        assert "{{" in annotations["description"], "description must be templated"
    assert annotations["runbook_url"] == RUNBOOK_URL.format(name)


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_runbook_exists(name: str) -> None:
    page = RUNBOOKS / f"{name}.md"
    assert page.is_file(), f"missing runbook {page.relative_to(REPO)}"
    text = page.read_text()
    assert text.startswith(f"# {name}"), "a runbook opens with the alert's name"
    for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
        assert section in text, f"{page.name} lacks {section}"


def test_recording_rule_names() -> None:
    names = [r["record"] for r in records()]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"format:exportjob_[a-z0-9_]+:[a-z0-9_]+", name), name


def test_rules_keep_no_per_object_labels() -> None:
    """Aggregations keep only namespace/job/format (and le inside histogram_quantile)."""
    allowed = {"namespace", "job", "format", "le"}
    for rule in records() + alerts():
        for labels in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"]):
            kept = {label.strip() for label in labels.split(",") if label.strip()}
            assert kept <= allowed, f"{rule.get('record') or rule.get('alert')} keeps {kept - allowed}"


def test_rules_reference_only_known_metrics() -> None:
    known = EXPOSED | {r["record"] for r in records()} | {"up"}
    for rule in records() + alerts():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')} uses unknown metrics {unknown}"


def test_unit_tests_cover_every_rule() -> None:
    """Every alert is seen firing and silent, each severity fires, every recording rule is evaluated."""
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: dict[str, set[str]] = {}
    silent: set[str] = set()
    promql = ""
    for group in tests:
        for case in group.get("alert_rule_test", []):
            expected = case.get("exp_alerts") or []
            if not expected:
                silent.add(case["alertname"])
            for alert in expected:
                firing.setdefault(case["alertname"], set()).add(alert["exp_labels"]["severity"])
                assert set(alert.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}, (
                    f"{case['alertname']} at {case['eval_time']}: annotations must be asserted in full"
                )
        promql += "\n".join(case["expr"] for case in group.get("promql_expr_test", []))
    assert firing == EXPECTED_ALERTS
    assert silent == set(EXPECTED_ALERTS), f"no negative case for {set(EXPECTED_ALERTS) - silent}"
    for rule in records():
        assert rule["record"] in promql, f"{rule['record']} is not checked by a promql_expr_test"


def test_monitoring_doc_lists_everything() -> None:
    text = MONITORING_DOC.read_text()
    for name in sorted(EXPECTED_ALERTS) + [r["record"] for r in records()] + sorted(COUNTERS | GAUGES | HISTOGRAMS):
        assert name in text, f"docs/monitoring.md does not mention {name}"


# ---------------------------------------------------------------- dashboard


def test_dashboard_identity_and_variables() -> None:
    dash = dashboard()
    assert dash["uid"] == "exportjob-operator"
    assert dash["schemaVersion"] >= 39
    assert "exportjob-operator" in dash["tags"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    namespace = variables["namespace"]
    assert namespace["type"] == "query"
    assert namespace["datasource"]["uid"] == "${datasource}"
    assert namespace["definition"] == "label_values(exportjob_running, namespace)"
    assert namespace["query"]["query"] == "label_values(exportjob_running, namespace)"
    assert namespace["multi"] and namespace["includeAll"]
    ids = [p["id"] for p in all_panels(dash["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_has_the_required_panels() -> None:
    exprs = "\n".join(t["expr"] for _, t in dashboard_targets())
    for metric in sorted(EXPOSED - {f"{h}_{s}" for h in HISTOGRAMS for s in ("sum", "count")}):
        assert metric in exprs, f"no panel shows {metric}"
    titles = {p["title"] for p in all_panels(dashboard()["panels"])}
    for title in (
        "Export duration p95 / p50",
        "Success ratio",
        "Exports by result",
        "Running vs limit",
        "Queue depth",
        "Queue wait p95",
        "Rows per second",
        "Bytes per second",
        "Failures by reason",
        "Worker peak memory p95",
    ):
        assert title in titles


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    for panel in all_panels(dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_every_selector_filters_by_namespace() -> None:
    for panel, target in dashboard_targets():
        expr = target["expr"]
        selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr)
        assert {s[0] for s in selectors} == metric_names(expr), (
            f"{panel['title']}: a metric is selected without a label filter"
        )
        for metric, matchers in selectors:
            assert 'namespace=~"$namespace"' in matchers, f'{panel["title"]}: {metric} lacks namespace=~"$namespace"'


def test_dashboard_references_only_known_metrics() -> None:
    for panel, target in dashboard_targets():
        unknown = metric_names(target["expr"]) - (EXPOSED | {r["record"] for r in records()})
        assert not unknown, f"{panel['title']} uses unknown metrics {unknown}"
