"""Text for `exportjob list` and `exportjob describe`. Pure: ExportJob, event and log data in, lines out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def age(timestamp: str | None, now: datetime) -> str:
    """kubectl-style age: 45s, 12m, 3h, 5d."""
    if not timestamp:
        return "<unknown>"
    try:  # RFC 3339, with or without fractional seconds (events' eventTime has microseconds)
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(int((now - then).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded like `kubectl get` (three spaces apart)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def list_lines(exportjobs: Sequence[dict[str, Any]], now: datetime, all_namespaces: bool) -> list[str]:
    header = ["NAME", "STATUS", "FORMAT", "ROWS", "SIZE", "REASON", "AGE"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows: list[list[str]] = [header]
    ordered = sorted(exportjobs, key=lambda e: (e["metadata"].get("namespace", ""), e["metadata"]["name"]))
    for ej in ordered:
        meta, spec, status = ej["metadata"], ej.get("spec") or {}, ej.get("status") or {}
        phase = status.get("phase") or "Pending"
        if phase == "Queued" and status.get("queuePosition"):
            phase = f"Queued (#{status['queuePosition']})"
        row = [
            meta["name"],
            phase,
            spec.get("format", ""),
            str(status["rows"]) if status.get("rows") is not None else "",
            status.get("size") or "",
            status.get("reason") or "",
            age(meta.get("creationTimestamp"), now),
        ]
        if all_namespaces:
            row.insert(0, meta.get("namespace", ""))
        rows.append(row)
    if len(rows) == 1:
        return ["No ExportJobs found."]
    return table(rows)


def describe_lines(
    exportjob: dict[str, Any],
    events: Sequence[dict[str, Any]],
    log_tail: str | None,
    log_note: str,
    now: datetime,
) -> list[str]:
    meta, spec, status = exportjob["metadata"], exportjob.get("spec") or {}, exportjob.get("status") or {}
    source = spec.get("source") or {}
    output = spec.get("output") or {}
    lines = [
        f"Name:         {meta['name']}",
        f"Namespace:    {meta.get('namespace', '')}",
        f"Created:      {meta.get('creationTimestamp', '')} ({age(meta.get('creationTimestamp'), now)} ago)",
        f"Format:       {spec.get('format', '')}",
        f"Source:       {', '.join(sorted(source)) or '<none>'}",
        f"Output:       {output.get('claimName') or '<operator default claim>'}:{output.get('path', '')}",
        f"Phase:        {status.get('phase') or 'Pending'}",
    ]
    for label, key in (
        ("Reason", "reason"),
        ("Message", "message"),
        ("Queue pos.", "queuePosition"),
        ("Job", "jobName"),
        ("Attempts", "attempts"),
        ("Rows", "rows"),
        ("Size", "size"),
        ("SHA-256", "sha256"),
        ("File", "path"),
        ("Claim", "claimName"),
        ("Started", "startTime"),
        ("Finished", "completionTime"),
        ("Duration", "durationSeconds"),
    ):
        if status.get(key) not in (None, ""):
            unit = " s" if key == "durationSeconds" else ""
            lines.append(f"{label + ':':<14}{status[key]}{unit}")
    conditions = status.get("conditions") or []
    lines.append("Conditions:")
    if conditions:
        rows = [["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]]
        for c in conditions:
            rows.append(
                [
                    c.get("type", ""),
                    c.get("status", ""),
                    c.get("reason", ""),
                    age(c.get("lastTransitionTime"), now),
                    c.get("message", ""),
                ]
            )
        lines += ["  " + line for line in table(rows)]
    else:
        lines.append("  <none>")
    lines.append("Events:")
    if events:
        rows = [["TYPE", "REASON", "AGE", "FROM", "MESSAGE"]]
        ordered = sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        for e in ordered:
            when = e.get("lastTimestamp") or e.get("eventTime")
            source_name = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
            rows.append([e.get("type", ""), e.get("reason", ""), age(when, now), source_name, e.get("message", "")])
        lines += ["  " + line for line in table(rows)]
    else:
        lines.append("  <none>")
    lines.append(f"Worker log: {log_note}")
    if log_tail:
        lines += ["  " + line for line in log_tail.rstrip("\n").splitlines()]
    return lines
