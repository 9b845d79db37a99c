"""Pure parts of the live-observability tooling: Prometheus config, Grafana variable substitution, figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devcluster.chart import draw
from devcluster.figures import Figures, format_figures, human_bytes, sparkline
from devcluster.grafana import grafana_intervals, panel_queries
from devcluster.prometheus import ScrapeTarget, render_config

REPO = Path(__file__).resolve().parents[2]


def test_config_scrapes_each_target_with_the_servicemonitor_labels_and_loads_the_rules(tmp_path: Path) -> None:
    rules = tmp_path / "r.yml"
    config = render_config(
        [ScrapeTarget("127.0.0.1:8080"), ScrapeTarget("127.0.0.1:9000", labels={"namespace": "b"})],
        [rules],
        scrape_interval="1s",
        evaluation_interval="2s",
    )
    assert config["global"] == {"scrape_interval": "1s", "evaluation_interval": "2s"}
    assert config["rule_files"] == [str(rules.resolve())]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "exportjob-operator" and job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:8080"], "labels": {"namespace": "exportjob-system"}},
        {"targets": ["127.0.0.1:9000"], "labels": {"namespace": "b"}},
    ]


def test_grafana_rate_interval_follows_grafanas_rule() -> None:
    # max($__interval + scrape, 4 * scrape); $__interval = max(scrape, range / points)
    assert grafana_intervals(60, 1) == {"__range": 60, "__interval": 1, "__rate_interval": 4}
    six_hours = grafana_intervals(6 * 3600, 15)
    assert six_hours["__interval"] == 72 and six_hours["__rate_interval"] == 87


def test_panel_queries_replace_every_variable_of_the_dashboard() -> None:
    dashboard = json.loads((REPO / "dashboards" / "exportjob-operator.json").read_text())
    queries = panel_queries(dashboard, range_seconds=120.5, scrape_interval_seconds=1)
    assert len(queries) == sum(len(p.get("targets", [])) for p in dashboard["panels"])
    assert all("$" not in q.expr and "[[" not in q.expr for q in queries), [q.expr for q in queries if "$" in q.expr]
    by_title = {q.title: q for q in queries}
    assert by_title["Exports succeeded"].instant and "[121s]" in by_title["Exports succeeded"].expr
    assert not by_title["Queue depth"].instant and 'namespace=~".*"' in by_title["Queue depth"].expr
    assert "[4s]" in by_title["Rows per second"].expr


def test_panel_queries_name_the_panel_of_an_unknown_variable() -> None:
    dashboard = {"panels": [{"id": 7, "title": "T", "targets": [{"refId": "A", "expr": "up{x=~'$nope'}"}]}]}
    with pytest.raises(ValueError, match=r'panel 7 "T" target A: unknown Grafana variable.*nope'):
        panel_queries(dashboard, range_seconds=60, scrape_interval_seconds=1)


def test_figures_text() -> None:
    figures = Figures(
        exports={("csv", "succeeded"): 2, ("csv", "failed"): 1, ("pdf", "succeeded"): 1, ("pdf", "failed"): 0},
        p95_seconds={"csv": 2.375},
        bytes={"csv": 3 * 1024 * 1024, "pdf": 2048},
        rows={"csv": 3000, "pdf": 100},
        queue_now=0,
        queue_over_time=[0, 2, 2, 1, 0],
        running_over_time=[0, 2, 2, 2, 0],
    )
    text = format_figures(figures)
    assert "csv  exports: 2 succeeded, 1 failed | p95 duration: 2.4 s | written: 3.0 MiB, 3000 rows" in text
    assert "pdf  exports: 1 succeeded, 0 failed | p95 duration: - | written: 2.0 KiB, 100 rows" in text
    assert "all  exports: 3 succeeded, 1 failed" in text
    assert "queue depth now 0, peak 2  ▁██▅▁" in text


def test_sparkline_and_bytes() -> None:
    assert sparkline([]) == "" and sparkline([0, 0]) == "▁▁" and sparkline([0, 4, 8]) == "▁▅█"
    assert human_bytes(512) == "512 B" and human_bytes(1536) == "1.5 KiB" and human_bytes(5 * 1024**3) == "5.0 GiB"


def test_chart_draws_every_panel_and_says_no_data() -> None:
    drawing = draw([("A", "u", [("x", [(0, 1), (5, 2)])]), ("B", "u", [("y", [])])], caption="caption", x_max=10)
    texts = [getattr(item, "text", "") for item in drawing.contents]
    assert "A (u)" in texts and "B (u)" in texts and "no data" in texts and "caption" in texts
