"""The streaming PDF table writer, checked with a real extractor (poppler's pdftotext/pdfinfo).

These tests need the Debian package ``poppler-utils``; without it they fail (never skip)
with a message naming the package.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import re
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from exportjob.spec import PdfOptions
from exportjob.worker.formats.pdf_writer import (
    MIN_FONT_SIZE,
    PRODUCER,
    PdfTableWriter,
    TooManyColumnsError,
    max_columns,
)

COLUMNS = ["id", "uuid", "name", "email", "amount", "created", "flag", "category"]
CATEGORIES = ["books", "garden", "toys", "grocery", "electronics"]


@pytest.fixture(scope="session")
def poppler() -> None:
    missing = [tool for tool in ("pdftotext", "pdfinfo") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the PDF tests need poppler's tools, "
            "install the Debian package poppler-utils (apt-get install -y poppler-utils)",
            pytrace=False,
        )


def make_rows(n: int, start: int = 0) -> list[list[object]]:
    base = dt.datetime(2024, 3, 1, 8, 30, tzinfo=dt.UTC)
    rows: list[list[object]] = []
    for i in range(start, start + n):
        rows.append(
            [
                i,
                str(uuid.UUID(int=(i * 2654435761) % (1 << 128) + (i << 64))),
                f"Customer {i}",
                f"customer{i}@example.com",
                round(i * 1.37 - 100, 2),
                base + dt.timedelta(minutes=7 * i),
                i % 3 == 0,
                None if i % 10 == 0 else CATEGORIES[i % 5],
            ]
        )
    return rows


def write_pdf(
    path: Path, columns, rows, options: PdfOptions | None = None, *, batch: int = 100, **kwargs
) -> PdfTableWriter:
    with path.open("wb") as f:
        writer = PdfTableWriter(f, columns, options or PdfOptions(), **kwargs)
        for i in range(0, len(rows), batch):
            writer.write_rows(rows[i : i + batch])
        writer.close()
        assert not f.closed
    return writer


def pdftotext(path: Path) -> list[str]:
    """The text of each page, as laid out (pages are separated by form feeds)."""
    proc = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True)
    assert proc.stderr == b"", proc.stderr.decode()
    pages = proc.stdout.decode("utf-8").split("\f")
    if pages and not pages[-1].strip():
        pages.pop()
    return pages


def pdfinfo(path: Path) -> dict[str, str]:
    proc = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True)
    assert proc.stderr == b"", proc.stderr.decode()  # poppler reports structural errors on stderr
    info = {}
    for line in proc.stdout.decode("utf-8").splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def test_every_row_is_in_the_extracted_text_in_order(poppler, tmp_path):
    rows = make_rows(400)
    pdf = tmp_path / "rows.pdf"
    writer = write_pdf(pdf, COLUMNS, rows, PdfOptions(title="Orders"), batch=37)
    assert writer.rows == 400
    lines = [line for page in pdftotext(pdf) for line in page.splitlines()]
    start = 0
    for row in rows:
        # The uuid is unique per row: find its line, then every other value on the same line.
        for position in range(start, len(lines)):
            if row[1] in lines[position]:
                break
        else:
            pytest.fail(f"row {row[0]} ({row[1]}) not found (or out of order)")
        start = position
        words = lines[position].split()
        for value in row:
            text = cell_text(value)
            if text:
                assert text in lines[position], (row, lines[position])
        assert words[0] == str(row[0])


def test_header_title_and_page_numbers_on_every_page(poppler, tmp_path):
    pdf = tmp_path / "pages.pdf"
    writer = write_pdf(pdf, COLUMNS, make_rows(300), PdfOptions(title="Quarterly orders"))
    pages = pdftotext(pdf)
    assert writer.pages > 3
    assert len(pages) == writer.pages == int(pdfinfo(pdf)["Pages"])
    header = re.compile(r"\s+".join(COLUMNS))
    for number, page in enumerate(pages, start=1):
        lines = [line.strip() for line in page.splitlines() if line.strip()]
        assert lines[0] == "Quarterly orders"
        assert header.search(lines[1]), lines[1]
        assert lines[-1] == f"Page {number} of {writer.pages}"


def test_rows_per_page_follow_font_size(poppler, tmp_path):
    small = write_pdf(tmp_path / "small.pdf", COLUMNS, make_rows(500), PdfOptions(font_size=6))
    large = write_pdf(tmp_path / "large.pdf", COLUMNS, make_rows(500), PdfOptions(font_size=12))
    assert small.pages < large.pages
    assert int(pdfinfo(tmp_path / "large.pdf")["Pages"]) == large.pages


@pytest.mark.parametrize(
    ("page_size", "orientation", "expected"),
    [
        ("A4", "landscape", "841.89 x 595.28 pts (A4)"),
        ("A4", "portrait", "595.28 x 841.89 pts (A4)"),
        ("A3", "landscape", "1190.55 x 841.89 pts (A3)"),
        ("Letter", "portrait", "612 x 792 pts (letter)"),
        ("Legal", "landscape", "1008 x 612 pts"),  # poppler names only upright sizes
    ],
)
def test_page_size_and_orientation(poppler, tmp_path, page_size, orientation, expected):
    pdf = tmp_path / "size.pdf"
    write_pdf(pdf, COLUMNS, make_rows(20), PdfOptions(page_size=page_size, orientation=orientation))
    info = pdfinfo(pdf)
    assert info["Page size"] == expected
    assert info["Page rot"] == "0"  # landscape is a wide MediaBox, not a rotated page


def test_default_is_landscape_a4(poppler, tmp_path):
    pdf = tmp_path / "default.pdf"
    write_pdf(pdf, COLUMNS, make_rows(5))
    assert pdfinfo(pdf)["Page size"] == "841.89 x 595.28 pts (A4)"


def test_long_cells_are_truncated_with_an_ellipsis(poppler, tmp_path):
    long_text = "The quick brown fox jumps over the lazy dog " * 40  # 1760 characters
    rows = [[1, "short", long_text], [2, "also short", "tiny"], [3, "x" * 100_000, None]]
    pdf = tmp_path / "long.pdf"
    write_pdf(pdf, ["id", "label", "comment"], rows)
    text = pdftotext(pdf)[0]
    lines = text.splitlines()
    line1 = next(line for line in lines if line.strip().startswith("1 "))
    assert "The quick brown fox jumps over" in line1
    assert line1.rstrip().endswith("\u2026")
    assert long_text.strip() not in text
    assert len(line1) < 400
    line2 = next(line for line in lines if line.strip().startswith("2 "))
    assert "also short" in line2 and "tiny" in line2 and "\u2026" not in line2
    line3 = next(line for line in lines if line.strip().startswith("3 "))
    assert re.search(r"x{10,}\u2026", line3)


def test_long_cells_after_the_sample_are_truncated_too(poppler, tmp_path):
    rows = [*make_rows(50), [999, "f" * 36, "N" * 500, "e@x", 1.5, "2024", True, "Z" * 5000]]
    pdf = tmp_path / "late.pdf"
    write_pdf(pdf, COLUMNS, rows, sample_rows=10)
    line = next(line for line in pdftotext(pdf)[-1].splitlines() if "f" * 36 in line)
    assert re.search(r"N+\u2026", line) and re.search(r"Z+\u2026", line)


def test_none_unicode_and_special_characters(poppler, tmp_path):
    rows = [
        [1, None, "Zürich", "€ 12,50 – “quoted” naïve façade"],
        [2, "東京", "Tōkyō", "decomposed: Cafe\u0301"],  # 東京 from the CJK font; NFC makes é
        [3, "(paren) back\\slash", "tab\there", "new\nline"],
        [4, True, False, 0.1],
        [5, Decimal("12.500"), -0.0, 1e-20],
    ]
    pdf = tmp_path / "unicode.pdf"
    writer = write_pdf(pdf, ["n", "a", "b", "c"], rows, PdfOptions(title="Städte"))
    text = pdftotext(pdf)[0]
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()[:1].isdigit()}
    assert "Zürich" in lines["1"] and "€ 12,50 – “quoted” naïve façade" in lines["1"]
    assert "東京" in lines["2"] and "Tōkyō" in lines["2"]
    assert "Café" in lines["2"]
    assert "(paren) back\\slash" in lines["3"]
    assert "tab here" in lines["3"] and "new line" in lines["3"]
    assert "true" in lines["4"] and "false" in lines["4"] and "0.1" in lines["4"]
    assert "12.500" in lines["5"] and "-0.0" in lines["5"] and "1e-20" in lines["5"]
    assert writer.replaced_glyphs == 0
    assert "Städte" in text
    assert pdfinfo(pdf)["Title"] == "Städte"


def test_replaced_glyphs_counts_title_header_and_cells_after_sample(poppler, tmp_path):
    # Devanagari, Tamil and Ethiopic are in neither DejaVu Sans nor Noto Sans CJK.
    rows = [[i, "ok"] for i in range(30)] + [[30, "नमस्ते"]]
    pdf = tmp_path / "count.pdf"
    writer = write_pdf(pdf, ["id", "தமிழ்"], rows, PdfOptions(title="ሰላም Отчёт"), sample_rows=5)
    assert writer.replaced_glyphs == 3 + 5 + 6
    text = "".join(pdftotext(pdf))
    assert "??? Отчёт" in text and "?????" in text and "??????" in text
    assert pdfinfo(pdf)["Title"] == "ሰላም Отчёт"  # the metadata keeps Unicode (UTF-16)


def test_empty_result_is_one_page_with_the_header(poppler, tmp_path):
    pdf = tmp_path / "empty.pdf"
    writer = write_pdf(pdf, COLUMNS, [], PdfOptions(title="Nothing today"))
    assert (writer.pages, writer.rows) == (1, 0)
    (page,) = pdftotext(pdf)
    lines = [line.strip() for line in page.splitlines() if line.strip()]
    assert len(lines) == 3
    assert lines[0] == "Nothing today" and lines[1].split() == COLUMNS and lines[2] == "Page 1 of 1"
    assert int(pdfinfo(pdf)["Pages"]) == 1


def test_without_title(poppler, tmp_path):
    pdf = tmp_path / "untitled.pdf"
    write_pdf(pdf, COLUMNS, make_rows(3))
    lines = [line.strip() for line in pdftotext(pdf)[0].splitlines() if line.strip()]
    assert lines[0].split() == COLUMNS
    assert "Title" not in pdfinfo(pdf)
    assert pdfinfo(pdf)["Producer"] == PRODUCER


def test_many_columns_shrink_the_font(poppler, tmp_path):
    columns = [f"c{i}" for i in range(40)]
    rows = [[f"{r}.{c}" for c in range(40)] for r in range(60)]
    pdf = tmp_path / "wide.pdf"
    writer = write_pdf(pdf, columns, rows, PdfOptions(font_size=10))
    assert MIN_FONT_SIZE <= writer.font_size < 10
    assert sum(writer.column_widths) <= 841.9 - 2 * 28.3
    pages = pdftotext(pdf)
    assert len(pages) == writer.pages
    for page in pages:
        assert re.search(r"\s+".join(columns), page)
    lines = [line for page in pages for line in page.splitlines()]
    for r in range(60):
        line = next(line for line in lines if line.split()[:1] == [f"{r}.0"])
        assert line.split() == [f"{r}.{c}" for c in range(40)]


def test_more_columns_than_the_minimum_width_are_truncated_at_the_smallest_font(poppler, tmp_path):
    columns = [f"column number {i}" for i in range(60)]
    pdf = tmp_path / "very-wide.pdf"
    writer = write_pdf(pdf, columns, [[f"value {c}" for c in range(60)] for _ in range(5)])
    assert writer.font_size == MIN_FONT_SIZE
    assert sum(writer.column_widths) == pytest.approx(841.89 - 2 * 28.35, abs=0.01)  # stays on the page
    lines = [line for line in pdftotext(pdf)[0].splitlines() if line.strip()]
    assert len(lines) == 1 + 5 + 1  # header, rows, footer
    assert lines[1].count("\u2026") == 60  # every cell shows at least one character and the ellipsis
    assert re.match(r"\s*c\u2026\s+c\u2026", lines[0]) and re.match(r"\s*v\u2026\s+v\u2026", lines[1])


def test_columns_that_cannot_fit_legibly_are_refused():
    options = PdfOptions(page_size="A4", orientation="landscape")
    assert max_columns(options) == 65
    assert (
        max_columns(PdfOptions(page_size="A3")) > max_columns(options) > max_columns(PdfOptions(orientation="portrait"))
    )
    PdfTableWriter(io.BytesIO(), [f"c{i}" for i in range(65)], options)
    with pytest.raises(TooManyColumnsError, match=r"66 columns do not fit across a A4 landscape page \(at most 65"):
        PdfTableWriter(io.BytesIO(), [f"c{i}" for i in range(66)], options)


def test_creation_date_and_determinism(poppler, tmp_path):
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    write_pdf(a, COLUMNS, make_rows(250), PdfOptions(title="T"), batch=7, creation_date=when)
    write_pdf(b, COLUMNS, make_rows(250), PdfOptions(title="T"), batch=250, creation_date=when)
    assert a.read_bytes() == b.read_bytes()  # same input, same bytes, however it is batched
    info = pdfinfo(a)
    assert info["CreationDate"].endswith("2024 UTC") and "12:00:00" in info["CreationDate"]
    c = tmp_path / "c.pdf"
    write_pdf(c, COLUMNS, make_rows(250), PdfOptions(title="T"))
    assert b"CreationDate" not in c.read_bytes()


def test_pages_are_written_before_close_and_structure_is_valid(poppler, tmp_path):
    class CountingSink:
        def __init__(self) -> None:
            self.buffer = io.BytesIO()

        def write(self, data: bytes) -> int:
            return self.buffer.write(data)

    sink = CountingSink()
    writer = PdfTableWriter(sink, COLUMNS, PdfOptions(), sample_rows=50)
    writer.write_rows(make_rows(40))
    assert writer.pages == 0  # still sampling
    writer.write_rows(make_rows(2000, start=40))
    assert writer.pages >= 40  # full pages went out while streaming
    written = sink.buffer.tell()
    assert written > 40 * 1000
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError):
        writer.write_rows(make_rows(1))
    data = sink.buffer.getvalue()
    assert data.startswith(b"%PDF-1.4") and data.endswith(b"%%EOF\n")

    # Every cross-reference entry points at its object.
    xref_at = int(data[data.rindex(b"startxref") + 9 :].split()[0])
    assert data[xref_at:].startswith(b"xref\n")
    header = data[xref_at:].split(b"\n", 3)
    count = int(header[1].split()[1])
    entries = data[xref_at:].split(b"\n")[3 : 3 + count - 1]
    for number, entry in enumerate(entries, start=1):
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj\n" % number), number
    assert b"/Size %d" % count in data[xref_at:]

    pdf = tmp_path / "streamed.pdf"
    pdf.write_bytes(data)
    assert int(pdfinfo(pdf)["Pages"]) == writer.pages
    assert writer.rows == 2040
    if importlib.util.find_spec("pypdf") is not None:  # optional: not a dependency of the project
        import pypdf

        reader = pypdf.PdfReader(io.BytesIO(data), strict=True)
        assert len(reader.pages) == writer.pages
        assert "Customer 2039" in reader.pages[-1].extract_text()


def test_rows_with_the_wrong_number_of_values_are_refused(tmp_path):
    writer = PdfTableWriter(io.BytesIO(), ["a", "b"], PdfOptions(), sample_rows=2)
    with pytest.raises(ValueError, match="row 2 has 3 values but there are 2 columns"):
        writer.write_rows([[1, 2], [1, 2, 3]])
    writer = PdfTableWriter(io.BytesIO(), ["a", "b"], PdfOptions(), sample_rows=0)
    writer.write_rows([[1, 2]])
    with pytest.raises(ValueError, match="row 2 has 1 values"):
        writer.write_rows([[1]])


def test_numbers_are_right_aligned(poppler, tmp_path):
    pdf = tmp_path / "align.pdf"
    write_pdf(pdf, ["amount", "label"], [[7, "a"], [22222, "b"], [333.5, "c"], [None, "d"]])
    proc = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, check=True, text=True)
    boxes = dict(
        (word, (float(x_min), float(x_max)))
        for x_min, x_max, word in re.findall(
            r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>', proc.stdout
        )
    )
    right_edges = [boxes[w][1] for w in ("amount", "7", "22222", "333.5")]
    assert max(right_edges) - min(right_edges) < 0.05, boxes
    assert boxes["a"][0] == boxes["d"][0] == boxes["label"][0]  # text columns are left-aligned


def test_options_default_when_the_spec_has_no_pdf_section(poppler, tmp_path):
    pdf = tmp_path / "defaults.pdf"
    writer = write_pdf(pdf, ["a"], [["x"]], None)
    assert writer.font_size == 8.0
    assert pdfinfo(pdf)["Page size"] == "841.89 x 595.28 pts (A4)"
