"""Reading TrueType/OpenType font files: the few tables the PDF writer needs for layout.

`read_metrics` parses `head`, `hhea`, `hmtx` and the Unicode `cmap` (format 12 or 4)
of one face of a font file or collection (.ttc) directly with `struct`: fontTools
would decompile far more (for a CFF face it reads the whole 16 MB CFF table to name
its glyphs, ~60 MB of RSS). `uncovered_pattern` turns a font's coverage into a regex
that finds, at C speed, a character the font lacks. Pure except for reading the file.
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from dataclasses import dataclass

__all__ = ["FontFileError", "Metrics", "read_metrics", "uncovered_pattern"]


class FontFileError(ValueError):
    """A font file without what the writer needs (a face index beyond the collection, no Unicode cmap)."""


def uncovered_pattern(widths: dict[str, int]) -> re.Pattern[str]:
    """A regex finding any character not in `widths` (controls and characters beyond the BMP included)."""
    codes = sorted(ord(ch) for ch in widths if 32 <= ord(ch) <= 0xFFFF and ord(ch) != 127)
    ranges = []
    start = previous = codes[0]
    for code in codes[1:]:
        if code != previous + 1:
            ranges.append((start, previous))
            start = code
        previous = code
    ranges.append((start, previous))
    members = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[^{members}]")


@dataclass
class Metrics:
    units_per_em: int
    ascent: int
    descent: int
    advances: array[int]  # by glyph id (the last one repeats, as in hmtx)
    cmap: dict[int, int]  # code point -> glyph id
    cff: bool


def read_metrics(path: str, index: int = 0) -> Metrics:
    """head, hhea, hmtx and the Unicode cmap (format 12 or 4) of face `index` of a font file or collection."""
    with open(path, "rb") as file:
        data = file.read(12)
        base = 0
        if data[:4] == b"ttcf":
            count = struct.unpack(">I", data[8:12])[0]
            if index >= count:
                raise FontFileError(f"{path} has {count} faces, not {index + 1}")
            file.seek(12 + 4 * index)
            base = struct.unpack(">I", file.read(4))[0]
        file.seek(base)
        header = file.read(12)
        tables = {}
        directory = file.read(16 * struct.unpack(">H", header[4:6])[0])
        for at in range(0, len(directory), 16):
            tag, _, offset, length = struct.unpack(">4sIII", directory[at : at + 16])
            tables[tag] = (offset, length)

        def table(tag: bytes) -> bytes:
            offset, length = tables[tag]
            file.seek(offset)
            return file.read(length)

        head, hhea = table(b"head"), table(b"hhea")
        units_per_em = struct.unpack(">H", head[18:20])[0]
        ascent, descent = struct.unpack(">hh", hhea[4:8])
        metrics_count = struct.unpack(">H", hhea[34:36])[0]
        hmtx = table(b"hmtx")
        advances = array("H", hmtx[: 4 * metrics_count])
        if sys.byteorder == "little":
            advances.byteswap()
        advances = advances[0::2]  # (advance, left side bearing) pairs
        cmap = _unicode_cmap(table(b"cmap"))
        return Metrics(units_per_em, ascent, descent, advances, cmap, b"CFF " in tables)


def _unicode_cmap(data: bytes) -> dict[int, int]:
    count = struct.unpack(">H", data[2:4])[0]
    subtables = {}
    for at in range(4, 4 + 8 * count, 8):
        platform, encoding, offset = struct.unpack(">HHI", data[at : at + 8])
        subtables[(platform, encoding)] = offset
    for key in ((3, 10), (0, 6), (0, 4), (3, 1), (0, 3), (0, 2), (0, 1), (0, 0)):
        offset = subtables.get(key)
        if offset is None:
            continue
        kind = struct.unpack(">H", data[offset : offset + 2])[0]
        if kind == 12:
            groups = struct.unpack(">I", data[offset + 12 : offset + 16])[0]
            cmap = {}
            for at in range(offset + 16, offset + 16 + 12 * groups, 12):
                start, end, glyph = struct.unpack(">III", data[at : at + 12])
                for code in range(start, end + 1):
                    cmap[code] = glyph + code - start
            return cmap
        if kind == 4:
            segments = struct.unpack(">H", data[offset + 6 : offset + 8])[0] // 2
            ends = struct.unpack(f">{segments}H", data[offset + 14 : offset + 14 + 2 * segments])
            at = offset + 16 + 2 * segments
            starts = struct.unpack(f">{segments}H", data[at : at + 2 * segments])
            deltas = struct.unpack(f">{segments}h", data[at + 2 * segments : at + 4 * segments])
            range_at = at + 4 * segments
            ranges = struct.unpack(f">{segments}H", data[range_at : range_at + 2 * segments])
            cmap = {}
            for i in range(segments):
                for code in range(starts[i], ends[i] + 1):
                    if code == 0xFFFF:
                        continue
                    if ranges[i] == 0:
                        glyph = (code + deltas[i]) & 0xFFFF
                    else:
                        where = range_at + 2 * i + ranges[i] + 2 * (code - starts[i])
                        glyph = struct.unpack(">H", data[where : where + 2])[0]
                        if glyph:
                            glyph = (glyph + deltas[i]) & 0xFFFF
                    if glyph:
                        cmap[code] = glyph
            return cmap
    raise FontFileError("the font has no Unicode character map (cmap format 4 or 12)")
