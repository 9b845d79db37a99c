"""`exportjob`: the user's command line. Subcommands are registered in `build_parser`.

`exportjob queue [-n NS]` shows the waiting exports in admission order (queuecli.py).

`exportjob crd` prints the CustomResourceDefinition generated from the API model.

`exportjob list|describe|download` work against a cluster with the user's
kubeconfig (exportjob.client.commands); installed also as `kubectl-exportjob`,
so `kubectl exportjob download NAME` is the same command.

`exportjob run -f MANIFEST.yaml --output-dir DIR [--dsn DSN]` runs one
ExportJob manifest locally, without a cluster: the same engine as the worker
Pod, writing `DIR/<spec.output.path>`. A progress line is drawn on stderr when
stderr is a terminal; the result JSON is the last line of stdout; the exit
code is the worker's (0, 65 permanent failure, 75 retryable failure), or 2 for
an invalid command line or manifest (the message names the bad field).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import yaml

from exportjob import queuecli
from exportjob.client import commands
from exportjob.spec import ExportJobManifest, SpecError, parse_manifest
from exportjob.terminal import StatusLine

from .worker.credentials import Credentials
from .worker.engine import Progress, execute
from .worker.errors import USAGE_ERROR

PROGRESS_REDRAW_SECONDS = 0.2
Subparsers = Any  # argparse's private _SubParsersAction


def load_manifest(path: str) -> ExportJobManifest:
    """Read and validate a manifest file; raise SpecError with a message naming the problem."""
    try:
        with open(path, encoding="utf-8") as file:
            documents = [doc for doc in yaml.safe_load_all(file) if doc is not None]
    except OSError as error:
        raise SpecError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML: {error}") from None
    except RecursionError:
        raise SpecError(f"{path} is nested too deeply to be an ExportJob") from None
    if len(documents) != 1:
        raise SpecError(f"{path} must hold exactly one YAML document (an ExportJob), found {len(documents)}")
    try:
        return parse_manifest(documents[0])
    except RecursionError:
        raise SpecError(f"{path} is nested too deeply to be an ExportJob") from None


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000
    raise AssertionError


class ProgressLine:
    """Redraws one status line on a terminal: a bar when the row count is known, else a counter."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._line = StatusLine(stream)
        self._width = width
        self._start = time.monotonic()

    def __call__(self, update: Progress) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = f"{update.rows / elapsed:,.0f} rows/s"
        if update.total:
            done = min(update.rows / update.total, 1.0)
            filled = int(done * self._width)
            bar = "#" * filled + "-" * (self._width - filled)
            text = f"[{bar}] {done:6.1%} {update.rows:,}/{update.total:,} rows  {_size(update.bytes)}  {rate}"
        else:
            text = f"{update.rows:,} rows  {_size(update.bytes)}  {rate}"
        self._line.draw(text)

    def finish(self) -> None:
        self._line.finish()


def command_run(arguments: argparse.Namespace) -> int:
    try:
        manifest = load_manifest(arguments.file)
    except SpecError as error:
        print(f"exportjob run: invalid manifest {arguments.file}:", file=sys.stderr)
        for line in str(error).splitlines():
            print(f"  {line}", file=sys.stderr)
        return USAGE_ERROR
    problem = output_directory_problem(arguments.output_dir)
    if problem is not None:
        print(f"exportjob run: --output-dir {arguments.output_dir}: {problem}", file=sys.stderr)
        return USAGE_ERROR
    credentials = Credentials.from_env()
    if arguments.dsn:
        credentials = Credentials(postgres_dsn=arguments.dsn, http_bearer_token=credentials.http_bearer_token)
    progress_line = ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = execute(manifest.spec, arguments.output_dir, credentials, progress_line, PROGRESS_REDRAW_SECONDS)
    finally:
        if progress_line is not None:
            progress_line.finish()
    if not result.ok:
        print(f"exportjob run: {result.reason}: {result.message}", file=sys.stderr)
    print(result.to_json())
    return result.exit_code


def output_directory_problem(path: str) -> str | None:
    """Create `path` as a directory if needed; why it cannot be the output directory, or None."""
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        return "exists and is not a directory"
    except OSError as error:
        return f"cannot create it: {error.strerror or type(error).__name__}"
    if not os.access(path, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def add_run(commands: Subparsers) -> None:
    run = commands.add_parser(
        "run",
        help="run one ExportJob manifest locally, without a cluster",
        description="Run one ExportJob manifest locally and print the result JSON as the last line of stdout.",
    )
    run.add_argument("-f", "--file", required=True, metavar="MANIFEST.yaml", help="the ExportJob manifest")
    run.add_argument(
        "--output-dir",
        required=True,
        metavar="DIR",
        help="directory standing for the volume root: the file is written to DIR/<spec.output.path>",
    )
    run.add_argument(
        "--dsn", help="PostgreSQL connection string (default: the EXPORTJOB_POSTGRES_DSN environment variable)"
    )
    run.set_defaults(handler=command_run)


def add_crd(commands: Subparsers) -> None:
    crd = commands.add_parser(
        "crd",
        help="print the ExportJob CustomResourceDefinition (YAML)",
        description="Print the CRD generated from the API model; `kubectl apply -f -` installs it.",
    )
    crd.set_defaults(handler=command_crd)


# The verbs, in `--help` order. A new verb is one `add_<verb>(commands)` function
# (a subparser plus `set_defaults(handler=...)`) appended here.
VERBS: tuple[Callable[[Subparsers], None], ...] = (
    add_run,
    add_crd,
    commands.add_list,
    commands.add_describe,
    commands.add_download,
    queuecli.register,
)


def build_parser(prog: str = "exportjob") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="ExportJob command line (also `kubectl exportjob`).")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_verb in VERBS:
        add_verb(subparsers)
    return parser


def command_crd(_arguments: argparse.Namespace) -> int:
    from exportjob.crd import render_crd_yaml

    sys.stdout.write(render_crd_yaml())
    return 0


Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    prog = "kubectl exportjob" if os.path.basename(sys.argv[0]).startswith("kubectl-") else "exportjob"
    arguments: Any = build_parser(prog).parse_args(argv)
    handler: Handler = arguments.handler
    try:
        return handler(arguments)
    except BrokenPipeError:  # `exportjob list | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
