"""Every script a customer name can hold, through the PDF writer's embedded Unicode fonts.

Checked with real tools: pdftotext (poppler-utils) must find the original text of every row, `qpdf --check`
(qpdf) must find no error, pdffonts must list only embedded subsets with a ToUnicode map. The fonts are
Debian's fonts-dejavu-core and fonts-noto-cjk (hack/install-system-deps.sh); without them these tests fail.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import get_args

import pytest

from exportjob.spec import PdfOptions, SpecError, parse_spec
from exportjob.worker.formats import pdf_fonts
from exportjob.worker.formats.pdf_writer import NoFontError, PdfTableWriter

SAMPLES = {
    "polish": "Łukasz Żółć-Wąsowicz, Łódź",
    "czech": "Jiří Dvořák, Třeboň",
    "turkish": "Ağaoğlu Şükrü, İstanbul",
    "vietnamese": "Nguyễn Thị Hương, Đà Nẵng",
    "icelandic": "Þórunn Guðmundsdóttir",
    "greek": "Γιώργος Παπαδόπουλος, Αθήνα",
    "cyrillic": "Анна Кузнецова, Санкт-Петербург",
    "ukrainian": "Олександр Ґудзь, Київ",
    "chinese": "王小明 北京市朝阳区",
    "traditional": "陳大文 臺北市",
    "japanese": "山田太郎 東京都 かな カナ",
    "korean": "김민수 서울특별시",
}


@pytest.fixture(scope="session")
def tools() -> None:
    missing = [
        (tool, pkg) for tool, pkg in (("pdftotext", "poppler-utils"), ("qpdf", "qpdf")) if not shutil.which(tool)
    ]
    if missing:
        pytest.fail(f"missing tools {missing}: run hack/install-system-deps.sh (make system-deps)", pytrace=False)
    for family in pdf_fonts.CATALOGUE.values():
        if not Path(family.regular.path).exists():
            pytest.fail(f"{family.regular.path} missing: install {family.package} (make system-deps)", pytrace=False)


def write(path: Path, columns, rows, options: PdfOptions | None = None) -> PdfTableWriter:
    with path.open("wb") as file:
        writer = PdfTableWriter(file, columns, options)
        for start in range(0, len(rows), 50):
            writer.write_rows(rows[start : start + 50])
        writer.close()
    return writer


def text_of(path: Path) -> str:
    done = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True)
    assert done.stderr == b"", done.stderr.decode()
    return done.stdout.decode("utf-8")


def qpdf_check(path: Path) -> None:
    done = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and "No syntax or stream encoding errors" in done.stdout, done.stdout + done.stderr


def fonts_of(path: Path) -> list[list[str]]:
    done = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True)
    return [line.split() for line in done.stdout.splitlines()[2:]]


def test_every_script_prints_and_extracts_as_the_original_text(tools, tmp_path):
    rows = [[i, name, script] for i in range(300) for script, name in SAMPLES.items()]
    pdf = tmp_path / "scripts.pdf"
    writer = write(pdf, ["id", "name", "script"], rows, PdfOptions(title="Kunden – Κατάλογος – 顧客"))
    assert writer.replaced_glyphs == 0
    text = text_of(pdf)
    lines = [line.split() for line in text.splitlines()]
    printed = {(words[0], " ".join(words[1:-1])) for words in lines if words and words[0].isdigit()}
    assert printed == {(str(i), name) for i, name, _ in rows}
    assert "Kunden – Κατάλογος – 顧客" in text
    qpdf_check(pdf)
    fonts = fonts_of(pdf)
    assert {row[0].split("+", 1)[1] for row in fonts} == {
        "DejaVuSans",
        "DejaVuSans-Bold",
        "NotoSansCJKsc-Regular",
        "NotoSansCJKsc-Bold",
    }
    assert all(row[-5:-2] == ["yes", "yes", "yes"] for row in fonts), fonts  # embedded, subset, ToUnicode


def test_subsets_hold_only_what_was_printed(tools, tmp_path):
    latin = tmp_path / "latin.pdf"
    write(latin, ["name"], [["Łódź"]] * 10)
    cjk = tmp_path / "cjk.pdf"
    write(cjk, ["name"], [[SAMPLES["chinese"]]] * 10)
    assert latin.stat().st_size < 40_000  # a subset, not the 700 kB DejaVu Sans
    assert cjk.stat().st_size < 80_000  # a subset, not the 16 MB Noto Sans CJK collection
    assert [row[0].split("+")[1] for row in fonts_of(latin)] == ["DejaVuSans", "DejaVuSans", "DejaVuSans-Bold"]


def test_a_chain_without_a_cjk_font_counts_what_it_lacks(tools, tmp_path):
    pdf = tmp_path / "nocjk.pdf"
    writer = write(pdf, ["name"], [["Łódź 北京"], ["Ελλάδα"]], PdfOptions(fonts=["DejaVuSans"]))
    assert writer.replaced_glyphs == 2
    text = text_of(pdf)
    assert "Łódź ??" in text and "Ελλάδα" in text
    qpdf_check(pdf)


def test_a_cjk_font_first_prints_latin_too(tools, tmp_path):
    pdf = tmp_path / "jp.pdf"
    rows = [[i, SAMPLES["japanese"], "(a) \\ b", "Łódź"] for i in range(120)]
    writer = write(pdf, ["id", "name", "ascii", "latin"], rows, PdfOptions(fonts=["NotoSansCJK-JP", "DejaVuSans"]))
    assert writer.replaced_glyphs == 0
    text = text_of(pdf)
    assert text.count(SAMPLES["japanese"]) == 120 and text.count("(a) \\ b") == 120 and text.count("Łódź") == 120
    assert "Page 1 of 3" in text
    qpdf_check(pdf)


def test_characters_beyond_the_bmp_and_truncation(tools, tmp_path):
    pdf = tmp_path / "astral.pdf"
    long = "Ωmega " * 80
    writer = write(pdf, ["a", "b"], [["smile 😀 ok", long]] * 3)
    assert writer.replaced_glyphs == 0
    text = text_of(pdf)
    assert text.count("smile 😀 ok") == 3
    assert text.count("Ωmega Ωmega") >= 3 and "…" in text
    qpdf_check(pdf)


def test_no_installed_font_is_a_clear_error(monkeypatch, tmp_path):
    missing = pdf_fonts.Family(pdf_fonts.Face("/nonexistent/a.ttf"), pdf_fonts.Face("/nonexistent/b.ttf"), "fonts-x")
    monkeypatch.setitem(pdf_fonts.CATALOGUE, "DejaVuSans", missing)
    with pytest.raises(NoFontError, match=r"DejaVuSans \(/nonexistent/a.ttf, Debian package fonts-x\)"):
        PdfTableWriter((tmp_path / "x.pdf").open("wb"), ["a"], PdfOptions(fonts=["DejaVuSans"]))


def test_the_spec_names_only_catalogued_fonts():
    base = {"format": "pdf", "source": {"synthetic": {"records": 1}}, "output": {"path": "a.pdf"}}
    assert parse_spec({**base, "pdf": {"fonts": ["NotoSansCJK-JP", "DejaVuSans"]}}).pdf_options.fonts == [
        "NotoSansCJK-JP",
        "DejaVuSans",
    ]
    with pytest.raises(SpecError, match=r"spec\.pdf\.fonts"):
        parse_spec({**base, "pdf": {"fonts": ["/etc/passwd"]}})
    chain = get_args(PdfOptions.model_fields["fonts"].annotation)[0]  # list[PdfFontName]
    assert set(pdf_fonts.CATALOGUE) == set(get_args(get_args(chain)[0]))


@pytest.mark.parametrize("name", ["DejaVuSans", "NotoSansCJK-JP"])
def test_the_font_file_reader_agrees_with_fonttools(tools, name):
    from fontTools.ttLib import TTFont

    from exportjob.worker.formats.font_files import read_metrics

    face = pdf_fonts.CATALOGUE[name].regular
    metrics = read_metrics(face.path, face.index)
    reference = TTFont(face.path, fontNumber=face.index, lazy=True)
    assert metrics.cmap == {code: reference.getGlyphID(glyph) for code, glyph in reference.getBestCmap().items()}
    assert metrics.units_per_em == reference["head"].unitsPerEm and metrics.cff == ("CFF " in reference)
    order, hmtx = reference.getGlyphOrder(), reference["hmtx"].metrics
    sample = sorted(metrics.cmap.values())[:: max(1, len(metrics.cmap) // 500)]
    assert [metrics.advances[min(g, len(metrics.advances) - 1)] for g in sample] == [hmtx[order[g]][0] for g in sample]
