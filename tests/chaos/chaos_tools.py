"""What the fault tests observe: live worker processes, worker Jobs over time, admission order.

`Observer` samples, in a thread, the worker Jobs of one namespace and the live
`exportjob-worker` processes of that namespace (from /proc: what really runs,
whatever the API says), keeping the peaks and the order in which Jobs first
appeared. `max_overlap` computes the most Jobs active at once from their
start/completion times. Nothing here sleeps for time except the sampling
interval.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from operator_harness import ExportJobs

from exportjob.controller.manifests import LABEL_EXPORT_NAME


def worker_pids(namespace: str) -> list[int]:
    """Live (not zombie) `exportjob-worker` processes whose command line names `namespace`'s volumes."""
    pids = []
    marker = f"/{namespace}/".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and b"exportjob-worker" in cmdline and marker in cmdline:
            pids.append(int(entry.name))
    return pids


def unfinished(job: Any) -> bool:
    return not any(c.status == "True" and c.type in ("Complete", "Failed") for c in (job.status.conditions or []))


def export_of(job: Any) -> str:
    return (job.metadata.labels or {}).get(LABEL_EXPORT_NAME) or job.metadata.owner_references[0].name


class Observer:
    """Samples worker Jobs and worker processes of one namespace until stopped."""

    def __init__(self, exportjobs: ExportJobs, interval: float = 0.05) -> None:
        self.exportjobs = exportjobs
        self.interval = interval
        self.peak_jobs = 0
        self.peak_processes = 0
        self.samples = 0
        self.errors = 0
        self.first_seen: list[list[str]] = []  # per sample: exports whose Job appeared in it
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)

    @property
    def jobs_seen(self) -> int:
        return len(self._seen)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_processes = max(self.peak_processes, len(worker_pids(self.exportjobs.namespace)))
            try:
                jobs = self.exportjobs.worker_jobs()
            except Exception:  # the API may be down: that is what some tests do
                self.errors += 1
            else:
                self.peak_jobs = max(self.peak_jobs, sum(1 for job in jobs if unfinished(job)))
                new = sorted(export_of(job) for job in jobs if export_of(job) not in self._seen)
                if new:
                    self._seen.update(new)
                    self.first_seen.append(new)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def order_violations(self, queue: list[str]) -> list[tuple[str, str]]:
        """Pairs (admitted, skipped): `admitted` got its Job in a sample before `skipped`, ahead of it in `queue`."""
        rank = {name: i for i, name in enumerate(queue)}
        violations = []
        earlier: list[str] = []
        for batch in self.first_seen:
            for name in batch:
                violations += [(before, name) for before in earlier if rank[before] > rank[name]]
            earlier += batch
        return violations


def _time(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def max_overlap(intervals: Iterable[tuple[Any, Any]]) -> int:
    """Most intervals [start, end) open at once; `end` None means still open (timestamps or datetimes).

    The API's times have one-second resolution; an interval ending in the same second
    another starts is not counted as overlapping it (the operator admits only after it
    saw the other Job finish, so a real overlap cannot hide behind that).
    """
    events = []
    for start, end in intervals:
        events.append((_time(start), 1))
        if end is not None:
            events.append((_time(end), -1))
    peak = current = 0
    for _, delta in sorted(events):  # at equal times -1 sorts first: [start, end)
        current += delta
        peak = max(peak, current)
    return peak


def job_intervals(jobs: Iterable[Any]) -> list[tuple[Any, Any]]:
    """[created, finished) of each worker Job: creation is admission, finished its Complete/Failed condition."""
    intervals = []
    for job in jobs:
        ends = [
            c.last_transition_time
            for c in job.status.conditions or []
            if c.status == "True" and c.type in ("Complete", "Failed")
        ]
        intervals.append((job.metadata.creation_timestamp, job.status.completion_time or (ends[0] if ends else None)))
    return intervals


def part_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*.part")) if directory.exists() else []


def seconds_since(started: float) -> float:
    return round(time.monotonic() - started, 1)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill(pid: int, sig: int) -> None:
    os.kill(pid, sig)
