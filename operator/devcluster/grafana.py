"""Run a Grafana dashboard's panel queries against a live Prometheus, as Grafana would send them.

Used by ``python -m devcluster.promcli panels`` (the end of ``make demo``) and
tests/cluster/test_observability.py, which require every panel query to
return data. Grafana replaces its variables before it queries: ``$namespace``
(All: ``.*``), ``$__range`` (the time range), ``$__interval`` (range divided by
the points the panel draws, at least the scrape interval) and
``$__rate_interval`` (``max($__interval + scrape interval, 4 × scrape
interval)``, Grafana's documented rule). Instant panels are queried at the end
of the range; the others as range queries with ``$__interval`` as step.

:func:`panel_queries` is pure; :func:`run_panel_queries` does the HTTP calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .promapi import PrometheusAPI

__all__ = ["PanelQuery", "PanelResult", "grafana_intervals", "iter_targets", "panel_queries", "run_panel_queries"]

# Grafana's three variable syntaxes: $name, ${name} / ${name:format}, [[name]].
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
MAX_DATA_POINTS = 300  # about the points a half-width panel draws


@dataclass(frozen=True)
class PanelQuery:
    panel_id: int
    title: str
    ref_id: str
    expr: str  # with every variable replaced
    instant: bool

    @property
    def name(self) -> str:
        return f'panel {self.panel_id} "{self.title}" target {self.ref_id}'


@dataclass(frozen=True)
class PanelResult:
    query: PanelQuery
    series: int  # series returned
    values: int  # samples that are numbers (not NaN)


def iter_targets(panels: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query target, including panels nested in rows."""
    for panel in panels:
        yield from iter_targets(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel, target


def _duration(seconds: float) -> str:
    """A PromQL duration in whole seconds (at least 1s)."""
    return f"{max(1, math.ceil(seconds))}s"


def grafana_intervals(range_seconds: float, scrape_interval_seconds: float) -> dict[str, float]:
    """Grafana's built-in interval variables, in seconds, for a time range and a data source scrape interval."""
    interval = max(scrape_interval_seconds, range_seconds / MAX_DATA_POINTS)
    return {
        "__range": range_seconds,
        "__interval": interval,
        "__rate_interval": max(interval + scrape_interval_seconds, 4 * scrape_interval_seconds),
    }


def _substitute(expr: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Replace Grafana variables in expr; return the result and the unknown variable names."""
    unknown: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            unknown.append(name)
            return match.group(0)
        return values[name]

    return VARIABLE.sub(replace, expr), unknown


def panel_queries(
    dashboard: dict[str, Any], *, range_seconds: float, scrape_interval_seconds: float
) -> list[PanelQuery]:
    """Every panel target with its variables replaced; an unknown variable is a ValueError naming the panel."""
    intervals = grafana_intervals(range_seconds, scrape_interval_seconds)
    values = {name: _duration(seconds) for name, seconds in intervals.items()}
    values["__range_s"] = str(math.ceil(range_seconds))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":  # what Grafana sends for All
            values[var["name"]] = var.get("allValue") or ".*"
        elif var.get("type") == "datasource":
            values[var["name"]] = ""
    queries = []
    for panel, target in iter_targets(dashboard.get("panels", [])):
        query = PanelQuery(
            panel["id"], panel.get("title", ""), target.get("refId", "?"), "", bool(target.get("instant"))
        )
        expr, unknown = _substitute(target["expr"], values)
        if unknown:
            raise ValueError(f"{query.name}: unknown Grafana variable(s) {', '.join(sorted(set(unknown)))}")
        queries.append(PanelQuery(query.panel_id, query.title, query.ref_id, expr, query.instant))
    return queries


def _numbers(values: list[Any]) -> int:
    return sum(1 for _, v in values if not math.isnan(float(v)))


def run_panel_queries(
    api: PrometheusAPI, queries: list[PanelQuery], *, start: float, end: float, scrape_interval_seconds: float
) -> list[PanelResult]:
    step = grafana_intervals(end - start, scrape_interval_seconds)["__interval"]
    results = []
    for query in queries:
        if query.instant:
            samples = api.query(query.expr, time=end)
            results.append(PanelResult(query, len(samples), _numbers([s["value"] for s in samples])))
        else:
            matrix = api.query_range(query.expr, start, end, step)
            results.append(PanelResult(query, len(matrix), sum(_numbers(s["values"]) for s in matrix)))
    return results
