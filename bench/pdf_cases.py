#!/usr/bin/env python3
"""PDF benchmark: our streaming PdfTableWriter vs a straightforward reportlab platypus LongTable.

    .venv/bin/python bench/pdf_cases.py                 # all cases, median of 3 (~5 min on 2 cores)
    .venv/bin/python bench/pdf_cases.py --repeat 1 --quick   # smoke run: 10k rows only

Every measurement runs in a fresh child process (`--child`), which reports its own
wall time and its own peak RSS (`getrusage(RUSAGE_SELF)` inside the child, so the
parent's memory never leaks into the figure). Rows come from the synthetic source
(`exportjob.worker.sources.synthetic`, seed 7) in both cases, so rows/s includes the
same generation cost for both writers. Output files go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model

TITLE = "Synthetic orders"

# (writer, rows): the comparison at 10k and 50k, and ours at 1M for flatness. "source" only
# generates the rows (no PDF): the floor of both rows/s and peak RSS (imports + generator).
# "unicode": ours with the name column in twelve scripts (Latin-extended, Greek, Cyrillic, CJK), so
# that both embedded fonts (DejaVu Sans, Noto Sans CJK) are used and subset at close.
CASES = [
    ("source", 50_000),
    ("ours", 10_000),
    ("longtable", 10_000),
    ("ours", 50_000),
    ("longtable", 50_000),
    ("unicode", 50_000),
    ("ours", 1_000_000),
    ("unicode", 1_000_000),
]

# A customer name per script (the same samples as tests/unit/test_pdf_unicode.py).
NAMES = [
    "Łukasz Żółć-Wąsowicz",
    "Jiří Dvořák",
    "Ağaoğlu Şükrü",
    "Nguyễn Thị Hương",
    "Þórunn Guðmundsdóttir",
    "Γιώργος Παπαδόπουλος",
    "Анна Кузнецова",
    "Олександр Ґудзь",
    "王小明",
    "陳大文",
    "山田太郎",
    "김민수",
]


def _batches(records: int):
    try:
        from exportjob.worker.sources.synthetic import SyntheticSource
    except ImportError:  # the synthetic source is not there: a simple deterministic generator
        return _fallback_stream(records)
    stream = SyntheticSource(records=records, seed=7).stream()
    return stream.columns, stream.batches


def _fallback_stream(records: int):
    import datetime as dt
    from decimal import Decimal

    columns = ["id", "uuid", "name", "email", "amount", "timestamp", "flag", "category"]
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cats = ["books", "electronics", "garden", "toys", "music"]

    def batches():
        for first in range(0, records, 2000):
            yield [
                (
                    i,
                    f"{(i * 2654435761) % (1 << 64):016x}-4000-8000-{i:012x}",
                    f"Name {i % 4093}",
                    f"user{i % 4093}@example.com",
                    Decimal(i % 99_991).scaleb(-2),
                    (base + dt.timedelta(seconds=10 * i)).isoformat(),
                    i % 3 == 0,
                    cats[i % 5],
                )
                for i in range(first, min(records, first + 2000))
            ]

    return columns, batches()


def run_source(columns, batches, out: Path) -> dict:
    rows = 0
    for batch in batches:
        rows += len(batch)
    out.write_bytes(b"")
    return {"pages": 0, "rows": rows}


def run_ours(columns, batches, out: Path) -> dict:
    from exportjob.spec import PdfOptions
    from exportjob.worker.formats.pdf_writer import PdfTableWriter

    with out.open("wb") as f:
        writer = PdfTableWriter(f, columns, PdfOptions(title=TITLE))
        for batch in batches:
            writer.write_rows(batch)
        writer.close()
    return {"pages": writer.pages, "rows": writer.rows}


def run_unicode(columns, batches, out: Path) -> dict:
    """Ours, with the name column replaced by names in twelve scripts (the replacement is timed too)."""
    names = NAMES

    def unicode_batches():
        for batch in batches:
            yield [(*row[:2], names[row[0] % 12], *row[3:]) for row in batch]

    return run_ours(columns, unicode_batches(), out)


def run_longtable(columns, batches, out: Path) -> dict:
    """What one would write first with reportlab: one LongTable in a SimpleDocTemplate."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, TableStyle

    data: list[list[str]] = [list(columns)]
    for batch in batches:
        for row in batch:
            data.append(
                ["" if v is None else ("true" if v else "false") if isinstance(v, bool) else str(v) for v in row]
            )

    def page_number(canvas, doc):
        canvas.setFont("Helvetica", 7)
        canvas.drawString(28.35, 18, f"Page {doc.page}")

    doc = SimpleDocTemplate(
        str(out),
        pagesize=landscape(A4),
        leftMargin=28.35,
        rightMargin=28.35,
        topMargin=28.35,
        bottomMargin=28.35,
        title=TITLE,
    )
    table = LongTable(data, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), "Helvetica", 8),
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.whitesmoke]),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    doc.build(
        [Paragraph(TITLE, getSampleStyleSheet()["Heading2"]), table], onFirstPage=page_number, onLaterPages=page_number
    )
    return {"pages": doc.page, "rows": len(data) - 1}


def child(writer: str, records: int, out: Path) -> None:
    # Imports and the generator's set-up happen before the clock starts (they are in the RSS).
    import reportlab.platypus  # noqa: F401

    import exportjob.spec
    import exportjob.worker.formats.pdf_writer  # noqa: F401

    columns, batches = _batches(records)
    run = {"source": run_source, "ours": run_ours, "unicode": run_unicode, "longtable": run_longtable}[writer]
    started = time.perf_counter()
    result = run(columns, batches, out)
    elapsed = time.perf_counter() - started
    result.update(
        seconds=elapsed,
        bytes=out.stat().st_size,
        peak_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # this process only (KiB on Linux)
    )
    print(json.dumps(result))


def measure(writer: str, records: int, repeat: int, workdir: Path) -> dict:
    runs = []
    for i in range(repeat):
        out = workdir / f"{writer}-{records}-{i}.pdf"
        proc = subprocess.run(
            [sys.executable, __file__, "--child", writer, str(records), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{writer} at {records} rows failed:\n{proc.stderr}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        out.unlink()
    return {
        "writer": writer,
        "records": records,
        "rows_per_s": statistics.median(r["rows"] / r["seconds"] for r in runs),
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mb": statistics.median(r["peak_rss_kb"] for r in runs) / 1024,
        "mb_per_s": statistics.median(r["bytes"] / r["seconds"] for r in runs) / 1e6,
        "bytes": runs[0]["bytes"],
        "pages": runs[0]["pages"],
        "runs": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="only the 10,000-row cases")
    parser.add_argument("--json", action="store_true", help="print the results as JSON as well")
    parser.add_argument("--child", nargs=3, metavar=("WRITER", "ROWS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), Path(args.child[2]))
        return

    cases = [c for c in CASES if c[1] == 10_000 or c[0] == "source"] if args.quick else CASES
    print(
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, median of {args.repeat}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="pdfbench-") as tmp:
        for writer, records in cases:
            r = measure(writer, records, args.repeat, Path(tmp))
            results.append(r)
            print(
                f"  {writer:9} {records:>9,} rows: {r['rows_per_s']:>10,.0f} rows/s  "
                f"{r['peak_rss_mb']:6.1f} MB peak RSS  ({r['seconds']:.1f} s, {r['pages']:,} pages)",
                flush=True,
            )

    by = {(r["writer"], r["records"]): r for r in results}
    print()
    print("| rows | writer | rows/s | MB/s | peak RSS | pages | file size |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        name = {
            "source": "rows only, no PDF",
            "ours": "ours (streaming)",
            "unicode": "ours, 12 scripts",
            "longtable": "platypus LongTable",
        }[r["writer"]]
        print(
            f"| {r['records']:,} | {name} "
            f"| {r['rows_per_s']:,.0f} | {r['mb_per_s']:.1f} | {r['peak_rss_mb']:.0f} MB | {r['pages']:,} "
            f"| {r['bytes'] / 1e6:.1f} MB |"
        )
    print()
    for records in (10_000, 50_000):
        ours, base = by.get(("ours", records)), by.get(("longtable", records))
        if ours and base:
            print(
                f"{records:,} rows: ours is {ours['rows_per_s'] / base['rows_per_s']:.0f}x faster "
                f"with {ours['peak_rss_mb'] / base['peak_rss_mb']:.2f}x the peak RSS of LongTable "
                f"({ours['peak_rss_mb']:.0f} MB vs {base['peak_rss_mb']:.0f} MB)"
            )
    for writer in ("ours", "unicode"):
        small, large = by.get((writer, 50_000)), by.get((writer, 1_000_000))
        if small and large:
            print(
                f"flatness ({writer}): peak RSS {small['peak_rss_mb']:.1f} MB at 50,000 rows vs "
                f"{large['peak_rss_mb']:.1f} MB at 1,000,000 rows ({large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
                f"for 20x the rows)"
            )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
