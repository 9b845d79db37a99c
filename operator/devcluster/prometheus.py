"""A real Prometheus server scraping the operator: its configuration and its process.

Used by ``make demo`` (through :mod:`devcluster.promcli`) and by the
observability tests (tests/cluster/test_observability.py). The binary is
``bin/prometheus``, built by ``hack/build-tools.sh prometheus`` from the same
Prometheus module as promtool. It listens on 127.0.0.1 only, keeps its
configuration, TSDB and log under ``<state dir>/prometheus``, loads the
repository's rule files unchanged and scrapes the operator's ``/metrics`` as
the scrape job ``exportjob-operator`` with the target label ``namespace`` set,
as a ServiceMonitor would, so the rules and the dashboard's queries see the
labels they expect (docs/monitoring.md).

:func:`render_config` is pure; :class:`PrometheusServer` owns the process.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import REPO_ROOT
from .processes import free_port, port_is_free, running_pid, spawn, stop_pid_file
from .waiting import wait_for

__all__ = ["DEFAULT_RULE_FILES", "PrometheusServer", "ScrapeTarget", "render_config"]

DEFAULT_RULE_FILES = (REPO_ROOT / "rules" / "exportjob.rules.yml",)
DEFAULT_PORT = 9090
# The scrape job and target labels a ServiceMonitor gives the operator's Service
# for a release named exportjob-operator in namespace exportjob-system.
OPERATOR_JOB = "exportjob-operator"
OPERATOR_NAMESPACE = "exportjob-system"


@dataclass(frozen=True)
class ScrapeTarget:
    """One operator process to scrape: ``host:port`` of its metrics server."""

    address: str
    job: str = OPERATOR_JOB
    labels: Mapping[str, str] = field(default_factory=lambda: {"namespace": OPERATOR_NAMESPACE})


def render_config(
    targets: Sequence[ScrapeTarget],
    rule_files: Sequence[Path],
    *,
    scrape_interval: str = "5s",
    evaluation_interval: str = "5s",
) -> dict[str, Any]:
    """The prometheus.yml content: one scrape job per distinct job name, static targets with their labels."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for target in targets:
        jobs.setdefault(target.job, []).append({"targets": [target.address], "labels": dict(target.labels)})
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": static} for job, static in jobs.items()
        ],
    }


class PrometheusServer:
    """``bin/prometheus`` as a background process with its files under ``state_dir/prometheus``."""

    def __init__(self, state_dir: Path, bin_dir: Path = REPO_ROOT / "bin") -> None:
        self.binary = Path(bin_dir) / "prometheus"
        self.home = Path(state_dir) / "prometheus"
        self.config_file = self.home / "prometheus.yml"
        self.data_dir = self.home / "data"
        self.log_file = self.home / "prometheus.log"
        self.pid_file = self.home / "prometheus.pid"
        self.port_file = self.home / "port"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port_file.read_text().strip()}"

    def running(self) -> bool:
        return running_pid(self.pid_file) is not None and self.port_file.is_file()

    def start(
        self,
        targets: Sequence[ScrapeTarget],
        rule_files: Sequence[Path] = DEFAULT_RULE_FILES,
        *,
        scrape_interval: str = "5s",
        evaluation_interval: str = "5s",
        port: int | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Write the config and start the server (or restart one left running); return its URL once ready.

        ``port`` None takes 9090 when free, else any free port.
        """
        if not self.binary.exists():
            raise FileNotFoundError(f"{self.binary} not found: run `make tools` (hack/build-tools.sh prometheus)")
        self.stop()
        self.home.mkdir(parents=True, exist_ok=True)
        config = render_config(
            targets, rule_files, scrape_interval=scrape_interval, evaluation_interval=evaluation_interval
        )
        # JSON is YAML: Prometheus reads it as is.
        self.config_file.write_text(json.dumps(config, indent=2) + "\n")
        if port is None:
            port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
        self.port_file.write_text(f"{port}\n")
        proc = spawn(
            [
                str(self.binary),
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            log_file=self.log_file,
            pid_file=self.pid_file,
            cwd=self.home,
        )

        def ready_or_exited() -> bool:
            if proc.poll() is not None:
                return True
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            wait_for(ready_or_exited, timeout=timeout, description=f"prometheus on {self.url} (log: {self.log_file})")
        except TimeoutError:
            self.stop()
            raise
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}; log: {self.log_file}")
        return self.url

    def stop(self) -> bool:
        """Stop the server; True if one was running."""
        return stop_pid_file(self.pid_file)
