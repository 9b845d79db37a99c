"""The export engine: source -> (projection) -> format writer -> atomic output, plus the manifest.

`run_export` does one export and raises `ExportFailure` for expected failures;
`execute` wraps it into an `ExportResult` either way (what the entry points
`exportjob-worker` and `exportjob run` use). The source is opened before the
output file is created, so an unreachable source leaves nothing behind.

PostgreSQL -> CSV takes the COPY fast path (`copy_csv`): the server renders
the CSV. Every other combination streams row batches through a writer with
the `write_rows`/`close` interface (`CsvTableWriter`, `PdfTableWriter`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from exportjob.lightspec import API_GROUP

from .credentials import Credentials
from .errors import ExportFailure, Reason, redact
from .output import AtomicOutput, HashingSink, OutputInfo
from .result import ExportResult, timestamp, utc_now
from .rows import project
from .sources import open_source

if TYPE_CHECKING:  # the worker passes `exportjob.lightspec` objects: the same attributes, without pydantic
    from exportjob.spec import ExportJobSpec

PROGRESS_INTERVAL_SECONDS = 1.0
_DIST_PREFIX = "exportjob_operator-"  # the distribution's dist-info directory


@dataclass(frozen=True)
class Progress:
    rows: int
    bytes: int
    total: int | None  # rows expected, when the source knows


ProgressCallback = Callable[[Progress], None]


class TableWriter(Protocol):
    def write_rows(self, rows: Any) -> None: ...
    def close(self) -> None: ...


def exportjob_version() -> str:
    """The installed exportjob-operator's version: its `*.dist-info/METADATA` read directly (importing
    importlib.metadata costs ~25 ms of every export), importlib.metadata when that is not plain."""
    found = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found += [os.path.join(entry, n) for n in names if n.startswith(_DIST_PREFIX) and n.endswith(".dist-info")]
        if found:
            break
    if len(found) == 1:
        try:
            with open(os.path.join(found[0], "METADATA"), encoding="utf-8") as file:
                for line in file:
                    if line.startswith("Version: "):
                        return line[len("Version: ") :].strip()
                    if not line.strip():  # the headers end here
                        break
        except OSError:
            pass
    from importlib import metadata

    try:
        return metadata.version("exportjob-operator")
    except metadata.PackageNotFoundError:
        return "unknown"


def make_writer(spec: ExportJobSpec, sink: BinaryIO, columns: list[str]) -> TableWriter:
    if spec.format == "csv":
        from .formats.csv_writer import CsvTableWriter

        return CsvTableWriter(sink, columns, spec.csv_options)
    from .formats.pdf_writer import NoFontError, PdfTableWriter, TooManyColumnsError

    try:
        return PdfTableWriter(sink, columns, spec.pdf_options)
    except TooManyColumnsError as error:  # a page cannot show them: permanent, the user must choose columns
        raise ExportFailure(Reason.INVALID_SPEC, str(error), retryable=False) from None
    except NoFontError as error:  # pdf.fonts names only fonts this image lacks: choose others (or fix the image)
        raise ExportFailure(Reason.INVALID_SPEC, f"pdf.fonts: {error}", retryable=False) from None


class _Reporter:
    """Calls the progress callback at most once per interval (and once at the end)."""

    def __init__(self, callback: ProgressCallback | None, sink: HashingSink, total: int | None, interval: float):
        self._callback = callback
        self._sink = sink
        self.total = total
        self._interval = interval
        self._next = time.monotonic() + interval

    def __call__(self, rows: int, final: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if final or now >= self._next:
            self._next = now + self._interval
            self._callback(Progress(rows, self._sink.bytes, self.total))


def run_export(
    spec: ExportJobSpec,
    output_root: str,
    credentials: Credentials,
    progress: ProgressCallback | None = None,
    progress_interval: float = PROGRESS_INTERVAL_SECONDS,
) -> ExportResult:
    """Run one export; return the success result or raise ExportFailure."""
    started = utc_now()
    with open_source(spec, credentials) as source, AtomicOutput(output_root, spec.output.path) as output:
        sink = output.sink
        copy_csv = getattr(source, "copy_csv", None)
        replaced: int | None = None
        if spec.format == "csv" and copy_csv is not None and source.copy_supported(spec.csv_options):  # type: ignore[attr-defined]
            report = _Reporter(progress, sink, None, progress_interval)
            rows, columns = copy_csv(sink, spec.columns, spec.csv_options, report, output.spill_file)
        else:
            stream = project(source.stream(), spec.columns)
            columns = stream.columns
            report = _Reporter(progress, sink, stream.total, progress_interval)
            writer = make_writer(spec, sink, columns)  # type: ignore[arg-type]
            rows = 0
            for batch in stream.batches:
                writer.write_rows(batch)
                rows += len(batch)
                report(rows)
            writer.close()
            replaced = getattr(writer, "replaced_glyphs", None)  # PDF: characters printed as '?'
        report(rows, final=True)
        finished = utc_now()

        def manifest_for(info: OutputInfo) -> dict[str, Any]:
            return {
                "apiVersion": f"{API_GROUP}/v1alpha1",
                "kind": "ExportManifest",
                "path": spec.output.path,
                "format": spec.format,
                "source": {"kind": spec.source.kind},
                "columns": columns,
                "rows": rows,
                "bytes": info.bytes,
                "sha256": info.sha256,
                "startedAt": timestamp(started),
                "finishedAt": timestamp(finished),
                "exportjobVersion": exportjob_version(),
            }

        info = output.commit(manifest_for)  # the data file and its manifest appear together
        manifest_path = output.manifest_path
    return ExportResult(
        ok=True,
        path=spec.output.path,
        format=spec.format,
        source=spec.source.kind,
        started_at=started,
        finished_at=finished,
        rows=rows,
        bytes=info.bytes,
        sha256=info.sha256,
        manifest_path=manifest_path,
        replaced_glyphs=replaced,
    )


def execute(
    spec: ExportJobSpec,
    output_root: str,
    credentials: Credentials,
    progress: ProgressCallback | None = None,
    progress_interval: float = PROGRESS_INTERVAL_SECONDS,
) -> ExportResult:
    """`run_export`, with an expected failure turned into a failed result (secrets redacted)."""
    started = utc_now()
    try:
        return run_export(spec, output_root, credentials, progress, progress_interval)
    except ExportFailure as failure:
        failure.message = redact(failure.message, credentials.secrets())
        return ExportResult.failed(
            failure, path=spec.output.path, format=spec.format, source=spec.source.kind, started_at=started
        )
