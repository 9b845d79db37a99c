"""``python -m devcluster.promcli start|stop|url|figures|panels|chart``: the demo's Prometheus from the shell.

Used by hack/demo.sh (``make demo``) and ``make prometheus-stop`` /
``make testenv-down`` (hack/make/monitoring.mk). ``start`` prints
``PROMETHEUS_URL=<url>`` as its last line. ``figures``, ``panels`` and
``chart`` first wait for a scrape newer than the moment they were called, so
they show the state the operator has just reached, and read everything from
Prometheus' HTTP API over the run (from the server's start, or ``--since``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .figures import collect, collect_series, format_figures
from .grafana import panel_queries, run_panel_queries
from .paths import DEFAULT_STATE_DIR, REPO_ROOT
from .promapi import PrometheusAPI
from .prometheus import OPERATOR_JOB, PrometheusServer, ScrapeTarget
from .waiting import wait_for

DASHBOARD = REPO_ROOT / "dashboards" / "exportjob-operator.json"


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix) and duration[: -len(suffix)].isdigit():
            return int(duration[: -len(suffix)]) * units[suffix]
    raise argparse.ArgumentTypeError(f"not a duration like 2s or 1m: {duration!r}")


def wait_fresh(api: PrometheusAPI, job: str = OPERATOR_JOB, timeout: float = 60) -> float:
    """Wait until Prometheus holds a successful scrape of `job` taken after now; return that scrape's time."""
    called = time.time()
    return wait_for(
        lambda: (t := api.scalar(f'max(timestamp(up{{job="{job}"}} == 1))')) is not None and t > called and t,
        timeout=timeout,
        interval=0.5,
        description=f"a scrape of job {job} newer than {called:.0f}",
    )


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="state directory (%(default)s)")
    common.add_argument("--bin-dir", type=Path, default=REPO_ROOT / "bin", help="directory with prometheus")
    parser = argparse.ArgumentParser(prog="python -m devcluster.promcli", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", parents=[common], help="start Prometheus scraping the operator; print its URL")
    start.add_argument("--target", action="append", default=[], help="operator metrics host:port (repeatable)")
    start.add_argument("--scrape-interval", default="2s", type=str)
    start.add_argument("--port", type=int, default=None, help="listen port (default 9090, or a free one)")
    sub.add_parser("stop", parents=[common], help="stop it")
    sub.add_parser("url", parents=[common], help="print its URL")
    for name, text in (
        ("figures", "print the main figures of the run"),
        ("panels", "run every dashboard panel query; exit 1 if one returns no data"),
        ("chart", "render the main figures over the run as a PNG"),
    ):
        cmd = sub.add_parser(name, parents=[common], help=text)
        cmd.add_argument("--since", type=float, default=None, help="run start, Unix seconds (default: server start)")
    sub.choices["panels"].add_argument("--dashboard", type=Path, default=DASHBOARD)
    sub.choices["chart"].add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    server = PrometheusServer(args.state_dir, args.bin_dir)
    if args.command == "start":
        url = server.start(
            [ScrapeTarget(t) for t in args.target or ["127.0.0.1:8080"]],
            scrape_interval=args.scrape_interval,
            evaluation_interval=args.scrape_interval,
            port=args.port,
        )
        # Targets are picked up a few seconds after startup; the run starts at the first scrape.
        first = wait_for(
            lambda: PrometheusAPI(url).scalar(f'min(timestamp(up{{job="{OPERATOR_JOB}"}}))'),
            timeout=60,
            interval=0.5,
            description="the first scrape of the operator",
        )
        (server.home / "started").write_text(f"{first}\n")
        (server.home / "scrape-interval").write_text(f"{_seconds(args.scrape_interval)}\n")
        print(f"prometheus running; config {server.config_file}, log {server.log_file}", file=sys.stderr)
        print(f"PROMETHEUS_URL={url}")
        return 0
    if args.command == "stop":
        if server.stop():
            print("prometheus stopped")
        return 0
    if not server.running():
        print(f"prometheus is not running (state dir {args.state_dir}); run `make demo`", file=sys.stderr)
        return 1
    if args.command == "url":
        print(server.url)
        return 0

    api = PrometheusAPI(server.url)
    wait_fresh(api)
    end = time.time()
    since = args.since or float((server.home / "started").read_text())
    scrape_interval = float((server.home / "scrape-interval").read_text())
    if args.command == "figures":
        print(format_figures(collect(api, since, end)))
        return 0
    if args.command == "panels":
        queries = panel_queries(
            json.loads(args.dashboard.read_text()),
            range_seconds=end - since,
            scrape_interval_seconds=scrape_interval,
        )
        empty = 0
        for result in run_panel_queries(api, queries, start=since, end=end, scrape_interval_seconds=scrape_interval):
            ok = result.values > 0
            empty += not ok
            print(f"  {'ok  ' if ok else 'NONE'} {result.query.name}: {result.series} series, {result.values} values")
        return 1 if empty else 0
    from .chart import render_png  # reportlab only when drawing

    step = max(scrape_interval, (end - since) / 200)
    panels = collect_series(api, since, end, step)
    caption = f"exportjob-operator, make demo: {end - since:.0f} s run scraped every {scrape_interval:g} s (Prometheus)"
    print(render_png(panels, caption, args.out, x_max=end - since))
    return 0


if __name__ == "__main__":
    sys.exit(main())
