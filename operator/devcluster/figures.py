"""The main figures of a run, read from Prometheus: exports by result, p95 duration, queue depth, bytes.

Used by ``python -m devcluster.promcli figures`` (the last screen of ``make
demo``) and ``... chart`` (the picture in docs/monitoring.md). The figures
come from the operator's metrics as scraped by Prometheus, never from the
ExportJobs, so what the terminal shows is what a dashboard would show. The
p95 is estimated from the histogram buckets of every export since the
operator started (a run is too short for rate windows).

:func:`collect` and :func:`collect_series` query; everything else is pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .promapi import PrometheusAPI, value_of

__all__ = ["CHART_SERIES", "Figures", "collect", "collect_series", "format_figures", "human_bytes", "sparkline"]

EXPORTS = "sum by (format, result) (exportjob_exports_total)"
P95 = "histogram_quantile(0.95, sum by (format, le) (exportjob_export_duration_seconds_bucket))"
QUEUE = "max(exportjob_queue_depth)"
RUNNING = "max(exportjob_running)"
BYTES = "sum by (format) (exportjob_output_bytes_total)"
ROWS = "sum by (format) (exportjob_rows_total)"

# The chart's four panels: (title, unit, [(legend, query)]). Range queries over the run.
CHART_SERIES: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Exports finished, by result",
        "exports",
        [
            ("succeeded", 'sum(exportjob_exports_total{result="succeeded"})'),
            ("failed", 'sum(exportjob_exports_total{result="failed"})'),
        ],
    ),
    (
        "Export duration p95 (all exports so far)",
        "seconds",
        [("p95", "histogram_quantile(0.95, sum by (le) (exportjob_export_duration_seconds_bucket))")],
    ),
    ("Queue depth and running exports", "exports", [("queued", QUEUE), ("running", RUNNING)]),
    (
        "Bytes written",
        "KiB",
        [
            ("csv", 'sum(exportjob_output_bytes_total{format="csv"}) / 1024'),
            ("pdf", 'sum(exportjob_output_bytes_total{format="pdf"}) / 1024'),
        ],
    ),
]

BARS = "▁▂▃▄▅▆▇█"


@dataclass
class Figures:
    exports: dict[tuple[str, str], float] = field(default_factory=dict)  # (format, result) -> count
    p95_seconds: dict[str, float] = field(default_factory=dict)  # format -> seconds
    bytes: dict[str, float] = field(default_factory=dict)
    rows: dict[str, float] = field(default_factory=dict)
    queue_now: float | None = None
    queue_over_time: list[float] = field(default_factory=list)
    running_over_time: list[float] = field(default_factory=list)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def sparkline(values: list[float]) -> str:
    """One character per value, scaled from 0 to the largest value."""
    top = max(values, default=0)
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))] for v in values)


def _by(api: PrometheusAPI, expr: str, *labels: str) -> dict:
    out = {}
    for sample in api.query(expr):
        value = value_of(sample)
        if not math.isnan(value):
            key = tuple(sample["metric"].get(label, "") for label in labels)
            out[key[0] if len(key) == 1 else key] = value
    return out


def collect(api: PrometheusAPI, start: float, end: float, points: int = 40) -> Figures:
    step = max(1.0, (end - start) / points)
    queue = api.query_range(QUEUE, start, end, step)
    running = api.query_range(RUNNING, start, end, step)
    return Figures(
        exports=_by(api, EXPORTS, "format", "result"),
        p95_seconds=_by(api, P95, "format"),
        bytes=_by(api, BYTES, "format"),
        rows=_by(api, ROWS, "format"),
        queue_now=api.scalar(QUEUE),
        queue_over_time=[float(v) for _, v in queue[0]["values"]] if queue else [],
        running_over_time=[float(v) for _, v in running[0]["values"]] if running else [],
    )


def collect_series(
    api: PrometheusAPI, start: float, end: float, step: float
) -> list[tuple[str, str, list[tuple[str, list[tuple[float, float]]]]]]:
    """CHART_SERIES evaluated over [start, end]: (title, unit, [(legend, [(seconds since start, value)])])."""
    panels = []
    for title, unit, queries in CHART_SERIES:
        lines = []
        for legend, expr in queries:
            matrix = api.query_range(expr, start, end, step)
            points = [(float(t) - start, float(v)) for t, v in (matrix[0]["values"] if matrix else [])]
            lines.append((legend, [(t, v) for t, v in points if not math.isnan(v)]))
        panels.append((title, unit, lines))
    return panels


def format_figures(figures: Figures) -> str:
    formats = sorted({fmt for fmt, _ in figures.exports} | set(figures.bytes))
    lines = []
    for fmt in formats:
        ok = figures.exports.get((fmt, "succeeded"), 0)
        failed = figures.exports.get((fmt, "failed"), 0)
        p95 = figures.p95_seconds.get(fmt)
        lines.append(
            f"  {fmt:<4} exports: {ok:.0f} succeeded, {failed:.0f} failed"
            f" | p95 duration: {'-' if p95 is None else f'{p95:.1f} s'}"
            f" | written: {human_bytes(figures.bytes.get(fmt, 0))}, {figures.rows.get(fmt, 0):.0f} rows"
        )
    total_ok = sum(v for (_, result), v in figures.exports.items() if result == "succeeded")
    total_failed = sum(v for (_, result), v in figures.exports.items() if result == "failed")
    lines.append(
        f"  all  exports: {total_ok:.0f} succeeded, {total_failed:.0f} failed"
        f" | written: {human_bytes(sum(figures.bytes.values()))}"
    )
    queue_peak = max(figures.queue_over_time, default=0)
    lines.append(
        f"  queue depth now {'-' if figures.queue_now is None else f'{figures.queue_now:.0f}'}, "
        f"peak {queue_peak:.0f}  {sparkline(figures.queue_over_time)}"
    )
    lines.append(
        f"  running     now {figures.running_over_time[-1] if figures.running_over_time else 0:.0f}, "
        f"peak {max(figures.running_over_time, default=0):.0f}  {sparkline(figures.running_over_time)}"
    )
    return "\n".join(lines)
