"""`exportjob-worker`: the container entry point of an ExportJob's worker Pod.

Takes the spec as JSON (`--spec-json`, `--spec-file`, or the `EXPORTJOB_SPEC`
environment variable, in that order), runs the export under `--output-root`,
logs JSON lines on stderr (started, progress, finished/failed; never a
secret), writes the result JSON (<= 4 KiB) to `--termination-log`
(default /dev/termination-log, which Kubernetes reads back into the Pod's
status) and to stdout, and exits 0 (success), 65 (permanent failure),
75 (retryable failure) or 1 (crash: a bug; the operator reports WorkerCrashed
and retries). SIGTERM/SIGINT remove the partial file and exit 75.

`exportjob-worker serve-file --file PATH` serves one finished file instead
(`exportjob.worker.servefile`, for `exportjob download`).
Start-up: every export pays this module's import, so it imports only the
standard library and the small pure modules here; the engine and the source
in use (psycopg for PostgreSQL only) are imported when `main()` needs them, and
the spec is checked without pydantic (`exportjob.lightspec`; the models only
for what it does not accept) (`python -X importtime -c "import
exportjob.worker.main"`; figures in bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, cast

from .credentials import Credentials
from .errors import CRASHED, ExportFailure, Reason, permanent, redact, redact_value, retryable
from .result import ExportResult, fit_json, timestamp, utc_now

if TYPE_CHECKING:
    from exportjob.spec import ExportJobSpec

    from .engine import Progress

SPEC_ENV = "EXPORTJOB_SPEC"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
PROGRESS_LOG_INTERVAL_SECONDS = 5.0


class JsonLog:
    """One JSON object per line on a stream: {"time", "level", "event", ...fields}."""

    def __init__(self, stream: TextIO, secrets: Sequence[str] = ()) -> None:
        self._stream = stream
        self._secrets = list(secrets)

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        # Redact the values before serialising (JSON escaping would hide a secret from a later text
        # replacement), then the line once more for anything `default=str` turned into text.
        fields = {key: redact_value(value, self._secrets) for key, value in fields.items()}
        record = {"time": timestamp(utc_now()), "level": level, "event": event, **fields}
        line = redact(json.dumps(record, default=str, ensure_ascii=False), self._secrets)
        self._stream.write(line + "\n")
        self._stream.flush()


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="exportjob-worker", description=__doc__.split("\n\n")[0])
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--spec-json", help="the ExportJob spec as JSON")
    given.add_argument("--spec-file", help="a file holding the spec as JSON")
    parser.add_argument(
        "--output-root",
        default=os.environ.get("EXPORTJOB_OUTPUT_ROOT"),
        help="directory that output.path is relative to (the mounted volume); env EXPORTJOB_OUTPUT_ROOT",
    )
    parser.add_argument("--termination-log", default=DEFAULT_TERMINATION_LOG, help="where to write the result JSON")
    arguments = parser.parse_args(argv)
    if not arguments.output_root:
        parser.error("--output-root is required (or set EXPORTJOB_OUTPUT_ROOT)")
    return arguments


def load_spec(arguments: argparse.Namespace) -> ExportJobSpec:
    """The spec from the arguments or the environment; InvalidSpec failure when absent or invalid.

    Checked by `exportjob.lightspec` (no pydantic: ~0.14 s less CPU for every export); whatever it does not
    accept is validated by the models (`exportjob.spec`), which name every bad field or accept it after all.
    """
    from exportjob import lightspec

    try:
        if arguments.spec_json is not None:
            text = arguments.spec_json
        elif arguments.spec_file is not None:
            with open(arguments.spec_file, encoding="utf-8") as file:
                text = file.read()
        elif os.environ.get(SPEC_ENV):
            text = os.environ[SPEC_ENV]
        else:
            raise permanent(Reason.INVALID_SPEC, f"no spec given: use --spec-json, --spec-file or {SPEC_ENV}")
        data = json.loads(text)
    except RecursionError:
        raise permanent(Reason.INVALID_SPEC, "the spec is not valid JSON: nested too deeply") from None
    except (OSError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise permanent(Reason.INVALID_SPEC, f"the spec is not valid JSON: {error}") from None
    light = lightspec.parse(data)
    if light is not None:
        return cast("ExportJobSpec", light)  # the model's attributes and values (see exportjob.lightspec)
    # pydantic scans every installed package's entry points for plugins when it first builds a validator
    # (~20-40 ms); the worker uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from exportjob.spec import SpecError, parse_spec

    try:
        return parse_spec(data)
    except RecursionError:
        raise permanent(Reason.INVALID_SPEC, "the spec is not valid JSON: nested too deeply") from None
    except SpecError as error:
        raise permanent(Reason.INVALID_SPEC, str(error)) from None


def execute(
    spec: ExportJobSpec,
    output_root: str,
    credentials: Credentials,
    progress: Callable[[Progress], None] | None,
    progress_interval: float,
) -> ExportResult:
    """`engine.execute`, imported on first use (it brings the output and format modules)."""
    from . import engine

    return engine.execute(spec, output_root, credentials, progress, progress_interval)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise retryable(
        Reason.INTERRUPTED,
        f"the worker received {signal.Signals(signum).name} and stopped; the partial file was removed",
    )


def write_result(text: str, termination_log: str, log: JsonLog) -> None:
    try:
        with open(termination_log, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as error:
        log("termination_log.unwritable", level="warning", path=termination_log, error=os.strerror(error.errno or 0))
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve-file"]:  # the reader Pod of `exportjob download` (same image)
        from .servefile import main as serve_file

        return serve_file(argv[1:])
    arguments = parse_arguments(argv)
    credentials = Credentials.from_env()
    log = JsonLog(sys.stderr, credentials.secrets())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt)
    started = utc_now()
    spec: ExportJobSpec | None = None
    try:
        spec = load_spec(arguments)
        log("export.started", format=spec.format, source=spec.source.kind, path=spec.output.path)
        clock = {"start": time.monotonic()}

        def progress(update: Progress) -> None:
            elapsed = max(time.monotonic() - clock["start"], 1e-9)
            log(
                "export.progress",
                rows=update.rows,
                bytes=update.bytes,
                totalRows=update.total,
                rowsPerSecond=round(update.rows / elapsed),
            )

        result = execute(spec, arguments.output_root, credentials, progress, PROGRESS_LOG_INTERVAL_SECONDS)
    except ExportFailure as failure:  # an invalid spec, or a signal outside the engine
        failure.message = redact(failure.message, credentials.secrets())
        result = ExportResult.failed(
            failure,
            path=spec.output.path if spec else "",
            format=spec.format if spec else "",
            source=spec.source.kind if spec else "",
            started_at=started,
        )
    except Exception as error:  # a bug: report it, exit 1; the operator retries it as WorkerCrashed
        log("export.crashed", level="error", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
        crash = fit_json(
            {
                "ok": False,
                "rows": 0,
                "bytes": 0,
                "sha256": None,
                "path": spec.output.path if spec else "",
                "format": spec.format if spec else "",
                "startedAt": timestamp(started),
                "finishedAt": timestamp(utc_now()),
                "reason": Reason.WORKER_CRASHED,
                "retryable": True,
                "message": redact(f"unexpected error: {type(error).__name__}: {error}", credentials.secrets()),
            }
        )
        write_result(crash, arguments.termination_log, log)
        return CRASHED
    if result.ok:
        log("export.finished", rows=result.rows, bytes=result.bytes, sha256=result.sha256, path=result.path)
    else:
        log("export.failed", level="error", reason=result.reason, message=result.message, retryable=result.retryable)
    write_result(result.to_json(), arguments.termination_log, log)
    return result.exit_code


def entry() -> NoReturn:
    """The `exportjob-worker` command: `main()`, then exit without the interpreter's teardown.

    When `main()` returns, the result is written, the output fsynced and renamed, every file closed and
    every connection ended. What Python's finalization would still do (tear down ~140 modules, run the
    exit handlers of libpq, OpenSSL and Kerberos) is nothing the export needs, and cost 68 ms of each
    one-row export here, 127 ms at 2 M rows (bench/README.md). An exception (argparse's SystemExit
    included) still leaves through the normal exit.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
