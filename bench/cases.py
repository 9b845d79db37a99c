"""The benchmark cases: a registry of named commands, measured side by side by `bench/run.py`.

A `Case` is one process to run (argv + environment) that writes one output
file holding `rows` rows; the runner times it, reads its peak RSS from
`/usr/bin/time -f %M` (the child's own high-water mark, never the parent's),
and takes the median of the repetitions. A `Comparison` names two cases whose
rows/s ratio is printed (with an optional target), a `MemoryCheck` a case
whose peak RSS must stay under a limit.

Add cases with `@register` (a function from a `Context` to cases and
checks). The PDF cases live in `bench/pdf_cases.py`, which `run.py` drives
through its own `CASES`/`measure` functions.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
PG_TABLE = "bench_orders"


@dataclass
class Context:
    quick: bool
    workdir: Path
    dsn: str | None  # a running PostgreSQL with PG_TABLE filled, or None (PostgreSQL cases are left out)
    pg_rows: int
    csv_rows: int
    memory_rows: int


@dataclass
class Case:
    name: str
    label: str
    rows: int
    argv: list[str]
    output: Path
    env: dict[str, str] = field(default_factory=dict)
    result_file: Path | None = None  # the worker's result JSON: its durationSeconds excludes process start-up
    baseline: bool = True  # run.py --baseline runs it with the baseline's worker too (False: a feature it lacks)


@dataclass
class Comparison:
    ours: str
    baseline: str
    title: str
    target: float | None = None  # minimum ours/baseline rows/s ratio


@dataclass
class MemoryCheck:
    case: str
    limit_mb: float
    title: str


Item = Case | Comparison | MemoryCheck
Factory = Callable[[Context], Iterable[Item]]
REGISTRY: list[Factory] = []


def register(factory: Factory) -> Factory:
    REGISTRY.append(factory)
    return factory


def worker_case(name: str, label: str, rows: int, spec: dict, ctx: Context, env: dict[str, str] | None = None) -> Case:
    """Our real entry point, `exportjob-worker`, writing under ctx.workdir/name."""
    root = ctx.workdir / name
    root.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "output": {"path": "out.csv"}}
    argv = [
        str(VENV_BIN / "exportjob-worker"),
        "--spec-json",
        json.dumps(spec),
        "--output-root",
        str(root),
        "--termination-log",
        str(root / "termination-log"),
    ]
    return Case(name, label, rows, argv, root / "out.csv", env or {}, root / "termination-log")


@register
def postgres_csv(ctx: Context) -> Iterable[Item]:
    if ctx.dsn is None:
        return
    query = f"SELECT * FROM {PG_TABLE}"
    source = {"postgres": {"query": query, "connectionSecretRef": {"name": "pg", "key": "dsn"}}}
    env = {"EXPORTJOB_POSTGRES_DSN": ctx.dsn}
    psql_out = ctx.workdir / "psql.csv"
    psql = shutil.which("psql") or "psql"
    yield Case(
        "pg-psql",
        "psql \\copy ... csv header",
        ctx.pg_rows,
        [
            psql,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            ctx.dsn,
            "-c",
            f"\\copy ({query}) to '{psql_out}' csv header",
        ],
        psql_out,
    )
    yield worker_case(
        "pg-worker",
        "exportjob-worker, defaults (guard on, crlf)",
        ctx.pg_rows,
        {"format": "csv", "source": source},
        ctx,
        env,
    )
    yield worker_case(
        "pg-worker-plain",
        "exportjob-worker, formulaEscape off, lf",
        ctx.pg_rows,
        {"format": "csv", "source": source, "csv": {"formulaEscape": False, "lineTerminator": "lf"}},
        ctx,
        env,
    )
    for n in (2, 4):
        yield worker_case(
            f"pg-worker-par{n}",
            f"exportjob-worker, defaults, parallelism {n} (splitColumn id)",
            ctx.pg_rows,
            {"format": "csv", "source": {"postgres": {**source["postgres"], "parallelism": n, "splitColumn": "id"}}},
            ctx,
            env,
        )
    for n in (2, 4):
        blocks = worker_case(
            f"pg-worker-blocks{n}",
            f"exportjob-worker, defaults, parallelism {n} (no splitColumn: table block ranges)",
            ctx.pg_rows,
            {"format": "csv", "source": {"postgres": {**source["postgres"], "parallelism": n}}},
            ctx,
            env,
        )
        blocks.baseline = False
        yield blocks
    yield Comparison("pg-worker", "pg-psql", f"PostgreSQL {ctx.pg_rows:,} rows -> CSV: worker vs psql", 0.9)
    yield Comparison("pg-worker-plain", "pg-psql", "  same, guard off and lf (what psql does)")
    yield Comparison("pg-worker-par2", "pg-psql", "  worker, parallelism 2, vs psql", 1.3)
    yield Comparison("pg-worker-par4", "pg-psql", "  worker, parallelism 4, vs psql")
    yield Comparison("pg-worker-blocks2", "pg-psql", "  worker, parallelism 2 by table blocks, vs psql", 1.3)
    yield Comparison("pg-worker-blocks4", "pg-psql", "  worker, parallelism 4 by table blocks, vs psql")


@register
def synthetic_csv(ctx: Context) -> Iterable[Item]:
    spec = {"format": "csv", "source": {"synthetic": {"records": ctx.csv_rows, "seed": 1}}}
    yield worker_case("synthetic-worker", "exportjob-worker (guard, sha256, fsync, rename)", ctx.csv_rows, spec, ctx)
    out = ctx.workdir / "plain.csv"
    yield Case(
        "synthetic-plain",
        "plain csv.writer loop, same generator",
        ctx.csv_rows,
        [sys.executable, str(BENCH_DIR / "run.py"), "--child", "plain-csv", str(ctx.csv_rows), str(out)],
        out,
    )
    yield Comparison(
        "synthetic-worker", "synthetic-plain", f"synthetic {ctx.csv_rows:,} rows -> CSV: worker vs plain csv.writer"
    )


@register
def csv_memory(ctx: Context) -> Iterable[Item]:
    spec = {"format": "csv", "source": {"synthetic": {"records": ctx.memory_rows, "seed": 1}}}
    yield worker_case("memory-worker", "exportjob-worker, peak RSS", ctx.memory_rows, spec, ctx)
    yield MemoryCheck("memory-worker", 100, f"CSV peak RSS at {ctx.memory_rows:,} rows")


def plain_csv_child(rows: int, out: Path) -> None:
    """The baseline: the synthetic generator's rows through a stdlib csv.writer, one writerow per row."""
    import csv

    from exportjob.worker.sources.synthetic import SyntheticSource

    with open(out, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        stream = SyntheticSource(rows, 1).stream()
        writer.writerow(stream.columns)
        for row in stream.rows():
            writer.writerow(row)


CHILDREN: dict[str, Callable[[int, Path], None]] = {"plain-csv": plain_csv_child}
