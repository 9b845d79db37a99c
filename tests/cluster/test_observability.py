"""Live observability: a real Prometheus scrapes the operator, evaluates rules/, and answers for the dashboard.

Each test runs the operator as a process (operator_harness) and bin/prometheus
(hack/build-tools.sh prometheus) scraping its /metrics every second and
evaluating rules/exportjob.rules.yml every second, under the scrape job and
namespace label a ServiceMonitor would give it. Exports run for real on the
local control plane; the assertions ask Prometheus' HTTP API:

* every `exportjob_*` sample the operator exposes is in Prometheus with the
  target labels and the same value (the list comes from the operator's own
  /metrics, so metrics added later are covered), and the counts and sums equal
  what the ExportJobs' statuses say ran;
* every recording rule is healthy and yields series;
* the failure-spike and success-rate alerts (both severities) and the backlog
  and saturation alerts become active under the conditions that should
  trigger them, and nothing is ever active in a healthy run. Their `for:`
  durations (2-15 min) are too long to wait for here: live, the alerts are seen
  pending; firing after `for:` is proven by the promtool unit tests
  (rules/exportjob.test.yml, run by tests/tools/test_rules.py);
* every panel query of dashboards/exportjob-operator.json returns data.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest
from operator_harness import REPO, ExportJobs, OperatorProcess, free_port

from devcluster.grafana import panel_queries, run_panel_queries
from devcluster.promapi import PrometheusAPI, value_of
from devcluster.prometheus import OPERATOR_JOB, OPERATOR_NAMESPACE, PrometheusServer, ScrapeTarget
from devcluster.waiting import wait_for

pytestmark = pytest.mark.cluster

SCRAPE_SECONDS = 1
TARGET_LABELS = {"job": OPERATOR_JOB, "namespace": OPERATOR_NAMESPACE}
DASHBOARD = REPO / "dashboards" / "exportjob-operator.json"


# ---------------------------------------------------------------- fixtures and helpers


class Live:
    """A Prometheus scraping one operator, with its API and `started`: the time of its first scrape."""

    def __init__(self, server: PrometheusServer, operator: OperatorProcess) -> None:
        self.server = server
        self.operator = operator
        self.api = PrometheusAPI(server.url)
        wait_for(lambda: self.api.scalar(f'up{{job="{OPERATOR_JOB}"}}') == 1, 30, description="a first scrape")
        # Rules evaluated before that scrape see no `up` at all (ExportJobOperatorAbsent can blip
        # pending once at startup); "the run" starts here.
        self.started = time.time()


@pytest.fixture
def live(devcluster, tmp_path):
    """start(operator) -> Live: bin/prometheus scraping that operator; stopped at teardown (log printed)."""
    servers: list[PrometheusServer] = []

    def start(operator: OperatorProcess) -> Live:
        server = PrometheusServer(tmp_path / f"prometheus-{len(servers)}", bin_dir=devcluster.bin_dir)
        servers.append(server)
        interval = f"{SCRAPE_SECONDS}s"
        server.start(
            [ScrapeTarget(f"127.0.0.1:{operator.metrics_port}")],
            scrape_interval=interval,
            evaluation_interval=interval,
            port=free_port(),
        )
        return Live(server, operator)

    yield start
    for server in servers:
        server.stop()
        tail = server.log_file.read_text(errors="replace").splitlines()[-20:] if server.log_file.exists() else []
        print(f"--- prometheus log {server.log_file} ---\n" + "\n".join(tail))


def synthetic(records: int, path: str, fmt: str = "csv") -> dict:
    return {
        "format": fmt,
        "source": {"synthetic": {"records": records, "seed": 3}},
        "output": {"claimName": "exports", "path": path},
    }


def invalid_spec(path: str) -> dict:
    """Fails in the worker at once: the column does not exist (InvalidSpec)."""
    return {
        "format": "csv",
        "backoffLimit": 0,
        "columns": [{"name": "no_such_column"}],
        "source": {"synthetic": {"records": 5}},
        "output": {"claimName": "exports", "path": path},
    }


def unreachable(path: str) -> dict:
    """Fails at once: nothing listens on the port (SourceUnreachable)."""
    return {
        "format": "csv",
        "backoffLimit": 0,
        "source": {"http": {"url": f"http://127.0.0.1:{free_port()}/rows", "timeoutSeconds": 5}},
        "output": {"claimName": "exports", "path": path},
    }


def key(name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A sample's identity; `le` compared as a number (Prometheus may write 1 where the client wrote 1.0)."""
    return name, tuple(sorted((k, repr(float(v)) if k == "le" else v) for k, v in labels.items()))


def exposed(operator: OperatorProcess) -> dict:
    """The operator's exportjob_* samples from its own /metrics (`_created` timestamps aside)."""
    return {
        key(name, dict(labels)): value
        for (name, labels), value in operator.metrics().items()
        if name.startswith("exportjob_") and not name.endswith("_created")
    }


def in_prometheus(api: PrometheusAPI) -> dict:
    """The latest exportjob_* samples in Prometheus, each checked to carry the target labels."""
    out = {}
    for sample in api.query('{__name__=~"exportjob_.+", __name__!~".+_created"}'):
        labels = dict(sample["metric"])
        name = labels.pop("__name__")
        assert {k: labels.pop(k, None) for k in TARGET_LABELS} == TARGET_LABELS, sample
        assert labels.pop("instance", None), sample
        out[key(name, labels)] = value_of(sample)
    return out


def caught_up(live: Live) -> dict:
    """Wait until Prometheus holds exactly the samples and values the operator exposes now; return them."""

    def same() -> dict | None:
        want = exposed(live.operator)
        have = in_prometheus(live.api)
        return have if have == want else None

    return wait_for(same, timeout=30, interval=0.5, description="Prometheus to hold the operator's samples")


def finished(exportjobs: ExportJobs, names: list[str]) -> None:
    for name in names:
        exportjobs.wait_for_phase(name, ("Succeeded", "Failed"), timeout=120)


def expected_from_statuses(items: list[dict]) -> dict:
    """What the metrics must say, computed from what the ExportJobs report."""
    exports: Counter = Counter()
    failures: Counter = Counter()
    rows: Counter = Counter()
    written: Counter = Counter()
    durations: dict[str, list[float]] = defaultdict(list)
    admitted: Counter = Counter()
    peaks: Counter = Counter()
    for item in items:
        fmt, status = item["spec"]["format"], item["status"]
        ok = status["phase"] == "Succeeded"
        exports[(fmt, "succeeded" if ok else "failed")] += 1
        if ok:
            rows[fmt] += status["rows"]
            written[fmt] += status["bytes"]
        else:
            failures[(fmt, status["reason"])] += 1
        if status.get("durationSeconds") is not None:
            durations[fmt].append(status["durationSeconds"])
        if status.get("admittedAt"):
            admitted[fmt] += 1
        if status.get("workerPeakMemoryBytes"):
            peaks[fmt] += 1
    return {
        "exports": exports,
        "failures": failures,
        "rows": rows,
        "bytes": written,
        "durations": durations,
        "admitted": admitted,
        "peaks": peaks,
    }


def check_values(have: dict, items: list[dict], max_concurrent: int) -> None:
    """Concrete values of the metrics we know, against the ExportJobs' statuses."""
    want = expected_from_statuses(items)

    def get(name: str, **labels: str) -> float | None:
        return have.get(key(name, labels))

    for fmt in ("csv", "pdf"):
        for result in ("succeeded", "failed"):
            assert get("exportjob_exports_total", format=fmt, result=result) == want["exports"][(fmt, result)]
        assert get("exportjob_rows_total", format=fmt) == want["rows"][fmt]
        assert get("exportjob_output_bytes_total", format=fmt) == want["bytes"][fmt]
        assert get("exportjob_export_duration_seconds_count", format=fmt) == len(want["durations"][fmt])
        assert math.isclose(
            get("exportjob_export_duration_seconds_sum", format=fmt), sum(want["durations"][fmt]), abs_tol=1e-6
        )
        assert get("exportjob_queue_wait_seconds_count", format=fmt) == want["admitted"][fmt]
        assert get("exportjob_worker_peak_memory_bytes_count", format=fmt) == want["peaks"][fmt]
    # Failure series exist from startup for every known reason (0 until it happens).
    failures = {
        dict(labels)["format"] + "/" + dict(labels)["reason"]: value
        for (name, labels), value in have.items()
        if name == "exportjob_failures_total"
    }
    assert {f"{fmt}/{reason}" for fmt, reason in want["failures"]} <= set(failures), failures
    assert len(failures) >= 2 * 10, failures
    for labels, value in failures.items():
        fmt, reason = labels.split("/")
        assert value == want["failures"][(fmt, reason)], (labels, value)
    assert get("exportjob_running") == 0 and get("exportjob_queue_depth") == 0
    assert get("exportjob_max_concurrent") == max_concurrent and get("exportjob_leader") == 1


def check_recording_rules(api: PrometheusAPI) -> None:
    groups = api.rules("record")
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 10, groups
    for rule in rules:
        assert rule["health"] == "ok", rule
        assert api.query(rule["name"]), f"recording rule {rule['name']} yields no series"


def active(api: PrometheusAPI) -> list[tuple[str, str, str, str]]:
    """(alertname, severity, format, state) of every active alert."""
    return sorted(
        (a["labels"]["alertname"], a["labels"].get("severity", ""), a["labels"].get("format", ""), a["state"])
        for a in api.alerts()
    )


def wait_active(
    api: PrometheusAPI,
    wanted: set[tuple[str, str, str]],
    timeout: float = 60,
    settled: Callable[[dict], bool] = lambda alert: True,
) -> list[dict]:
    """Wait until every (alertname, severity, format) in `wanted` is pending or firing and every alert
    is `settled` (its annotations come from an evaluation of the final samples); return the alerts."""

    def present() -> list[dict] | None:
        alerts = api.alerts()
        seen = {(a["labels"]["alertname"], a["labels"]["severity"], a["labels"].get("format", "")) for a in alerts}
        return alerts if wanted <= seen and all(settled(a) for a in alerts) else None

    return wait_for(present, timeout=timeout, interval=0.5, description=f"alerts {sorted(wanted)} to be active")


def check_panels(live: Live) -> None:
    end = time.time()
    queries = panel_queries(
        json.loads(DASHBOARD.read_text()), range_seconds=end - live.started, scrape_interval_seconds=SCRAPE_SECONDS
    )
    results = run_panel_queries(live.api, queries, start=live.started, end=end, scrape_interval_seconds=SCRAPE_SECONDS)
    assert len(results) == sum(len(p.get("targets", [])) for p in json.loads(DASHBOARD.read_text())["panels"])
    empty = [f"{r.query.name}: {r.query.expr}" for r in results if r.values == 0]
    assert not empty, "panel queries without data:\n" + "\n".join(empty)


class SilentServer:
    """Accepts HTTP connections and never answers, until released: a source that keeps a worker busy."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def release(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


# ---------------------------------------------------------------- tests


def test_healthy_run_every_metric_and_recording_rule_in_prometheus_and_no_alert(exportjobs, start_operator, live):
    operator = start_operator(max_concurrent=4, max_concurrent_per_namespace=4)
    run = live(operator)
    # Two waves, each scraped before the next starts, so that every counter and
    # histogram is seen rising between scrapes (rate() needs two samples).
    names = []
    for wave in (1, 2):
        batch = {
            f"csv-{wave}": synthetic(3_000, f"h/{wave}.csv"),
            f"pdf-{wave}": synthetic(200, f"h/{wave}.pdf", "pdf"),
        }
        for name, spec in batch.items():
            exportjobs.create(name, spec)
        finished(exportjobs, list(batch))
        names += list(batch)
        have = caught_up(run)

    items = exportjobs.list()
    assert sorted(i["metadata"]["name"] for i in items) == sorted(names)
    assert all(i["status"]["phase"] == "Succeeded" for i in items), [i["status"] for i in items]
    check_values(have, items, max_concurrent=4)
    assert all(v == 0 for (name, _), v in have.items() if name == "exportjob_failures_total")
    check_recording_rules(run.api)

    # Silent: nothing was ever active (ALERTS holds a sample for every evaluation an alert was pending or firing).
    assert active(run.api) == []
    window = math.floor(time.time() - run.started)
    assert run.api.query(f"ALERTS[{window}s]") == [], "an alert was active during a healthy run"
    alert_rules = [rule for group in run.api.rules("alert") for rule in group["rules"]]
    assert alert_rules and all(rule["health"] == "ok" for rule in alert_rules), alert_rules

    # The operator gone: its target goes down and ExportJobOperatorDown becomes pending (for: 5m).
    operator.stop()
    (down,) = wait_active(run.api, {("ExportJobOperatorDown", "critical", "")})
    assert down["labels"]["namespace"] == OPERATOR_NAMESPACE and down["labels"]["job"] == OPERATOR_JOB


def test_failures_raise_spike_and_success_rate_alerts_and_every_panel_has_data(exportjobs, start_operator, live):
    operator = start_operator(max_concurrent=4, max_concurrent_per_namespace=4)
    run = live(operator)
    # 14 csv exports (2 succeed, 12 fail for two reasons) and one pdf, in two scraped waves.
    for wave in (1, 2):
        batch = {f"ok-{wave}": synthetic(2_000, f"f/ok-{wave}.csv")}
        batch |= {f"invalid-{wave}-{i}": invalid_spec(f"f/invalid-{wave}-{i}.csv") for i in range(3)}
        batch |= {f"down-{wave}-{i}": unreachable(f"f/down-{wave}-{i}.csv") for i in range(3)}
        if wave == 2:
            batch["report"] = synthetic(200, "f/report.pdf", "pdf")
        for name, spec in batch.items():
            exportjobs.create(name, spec)
        finished(exportjobs, list(batch))
        have = caught_up(run)

    items = exportjobs.list()
    reasons = Counter(i["status"].get("reason") for i in items if i["status"]["phase"] == "Failed")
    assert reasons == {"InvalidSpec": 6, "SourceUnreachable": 6}, [i["status"] for i in items]
    check_values(have, items, max_concurrent=4)
    check_recording_rules(run.api)
    # Prometheus evaluates the rules on its own clock: the newest recorded value may come from an
    # evaluation before the last scrape (2/13 was seen), so wait for the one that follows it.
    wait_for(
        lambda: run.api.scalar('format:exportjob_export_success:ratio_rate30m{format="csv"}') == pytest.approx(2 / 14),
        timeout=30,
        interval=0.5,
        description="the csv success ratio recorded from all 14 csv exports (2/14)",
    )

    # 12 failures within minutes: both severities of the spike; csv success 2/14 with >= 10 finished:
    # both severities of the success-rate alert. pdf (1 export) is under the volume guard.
    wanted = {
        ("ExportJobFailureSpike", "warning", ""),
        ("ExportJobFailureSpike", "critical", ""),
        ("ExportJobSuccessRateLow", "warning", "csv"),
        ("ExportJobSuccessRateLow", "critical", "csv"),
    }
    alerts = wait_active(
        run.api,
        wanted,
        # An evaluation between the last two scrapes saw 13 csv exports (15.38 %); wait for all 14.
        settled=lambda a: (
            a["labels"]["alertname"] != "ExportJobSuccessRateLow"
            or a["annotations"]["description"].startswith("Only 14.29% of the csv exports")
        ),
    )
    for alert in alerts:
        labels = alert["labels"]
        if labels["alertname"] not in {name for name, _, _ in wanted}:
            continue
        assert alert["state"] in ("pending", "firing")
        assert labels["namespace"] == OPERATOR_NAMESPACE and labels["job"] == OPERATOR_JOB, labels
        assert labels.get("format", "csv") == "csv", labels
        assert alert["annotations"]["runbook_url"].endswith(f"/docs/runbooks/{labels['alertname']}.md")
        if labels["alertname"] == "ExportJobFailureSpike":
            assert f"exports failed in namespace {OPERATOR_NAMESPACE}" in alert["annotations"]["description"]
            assert float(alert["value"]) > (10 if labels["severity"] == "critical" else 5)
        else:
            assert alert["annotations"]["description"].startswith("Only 14.29% of the csv exports"), alert
    # Pending, not yet firing: `for:` is minutes long (firing is proven by promtool, see the docstring).
    durations = {
        (rule["name"], rule["labels"]["severity"]): rule["duration"]
        for group in run.api.rules("alert")
        for rule in group["rules"]
    }
    assert durations[("ExportJobFailureSpike", "critical")] == 120
    assert durations[("ExportJobSuccessRateLow", "warning")] == 900

    check_panels(run)


def test_backlog_and_saturation_alerts_while_the_queue_is_stuck_and_silence_once_it_drains(
    exportjobs, start_operator, live
):
    source = SilentServer()
    try:
        operator = start_operator(max_concurrent=1, max_concurrent_per_namespace=1)
        blocker = {
            "format": "csv",
            "backoffLimit": 0,
            "source": {"http": {"url": f"http://127.0.0.1:{source.port}/rows", "timeoutSeconds": 600}},
            "output": {"claimName": "exports", "path": "b/blocker.csv"},
        }
        exportjobs.create("blocker", blocker)
        exportjobs.wait_for_phase("blocker", "Running")
        exportjobs.create("queued-1", synthetic(100, "b/1.csv"))
        exportjobs.create("queued-2", synthetic(100, "b/2.csv"))
        wait_for(
            lambda: (
                (s := exposed(operator)).get(key("exportjob_queue_depth", {})) == 2
                and s.get(key("exportjob_running", {})) == 1
            ),
            timeout=30,
            description="two queued exports behind one running",
        )
        # Prometheus starts now: from its first sample on, the queue has never been empty.
        run = live(operator)
        alerts = wait_active(
            run.api, {("ExportJobQueueBacklog", "warning", ""), ("ExportJobConcurrencySaturated", "warning", "")}
        )
        for alert in alerts:
            assert alert["labels"]["namespace"] == OPERATOR_NAMESPACE and alert["labels"]["job"] == OPERATOR_JOB
            assert float(alert["value"]) == (2 if alert["labels"]["alertname"] == "ExportJobQueueBacklog" else 1)

        source.release()  # the blocker's source breaks: it fails, the queue drains
        finished(exportjobs, ["blocker", "queued-1", "queued-2"])
        assert exportjobs.status("blocker")["phase"] == "Failed"
        caught_up(run)
        wait_for(lambda: active(run.api) == [] or None, timeout=30, description="every alert to be inactive again")
    finally:
        source.release()
