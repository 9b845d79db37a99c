"""The HTTP source: NDJSON, CSV or a JSON array, parsed incrementally while the response streams in.

Nothing holds the whole response: NDJSON and CSV are read line by line, and
a JSON array is parsed one element at a time with `json.JSONDecoder.raw_decode`
over a sliding buffer (`iter_json_array`), so memory is bounded by the largest
record (capped at `MAX_RECORD_BYTES`), not by the response.

Columns:
- csv: the header row;
- ndjson/json: `spec.columns` names when given (missing keys are NULL, other
  keys are ignored), else the keys of the first object; a later object with a
  key the first one lacks is a `MalformedSource` failure (silently dropping
  data would be worse), and a missing key is NULL.

Bounds: every record — an NDJSON line, a CSV line and a whole CSV record
(quoted newlines included), a JSON array element — is at most
`MAX_RECORD_BYTES` (16 MiB); a longer one is a permanent `MalformedSource`
found while memory stays flat, instead of growing the worker into its memory
limit. JSON nested deeper than the parser can follow, or an integer of more
than 4300 digits, is also `MalformedSource`, never a crash.

Failures: connection errors, timeouts, HTTP 5xx, 408 and 429 are retryable
(`SourceUnreachable` / `SourceTimeout`); other 4xx are permanent
(`SourceRejected`, with the status); a record that does not parse is a
permanent `MalformedSource` naming the line (ndjson, csv) or byte offset
(json). Connecting, redirects, the egress policy and the credential's origin
are `httpclient.open_url`'s job; messages show the URL without its query
string or user info, which may hold credentials.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

from ..credentials import HTTP_BEARER_TOKEN_ENV, token_problem
from ..egress import EgressPolicy
from ..errors import ExportFailure, Reason, permanent, retryable
from ..httpclient import Response, open_url, public_url, transport_failure
from ..rows import DEFAULT_BATCH_SIZE, Row, RowStream, batched
from .base import RowSource

if TYPE_CHECKING:  # or `exportjob.lightspec` objects: the same attributes
    from exportjob.spec import Column
    from exportjob.spec import HttpSource as HttpSpec

READ_CHUNK = 64 * 1024
MAX_RECORD_BYTES = 16 * 1024 * 1024
_RETRYABLE_STATUSES = (408, 425, 429)


def malformed(message: str) -> ExportFailure:
    return permanent(Reason.MALFORMED_SOURCE, message)


class ObjectRows:
    """Turns JSON objects into row tuples over a fixed column list (see the module docstring for the rules)."""

    def __init__(self, wanted: Sequence[Column] | None) -> None:
        self.columns: list[str] | None = [c.name for c in wanted] if wanted is not None else None
        self._strict = wanted is None
        self._known: frozenset[str] = frozenset(self.columns or ())

    def row(self, record: Any, place: str, number: int) -> Row:
        """`record` as a row; `place number` (e.g. "line 7") locates it in failure messages."""
        if not isinstance(record, dict):
            where = f"{place} {number}"
            raise malformed(f"{where}: expected a JSON object, got {type(record).__name__}")
        if self.columns is None:
            self.columns = list(record)
            self._known = frozenset(self.columns)
        elif self._strict and not record.keys() <= self._known:
            where = f"{place} {number}"
            extra = ", ".join(sorted(map(repr, record.keys() - self._known))[:10])
            raise malformed(
                f"{where}: key(s) {extra} are not among the columns taken from the first record "
                f"({', '.join(self.columns)}); list every wanted column in spec.columns to select columns explicitly"
            )
        get = record.get
        return tuple([get(name) for name in self.columns])


def iter_ndjson(lines: Iterable[bytes], objects: ObjectRows) -> Iterator[Row]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_RECORD_BYTES:
            raise malformed(f"line {number}: longer than {MAX_RECORD_BYTES} bytes")
        try:
            record = json.loads(line)
        except RecursionError:
            raise malformed(f"line {number}: JSON nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError; an integer of > 4300 digits
            raise malformed(f"line {number}: not valid JSON ({error})") from None
        yield objects.row(record, "line", number)


def iter_json_array(chunks: Iterable[bytes]) -> Iterator[tuple[Any, int]]:
    """Each element of one top-level JSON array with its byte offset, parsed incrementally.

    `buffer[position:]` is the unparsed text; `byte_position` is the byte offset of `buffer[position]` in
    the response, advanced as text is consumed (cheaply: most buffers are ASCII).
    """
    decoder = json.JSONDecoder()
    text_decoder = codecs.getincrementaldecoder("utf-8")()
    source = iter(chunks)
    buffer = ""
    ascii_only = True
    position = 0
    byte_position = 0
    finished = False

    def offset(at: int) -> int:
        return byte_position + (at - position if ascii_only else len(buffer[position:at].encode("utf-8")))

    def advance(to: int) -> None:
        nonlocal position, byte_position
        byte_position = offset(to)
        position = to

    def more() -> bool:
        """Append the next chunk, dropping parsed text; False at the end of the response."""
        nonlocal buffer, position, finished, ascii_only
        if finished:
            return False
        chunk = next(source, b"")
        finished = not chunk
        try:
            text = text_decoder.decode(chunk, final=finished)
        except UnicodeDecodeError as error:
            raise malformed(f"byte offset {offset(len(buffer)) + error.start}: invalid UTF-8") from None
        buffer = buffer[position:] + text
        position = 0
        ascii_only = buffer.isascii()
        return True

    def skip_space() -> str:
        """The next non-space character (reading more as needed), or '' at the end."""
        while True:
            at = position
            while at < len(buffer) and buffer[at] in " \t\r\n":
                at += 1
            advance(at)
            if at < len(buffer):
                return buffer[at]
            if not more():
                return ""

    first = skip_space()
    if first == "\ufeff":  # a byte-order mark
        advance(position + 1)
        first = skip_space()
    if first != "[":
        raise malformed(f"byte offset {offset(position)}: expected '[' (a JSON array of objects)")
    advance(position + 1)
    expect_value = skip_space() != "]"
    if not expect_value:
        advance(position + 1)
    while expect_value:
        if not skip_space():
            raise malformed(f"byte offset {offset(position)}: the array is not closed")
        while True:
            try:
                value, end = decoder.raw_decode(buffer, position)
                break
            except json.JSONDecodeError as error:
                # More data can only help when the error is at the end of what was read (a cut literal,
                # number or string); an error in the middle of the buffer is a malformed record.
                incomplete = error.pos >= len(buffer) - 16 or error.msg.startswith("Unterminated")
                if len(buffer) - position > MAX_RECORD_BYTES:
                    raise malformed(
                        f"byte offset {offset(position)}: record longer than {MAX_RECORD_BYTES} bytes"
                    ) from None
                if not incomplete or not more():
                    raise malformed(f"byte offset {offset(error.pos)}: {error.msg}") from None
            except RecursionError:
                raise malformed(f"byte offset {offset(position)}: JSON nested too deeply") from None
            except ValueError as error:  # an integer of more than 4300 digits (int_max_str_digits)
                raise malformed(f"byte offset {offset(position)}: {error}") from None
        yield value, byte_position
        advance(end)
        separator = skip_space()
        if separator == ",":
            advance(position + 1)
        elif separator == "]":
            advance(position + 1)
            expect_value = False
        else:
            raise malformed(f"byte offset {offset(position)}: expected ',' or ']' after an array element")
    if skip_space():
        raise malformed(f"byte offset {offset(position)}: unexpected data after the array")


class CsvLines:
    """The CSV response as text lines for `csv.reader`, each bounded, and each record bounded in total.

    `readline(MAX_RECORD_BYTES + 1)` never holds more than one bounded line; `record_bytes` counts the
    bytes of the record being parsed (a quoted field may span lines) and the reader resets it per record.
    """

    def __init__(self, response: Response, limit: int | None = None) -> None:
        self._response = response
        self._limit = MAX_RECORD_BYTES if limit is None else limit
        self.line = 0
        self.record_bytes = 0
        self._record_start = 1
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()

    def __iter__(self) -> Iterator[str]:
        while True:
            line = self._response.readline(self._limit + 1)
            if not line:
                return
            self.line += 1
            if self.record_bytes == 0:
                self._record_start = self.line
            self.record_bytes += len(line)
            if len(line) > self._limit or self.record_bytes > self._limit:
                raise malformed(f"line {self._record_start}: record longer than {self._limit} bytes")
            try:
                yield self._decoder.decode(line)
            except UnicodeDecodeError:
                raise malformed(f"line {self.line}: invalid UTF-8") from None


class HttpSource(RowSource):
    kind = "http"

    def __init__(
        self,
        spec: HttpSpec,
        wanted: Sequence[Column] | None,
        bearer_token: str | None,
        egress: EgressPolicy | None = None,
        **client: Any,
    ) -> None:
        self._spec = spec
        self._wanted = wanted
        self._token = bearer_token
        self._egress = egress if egress is not None else EgressPolicy()
        self._client = client  # resolve/connect overrides, for tests
        self._url = public_url(spec.url)
        self._response: Response | None = None

    def open(self) -> None:
        headers = {
            "Accept": {"ndjson": "application/x-ndjson", "csv": "text/csv", "json": "application/json"}[
                self._spec.format
            ],
            "User-Agent": "exportjob-worker",
        }
        credential: dict[str, str] = {}
        ref = self._spec.bearer_token_secret_ref
        if ref is not None:
            if not self._token:
                raise permanent(
                    Reason.MISSING_CREDENTIALS,
                    f"no bearer token: {HTTP_BEARER_TOKEN_ENV} is not set (the operator sets it from "
                    "spec.source.http.bearerTokenSecretRef)",
                )
            problem = token_problem(self._token)
            if problem is not None:
                raise permanent(
                    Reason.INVALID_CREDENTIALS,
                    f'the bearer token in key "{ref.key}" of Secret "{ref.name}" is unusable: {problem} '
                    "(surrounding whitespace is stripped; fix the Secret)",
                )
            credential["Authorization"] = f"Bearer {self._token}"
        response = open_url(
            self._spec.url, headers, credential, self._spec.timeout_seconds, self._egress, **self._client
        )
        if response.status >= 400:
            response.close()
            status = f"HTTP {response.status} {response.reason}".strip()
            if response.status >= 500 or response.status in _RETRYABLE_STATUSES:
                raise retryable(Reason.SOURCE_UNREACHABLE, f"{response.url} answered {status}")
            raise permanent(Reason.SOURCE_REJECTED, f"{response.url} answered {status}")
        self._url = response.url
        self._response = response

    def close(self) -> None:
        if self._response is not None:
            response, self._response = self._response, None
            response.close()

    def stream(self) -> RowStream:
        response = self._response
        assert response is not None, "stream() before open()"
        if self._spec.format == "csv":
            return self._csv_stream(response)
        objects = ObjectRows(self._wanted)
        if self._spec.format == "ndjson":
            lines = iter(lambda: response.readline(MAX_RECORD_BYTES + 1), b"")
            rows = iter_ndjson(self._guard(lines), objects)
        else:
            chunks = iter(lambda: response.read(READ_CHUNK), b"")
            rows = (
                objects.row(value, "array element at byte offset", at)
                for value, at in iter_json_array(self._guard(chunks))
            )
        first = next(rows, None)  # the first object names the columns
        if first is not None:
            rows = itertools.chain((first,), rows)
        return RowStream(objects.columns or [], batched(rows, DEFAULT_BATCH_SIZE))

    def _csv_stream(self, response: Response) -> RowStream:
        csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))  # the default is 128 KiB
        lines = CsvLines(response)
        reader = csv.reader(self._guard(lines))
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as error:
            raise malformed(f"line 1: {error}") from None
        lines.record_bytes = 0
        columns = header or []

        def rows() -> Iterator[Row]:
            width = len(columns)
            try:
                for row in reader:
                    lines.record_bytes = 0
                    if len(row) != width:
                        if not row:
                            continue  # a blank line
                        raise malformed(f"line {reader.line_num}: {len(row)} fields, but the header has {width}")
                    yield tuple(row)
            except (csv.Error, UnicodeDecodeError) as error:
                raise malformed(f"line {reader.line_num}: {error}") from None

        return RowStream(columns, batched(rows(), DEFAULT_BATCH_SIZE))

    def _guard(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Re-raise transport errors while reading the body as retryable failures."""
        try:
            yield from iterable
        except (OSError, HTTPException) as error:
            raise transport_failure(error, self._url, self._spec.timeout_seconds, [self._spec.url]) from None
