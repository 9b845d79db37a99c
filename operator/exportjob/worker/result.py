"""The result of one export as JSON: what `exportjob-worker` writes to the termination log and stdout.

Kubernetes keeps at most 4096 bytes of a termination message, and the
operator reads the ExportJob's status from it, so `to_json` always fits in
`MAX_RESULT_BYTES`, shortening the message (never the numbers) when needed.
`exit_code` maps a result to the worker's exit status. Pure, apart from
reading the process's peak RSS.
"""

from __future__ import annotations

import datetime
import json
import resource
from dataclasses import dataclass
from typing import Any

from .errors import PERMANENT_FAILURE, RETRYABLE_FAILURE, SUCCESS, ExportFailure

MAX_RESULT_BYTES = 4096
_ELLIPSIS = "..."


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(moment: datetime.datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, e.g. 2024-05-01T12:00:00.123Z."""
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def peak_memory_bytes() -> int:
    """This process's peak resident set size (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class ExportResult:
    ok: bool
    path: str
    format: str
    source: str
    started_at: datetime.datetime
    finished_at: datetime.datetime
    rows: int = 0
    bytes: int = 0
    sha256: str | None = None
    manifest_path: str | None = None
    reason: str | None = None
    message: str | None = None
    retryable: bool | None = None
    # PDF only: characters that no font of pdf.fonts has, printed as '?'.
    replaced_glyphs: int | None = None

    @classmethod
    def failed(
        cls,
        failure: ExportFailure,
        *,
        path: str,
        format: str,
        source: str,
        started_at: datetime.datetime,
        finished_at: datetime.datetime | None = None,
    ) -> ExportResult:
        return cls(
            ok=False,
            path=path,
            format=format,
            source=source,
            started_at=started_at,
            finished_at=finished_at or utc_now(),
            reason=failure.reason,
            message=failure.message,
            retryable=failure.retryable,
        )

    @property
    def exit_code(self) -> int:
        if self.ok:
            return SUCCESS
        return RETRYABLE_FAILURE if self.retryable else PERMANENT_FAILURE

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ok": self.ok,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "path": self.path,
            "manifestPath": self.manifest_path,
            "format": self.format,
            "source": self.source,
            "startedAt": timestamp(self.started_at),
            "finishedAt": timestamp(self.finished_at),
            "durationSeconds": round((self.finished_at - self.started_at).total_seconds(), 3),
            "peakMemoryBytes": peak_memory_bytes(),
        }
        if self.replaced_glyphs:
            data["replacedGlyphs"] = self.replaced_glyphs
        if not self.ok:
            data.update(reason=self.reason, message=self.message, retryable=self.retryable)
        return data

    def to_json(self) -> str:
        """Compact JSON of at most MAX_RESULT_BYTES bytes (UTF-8)."""
        return fit_json(self.to_dict())


def fit_json(data: dict[str, Any], limit: int = MAX_RESULT_BYTES) -> str:
    """`data` as compact JSON, shortening its `message` (then `path`) until it fits in `limit` bytes."""
    data = dict(data)
    for field in ("message", "path"):
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        excess = len(text.encode()) - limit
        if excess <= 0:
            return text
        value = data.get(field)
        if isinstance(value, str):
            # Cut by bytes (json escapes can make a character cost up to 6); shrink until it fits.
            keep = max(0, len(value) - excess - len(_ELLIPSIS))
            while keep >= 0:
                data[field] = value[:keep] + _ELLIPSIS
                if len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()) <= limit:
                    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
                keep = keep - max(1, (keep // 8)) if keep > 0 else -1
    data["message"] = _ELLIPSIS
    data["path"] = _ELLIPSIS
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
