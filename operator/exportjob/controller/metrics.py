"""The operator's Prometheus metrics: the one module that defines and updates them.

Names follow the Prometheus conventions (one `exportjob_` prefix, base units,
counters ending in `_total`) and carry no per-object or per-user labels. Counts
of finished exports are recorded by `record_finished`, which the reconciler
calls only after its status patch that made the export terminal succeeded
(guarded by resourceVersion), so each export is counted once, also across
handler retries and operator restarts. The gauges are set from what the
reconciler has just listed, never incremented, so they cannot drift.

Each `Metrics` owns its own registry, so tests can create as many as they like.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from exportjob.reasons import FAILURE_REASONS, failure_reason

FORMATS = ("csv", "pdf")
RESULTS = ("succeeded", "failed")
# Every failure reason (exportjob.reasons.FAILURE_REASONS) has its series from startup (see __init__).
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
MEMORY_BUCKETS = tuple(float(mib * 1024 * 1024) for mib in (16, 32, 64, 96, 128, 256, 512, 1024, 2048, 4096))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.exports = Counter(
            "exportjob_exports", "Exports finished, by format and result.", ["format", "result"], registry=r
        )
        self.failures = Counter(
            "exportjob_failures", "Failed exports, by format and reason.", ["format", "reason"], registry=r
        )
        self.duration = Histogram(
            "exportjob_export_duration_seconds",
            "Worker wall time of finished exports.",
            ["format"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "exportjob_queue_wait_seconds",
            "Time from creation to admission.",
            ["format"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.output_bytes = Counter(
            "exportjob_output_bytes", "Bytes written by successful exports.", ["format"], registry=r
        )
        self.rows = Counter("exportjob_rows", "Rows written by successful exports.", ["format"], registry=r)
        self.peak_memory = Histogram(
            "exportjob_worker_peak_memory_bytes",
            "Peak resident memory of the worker, per finished export.",
            ["format"],
            buckets=MEMORY_BUCKETS,
            registry=r,
        )
        self.running = Gauge("exportjob_running", "Exports running now (unfinished worker Jobs).", registry=r)
        self.queue_depth = Gauge("exportjob_queue_depth", "Exports waiting for a slot.", registry=r)
        self.max_concurrent = Gauge("exportjob_max_concurrent", "Cluster-wide limit of running exports.", registry=r)
        self.leader = Gauge(
            "exportjob_leader", "1 while this replica holds the leader Lease and reconciles.", registry=r
        )
        for fmt in FORMATS:  # initialise labelled series so rate() sees them from the first scrape
            for result in RESULTS:
                self.exports.labels(fmt, result)
            self.output_bytes.labels(fmt)
            self.rows.labels(fmt)
            # Histograms too: a child created by its first observation enters Prometheus with that
            # observation already counted, which rate() and increase() never see (issue 11).
            self.duration.labels(fmt)
            self.queue_wait.labels(fmt)
            self.peak_memory.labels(fmt)
            for reason in FAILURE_REASONS:
                self.failures.labels(fmt, reason)

    def record_admitted(self, fmt: str, queue_wait_seconds: float) -> None:
        self.queue_wait.labels(fmt).observe(max(queue_wait_seconds, 0.0))

    def record_finished(
        self,
        fmt: str,
        *,
        succeeded: bool,
        reason: str | None,
        rows: int | None,
        size: int | None,
        duration_seconds: float | None,
        peak_memory_bytes: int | None,
    ) -> None:
        self.exports.labels(fmt, "succeeded" if succeeded else "failed").inc()
        if succeeded:
            self.rows.labels(fmt).inc(rows or 0)
            self.output_bytes.labels(fmt).inc(size or 0)
        else:
            # The label's values are the members of one enum: a bounded set, whatever a worker reports.
            self.failures.labels(fmt, str(failure_reason(reason))).inc()
        if duration_seconds is not None:
            self.duration.labels(fmt).observe(duration_seconds)
        if peak_memory_bytes:
            self.peak_memory.labels(fmt).observe(peak_memory_bytes)

    def set_levels(self, *, running: int, queue_depth: int, max_concurrent: int) -> None:
        self.running.set(running)
        self.queue_depth.set(queue_depth)
        self.max_concurrent.set(max_concurrent)

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serve /metrics from a background thread."""
        start_http_server(port, addr=address, registry=self.registry)
