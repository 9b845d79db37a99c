"""Unicode fonts for the PDF writer: a fallback chain of installed TrueType/OpenType faces, embedded as subsets.

Each character is printed with the first font of the chain (`pdf.fonts`, default
DejaVu Sans then Noto Sans CJK SC) that has a glyph for it; a character no font
has is printed as "?" and counted (`replacedGlyphs`). Every font is a composite
(Type0) font with `/Identity-H` encoding, two bytes per character:

- TrueType outlines (DejaVu): the character code (CID) is the character's UTF-16
  code unit, so the writer's hot path encodes text with `str.encode("utf-16-be")`
  (C speed); a `/CIDToGIDMap` written at the end maps CIDs to the subset's glyphs.
  Characters beyond the BMP get codes from the surrogate range (free in text).
- CFF outlines (Noto Sans CJK, CID-keyed "Adobe-Identity-0", where CID == glyph id):
  the code is the glyph id; subsetting keeps CIDs, so codes stay valid.

Only what was printed is embedded: the writer records the characters each font
printed (a set, bounded by the font's size) and `PdfFont.objects()` subsets the
face with fontTools once, at close, with the widths (`/W`) and a `/ToUnicode` map
so that text extraction (pdftotext, search, copy) returns the original text.
fontTools is imported only then and when a face is first loaded (lazily: a fallback
font that is never needed is never read).

Where the files come from: Debian's `fonts-dejavu-core` and `fonts-noto-cjk`
(installed in the image and by hack/install-system-deps.sh); a font of the chain
whose file is missing is skipped. Right-to-left shaping (Arabic, Hebrew) and
complex scripts needing shaping (Devanagari, Thai marks) are not done.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from .font_files import read_metrics, uncovered_pattern

__all__ = ["CATALOGUE", "DEFAULT_FONTS", "FontChain", "NoFontError", "PdfFont", "uncovered_pattern"]

_DEJAVU = "/usr/share/fonts/truetype/dejavu"
_NOTO_CJK = "/usr/share/fonts/opentype/noto"


@dataclass(frozen=True)
class Face:
    path: str
    index: int = 0  # face number in a font collection (.ttc)


@dataclass(frozen=True)
class Family:
    regular: Face
    bold: Face
    package: str  # the Debian package that installs it


def _cjk(index: int) -> Family:
    return Family(
        Face(f"{_NOTO_CJK}/NotoSansCJK-Regular.ttc", index),
        Face(f"{_NOTO_CJK}/NotoSansCJK-Bold.ttc", index),
        "fonts-noto-cjk",
    )


# The fonts `pdf.fonts` may name (spec.PdfFontName lists the same names).
CATALOGUE: dict[str, Family] = {
    "DejaVuSans": Family(
        Face(f"{_DEJAVU}/DejaVuSans.ttf"), Face(f"{_DEJAVU}/DejaVuSans-Bold.ttf"), "fonts-dejavu-core"
    ),
    "NotoSansCJK-JP": _cjk(0),
    "NotoSansCJK-KR": _cjk(1),
    "NotoSansCJK-SC": _cjk(2),
    "NotoSansCJK-TC": _cjk(3),
    "NotoSansCJK-HK": _cjk(4),
}
DEFAULT_FONTS = ("DejaVuSans", "NotoSansCJK-SC")

COMPRESS_LEVEL = 6  # font programs are written once: compress them well
_ASTRAL_FIRST, _ASTRAL_LAST = 0xD800, 0xDFFF  # CIDs for characters beyond the BMP (TrueType fonts)


class NoFontError(ValueError):
    """None of the configured fonts is installed."""


class PdfFont:
    """One face of a chain: metrics loaded on first use, the characters it printed, its PDF objects at the end."""

    def __init__(self, name: str, face: Face, resource: bytes) -> None:
        self.name = name
        self.face = face
        self.resource = resource  # the font's name in the page resources, e.g. b"F1"
        self.used: set[str] = set()
        self._loaded = False
        self._uncovered: re.Pattern[str] | None = None
        self._printed: tuple[list[str], list[int], list[int]] | None = None
        self.widths: dict[str, int] = {}  # character -> advance width in 1/1000 em
        self.cff = False
        self._gid: dict[int, str] = {}  # CFF: code point -> chr(glyph id), for str.translate
        self._astral: dict[str, int] = {}  # TrueType: character beyond the BMP -> its CID
        self.ascent = 0.8
        self.descent = 0.2

    def load(self) -> PdfFont:
        """Read the character map and advance widths (a few tables, parsed here: fontTools would read the
        whole 16 MB CFF table of a CJK face to name its glyphs, ~60 MB of RSS)."""
        if self._loaded:
            return self
        metrics = read_metrics(self.face.path, self.face.index)
        scale = 1000 / metrics.units_per_em
        advances = metrics.advances
        last = len(advances) - 1
        self.cff = metrics.cff
        self.widths = {chr(code): round(advances[min(gid, last)] * scale) for code, gid in metrics.cmap.items()}
        if self.cff:
            self._gid = {code: chr(gid) for code, gid in metrics.cmap.items()}
        self.ascent, self.descent = metrics.ascent * scale / 1000, -metrics.descent * scale / 1000
        self._loaded = True
        return self

    def uncovered(self, text: str) -> re.Match[str] | None:
        """The first character of `text` this font lacks (controls and characters beyond the BMP count as
        lacking), or None; the font is loaded on first use."""
        if self._uncovered is None:
            self._uncovered = uncovered_pattern(self.load().widths)
        return self._uncovered.search(text)

    @property
    def loaded(self) -> bool:
        return self._loaded

    def encode(self, text: str) -> bytes:
        """The two-byte codes of `text` (every character must be in `widths`)."""
        if self.cff:
            return text.translate(self._gid).encode("utf-16-be", "surrogatepass")
        if text and max(text) > "\uffff":
            return "".join(self._astral_code(ch) if ch > "\uffff" else ch for ch in text).encode(
                "utf-16-be", "surrogatepass"
            )
        return text.encode("utf-16-be")

    def _astral_code(self, ch: str) -> str:
        code = self._astral.get(ch)
        if code is None:
            code = _ASTRAL_FIRST + len(self._astral)
            if code > _ASTRAL_LAST:  # more than 2048 distinct astral characters: print the last slot's glyph
                code = _ASTRAL_LAST
            else:
                self._astral[ch] = code
        return chr(code)

    # --- the PDF objects, once, at close ------------------------------------------------------

    def release(self) -> tuple[list[str], list[int], list[int]]:
        """The printed characters, their codes and widths; then the font's lookup tables are dropped (a CJK
        face's are ~15 MB), so that subsetting at close does not add to them. Idempotent."""
        if self._printed is None:
            chars = sorted(self.used)
            self._printed = (
                chars,
                [int.from_bytes(self.encode(ch), "big") for ch in chars],
                [self.widths[ch] for ch in chars],
            )
            self.widths, self._gid = {}, {}
        return self._printed

    def objects(self, first: int, simple: bool = False) -> list[tuple[int, bytes]]:
        """The font's PDF objects numbered from `first`: Type0 font (number `first`), CIDFont, descriptor,
        font program, ToUnicode, (TrueType) CIDToGIDMap and, with `simple`, a simple TrueType font for
        printable ASCII with WinAnsiEncoding (number `first + 6`) and its descriptor, on the same program."""
        from fontTools import subset
        from fontTools.ttLib import TTFont

        font = TTFont(self.face.path, fontNumber=self.face.index, lazy=True)
        chars, codes, char_widths = self.release()
        options = subset.Options()
        options.notdef_outline = True
        options.hinting = False
        options.layout_features = []
        options.name_IDs = []
        options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "VORG", "vhea", "vmtx", "DSIG", "kern", "MATH", "FFTM"]
        postscript = font["name"].getDebugName(6) or self.name
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=[ord(ch) for ch in chars])
        subsetter.subset(font)
        font.recalcTimestamp = False  # the same input gives the same bytes

        tag = "".join(chr(65 + b % 26) for b in hashlib.sha256("".join(chars).encode()).digest()[:6])
        base = f"{tag}+{re.sub(r'[^A-Za-z0-9-]', '', postscript)}".encode()
        font_obj, cid_obj, descriptor_obj, program_obj, unicode_obj, map_obj = range(first, first + 6)
        scale = 1000 / font["head"].unitsPerEm
        head = font["head"]
        bbox = b"[%d %d %d %d]" % tuple(round(v * scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax))
        widths = b" ".join(b"%d [%d]" % (code, width) for code, width in sorted(zip(codes, char_widths)))
        out: list[tuple[int, bytes]] = []
        if self.cff:
            program = font["CFF "].compile(font)
            program_dict = b"/Subtype /CIDFontType0C"
            subtype, extra = b"/CIDFontType0", b""
            file_key = b"/FontFile3"
        else:
            buffer = io.BytesIO()
            font.save(buffer)
            program = buffer.getvalue()
            program_dict = b"/Length1 %d" % len(program)
            subtype, file_key = b"/CIDFontType2", b"/FontFile2"
            cmap = font.getBestCmap()
            gids = bytearray(2 * (max(codes, default=0) + 1))
            for code, ch in zip(codes, chars):
                gid = font.getGlyphID(cmap[ord(ch)])
                gids[2 * code : 2 * code + 2] = gid.to_bytes(2, "big")
            extra = b" /CIDToGIDMap %d 0 R" % map_obj
            out.append((map_obj, _stream(bytes(gids))))
        out.append(
            (
                font_obj,
                b"<< /Type /Font /Subtype /Type0 /BaseFont /%s /Encoding /Identity-H /DescendantFonts [%d 0 R] "
                b"/ToUnicode %d 0 R >>" % (base, cid_obj, unicode_obj),
            )
        )
        out.append(
            (
                cid_obj,
                b"<< /Type /Font /Subtype %s /BaseFont /%s /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) "
                b"/Supplement 0 >> /FontDescriptor %d 0 R /DW 1000 /W [%s]%s >>"
                % (subtype, base, descriptor_obj, widths, extra),
            )
        )
        out.append(
            (
                descriptor_obj,
                b"<< /Type /FontDescriptor /FontName /%s /Flags 4 /FontBBox %s /ItalicAngle 0 /Ascent %d /Descent %d "
                b"/CapHeight %d /StemV 80 %s %d 0 R >>"
                % (
                    base,
                    bbox,
                    round(self.ascent * 1000),
                    -round(self.descent * 1000),
                    round(self.ascent * 1000),
                    file_key,
                    program_obj,
                ),
            )
        )
        out.append((program_obj, _stream(program, program_dict)))
        if simple and not self.cff:
            by_char = dict(zip(chars, char_widths))
            ascii_widths = b" ".join(b"%d" % by_char[chr(code)] for code in range(32, 127))
            out.append(
                (
                    first + 6,
                    b"<< /Type /Font /Subtype /TrueType /BaseFont /%s /FirstChar 32 /LastChar 126 /Widths [%s] "
                    b"/Encoding /WinAnsiEncoding /FontDescriptor %d 0 R /ToUnicode %d 0 R >>"
                    % (base, ascii_widths, first + 7, first + 8),
                )
            )
            out.append(
                (
                    first + 7,
                    b"<< /Type /FontDescriptor /FontName /%s /Flags 32 /FontBBox %s /ItalicAngle 0 /Ascent %d "
                    b"/Descent %d /CapHeight %d /StemV 80 /FontFile2 %d 0 R >>"
                    % (
                        base,
                        bbox,
                        round(self.ascent * 1000),
                        -round(self.descent * 1000),
                        round(self.ascent * 1000),
                        program_obj,
                    ),
                )
            )
            out.append((first + 8, _stream(_to_unicode(((code, chr(code)) for code in range(32, 127)), width=1))))
        out.append((unicode_obj, _stream(_to_unicode(zip(codes, chars)))))
        return out


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(data, COMPRESS_LEVEL)
    return b"<< /Length %d /Filter /FlateDecode %s>>\nstream\n%s\nendstream" % (len(packed), extra + b" ", packed)


def _to_unicode(pairs: Iterable[tuple[int, str]], width: int = 2) -> bytes:
    """A ToUnicode CMap: each code of `width` bytes -> its character (UTF-16BE), 100 entries per bfchar block."""
    code_format = b"<%04X>" if width == 2 else b"<%02X>"
    entries = [
        code_format % code + b" <%s>" % ch.encode("utf-16-be").hex().upper().encode() for code, ch in sorted(pairs)
    ]
    blocks = []
    for start in range(0, len(entries), 100):
        chunk = entries[start : start + 100]
        blocks.append(b"%d beginbfchar\n%s\nendbfchar" % (len(chunk), b"\n".join(chunk)))
    return (
        b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        + (
            b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            if width == 2
            else b"1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        )
        + b"\n".join(blocks)
        + b"\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    )


class FontChain:
    """The configured fonts in order (regular or bold), those installed; `font_for` picks one per character."""

    def __init__(self, names: Iterable[str], bold: bool, prefix: bytes) -> None:
        self.fonts: list[PdfFont] = []
        missing = []
        for name in names:
            family = CATALOGUE[name]
            face = family.bold if bold else family.regular
            if os.path.exists(face.path):
                self.fonts.append(PdfFont(name, face, prefix + b"%d" % (len(self.fonts) + 1)))
            else:
                missing.append(f"{name} ({face.path}, Debian package {family.package})")
        if not self.fonts:
            raise NoFontError("none of the PDF fonts is installed: " + "; ".join(missing))
        self.primary = self.fonts[0].load()
        self._choice: dict[str, PdfFont | None] = {}

    def single_font(self, text: str) -> PdfFont | None:
        """The first fallback font (not the first font) that has every character of `text`, or None.

        Lets a cell the first font cannot print entirely (a CJK name) be printed in one font with
        C-speed checks; its spaces and Latin letters then come from that font too."""
        for font in self.fonts[1:]:
            if font.uncovered(text) is None:
                return font
        return None

    def font_for(self, ch: str) -> PdfFont | None:
        """The first font that has `ch`, or None (printed as "?"); fallback fonts are loaded when first needed."""
        try:
            return self._choice[ch]
        except KeyError:
            pass
        chosen = None
        for font in self.fonts:
            if ch in font.load().widths:
                chosen = font
                break
        if len(self._choice) < 100_000:  # bounded: at most every character of the fonts
            self._choice[ch] = chosen
        return chosen

    def used_fonts(self) -> list[PdfFont]:
        return [font for font in self.fonts if font.used]

    def release(self) -> None:
        """Drop every lookup table (the writer is done): see `PdfFont.release`."""
        self._choice = {}
        for font in self.used_fonts():
            font.release()
