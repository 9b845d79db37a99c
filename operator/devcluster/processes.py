"""Starting, finding and stopping the dev cluster's background processes.

Used by :mod:`devcluster.cluster` (etcd, kube-apiserver, kube-controller-manager,
the process kubelet) and by the kubelet itself (container processes).  Every
process runs in its own session/process group and is recorded in a pid file
holding ``<pid> <start time>``; the start time (from ``/proc/<pid>/stat``)
guards against signalling an unrelated process that reused the pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "free_port",
    "port_is_free",
    "process_start_time",
    "read_pid_file",
    "running_pid",
    "spawn",
    "stop_pid_file",
    "terminate_group",
    "write_pid_file",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def process_start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: as good as gone
        return None
    return int(fields[19])


def write_pid_file(path: Path, pid: int) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid} {process_start_time(pid) or 0}\n")
    os.replace(tmp, path)


def read_pid_file(path: Path) -> tuple[int, int] | None:
    try:
        pid, start = Path(path).read_text().split()[:2]
        return int(pid), int(start)
    except (FileNotFoundError, ValueError):
        return None


def running_pid(path: Path) -> int | None:
    """The pid recorded in ``path`` if that very process is still alive."""
    rec = read_pid_file(path)
    if rec is None:
        return None
    pid, start = rec
    actual = process_start_time(pid)
    if actual is None or (start and actual != start):
        return None
    return pid


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    append: bool = False,
) -> subprocess.Popen:
    """Start ``argv`` detached (own session) with stdout+stderr to ``log_file``."""
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab" if append else "wb") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    if pid_file is not None:
        write_pid_file(pid_file, proc.pid)
    return proc


def _alive(pid: int, start: int | None) -> bool:
    actual = process_start_time(pid)
    return actual is not None and (not start or actual == start)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def terminate_group(
    pid: int, start: int | None = None, grace: float = 10.0, proc: subprocess.Popen | None = None
) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL after ``grace`` seconds.

    ``proc`` (when we are the parent) is reaped so no zombie is left.
    """
    if not _alive(pid, start):
        if proc is not None:
            proc.poll()
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()
        if not _alive(pid, start):
            break
        time.sleep(0.05)
    else:
        _signal_group(pid, signal.SIGKILL)
    # left-over members of the group (children of the leader) go too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def stop_pid_file(path: Path, grace: float = 10.0) -> bool:
    """Stop the process group recorded in ``path`` and remove the file; True if one was running."""
    rec = read_pid_file(path)
    was_running = False
    if rec is not None:
        pid, start = rec
        was_running = _alive(pid, start)
        if was_running:
            terminate_group(pid, start, grace)
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()
    return was_running
