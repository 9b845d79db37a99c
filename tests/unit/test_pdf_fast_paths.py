"""The PDF writer's column-wise fast paths give the bytes of the cell-by-cell rules.

`PdfTableWriter` renders a page's rows one column at a time (C-level loops, widths from
lengths or a cache, cuts without `_show`). A subclass with `_column_fast_path = False`
renders every cell through `_cell` (per-cell measuring, cuts by `_show`): both must write
the same file, byte for byte, for every kind of cell. The helpers are checked against
brute force.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
import zlib
from decimal import Decimal

import pytest

from exportjob.spec import PdfOptions
from exportjob.worker.formats import pdf_writer
from exportjob.worker.formats.pdf_writer import PdfTableWriter

WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
ODD = [
    "plain",
    "a(b)c\\d",  # escaped in a literal string: not the ASCII column path
    "tab\there",
    "new\nline",
    "",
    None,
    "x" * 300,  # cut before encoding, then with an ellipsis
    "trailing   " + "y" * 80,  # the cut drops the spaces before the ellipsis
    "e\u0301cole",  # not NFC
    "Łukasz Żółć",  # every character in DejaVu Sans
    "王小明",  # every character in Noto Sans CJK
    "王小明 Li",  # the fallback font prints the Latin letters too
    "😀 emoji",  # beyond the BMP
    "देवनागरी",  # no configured font: replaced, counted
    "\u2026",
    "Ωmega " * 20,  # covered by the first font but too wide: cut by _show
]


class CellByCell(PdfTableWriter):
    _column_fast_path = False


def mixed_rows(n: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for i in range(n):
        rows.append(
            [
                i * 37,  # right-aligned digits: more digits than the sample had, so later ids are cut
                ODD[i % len(ODD)],
                float(i) / 7 if i % 11 else None,
                Decimal(i).scaleb(-2) if i % 5 else Decimal(-i),
                i % 2 == 0,
                WHEN + dt.timedelta(seconds=97 * i),
                f"{'Customer':<{i % 13}}{i}@example.com",
                ODD[(i * 7) % len(ODD)] if i % 3 else 10 ** (i % 14),  # a column of mixed types
            ]
        )
    return rows


COLUMNS = ["n", "odd", "f", "dec", "b", "when", "email", "mixed"]


def page_contents(pdf: bytes) -> bytes:
    """Every page's content stream, decompressed, one after the other."""
    streams = re.finditer(rb"(\d+) 0 obj\n<< /Length (\d+) /Filter /FlateDecode >>\nstream\n", pdf)
    return b"".join(zlib.decompress(pdf[m.end() : m.end() + int(m[2])]) for m in streams)


def render(cls: type[PdfTableWriter], rows, options: PdfOptions, **kwargs) -> tuple[bytes, PdfTableWriter]:
    sink = io.BytesIO()
    writer = cls(
        sink,
        COLUMNS if len(rows[0]) == len(COLUMNS) else [f"c{i}" for i in range(len(rows[0]))],
        options,
        creation_date=WHEN,
        **kwargs,
    )
    for start in range(0, len(rows), 333):
        writer.write_rows(rows[start : start + 333])
    writer.close()
    return sink.getvalue(), writer


@pytest.mark.parametrize(
    ("options", "kwargs"),
    [
        (PdfOptions(title="Fast ü"), {}),
        (PdfOptions(), {"sample_rows": 3}),  # narrow columns fitted to three rows: many cuts
        (PdfOptions(orientation="portrait", font_size=12), {"sample_rows": 20}),
        (PdfOptions(fonts=["NotoSansCJK-JP", "DejaVuSans"]), {}),  # CFF first font: no simple font, no fast path
    ],
    ids=["default", "small-sample", "portrait-12pt", "cjk-first"],
)
def test_column_rendering_writes_the_bytes_of_cell_by_cell_rendering(options, kwargs):
    rows = mixed_rows(3000)
    fast, fast_writer = render(PdfTableWriter, rows, options, **kwargs)
    slow, slow_writer = render(CellByCell, rows, options, **kwargs)
    assert fast_writer.replaced_glyphs == slow_writer.replaced_glyphs > 0
    assert (fast_writer.rows, fast_writer.pages) == (slow_writer.rows, slow_writer.pages) == (3000, fast_writer.pages)
    if options.fonts is None:  # DejaVu Sans first: the data went through literal strings and cuts
        text = page_contents(fast)
        assert b"(plain) Tj" in text and b"Tf  <" in text
    assert fast == slow


def test_digit_columns_cut_as_cell_by_cell():
    """Ids wider than the sample's: the uniform-width cut (no per-character sums), right-aligned."""
    filler = ["w" * 40] * 9  # wide text columns leave the id column its minimum width
    rows = [[i, *filler] for i in range(1, 300)] + [[10**k + k, *filler] for k in range(3, 40)]
    fast, _ = render(PdfTableWriter, rows, PdfOptions(), sample_rows=5)
    slow, _ = render(CellByCell, rows, PdfOptions(), sample_rows=5)
    assert page_contents(fast).count(b"2026> Tj") >= 30  # the late ids are cut with an ellipsis
    assert fast == slow


def test_columns_of_repeated_non_ascii_names_render_as_cell_by_cell():
    """Whole columns of names that one font prints (known after their first page): the cached column path."""
    names = ["Łukasz Żółć-Wąsowicz", "Γιώργος Παπαδόπουλος", "Анна Кузнецова", "王小明", "山田太郎", "김민수"]
    rows = [[i, names[i % len(names)], names[(i // 7) % len(names)] * (1 + i % 3)] for i in range(2000)]
    fast, fast_writer = render(PdfTableWriter, rows, PdfOptions(), sample_rows=10)
    slow, slow_writer = render(CellByCell, rows, PdfOptions(), sample_rows=10)
    assert page_contents(fast).count("Анна Кузнецова".encode("utf-16-be").hex().encode()) > 300  # DejaVu: UTF-16
    assert fast_writer.replaced_glyphs == slow_writer.replaced_glyphs == 0
    assert fast == slow


def test_wide_tables_at_the_smallest_font_render_alike():
    rows = [[f"{c}:{i}" * (1 + (i + c) % 4) for c in range(60)] for i in range(300)]
    assert render(PdfTableWriter, rows, PdfOptions())[0] == render(CellByCell, rows, PdfOptions())[0]


def test_the_compressing_thread_ends_with_close():
    before = {t.ident for t in threading.enumerate() if t.name.startswith("pdf-compress")}
    writer = PdfTableWriter(io.BytesIO(), COLUMNS, PdfOptions())
    writer.write_rows(mixed_rows(2000))
    assert any(t.name.startswith("pdf-compress") for t in threading.enumerate())  # pages were handed over
    writer.close()
    after = {t.ident for t in threading.enumerate() if t.name.startswith("pdf-compress")}
    assert after <= before


def test_cell_texts_are_format_cell():
    columns = [
        [1, 2, -3, 10**30],
        ["a", "", "ü"],
        [0.1, 1e-20, float("inf"), -0.0],
        [Decimal("12.50"), Decimal("-1E+3")],
        [True, False, True],
        [None, None],
        [None, 1, "x", True, 2.5, Decimal("1.0"), WHEN],
        [WHEN, dt.date(2024, 1, 2)],
    ]
    for values in columns:
        assert pdf_writer._cell_texts(values) == [pdf_writer._format_cell(v) for v in values]


def test_multiples_up_to_is_the_largest_count_that_fits():
    for step in (1, 3, 636, 1000):
        for limit in (0, 0.5, 635.9999, 636, 2503.4642, 3 * step, 3 * step - 1e-9, 123456.0):
            expected = max(n for n in range(int(limit) + 2) if n * step <= limit)
            assert pdf_writer._multiples_up_to(step, limit) == expected


def test_cached_computes_only_misses_and_stays_bounded():
    calls: list[str] = []

    def compute(key: str) -> int:
        calls.append(key)
        return len(key)

    cache: dict[str, int] = {}
    assert pdf_writer._cached(cache, ["a", "bb", "a"], compute, limit=3) == [1, 2, 1]
    assert calls == ["a", "bb", "a"]  # both "a" missed in the same lookup
    assert pdf_writer._cached(cache, ["bb", "a"], compute, limit=3) == [2, 1]
    assert calls == ["a", "bb", "a"]  # hits
    pdf_writer._cached(cache, ["ccc", "dddd"], compute, limit=3)
    assert set(cache) == {"a", "bb", "ccc", "dddd"}  # not full before this lookup: its misses are added
    assert pdf_writer._cached(cache, ["e", "a"], compute, limit=3) == [1, 1]
    assert set(cache) == {"e"}  # full: emptied, then only this lookup's misses stored ("a" was a hit)


def test_width_classes_rank_widths():
    table = [500, 278, 500, 1000] + [0] * 252  # one width per byte value
    classes, widths = pdf_writer._width_classes(table)
    assert widths == [0, 278, 500, 1000]
    assert [widths[k] for k in classes] == table
    data = bytes([0, 1, 2])
    assert widths[max(data.translate(classes))] == 500
