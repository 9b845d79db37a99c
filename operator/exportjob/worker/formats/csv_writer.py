"""CSV writer for Python rows (every source except the PostgreSQL COPY fast path).

RFC 4180 via the stdlib's C `csv.writer` (QUOTE_MINIMAL: fields holding the
delimiter, a double quote, CR or LF are quoted, quotes doubled), a header row,
a one-character delimiter, `crlf`/`lf` record separators, and the encodings of
`CsvOptions`. NULL (None) is an empty field, booleans are `true`/`false`,
nested JSON values are compact JSON, dates and times ISO 8601, bytes `\\x`-hex
(as PostgreSQL prints them). The formula guard (`exportjob.worker.formula`)
applies to text cells only; numbers are never altered.

Speed: rows arrive in batches; each batch is inspected column-wise (the set of
value types in a column, and one regex scan over a column's joined text to
find formula triggers) so that clean columns cost no per-cell Python work. The
batch is written by `csv.writer.writerows` into a StringIO and encoded and
handed to the sink in one `write` per batch.

An unencodable character (latin-1) is a permanent `UnencodableText` failure
naming the row and column: silently replacing data in an export is worse
than failing. Used by `exportjob.worker.engine`; same interface as
`PdfTableWriter`.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import chain
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import formula
from ..errors import Reason, permanent

if TYPE_CHECKING:  # or `exportjob.lightspec.CsvOptions`: the same attributes
    from exportjob.spec import CsvOptions

UTF8_BOM = b"\xef\xbb\xbf"

_NONE = type(None)
_UNCHANGED_TYPES = frozenset({int, float, Decimal, _NONE})
_TEXT_TYPES = frozenset({str, _NONE})
_BOOL_TYPES = frozenset({bool, _NONE})
_BOOL_TEXT: dict[Any, Any] = {True: "true", False: "false", None: None}
# A trigger at the start of any value once a column's values are joined with NUL separators.
_SEPARATOR = "\x00"
_TRIGGER_AFTER_SEPARATOR = re.compile(_SEPARATOR + "[" + re.escape("".join(formula.TRIGGERS)) + "]")


def cell_text(value: Any, escape_formulas: bool) -> Any:
    """One value as csv.writer should see it (the slow, general path; clean columns skip it)."""
    kind = type(value)
    if value is None or kind in (int, float, Decimal):
        return value
    if kind is str:
        return formula.escape(value) if escape_formulas else value
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (int, float, Decimal)):  # subclasses, e.g. IntEnum
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    text = str(value)
    return formula.escape(text) if escape_formulas else text


class CsvTableWriter:
    """Writes a header and batches of rows as CSV bytes to `sink`; `close()` does not close the sink."""

    def __init__(self, sink: BinaryIO, columns: Sequence[str], options: CsvOptions) -> None:
        self._sink = sink
        self._columns = list(columns)
        self._escape = options.formula_escape
        self._encoding = "latin-1" if options.encoding == "latin-1" else "utf-8"
        self._buffer = io.StringIO()
        self._writer = csv.writer(
            self._buffer,
            delimiter=options.delimiter,
            quotechar='"',
            doublequote=True,
            quoting=csv.QUOTE_MINIMAL,
            lineterminator="\r\n" if options.line_terminator == "crlf" else "\n",
        )
        self._rows_written = 0
        if options.encoding == "utf-8-sig":
            sink.write(UTF8_BOM)
        if options.header and self._columns:
            header = [cell_text(title, self._escape) for title in self._columns]
            self._writer.writerow(header)
            self._flush([tuple(header)], header_row=True)

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        batch = rows if isinstance(rows, list) else list(rows)
        if not batch:
            return
        self._writer.writerows(self._prepare(batch))
        self._flush(batch, header_row=False)
        self._rows_written += len(batch)

    def close(self) -> None:
        """Nothing is buffered between batches; kept for the writer interface."""

    def _prepare(self, batch: list[Any]) -> Iterable[Sequence[Any]]:
        """The batch with every column that needs it converted; the batch itself when none does.

        Columns are strided slices of the flattened batch (`flat[j::width]`), which is about twice
        as fast as transposing with zip(*batch); converted columns are assigned back the same way.
        """
        width = len(batch[0])
        flat = list(chain.from_iterable(batch))
        if len(flat) != width * len(batch):  # ragged rows: convert cell by cell
            escape = self._escape
            return [[cell_text(v, escape) for v in row] for row in batch]
        changed = False
        for index in range(width):
            column = flat[index::width]
            types = set(map(type, column))
            if types <= _UNCHANGED_TYPES:
                continue
            if types <= _TEXT_TYPES:
                if not (self._escape and self._has_trigger(column)):
                    continue
                converted = [formula.escape(v) if v is not None else None for v in column]
            elif types <= _BOOL_TYPES:
                converted = list(map(_BOOL_TEXT.__getitem__, column))
            else:
                escape = self._escape
                converted = [cell_text(v, escape) for v in column]
            flat[index::width] = converted
            changed = True
        return zip(*[iter(flat)] * width) if changed else batch

    @staticmethod
    def _has_trigger(column: Sequence[str | None]) -> bool:
        joined = _SEPARATOR + _SEPARATOR.join(filter(None, column))
        return _TRIGGER_AFTER_SEPARATOR.search(joined) is not None

    def _flush(self, batch: list[Any], header_row: bool) -> None:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        try:
            data = text.encode(self._encoding)
        except UnicodeEncodeError:
            raise self._unencodable(batch, header_row) from None
        self._sink.write(data)

    def _unencodable(self, batch: list[Any], header_row: bool) -> Exception:
        for offset, row in enumerate(batch):
            for index, value in enumerate(row):
                text = value if isinstance(value, str) else str(cell_text(value, False))
                try:
                    text.encode(self._encoding)
                except UnicodeEncodeError as error:
                    char = text[error.start]
                    where = "the header" if header_row else f"row {self._rows_written + offset + 1}"
                    column = self._columns[index] if index < len(self._columns) else f"#{index + 1}"
                    return permanent(
                        Reason.UNENCODABLE_TEXT,
                        f"{where}, column {column!r}: character {char!r} (U+{ord(char):04X}) cannot be encoded "
                        f"in {self._encoding}; use csv.encoding utf-8 or utf-8-sig",
                    )
        return permanent(Reason.UNENCODABLE_TEXT, f"a value cannot be encoded in {self._encoding}")
