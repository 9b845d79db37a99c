#!/usr/bin/env python3
"""`make bench`: CSV (and, through bench/pdf_cases.py, PDF) throughput and memory, side by side.

    .venv/bin/python bench/run.py            # full sizes: 1M-row PostgreSQL and synthetic, 10M-row memory case
    .venv/bin/python bench/run.py --quick    # 100k rows, 1M-row memory case (a smoke run)
    .venv/bin/python bench/run.py --no-pdf --repeat 5 --json bench/out/results.json

Every case is a separate process run under `/usr/bin/time -f %M` (its own peak
RSS); wall time is measured around the process, so process start-up counts
for every case alike ("rows/s"). For our worker, "export r/s" also shows the
rate over the worker's own `durationSeconds` (without interpreter start-up and
imports, ~0.2 s). The median of `--repeat` runs (default 3) is printed.
PostgreSQL cases use a throw-away cluster (bench/pgserver.py) with a table of
8 typed columns filled by generate_series, vacuumed before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CHILDREN, PG_TABLE, REGISTRY, Case, Comparison, Context, MemoryCheck
from machine import cpu_model

TIME = "/usr/bin/time"
REPO = Path(__file__).resolve().parent.parent


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}), "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Linux {platform.release()}, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )


def fill_table(server: Any, rows: int) -> None:
    server.execute(f"DROP TABLE IF EXISTS {PG_TABLE}")
    server.execute(
        f"CREATE TABLE {PG_TABLE} AS SELECT g AS id, gen_random_uuid() AS uuid, 'Customer ' || (g % 4093) AS name, "
        "'user' || (g % 4093) || '@example.com' AS email, round((random() * 1000 - 80)::numeric, 2) AS amount, "
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '10 seconds' AS ts, g % 3 = 0 AS flag, "
        "(ARRAY['books','garden','toys','music','office'])[g % 5 + 1] AS category "
        f"FROM generate_series(1, {rows}) g"
    )
    server.execute(f"VACUUM ANALYZE {PG_TABLE}")


def run_once(case: Case) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        started = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%M %U %S", "-o", timing.name, *case.argv],
            capture_output=True,
            text=True,
            env={**os.environ, **case.env},
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"case {case.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        peak_kb, user, system = timing.read().strip().splitlines()[-1].split()
    size = case.output.stat().st_size
    case.output.unlink()
    # cpu: user + system of the process and the children it waited for (range processes), not the server's
    measured = {
        "seconds": seconds,
        "bytes": size,
        "peak_rss_mb": int(peak_kb) / 1024,
        "cpu": float(user) + float(system),
    }
    if case.result_file is not None:
        measured["export_seconds"] = json.loads(case.result_file.read_text())["durationSeconds"]
    return measured


def measure(case: Case, repeat: int) -> dict[str, Any]:
    return summarize(case, [run_once(case) for _ in range(repeat)])


def measure_interleaved(cases: list[Case], repeat: int) -> dict[str, dict[str, Any]]:
    """Every case once per round, `repeat` rounds: on a shared machine each case sees the same mix of load."""
    runs: dict[str, list[dict[str, float]]] = {case.name: [] for case in cases}
    for _ in range(repeat):
        for case in cases:
            runs[case.name].append(run_once(case))
    return {case.name: summarize(case, runs[case.name]) for case in cases}


def summarize(case: Case, runs: list[dict[str, float]]) -> dict[str, Any]:
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        "name": case.name,
        "label": case.label,
        "rows": case.rows,
        "runs": len(runs),
        "cpu_seconds": statistics.median(r["cpu"] for r in runs),
        "seconds": seconds,
        "rows_per_s": case.rows / seconds,
        "mb_per_s": runs[0]["bytes"] / seconds / 1e6,
        "bytes": runs[0]["bytes"],
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "export_rows_per_s": (
            case.rows / max(statistics.median(r["export_seconds"] for r in runs), 1e-9)
            if "export_seconds" in runs[0]
            else None
        ),
    }


def import_ms(module: str) -> float:
    """Cumulative import time of `module` in ms, from `python -X importtime` (one fresh interpreter)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    )
    for line in done.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    raise SystemExit(f"no importtime line for {module}")


def import_cpu_ms(module: str) -> float:
    """CPU time of importing `module` in a fresh interpreter (less disturbed by a busy machine than wall time)."""
    code = f"import time; t = time.process_time(); import {module}; print((time.process_time() - t) * 1000)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def wall_ms(argv: list[str], env: dict[str, str] | None = None) -> float:
    return run_ms(argv, env)[0]


def run_ms(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + system, from the child's own rusage) of one run, in ms."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv[0]} exited with {process.returncode}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def importtime_summary(argv: list[str], env: dict[str, str] | None = None, top: int = 12) -> list[str]:
    """The `-X importtime` lines of one whole run with the largest self time (what the run imports)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[0].isdigit():
            rows.append((int(parts[0]), int(parts[1]), parts[2]))
    total = sum(row[0] for row in rows)
    lines = [f"{len(rows)} modules, {total / 1000:.1f} ms in all (self times)"]
    lines += [
        f"{self_us / 1000:7.1f} ms self {cumulative / 1000:7.1f} ms cumulative  {name}"
        for self_us, cumulative, name in sorted(rows, reverse=True)[:top]
    ]
    lines.append("pydantic imported: " + ("yes" if any(r[2] == "pydantic" for r in rows) else "no"))
    return lines


def compile_bytecode(tree: Path) -> None:
    """Write the .pyc files of `tree`'s `operator/` sources, as pip does when it installs the image's wheel:
    with PYTHONDONTWRITEBYTECODE set (the image and this machine set it) every run would otherwise compile
    the sources again (~50 ms), ours and the baseline's alike."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "operator")], check=True)


def run_startup(repeat: int, workdir: Path, base: Path | None = None, ref: str = "") -> list[dict[str, Any]]:
    """Start-up: bare interpreter, `import exportjob.worker.main` (-X importtime), a whole one-row worker run
    (wall and CPU; with `base`, also the baseline's worker, interleaved), and what that run imports."""
    runs = max(5, 2 * repeat)
    root = workdir / "startup"
    root.mkdir(parents=True, exist_ok=True)
    spec = json.dumps({"format": "csv", "source": {"synthetic": {"records": 1}}, "output": {"path": "one.csv"}})
    arguments = ["--spec-json", spec, "--output-root", str(root), "--termination-log", str(root / "termination-log")]
    worker = [str(Path(sys.executable).parent / "exportjob-worker"), *arguments]
    base_env = {"PYTHONPATH": str(base / "operator")} if base is not None else None
    base_worker = baseline_worker(base) + arguments if base is not None else []
    figures = {
        "startup-python": (
            "bare interpreter (python -c pass), wall",
            [wall_ms([sys.executable, "-c", "pass"]) for _ in range(runs)],
        ),
        "startup-import": (
            "import exportjob.worker.main (-X importtime, cumulative)",
            [import_ms("exportjob.worker.main") for _ in range(runs)],
        ),
        "startup-import-cpu": (
            "import exportjob.worker.main, CPU time (time.process_time: load-independent)",
            [import_cpu_ms("exportjob.worker.main") for _ in range(runs)],
        ),
        "startup-import-spec": (
            "import exportjob.spec (pydantic: only when the worker's fast check refuses the spec)",
            [import_ms("exportjob.spec") for _ in range(runs)],
        ),
    }
    ours, theirs = [], []
    for _ in range(runs):  # interleaved, so that both see the same load
        ours.append(run_ms(worker))
        if base_env is not None:
            theirs.append(run_ms(base_worker, base_env))
    figures["startup-worker"] = ("exportjob-worker, synthetic 1 row -> CSV, whole process, wall", [w for w, _ in ours])
    figures["startup-worker-cpu"] = ("the same, CPU (user + system)", [c for _, c in ours])
    if theirs:
        figures["startup-worker@base"] = (f"the same with the worker of {ref}, wall", [w for w, _ in theirs])
        figures["startup-worker-cpu@base"] = (f"the same with the worker of {ref}, CPU", [c for _, c in theirs])
    results = []
    for name, (label, values) in figures.items():
        ms = statistics.median(values)
        results.append({"name": name, "label": label, "ms": ms, "runs": runs})
        print(f"  {name:<24} {ms:>8.1f} ms  {label} (median of {runs})", flush=True)
    target = 80.0
    ms, cpu = results[1]["ms"], results[2]["ms"]
    print(
        f"import exportjob.worker.main: {ms:.1f} ms wall, {cpu:.1f} ms CPU "
        f"(target <= {target:.0f} ms: {'met' if ms <= target else 'NOT met'} by wall time, "
        f"{'met' if cpu <= target else 'NOT met'} by CPU time)"
    )
    for label, env in (("ours", None), (f"baseline {ref}", base_env)):
        if label == "ours" or env is not None:
            print(f"\npython -X importtime, one whole worker run (synthetic 1 row), {label}:")
            for line in importtime_summary(["-m", "exportjob.worker.main", *arguments], env):
                print("  " + line)
    return results


def run_pdf_cases(quick: bool, repeat: int) -> list[dict[str, Any]]:
    """bench/pdf_cases.py, when present: its own cases, each a child measuring its own RSS."""
    try:
        import pdf_cases  # type: ignore[import-not-found]
    except ImportError:
        print("(bench/pdf_cases.py not found: no PDF cases)")
        return []
    cases = [c for c in pdf_cases.CASES if c[1] == 10_000 or c[0] == "source"] if quick else pdf_cases.CASES
    results = []
    with tempfile.TemporaryDirectory(prefix="pdfbench-") as tmp:
        for writer, records in cases:
            r = pdf_cases.measure(writer, records, repeat, Path(tmp))
            r.update(name=f"pdf-{writer}-{records}", label=f"PDF {writer}", rows=records)
            results.append(r)
            print(
                f"  {r['name']:<22} {r['rows_per_s']:>12,.0f} rows/s {r['mb_per_s']:>7.1f} MB/s "
                f"{r['peak_rss_mb']:>7.1f} MB peak RSS",
                flush=True,
            )
    for writer in ("ours", "unicode"):
        big = max((r for r in results if r["name"].startswith(f"pdf-{writer}-")), key=lambda r: r["rows"], default=None)
        if big:
            print(
                f"PDF {writer} {big['rows']:,} rows: {big['rows_per_s']:,.0f} rows/s (target >= 80,000: "
                f"{'met' if big['rows_per_s'] >= 80_000 else 'NOT met'}), peak RSS {big['peak_rss_mb']:.1f} MB "
                f"(limit 100 MB: {'met' if big['peak_rss_mb'] <= 100 else 'NOT met'})"
            )
    for records in (10_000, 50_000):
        ours, base = (
            next((r for r in results if r["name"] == f"pdf-{w}-{records}"), None) for w in ("ours", "longtable")
        )
        if ours and base:
            print(
                f"PDF {records:,} rows: ours/LongTable rows/s {ours['rows_per_s'] / base['rows_per_s']:.1f}x, "
                f"peak RSS {ours['peak_rss_mb']:.0f} MB vs {base['peak_rss_mb']:.0f} MB"
            )
    return results


@contextmanager
def baseline_tree(ref: str | None) -> Iterator[Path | None]:
    """The source of git revision `ref` in a temporary worktree (removed afterwards), or None."""
    if not ref:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="exportjob-baseline-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), ref], check=True)
    try:
        compile_bytecode(path)
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)


def baseline_worker(tree: Path) -> list[str]:
    """The baseline's `exportjob-worker` command: the entry point its own pyproject.toml names (the venv's
    script is ours, and may call a function the baseline does not have)."""
    scripts = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["exportjob-worker"].split(":")
    launcher = f"import sys; from {module} import {function}; sys.argv[0] = 'exportjob-worker'; sys.exit({function}())"
    return [sys.executable, "-c", launcher]


def with_baseline(items: list[Any], tree: Path, ref: str) -> list[Any]:
    """Each `exportjob-worker` case followed by its twin running the baseline's source (PYTHONPATH, ahead of
    the venv's editable install), and each comparison of such a case repeated for the twin."""
    twins: dict[str, str] = {}
    out: list[Any] = []
    worker = baseline_worker(tree)
    for item in items:
        out.append(item)
        if isinstance(item, Case) and item.baseline and Path(item.argv[0]).name == "exportjob-worker":
            twin = f"{item.name}@base"
            twins[item.name] = twin
            root = item.output.parent.with_name(twin)
            root.mkdir(parents=True, exist_ok=True)
            old = str(item.output.parent)
            argv = [str(root) + a[len(old) :] if a.startswith(old) else a for a in item.argv[1:]]
            out.append(
                replace(
                    item,
                    name=twin,
                    label=f"{item.label} [baseline {ref}]",
                    argv=worker + argv,
                    output=root / item.output.name,
                    env={**item.env, "PYTHONPATH": str(tree / "operator")},
                    result_file=root / item.result_file.name if item.result_file else None,
                )
            )
    for item in items:
        if isinstance(item, Comparison) and item.ours in twins:
            out.append(replace(item, ours=twins[item.ours], title=f"{item.title} [baseline {ref}]"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (a smoke run)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case, median reported (default 3)")
    parser.add_argument("--no-postgres", action="store_true", help="leave out the PostgreSQL cases")
    parser.add_argument("--no-pdf", action="store_true", help="leave out bench/pdf_cases.py")
    parser.add_argument("--no-startup", action="store_true", help="leave out the start-up figures")
    parser.add_argument("--pg-rows", type=int, help="rows in the PostgreSQL table (default 2,000,000; quick 100,000)")
    parser.add_argument("--csv-rows", type=int, help="synthetic rows for the CSV comparison (default 1,000,000)")
    parser.add_argument("--memory-rows", type=int, help="synthetic rows for the CSV peak-RSS case (default 10,000,000)")
    parser.add_argument("--only", metavar="PREFIX", help="only the cases whose name starts with PREFIX (e.g. pg)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--interleave", action="store_true", help="run the cases round-robin, once per round (a shared machine)"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="git revision whose worker runs every worker case too, right after ours (`<case>@base`)",
    )
    parser.add_argument("--child", nargs=3, metavar=("KIND", "ROWS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        CHILDREN[args.child[0]](int(args.child[1]), Path(args.child[2]))
        return

    print(f"machine: {machine()}")
    compile_bytecode(REPO)
    print(f"median of {args.repeat} runs per case{' (--quick sizes)' if args.quick else ''}\n", flush=True)
    sizes = (
        {"pg_rows": 100_000, "csv_rows": 100_000, "memory_rows": 1_000_000}
        if args.quick
        else {"pg_rows": 2_000_000, "csv_rows": 1_000_000, "memory_rows": 10_000_000}
    )
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    results: list[dict[str, Any]] = []
    checks: list[str] = []
    if not args.no_startup and (not args.only or args.only.startswith("startup")):
        with tempfile.TemporaryDirectory(prefix="exportjob-startup-") as tmp, baseline_tree(args.baseline) as base:
            results += run_startup(args.repeat, Path(tmp), base, args.baseline or "")
        print()
        if args.only and args.only.startswith("startup"):
            if args.json:
                Path(args.json).write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
            return
    with tempfile.TemporaryDirectory(prefix="exportjob-bench-") as tmp, baseline_tree(args.baseline) as base:
        server = None
        if not args.no_postgres and (not args.only or args.only.startswith("pg")):
            from pgserver import TempPostgres

            server = TempPostgres().start()
        try:
            if server is not None:
                fill_table(server, sizes["pg_rows"])
            ctx = Context(quick=args.quick, workdir=Path(tmp), dsn=server.dsn() if server else None, **sizes)
            items = [item for factory in REGISTRY for item in factory(ctx)]
            if args.only:
                keep = {i.name for i in items if isinstance(i, Case) and i.name.startswith(args.only)}
                items = [
                    i
                    for i in items
                    if (i.name if isinstance(i, Case) else i.case if isinstance(i, MemoryCheck) else i.ours) in keep
                    and (not isinstance(i, Comparison) or i.baseline in keep)
                ]
            if base is not None:
                items = with_baseline(items, base, args.baseline)
            by_name: dict[str, dict[str, Any]] = {}
            if args.interleave:
                print(f"(interleaved: {args.repeat} rounds of every case)")
                by_name = measure_interleaved([i for i in items if isinstance(i, Case)], args.repeat)
            print(
                f"  {'case':<18} {'rows/s':>12} {'export r/s':>12} {'MB/s':>7} {'RSS MB':>8} {'CPU s':>6} {'rows':>11}"
            )
            for item in items:
                if isinstance(item, Case):
                    r = by_name[item.name] if item.name in by_name else measure(item, args.repeat)
                    by_name[item.name] = r
                    results.append(r)
                    inside = f"{r['export_rows_per_s']:>12,.0f}" if r["export_rows_per_s"] else f"{'-':>12}"
                    print(
                        f"  {item.name:<18} {r['rows_per_s']:>12,.0f} {inside} {r['mb_per_s']:>7.1f} "
                        f"{r['peak_rss_mb']:>8.1f} {r['cpu_seconds']:>6.2f} {item.rows:>11,}  {item.label}",
                        flush=True,
                    )
            print()
            for item in items:
                if isinstance(item, Comparison):
                    ours, base = by_name[item.ours], by_name[item.baseline]
                    ratio = ours["rows_per_s"] / base["rows_per_s"]
                    verdict = (
                        ""
                        if item.target is None
                        else (f" (target >= {item.target}x: {'met' if ratio >= item.target else 'NOT met'})")
                    )
                    inside = ""
                    if ours["export_rows_per_s"]:
                        inside = f"; {ours['export_rows_per_s'] / base['rows_per_s']:.2f}x without our process start-up"
                    checks.append(f"{item.title}: {ratio:.2f}x{verdict}{inside}")
                elif isinstance(item, MemoryCheck):
                    peak = by_name[item.case]["peak_rss_mb"]
                    checks.append(
                        f"{item.title}: {peak:.1f} MB (limit {item.limit_mb:.0f} MB: "
                        f"{'met' if peak <= item.limit_mb else 'NOT met'})"
                    )
            print("\n".join(checks), flush=True)
        finally:
            if server is not None:
                server.stop()
    if not args.no_pdf and not args.only:
        print()
        results += run_pdf_cases(args.quick, args.repeat)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": machine(), "results": results, "checks": checks}, indent=2))


if __name__ == "__main__":
    main()
