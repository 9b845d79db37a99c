"""A streaming PDF writer for one paginated table, with memory that does not grow with rows.

Why not reportlab's document model: both the canvas and platypus keep every page
in memory until ``save()`` (reportlab's ``pdfdoc`` serialises the whole document
at the end), so memory grows with the row count (measured: canvas 62 MB at 50k
rows and 167 MB at 200k; platypus ``LongTable`` 251 MB at 50k rows, ~0.8k rows/s).
This module writes the PDF file structure itself instead: every page's content
stream is compressed and written to the sink as soon as the page is full, and
only the byte offset of each object is kept (8 bytes per object, two objects per
page). ``close()`` writes the page tree, catalog, document info, the
cross-reference table and the trailer. See docs/pdf.md.

reportlab is still used for paper sizes (``reportlab.lib.pagesizes``).

Fonts and glyphs (``pdf_fonts``): Unicode TrueType/OpenType fonts, embedded as
subsets of the glyphs used, written once by ``close()`` (the writer only keeps
the set of characters each font printed, bounded by the font). Each character
is printed with the first font of ``pdf.fonts`` that has it (default: DejaVu
Sans, for Latin, Greek, Cyrillic, ...; then Noto Sans CJK for Chinese, Japanese,
Korean); a character no configured font has is printed as "?" and counted in
``replaced_glyphs``. Codes are two bytes (``/Identity-H``): for DejaVu the
UTF-16 code unit, so ASCII cells cost one ``str.encode`` more than before; a
``/ToUnicode`` map lets pdftotext and search find the original text. No shaping:
right-to-left scripts (Arabic, Hebrew) print their letters in logical order,
unjoined. Control characters (tab, newline, ...) are printed as spaces: a cell
is one line.

Speed (`_render`): rows are laid out up to a page at a time, one column at a time,
so that the per-cell work runs in C-level loops (`map`, `str.join`, `bytes.translate`):
a column of printable ASCII is checked once, its cells are measured only when their
lengths do not already prove that they fit, widths follow from the lengths when all
the characters have one width (digits) or come from a bounded per-column cache keyed
by the cells' width classes ("shapes": every ISO timestamp is one key), and cells too
wide are cut without `_show`. The content stream is byte for byte the one that
rendering each cell by the general rules (`_cell`) gives (tests/unit/test_pdf_fast_paths.py).
"""

from __future__ import annotations

import gc
import hashlib
import math
import re
import unicodedata
import zlib
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import accumulate, chain, islice, repeat
from operator import attrgetter
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast

from reportlab.lib import pagesizes

from exportjob import lightspec

from .pdf_fonts import DEFAULT_FONTS, FontChain, NoFontError, PdfFont, uncovered_pattern

if TYPE_CHECKING:  # or `exportjob.lightspec.PdfOptions`: the same attributes
    from exportjob.spec import PdfOptions

__all__ = ["MIN_FONT_SIZE", "PRODUCER", "NoFontError", "PdfTableWriter", "TooManyColumnsError", "max_columns"]

PRODUCER = "exportjob-operator"

# --- layout constants (points; 1 pt = 1/72 inch) -----------------------------------------
MARGIN = 28.35  # 10 mm on every side
MIN_FONT_SIZE = 5.0  # many columns shrink the body font down to this size, then truncate
ROW_HEIGHT_EM = 1.45  # body and header row height, in multiples of the font size
PAD_EM = 0.4  # horizontal padding on each side of a cell, in multiples of the font size
MIN_COLUMN_EM = 3.0  # minimum text width of a column (about three characters and an ellipsis)
LEGIBLE_COLUMN_EM = 1.6  # below this (one character and an ellipsis at the smallest font) the table is refused
TITLE_SCALE = 1.6  # title font size relative to the requested body font size
TITLE_MAX_SIZE = 20.0
HEADER_GREY = b"0.85"  # header band fill
STRIPE_GREY = b"0.95"  # zebra stripe fill (every second body row)
SAMPLE_BUDGET_CHARS = 2_000_000  # characters of the buffered sample rows, all columns together
SAMPLE_MIN_CHARS = 64  # ... but never fewer than this per cell
COMPRESS_LEVEL = 3  # zlib: level 6 is ~25% slower for ~7% smaller pages
PAGES_PER_JOB = 4  # full pages handed to the compressing thread at once (~16 KB each before compression)
JOBS_IN_FLIGHT = 2  # handed over but not yet written: the pages in memory are at most (1 + this) * PAGES_PER_JOB

_PAGE_SIZES = {"A4": pagesizes.A4, "A3": pagesizes.A3, "Letter": pagesizes.letter, "Legal": pagesizes.legal}

_ELLIPSIS = "\u2026"
_QUESTION = "?"

# Fixed object numbers; pages follow as (content stream, page) pairs from _FIRST_PAGE_OBJ; the fonts' objects
# are numbered after the pages, at close.
_CATALOG, _PAGES, _INFO, _RESOURCES, _TOTAL_PAGES = 1, 2, 3, 4, 5
_FIRST_PAGE_OBJ = 6

# Control characters are printed as spaces; \ ( ) must be escaped in PDF literal strings.
_CTRL_TABLE = bytes(32 if (b < 32 or b == 127) else b for b in range(256))
_CTRL_STR = {code: " " for code in (*range(32), 127)}
_SPECIAL = re.compile(rb"[\x00-\x1f\x7f\\()]")  # anything needing more than a copy
_PLAIN_ASCII = bytes(sorted(set(range(32, 127)) - set(b"\\()")))  # printable ASCII copied as it is
_PRINTABLE_ASCII = "".join(map(chr, range(32, 127)))


def _ascii_widths(font: PdfFont) -> list[int]:
    """Advance widths (1/1000 em) of the 256 byte values as ASCII text of `font`: controls as spaces, 0 above."""
    space = font.widths[" "]
    return [(space if (b < 32 or b == 127) else font.widths.get(chr(b), 0)) if b < 128 else 0 for b in range(256)]


def _width_tables(table: list[int]) -> tuple[bytes, bytes]:
    """Translation tables mapping each code to the high and low byte of its width.

    ``(sum(data.translate(hi)) << 8) + sum(data.translate(lo))`` is the exact width of
    ``data`` computed entirely in C, several times faster than summing per byte in Python.
    """
    return bytes(w >> 8 for w in table), bytes(w & 0xFF for w in table)


def _width_classes(table: list[int]) -> tuple[bytes, list[int]]:
    """A translation table mapping each code to the rank of its width among `table`'s distinct widths (its width
    class), and the widths by rank. Text translated through it keeps exactly what decides its width: its shape."""
    ranked = sorted(set(table))
    rank = {width: i for i, width in enumerate(ranked)}
    return bytes(rank[w] for w in table), ranked


def _right_position(right: float, scale: float, width: int) -> bytes:
    """The text matrix's start of a cell `width` wide (1/1000 em) that ends at `right` (points); scale: size / 1000."""
    return b"1 0 0 1 %.2f " % (right - width * scale)


def _format_cell(value: object) -> str:
    if value is None:
        return ""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return repr(value)
    return str(value)


_BOOL_TEXT: dict[object, str] = {True: "true", False: "false"}


def _cell_texts(values: Sequence[object]) -> list[str]:
    """`_format_cell` of each value, in C-level loops unless None and other types or booleans are mixed."""
    kinds = set(map(type, values))
    if bool in kinds or type(None) in kinds:
        if kinds == {bool}:
            return list(map(_BOOL_TEXT.__getitem__, values))
        return list(map(_format_cell, values))
    return list(map(str, values))  # str() is _format_cell for str (itself), int, float (repr), Decimal, ...


_Key = TypeVar("_Key", bound=Hashable)
_Value = TypeVar("_Value")
CACHE_ENTRIES = 32_768  # per writer, shared out among the columns: widths and right-aligned positions
ONE_FONT_TEXTS = 4_096  # non-ASCII cell texts kept with their codes and width (`_OneFontText`)


@dataclass(slots=True, eq=False)  # eq=False: `None in list` compares by identity, in C
class _OneFontText:
    """A text that one font prints entirely: its operators (select the font, show the codes, back to the home
    font), its width (1/1000 em), and whether its characters were recorded as used (once it is printed)."""

    operators: bytes
    width: int
    font: PdfFont
    recorded: bool = False


_RECORDED, _WIDTH, _OPERATORS = attrgetter("recorded"), attrgetter("width"), attrgetter("operators")


def _cached(cache: dict[_Key, _Value], keys: list[_Key], compute: Callable[[_Key], _Value], limit: int) -> list[_Value]:
    """`compute(key)` for every key, through `cache`: hits are looked up in C, misses are computed and stored.
    A lookup with misses first empties a cache of `limit` entries or more: bounded memory, whatever the keys."""
    values: list[_Value | None] = list(map(cache.get, keys))
    if None in values:
        if len(cache) >= limit:
            cache.clear()
        for i, value in enumerate(values):
            if value is None:
                values[i] = cache[keys[i]] = compute(keys[i])
    return values  # type: ignore[return-value]  # no None left


def _escape(data: bytes) -> bytes:
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _hex(codes: bytes) -> bytes:
    return b"<" + codes.hex().encode() + b">"


def _hex_codes(font: PdfFont, text: str) -> bytes:
    return font.encode(text).hex().encode()


def _compress_pages(contents: list[bytes]) -> list[bytes]:
    return [zlib.compress(content, COMPRESS_LEVEL) for content in contents]


def _multiples_up_to(step: int, limit: float) -> int:
    """The largest count n with n * step <= limit (step > 0, limit >= 0)."""
    n = int(limit // step)
    while (n + 1) * step <= limit:
        n += 1
    while n and n * step > limit:
        n -= 1
    return n


def _fmt(number: float) -> bytes:
    return b"%.2f" % number


def _pdf_text_string(text: str) -> bytes:
    """A PDF text string for the document information dictionary (UTF-16BE when not plain ASCII)."""
    if all(32 <= ord(ch) < 127 for ch in text):
        return b"(" + _escape(text.encode("ascii")) + b")"
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def _pdf_date(moment: datetime) -> bytes:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (
        b"(D:"
        + moment.strftime("%Y%m%d%H%M%S").encode()
        + (f"{sign}{minutes // 60:02d}'{minutes % 60:02d}'".encode())
        + b")"
    )


class TooManyColumnsError(ValueError):
    """More columns than fit legibly across the page even at the smallest font size."""


def _page_size(options: PdfOptions) -> tuple[float, float]:
    width, height = _PAGE_SIZES[options.page_size]
    if options.orientation == "landscape":
        return max(width, height), min(width, height)
    return min(width, height), max(width, height)


def max_columns(options: PdfOptions) -> int:
    """How many columns fit across the page (at the smallest font, one character and an ellipsis each).

    A4 landscape: 65, A4 portrait: 44, A3 landscape: 94, Letter portrait: 46, Legal landscape: 79.
    """
    usable = _page_size(options)[0] - 2 * MARGIN
    return int(usable // (MIN_FONT_SIZE * (LEGIBLE_COLUMN_EM + 2 * PAD_EM)))


class PdfTableWriter:
    """Writes rows as a paginated table PDF to ``sink``, page by page.

    The first ``sample_rows`` rows are buffered to fit the column widths; after that
    every full page is compressed and written at once. ``close()`` finishes the
    document but does not close ``sink``. Attributes after (and during) writing:
    ``pages``, ``rows``, ``replaced_glyphs`` (characters printed as "?" because no
    configured font has them), ``font_size`` (body font size actually used) and
    ``column_widths`` (points). ``NoFontError`` when no font of the chain is installed.
    """

    # False: every cell through `_cell`, one at a time (the reference the column-wise fast path is tested against).
    _column_fast_path = True

    def __init__(
        self,
        sink: BinaryIO,
        columns: Sequence[str],
        options: PdfOptions | None,
        *,
        sample_rows: int = 200,
        creation_date: datetime | None = None,
    ) -> None:
        if options is None:  # the spec's `pdf:` is optional: its defaults
            options = cast("PdfOptions", lightspec.PdfOptions())
        if not columns:
            raise ValueError("a PDF table needs at least one column")
        limit = max_columns(options)
        if len(columns) > limit:
            raise TooManyColumnsError(
                f"{len(columns)} columns do not fit across a {options.page_size} {options.orientation} page "
                f"(at most {limit}, even at {MIN_FONT_SIZE:g} pt): select fewer columns, use a larger page "
                "or landscape, or export CSV"
            )
        self._sink = sink
        self._columns = [str(c) for c in columns]
        self._options = options
        self._sample_rows = max(0, sample_rows)
        # Sampled cells are kept cut to this many characters (the sample's memory is bounded);
        # a cut cell gets an ellipsis appended, so it still prints as truncated.
        self._sample_chars = max(SAMPLE_MIN_CHARS, SAMPLE_BUDGET_CHARS // (len(columns) * max(1, self._sample_rows)))
        self._creation_date = creation_date
        self.pages = 0
        self.rows = 0
        self.replaced_glyphs = 0
        self.font_size = float(options.font_size)
        self.column_widths: list[float] = []

        self._page_w, self._page_h = _page_size(options)

        names = options.fonts or DEFAULT_FONTS
        self._regular = FontChain(names, bold=False, prefix=b"F")
        self._bold = FontChain(names, bold=True, prefix=b"B")
        primary = self._primary = self._regular.primary
        if any(ch not in primary.widths for ch in _PRINTABLE_ASCII + _ELLIPSIS):
            raise NoFontError(f"the first PDF font ({primary.name}) lacks ASCII characters or the ellipsis")
        primary.used.update(_PRINTABLE_ASCII + _ELLIPSIS)  # the ASCII fast path prints these without recording
        self._widths = _ascii_widths(primary)
        self._hi, self._lo = _width_tables(self._widths)
        self._width_class, self._class_width = _width_classes(self._widths)
        self._class_hi, self._class_lo = _width_tables(self._class_width + [0] * (256 - len(self._class_width)))
        # [r]: the codes whose width is below self._class_width[r] (r = 0: none; translate's delete argument)
        self._narrow_codes = [bytes(b for b in range(256) if self._widths[b] < w) for w in self._class_width]
        self._narrow_codes.append(bytes(range(256)))
        self._min_glyph = max(1, min(self._widths[32:127]))  # the narrowest glyph bounds how many characters fit
        self._ellipsis_w = primary.widths[_ELLIPSIS]
        self._ascent, self._descent = primary.ascent, primary.descent
        self._uncovered = uncovered_pattern(primary.widths)
        # A TrueType first font also serves printable ASCII as a simple font (/A1, WinAnsi, one byte per
        # character, the same embedded subset): the hot path writes ASCII cells exactly as with a base font.
        self._simple = not primary.cff
        self._home = b"A1" if self._simple else primary.resource
        # Per column: shape -> width (printable ASCII), width -> position (right-aligned columns); bounded.
        self._width_cache: list[dict[bytes, int]] = [{} for _ in self._columns]
        self._right_x: list[dict[int, bytes]] = [{} for _ in self._columns]
        self._cache_entries = max(256, CACHE_ENTRIES // len(self._columns))
        self._one_font_texts: dict[str, _OneFontText | None] = {}

        self._sample: list[list[str]] | None = []
        self._pos = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._offsets = array("Q", [0] * _FIRST_PAGE_OBJ)  # index = object number
        self._page_parts: list[bytes] = []
        # Full pages are compressed on a thread (zlib releases the GIL) while the next pages are laid out,
        # PAGES_PER_JOB at a time, and written in order (at most JOBS_IN_FLIGHT jobs behind).
        self._pending: list[bytes] = []
        self._compressor: ThreadPoolExecutor | None = None
        self._in_flight: deque[tuple[int, Future[list[bytes]]]] = deque()
        self._page_row = 0
        self._closed = False
        self._write_head()

    # --- public API ------------------------------------------------------------------------

    def write_rows(self, rows: Iterable[Sequence[object]]) -> None:
        if self._closed:
            raise ValueError("write_rows() after close()")
        it = iter(rows)
        if self._sample is not None:
            sample = self._sample
            ncols = len(self._columns)
            for row in it:
                if len(row) != ncols:
                    raise ValueError(
                        f"row {self.rows + len(sample) + 1} has {len(row)} values but there are {ncols} columns"
                    )
                cap = self._sample_chars
                sample.append([t if len(t) <= cap else t[:cap] + "\u2026" for t in map(_format_cell, row)])
                if len(sample) >= self._sample_rows:
                    break
            if len(sample) < self._sample_rows:
                return  # still sampling: nothing more in this batch
            self._start()
        self._stream(it)

    def close(self) -> None:
        if self._closed:
            return
        if self._sample is not None:
            self._start()
        if self._page_row or not self.pages:
            self._flush_page()  # the last, partial page; an empty result still gets a header-only page
        self._write_all_pages()
        self._write_tail()
        self._closed = True

    # --- layout ----------------------------------------------------------------------------

    def _start(self) -> None:
        """Fit the layout to the buffered sample, then write the sampled rows."""
        sample, self._sample = self._sample or [], None
        self._layout(sample)
        self._stream(sample)

    def _layout(self, sample: list[list[str]]) -> None:
        opts = self._options
        ncols = len(self._columns)
        usable = self._page_w - 2 * MARGIN

        # Many columns: shrink the body font until every column gets its minimum width.
        per_column_em = MIN_COLUMN_EM + 2 * PAD_EM
        size = float(opts.font_size)
        if ncols * per_column_em * size > usable:
            size = max(MIN_FONT_SIZE, math.floor(usable / (ncols * per_column_em) * 10) / 10)
        self.font_size = size
        pad = PAD_EM * size
        min_text = MIN_COLUMN_EM * size

        # Natural text width of every column: the header (bold) and the sampled cells.
        natural = [self._width(h, self._bold) * size / 1000 for h in self._columns]
        numeric = [True] * ncols
        seen = [False] * ncols
        for row in sample:
            for c, text in enumerate(row):
                if text:
                    w = self._width(text, self._regular) * size / 1000
                    if w > natural[c]:
                        natural[c] = w
        natural = [max(n, min_text) for n in natural]
        text_widths = self._distribute(natural, usable - 2 * pad * ncols, min_text)
        self.column_widths = [w + 2 * pad for w in text_widths]

        # Right-align columns whose sampled values are all numbers.
        self._numeric_columns(sample, numeric, seen)
        self._right = [numeric[c] and seen[c] for c in range(ncols)]

        # Vertical layout, from the top of the page down.
        row_h = ROW_HEIGHT_EM * size
        self._row_h = row_h
        top = self._page_h - MARGIN
        title_size = min(TITLE_MAX_SIZE, float(opts.font_size) * TITLE_SCALE)
        footer_size = max(MIN_FONT_SIZE, float(opts.font_size) - 1)
        self._footer_size = footer_size
        prefix_graphics: list[bytes] = []
        prefix_text: list[bytes] = [b"BT\n0 g\n"]
        if opts.title:
            title, _ = self._show(opts.title, usable * 1000 / title_size, self._bold, title_size)
            title_h = title_size * 1.6
            ascent, descent = self._ascent, self._descent
            baseline = top - title_h + (title_h - title_size * (ascent + descent)) / 2 + title_size * descent
            prefix_text.append(
                b"/B1 %s Tf 1 0 0 1 %s %s Tm %s\n" % (_fmt(title_size), _fmt(MARGIN), _fmt(baseline), title)
            )
            top -= title_h
        header_bottom = top - row_h
        prefix_graphics.append(
            b"%s g %s %s %s %s re f\n" % (HEADER_GREY, _fmt(MARGIN), _fmt(header_bottom), _fmt(usable), _fmt(row_h))
        )
        prefix_graphics.append(
            b"0.6 G 0.5 w %s %s m %s %s l S\n"
            % (_fmt(MARGIN), _fmt(header_bottom), _fmt(MARGIN + usable), _fmt(header_bottom))
        )

        # Column geometry.
        lefts, x = [], MARGIN
        for w in self.column_widths:
            lefts.append(x)
            x += w
        self._text_limit = [w * 1000 / size for w in text_widths]  # in 1/1000 em of the body font
        self._text_right = [left + pad + tw for left, tw in zip(lefts, text_widths)]
        self._x_prefix = [b"1 0 0 1 %s " % _fmt(left + pad) for left in lefts]
        self._scale = size / 1000
        self._right_position = [partial(_right_position, right, self._scale) for right in self._text_right]
        # A cell of more than this many bytes may be too wide and must be measured; fewer always fit.
        widest = max(self._widths[32:127])
        self._fast_len = [int(limit // widest) for limit in self._text_limit]
        # A cell of more characters than this never fits: longer values are cut before encoding.
        self._max_chars = [int(limit // self._min_glyph) + 2 for limit in self._text_limit]

        # Header row (bold), baseline-aligned in its band.
        offset = (row_h - size * (self._ascent + self._descent)) / 2 + size * self._descent
        prefix_text.append(b"/B1 %s Tf\n" % _fmt(size))
        header_y = _fmt(header_bottom + offset)
        for c, name in enumerate(self._columns):
            data, width = self._show(name, text_widths[c] * 1000 / size, self._bold, size)
            if not data:
                continue
            if self._right[c]:
                xpos = b"1 0 0 1 %s " % _fmt(self._text_right[c] - width * size / 1000)
            else:
                xpos = self._x_prefix[c]
            prefix_text.append(b"%s%s Tm %s\n" % (xpos, header_y, data))
        prefix_text.append(b"/%s %s Tf\n" % (self._home, _fmt(size)))

        # Body rows: as many as fit between the header and the footer.
        footer_h = footer_size * 2.0
        bottom = MARGIN + footer_h
        self._rows_per_page = max(1, int((header_bottom - bottom) // row_h))
        self._row_bottoms = [header_bottom - (i + 1) * row_h for i in range(self._rows_per_page)]
        self._row_y = [b"%s Tm " % _fmt(b + offset) for b in self._row_bottoms]
        self._row_y_literal = [y + b"(" for y in self._row_y]
        self._literal_start = [[x + y for y in self._row_y_literal] for x in self._x_prefix]  # left-aligned cells
        size_text = _fmt(size)
        self._to_primary = b"/%s %s Tf " % (self._primary.resource, size_text)  # around a cell in another font
        self._to_home = b" /%s %s Tf\n" % (self._home, size_text)
        self._cut_open = b"/%s %s Tf  <" % (self._primary.resource, size_text)  # as `_show` writes a cut cell
        self._cut_close = b"%s> Tj  /%s %s Tf\n" % (_hex_codes(self._primary, _ELLIPSIS), self._home, size_text)
        self._usable = usable
        self._prefix_graphics = b"".join(prefix_graphics)
        self._prefix_text = b"".join(prefix_text)
        self._footer_y = MARGIN + (footer_h - footer_size * (self._ascent + self._descent)) / 2
        self._stripes: dict[int, bytes] = {}

    @staticmethod
    def _distribute(natural: list[float], available: float, min_text: float) -> list[float]:
        """Text widths of the columns, summing to ``available``.

        Everything fits: each column gets its natural width plus a share of the spare width
        proportional to it. Otherwise columns narrower than a fair share keep their natural
        width and the rest share what is left in proportion to their natural width, none
        below half a fair share or the minimum. Below the minimum (too many columns even
        at the smallest font): equal widths.
        """
        n = len(natural)
        total = sum(natural)
        if available <= 0:
            return [0.0] * n
        if total <= available:
            return [w * available / total for w in natural]
        if n * min_text >= available:
            return [available / n] * n
        widths: list[float | None] = [None] * n
        remaining = available
        # Narrow columns keep their natural width (repeat: each one fixed raises the fair share).
        changed = True
        while changed:
            changed = False
            open_cols = [i for i in range(n) if widths[i] is None]
            share = remaining / len(open_cols)
            for i in open_cols:
                if natural[i] <= share:
                    widths[i] = natural[i]
                    remaining -= natural[i]
                    changed = True
        open_cols = [i for i in range(n) if widths[i] is None]
        if open_cols:
            floor = max(min_text, remaining / len(open_cols) / 2)
            while True:
                weight = sum(natural[i] for i in open_cols)
                low = [i for i in open_cols if remaining * natural[i] / weight < floor]
                if not low or len(low) == len(open_cols):
                    break
                for i in low:
                    widths[i] = floor
                    remaining -= floor
                open_cols = [i for i in open_cols if i not in low]
            weight = sum(natural[i] for i in open_cols)
            for i in open_cols:
                widths[i] = max(floor, remaining * natural[i] / weight) if len(open_cols) > 1 else remaining
        return [float(w) for w in widths]  # type: ignore[arg-type]

    @staticmethod
    def _numeric_columns(sample: list[list[str]], numeric: list[bool], seen: list[bool]) -> None:
        for row in sample:
            for c, text in enumerate(row):
                if text and numeric[c]:
                    seen[c] = True
                    if not _looks_numeric(text):
                        numeric[c] = False

    def _home_string(self, ascii_text: bytes) -> bytes:
        """A string operand for printable ASCII in the home font: literal (simple font) or hex codes."""
        if self._simple:
            return b"(" + _escape(ascii_text) + b")"
        return _hex(self._primary.encode(ascii_text.decode()))

    def _width(self, text: str, chain: FontChain) -> int:
        """Width of one line of text in 1/1000 em, each character in the font that prints it ("?" when none)."""
        if text.isascii() and chain is self._regular:
            data = text.encode().translate(_CTRL_TABLE)
            return (sum(data.translate(self._hi)) << 8) + sum(data.translate(self._lo))
        total = 0
        question = chain.primary.widths[_QUESTION]
        for ch in unicodedata.normalize("NFC", text).translate(_CTRL_STR):
            font = chain.font_for(ch)
            total += font.widths[ch] if font is not None else question
        return total

    def _show(
        self, text: str, limit: float, chain: FontChain, size: float, home: bytes | None = None
    ) -> tuple[bytes, int]:
        """Text-showing operators for `text` cut to `limit` (1/1000 em) with an ellipsis, and their width.

        The general path (any character, font fallback); the hot loop takes it for cells that are not
        ASCII or do not fit. `home`: the font resource selected before and after (None: the chain's
        first font). Counts replaced characters.
        """
        text = unicodedata.normalize("NFC", text).translate(_CTRL_STR)
        primary = chain.primary
        pieces: list[tuple[PdfFont, str, int]] = []  # (font, character, width)
        for ch in text:
            font = chain.font_for(ch)
            if font is None:
                pieces.append((primary, _QUESTION, -primary.widths[_QUESTION]))  # negative: a replacement
            else:
                pieces.append((font, ch, font.widths[ch]))
        total = sum(abs(w) for _, _, w in pieces)
        if total > limit:
            room = limit - primary.widths.get(_ELLIPSIS, 0)
            kept, used = 0, 0
            for _, _, w in pieces:
                if used + abs(w) > room:
                    break
                used += abs(w)
                kept += 1
            pieces = pieces[:kept]
            while pieces and pieces[-1][1] == " ":
                pieces.pop()
            if room < 0:
                return b"", 0
            pieces.append((primary, _ELLIPSIS, primary.widths[_ELLIPSIS]))
            total = sum(abs(w) for _, _, w in pieces)
        self.replaced_glyphs += sum(1 for _, _, w in pieces if w < 0)
        ops = []
        current: PdfFont | None = primary if home is None else None
        start = 0
        for index in range(1, len(pieces) + 1):
            if index == len(pieces) or pieces[index][0] is not pieces[start][0]:
                font = pieces[start][0]
                run = "".join(ch for _, ch, _ in pieces[start:index])
                font.used.update(run)
                if font is not current:
                    ops.append(b"/%s %s Tf " % (font.resource, _fmt(size)))
                    current = font
                ops.append(_hex(font.encode(run)) + b" Tj")
                start = index
        if home is None and current is not primary:
            ops.append(b" /%s %s Tf" % (primary.resource, _fmt(size)))
        elif home is not None and current is not None:
            ops.append(b" /%s %s Tf" % (home, _fmt(size)))
        return b" ".join(ops), total

    # --- rows and pages --------------------------------------------------------------------

    def _stream(self, rows: Iterable[Sequence[object]]) -> None:
        """Lay out rows onto pages, up to the rest of the current page at a time (see `_render`)."""
        it = iter(rows)
        per_page = self._rows_per_page
        while True:
            room = per_page - self._page_row
            chunk = list(islice(it, room or per_page))
            if not chunk:
                return
            if not room:
                self._flush_page()
            self._render(chunk)

    def _render(self, rows: list[Sequence[object]]) -> None:
        """Add `rows` (no more than the page has room for) to the page, one column at a time.

        A column's cells are converted, checked and measured together with C-level loops
        (`_column_cells`); zipping the columns back puts the cells in row order, so the content
        stream is byte for byte the one that cell-by-cell rendering (`_cell`) gives.
        """
        ncols = len(self._columns)
        good = len(rows)
        if set(map(len, rows)) != {ncols}:
            good = next(i for i, row in enumerate(rows) if len(row) != ncols)
        if good:
            first = self._page_row
            columns = zip(*rows[:good])
            cells = [self._column_cells(c, values, first) for c, values in enumerate(columns)]
            self._page_parts.extend(chain.from_iterable(zip(*cells)))
            self._page_row += good
            self.rows += good
        if good < len(rows):
            raise ValueError(f"row {self.rows + 1} has {len(rows[good])} values but there are {ncols} columns")

    def _column_cells(self, c: int, values: Sequence[object], first: int) -> list[bytes]:
        """Column `c` of consecutive rows from page row `first`: one content fragment per cell (b"" when empty)."""
        texts = _cell_texts(values)
        cap = self._max_chars[c]
        if max(map(len, texts)) > cap:  # longer never fits: cut before encoding
            texts = [text[:cap] for text in texts]
        if self._column_fast_path and self._simple:
            joined = "".join(texts)
            if joined.isascii():
                data = joined.encode()
                if not data.translate(None, _PLAIN_ASCII):  # nothing but printable ASCII other than \\ ( )
                    return self._ascii_cells(c, texts, data, first)
            cells = self._one_font_cells(c, texts, first)
            if cells is not None:
                return cells
        return [self._cell(c, text, first + i) if text else b"" for i, text in enumerate(texts)]

    def _one_font_cells(self, c: int, texts: list[str], first: int) -> list[bytes] | None:
        """The cells as `_cell` prints them when every text is a known `_OneFontText` (printed before) that fits
        column `c`; else None. Repeated non-ASCII values (names, cities) then cost C-level lookups only."""
        ones = list(map(self._one_font_texts.get, texts))
        if None in ones:  # not seen yet, not printable in one font, ASCII or empty
            return None
        texts_in_one_font = cast(list[_OneFontText], ones)
        if not all(map(_RECORDED, texts_in_one_font)):
            return None
        widths = list(map(_WIDTH, texts_in_one_font))
        if max(widths) > self._text_limit[c]:
            return None
        stop = first + len(texts)
        if self._right[c]:
            starts: Iterable[bytes] = _cached(self._right_x[c], widths, self._right_position[c], self._cache_entries)
        else:
            starts = repeat(self._x_prefix[c])
        return list(map(b"".join, zip(starts, self._row_y[first:stop], map(_OPERATORS, texts_in_one_font))))

    def _ascii_cells(self, c: int, texts: list[str], joined: bytes, first: int) -> list[bytes]:
        """Cells of plain printable ASCII (`joined`: all of them): literal strings in the simple font (/A1) if they
        fit, else cut by `_cut_ascii`."""
        datas = list(map(str.encode, texts))
        stop = first + len(datas)
        widths, char_width = self._ascii_widths(c, datas, joined)
        if self._right[c]:
            assert widths is not None
            positions = _cached(self._right_x[c], widths, self._right_position[c], self._cache_entries)
            cells = list(map(b"".join, zip(positions, self._row_y_literal[first:stop], datas, repeat(b") Tj\n"))))
        else:
            cells = list(map(b"".join, zip(self._literal_start[c][first:stop], datas, repeat(b") Tj\n"))))
        if widths is not None and max(widths) > self._text_limit[c]:
            self._cut_ascii(c, cells, datas, widths, first, char_width)
        if "" in texts:
            for i, text in enumerate(texts):
                if not text:
                    cells[i] = b""
        return cells

    def _ascii_widths(self, c: int, datas: list[bytes], joined: bytes) -> tuple[list[int] | None, int]:
        """The widths of plain ASCII cells (None when column `c` is left-aligned and every cell fits), and the
        width of every character when they all have the same (else 0).

        Measuring is most of the cost of a cell, so it is avoided where the lengths decide: no cell
        longer than what always fits; or none longer than what fits in the widest character these
        cells use. When the cells use characters of one width (digits, in fonts with tabular figures)
        the widths follow from the lengths; otherwise they are summed, through a cache per column.
        """
        right = self._right[c]
        longest = max(map(len, datas))
        if not right:
            if longest <= self._fast_len[c]:
                return None, 0
            if not joined.translate(None, self._codes_up_to(self._text_limit[c] // longest)):
                return None, 0
        classes = joined.translate(self._width_class)
        if not classes:
            return [0] * len(datas), 0
        if not classes.strip(classes[:1]):
            width = self._class_width[classes[0]]
            return [width * len(data) for data in datas], width
        # The key: the cells' characters as width classes ("2024-09-02T07:25:00Z" and every other such
        # timestamp are one key), so a cache hit needs the same shape, not the same text.
        shapes = list(map(bytes.translate, datas, repeat(self._width_class)))
        return _cached(self._width_cache[c], shapes, self._shape_width, self._cache_entries), 0

    def _codes_up_to(self, width: float) -> bytes:
        """The byte values whose characters are no wider than `width` (for ``translate``'s delete argument)."""
        return self._narrow_codes[bisect_right(self._class_width, width)]

    def _shape_width(self, shape: bytes) -> int:
        """The width of text whose characters have the width classes `shape` (see `_width_classes`)."""
        return (sum(shape.translate(self._class_hi)) << 8) + sum(shape.translate(self._class_lo))

    def _position(self, c: int, width: int) -> bytes:
        """The text matrix's start (`1 0 0 1 x `) of a cell of `width` in column `c`."""
        if not self._right[c]:
            return self._x_prefix[c]
        position = self._right_x[c].get(width)
        if position is None:
            position = _cached(self._right_x[c], [width], self._right_position[c], self._cache_entries)[0]
        return position

    def _cut_ascii(
        self, c: int, cells: list[bytes], datas: list[bytes], widths: list[int], first: int, char_width: int
    ) -> None:
        """Replace the cells wider than column `c` with the cell cut, with an ellipsis, exactly as `_show` prints it.

        `char_width`: the width of every character of `datas`, when known to be the same (else 0)."""
        limit = self._text_limit[c]
        room = limit - self._ellipsis_w
        if char_width and room >= 0:
            keep = _multiples_up_to(char_width, room)
        for i, width in enumerate(widths):
            if width <= limit:
                continue
            if room < 0:
                cells[i] = b""
                continue
            data = datas[i]
            if char_width:
                kept = data[:keep].rstrip(b" ")
                width = char_width * len(kept)
            else:
                ends = list(accumulate(map(self._widths.__getitem__, data)))
                kept = data[: bisect_right(ends, room)].rstrip(b" ")
                width = ends[len(kept) - 1] if kept else 0
            codes = kept.decode().encode("utf-16-be").hex().encode()
            position = self._position(c, width + self._ellipsis_w)
            cells[i] = b"".join((position, self._row_y[first + i], self._cut_open, codes, self._cut_close))

    def _one_font_text(self, text: str) -> _OneFontText | None:
        """`text` (not ASCII) in one font: the first font if it has every character, else the first fallback font
        that has (e.g. a CJK name); None when no font has them all or the text is not NFC. Cached (bounded)."""
        cache = self._one_font_texts
        if text in cache:
            return cache[text]
        found = None
        if unicodedata.is_normalized("NFC", text):
            if self._uncovered.search(text) is None:
                font, switch = self._primary, self._to_primary
            else:
                font = self._regular.single_font(text)  # type: ignore[assignment]
                switch = b"/%s %s Tf " % (font.resource, _fmt(self.font_size)) if font is not None else b""
            if font is not None:
                operators = switch + _hex(font.encode(text)) + b" Tj" + self._to_home
                found = _OneFontText(operators, sum(map(font.widths.__getitem__, text)), font)
        if len(cache) >= ONE_FONT_TEXTS:
            cache.clear()
        cache[text] = found
        return found

    def _cell(self, c: int, text: str, row: int) -> bytes:
        """One cell (not empty) by the general rules: any character, font fallback, truncation; b"" if nothing shows.

        Three shortcuts before `_show`: printable ASCII that fits (a literal string in /A1); every
        character in the first font; every character in one fallback font (e.g. a CJK name)."""
        limit = self._text_limit[c]
        y = self._row_y[row]
        if not self._simple:  # the shortcuts need a TrueType first font (/A1, and codes = UTF-16)
            pass
        elif text.isascii():
            data = text.encode()
            if _SPECIAL.search(data) is None:
                width = (sum(data.translate(self._hi)) << 8) + sum(data.translate(self._lo))
                if width <= limit:
                    return self._position(c, width) + self._row_y_literal[row] + data + b") Tj\n"
        else:
            one = self._one_font_text(text)
            if one is not None and one.width <= limit:
                if not one.recorded:  # only what is printed goes into the subset
                    one.font.used.update(text)
                    one.recorded = True
                return self._position(c, one.width) + y + one.operators
        ops, width = self._show(text, limit, self._regular, self.font_size, self._home)
        if not ops:
            return b""
        return self._position(c, width) + y + ops + b"\n"

    def _stripe_graphics(self, nrows: int) -> bytes:
        cached = self._stripes.get(nrows)
        if cached is None:
            rects = [
                b"%s %s %s %s re\n" % (_fmt(MARGIN), _fmt(self._row_bottoms[i]), _fmt(self._usable), _fmt(self._row_h))
                for i in range(1, nrows, 2)
            ]
            cached = (b"%s g\n" % STRIPE_GREY + b"".join(rects) + b"f\n") if rects else b""
            if len(self._stripes) < 4:
                self._stripes[nrows] = cached
        return cached

    def _flush_page(self) -> None:
        number = self.pages + 1
        size = self._footer_size
        label = b"Page %d of " % number
        label_w = sum(map(self._widths.__getitem__, label)) * size / 1000
        content = b"".join(
            (
                b"q\n",
                self._prefix_graphics,
                self._stripe_graphics(self._page_row),
                b"Q\n",
                self._prefix_text,
                *self._page_parts,
                b"/%s %s Tf 1 0 0 1 %s %s Tm %s Tj\nET\n"
                % (self._home, _fmt(size), _fmt(MARGIN), _fmt(self._footer_y), self._home_string(label)),
                # The total page count is only known at close(): a form XObject written then.
                b"q 1 0 0 1 %s %s cm /Tot Do Q\n" % (_fmt(MARGIN + label_w), _fmt(self._footer_y)),
            )
        )
        self._pending.append(content)
        self.pages = number
        self._page_parts.clear()
        self._page_row = 0
        if len(self._pending) == PAGES_PER_JOB:
            self._hand_over()

    def _hand_over(self) -> None:
        """Compress the pending pages on the thread; write the oldest compressed ones when too many are waiting."""
        if self._compressor is None:
            self._compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf-compress")
        first = self.pages - len(self._pending)
        self._in_flight.append((first, self._compressor.submit(_compress_pages, self._pending)))
        self._pending = []
        while len(self._in_flight) > JOBS_IN_FLIGHT:
            self._write_pages(*self._in_flight.popleft())

    def _write_pages(self, first: int, compressed: Future[list[bytes]]) -> None:
        """Write pages from number `first` (from 0): each content stream, once compressed, and page object."""
        for index, data in enumerate(compressed.result(), start=first):
            content_obj = _FIRST_PAGE_OBJ + 2 * index
            self._object(
                content_obj, b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(data), data)
            )
            self._object(
                content_obj + 1,
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Resources %d 0 R /Contents %d 0 R >>"
                % (_PAGES, _fmt(self._page_w), _fmt(self._page_h), _RESOURCES, content_obj),
            )

    def _write_all_pages(self) -> None:
        if self._pending:
            self._hand_over()
        while self._in_flight:
            self._write_pages(*self._in_flight.popleft())
        if self._compressor is not None:
            self._compressor.shutdown()
            self._compressor = None

    # --- file structure --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self._sink.write(data)
        self._md5.update(data)
        self._pos += len(data)

    def _object(self, number: int, body: bytes) -> None:
        if number >= len(self._offsets):
            self._offsets.extend([0] * (number + 1 - len(self._offsets)))
        self._offsets[number] = self._pos
        self._write(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    def _write_head(self) -> None:
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._object(_CATALOG, b"<< /Type /Catalog /Pages %d 0 R >>" % _PAGES)
        # The fonts and the resource dictionary naming them are written by close(), once every glyph is known.

    def _write_tail(self) -> None:
        # Page tree: one flat /Kids array, written in chunks (page object numbers are computable).
        self._offsets[_PAGES] = self._pos
        self._write(b"%d 0 obj\n<< /Type /Pages /Count %d /Kids [" % (_PAGES, self.pages))
        for start in range(0, self.pages, 1024):
            stop = min(self.pages, start + 1024)
            self._write(b" ".join(b"%d 0 R" % (_FIRST_PAGE_OBJ + 2 * i + 1) for i in range(start, stop)) + b"\n")
        self._write(b"] >>\nendobj\n")

        size = self._footer_size
        total = b"%d" % self.pages
        total_w = sum(map(self._widths.__getitem__, total)) * size / 1000
        form = b"BT /%s %s Tf 0 0 Td %s Tj ET" % (self._home, _fmt(size), self._home_string(total))
        fonts = []
        home_obj = 0
        self._regular.release()  # before any font is subset: the lookup tables are no longer needed
        self._bold.release()
        gc.collect()
        for font in self._regular.used_fonts() + self._bold.used_fonts():
            first = len(self._offsets)
            simple = self._simple and font is self._primary
            for number, body in font.objects(first, simple=simple):
                self._object(number, body)
            fonts.append(b"/%s %d 0 R" % (font.resource, first))
            if simple:
                fonts.append(b"/A1 %d 0 R" % (first + 6))
            if font is self._primary:
                home_obj = first + 6 if simple else first
        self._object(
            _RESOURCES,
            b"<< /ProcSet [/PDF /Text] /Font << %s >> /XObject << /Tot %d 0 R >> >>" % (b" ".join(fonts), _TOTAL_PAGES),
        )
        self._object(
            _TOTAL_PAGES,
            (
                b"<< /Type /XObject /Subtype /Form /BBox [0 %s %s %s] /Resources << /Font << /%s %d 0 R >> >> "
                b"/Length %d >>\nstream\n%s\nendstream"
                % (_fmt(-size), _fmt(total_w + size), _fmt(2 * size), self._home, home_obj, len(form), form)
            ),
        )

        info = [b"/Producer (%s)" % PRODUCER.encode()]
        if self._options.title:
            info.append(b"/Title " + _pdf_text_string(self._options.title))
        if self._creation_date is not None:
            info.append(b"/CreationDate " + _pdf_date(self._creation_date))
        self._object(_INFO, b"<< " + b" ".join(info) + b" >>")

        # Cross-reference table and trailer.
        xref_at = self._pos
        count = len(self._offsets)
        self._write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
        for start in range(1, count, 4096):
            self._write(
                b"".join(b"%010d 00000 n \n" % self._offsets[i] for i in range(start, min(count, start + 4096)))
            )
        doc_id = self._md5.hexdigest().encode()
        self._write(
            b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n"
            % (count, _CATALOG, _INFO, doc_id, doc_id, xref_at)
        )


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(nan|inf)")


def _looks_numeric(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None
