"""The PostgreSQL source (psycopg 3): a COPY fast path for CSV, a server-side cursor for everything else.

CSV: the server renders the CSV itself (`COPY (...) TO STDOUT (FORMAT csv)`)
and the rows are streamed to the output as they arrive, with no per-value
Python work. `spec.columns` and the formula guard still hold on this path:
a `LIMIT 0` probe learns the query's column names and types, then the query is
wrapped in a SELECT built with `psycopg.sql` (positional column aliases,
quoted header aliases, the guard as a CASE expression on text-like columns,
booleans as true/false like the Python path) so the server does the work and
numbers are never altered.

Other formats: a named (server-side) cursor read with `fetchmany(fetchSize)`;
never a client-side cursor, which would load the whole result into memory.

The transaction is READ ONLY (an export never writes) and
`cursor_tuple_fraction = 1` (the whole result is read, so plan for throughput).

Errors: SQL errors are permanent `QueryFailed` with the server's message;
connection problems are retryable `SourceUnreachable`; a cancelled statement
(statement_timeout) is a retryable `SourceTimeout`; a rejected login is a
permanent `InvalidCredentials`. The DSN never appears in a message.
"""

from __future__ import annotations

import re
import select
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import TextLoader

from exportjob.spec import Column, CsvOptions
from exportjob.spec import PostgresSource as PostgresSpec

from .. import formula
from ..credentials import POSTGRES_DSN_ENV
from ..errors import ExportFailure, Reason, permanent, redact, retryable
from ..rows import Batch, RowStream, resolve_projection, titles
from .base import RowSource

UTF8_BOM = b"\xef\xbb\xbf"
FLUSH_BYTES = 256 * 1024  # COPY rows are gathered up to this size, then written (and hashed) at once
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10
_BOOL_OID = 16
_TEXT_CATEGORIES = ("S", "E")  # pg_type.typcategory: string types (text, varchar, char, name, citext) and enums
_COPY_ENCODINGS = {"utf-8": "UTF8", "utf-8-sig": "UTF8", "latin-1": "LATIN1"}
# Login problems that a retry cannot fix (checked on the connect error's text; libpq gives no SQLSTATE there).
_LOGIN_REJECTED = re.compile(
    r"password authentication failed|no password supplied|authentication failed|"
    r"role \".*\" does not exist|database \".*\" does not exist|pg_hba\.conf|"
    r"permission denied for database|SSL .*required",
    re.IGNORECASE,
)
# SQLSTATEs of transient server conditions: retrying the same query may succeed.
_TRANSIENT_STATES = ("57P01", "57P02", "57P03", "40001", "40P01", "55P03")
_TRANSIENT_CLASSES = ("08", "53", "58")

RowsCallback = Callable[[int], None]  # called with the number of data rows written so far


def _one_line(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PostgresSource(RowSource):
    kind = "postgres"

    def __init__(self, spec: PostgresSpec, dsn: str | None) -> None:
        self._spec = spec
        self._dsn = dsn
        self._query = spec.query.strip().rstrip(";").strip()
        self._connection: psycopg.Connection[Any] | None = None

    # -- connection ---------------------------------------------------------------------------

    def open(self) -> None:
        if not self._dsn:
            raise permanent(
                Reason.MISSING_CREDENTIALS,
                f"no PostgreSQL connection string: {POSTGRES_DSN_ENV} is not set (the operator sets it from "
                "spec.source.postgres.connectionSecretRef; `exportjob run` also takes --dsn)",
            )
        try:
            params: dict[str, Any] = conninfo_to_dict(self._dsn)
        except psycopg.Error:
            raise permanent(
                Reason.INVALID_CREDENTIALS,
                "the PostgreSQL connection string does not parse (expected libpq key=value pairs or a "
                "postgresql:// URI); it is not shown here because it may hold a password",
            ) from None
        params.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT_SECONDS)
        params.setdefault("application_name", "exportjob-worker")
        params["client_encoding"] = "UTF8"  # server messages and the cursor path decode as UTF-8
        try:
            connection = psycopg.connect(**params)
        except psycopg.Error as error:
            raise self._connect_failure(error) from None
        self._connection = connection
        try:
            connection.read_only = True
            settings = {"cursor_tuple_fraction": "1"}
            if self._spec.statement_timeout_seconds is not None:
                settings["statement_timeout"] = f"{self._spec.statement_timeout_seconds}s"
            with connection.cursor() as cursor:
                for name, value in settings.items():
                    cursor.execute("SELECT set_config(%s, %s, true)", (name, value))
        except psycopg.Error as error:
            raise self._query_failure(error) from None

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except psycopg.Error:
                pass

    def _connect_failure(self, error: psycopg.Error) -> ExportFailure:
        text = _one_line(redact(str(error), [self._dsn]))
        if _LOGIN_REJECTED.search(text):
            return permanent(
                Reason.INVALID_CREDENTIALS,
                f"PostgreSQL rejected the login (check the user, password and database in the connection "
                f"Secret): {text}",
            )
        return retryable(Reason.SOURCE_UNREACHABLE, f"cannot connect to PostgreSQL: {text}")

    def _query_failure(self, error: psycopg.Error) -> ExportFailure:
        state = error.sqlstate or ""
        primary = error.diag.message_primary or str(error)
        detail = primary
        if error.diag.message_detail:
            detail += f" ({error.diag.message_detail})"
        if error.diag.message_hint:
            detail += f"; hint: {error.diag.message_hint}"
        text = _one_line(redact(detail, [self._dsn]))
        if isinstance(error, psycopg.errors.QueryCanceled):
            limit = self._spec.statement_timeout_seconds
            return retryable(
                Reason.SOURCE_TIMEOUT,
                f"PostgreSQL cancelled the query: {text}"
                + (f" (statementTimeoutSeconds is {limit}; raise it or make the query cheaper)" if limit else ""),
            )
        if state == "22P05":  # untranslatable_character: the chosen csv.encoding cannot hold a character
            return permanent(Reason.UNENCODABLE_TEXT, f"{text}; use csv.encoding utf-8 or utf-8-sig")
        if not state or state in _TRANSIENT_STATES or state[:2] in _TRANSIENT_CLASSES:
            return retryable(Reason.SOURCE_UNREACHABLE, f"PostgreSQL connection or server problem: {text}")
        return permanent(Reason.QUERY_FAILED, f"PostgreSQL rejected the query [{state}]: {text}")

    @property
    def connection(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            raise RuntimeError("PostgresSource used outside its context")
        return self._connection

    # -- CSV: COPY ... TO STDOUT --------------------------------------------------------------

    def describe(self) -> tuple[list[str], list[int]]:
        """Column names and type OIDs of the query, from a `LIMIT 0` probe."""
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql.SQL("SELECT * FROM (\n{}\n) AS q LIMIT 0").format(sql.SQL(self._query)))
                if cursor.description is None:
                    raise permanent(Reason.QUERY_FAILED, "the query returns no rows; use a SELECT")
                return [c.name for c in cursor.description], [c.type_code for c in cursor.description]
        except psycopg.Error as error:
            raise self._query_failure(error) from None

    def _text_like(self, oids: Sequence[int]) -> set[int]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT oid::int8 FROM pg_type WHERE oid = ANY(%s::oid[]) AND typcategory = ANY(%s)",
                    (list(set(oids)), list(_TEXT_CATEGORIES)),
                )
                return {int(row[0]) for row in cursor.fetchall()}
        except psycopg.Error as error:
            raise self._query_failure(error) from None

    def copy_statement(self, wanted: Sequence[Column] | None, options: CsvOptions) -> tuple[sql.Composed, list[str]]:
        """The COPY statement that renders the export server-side, and the header titles."""
        names, oids = self.describe()
        indexes = resolve_projection(names, wanted)
        if indexes is None:
            indexes = list(range(len(names)))
        headers = titles(names, wanted)
        text_like = self._text_like([oids[i] for i in indexes]) if options.formula_escape else set()
        items = []
        for title, index in zip(headers, indexes):
            column = sql.SQL("q.{}").format(sql.Identifier(f"c{index}"))
            expression: sql.Composable = column
            if oids[index] == _BOOL_OID:  # boolean::text is true/false, as the Python path writes (COPY: t/f)
                expression = sql.SQL("{}::text").format(column)
            elif oids[index] in text_like:
                as_text = sql.SQL("{}::text").format(column)
                # `< 'A' COLLATE "C"` (one memcmp) lets most text skip the ascii() test: every trigger
                # character sorts before 'A'. Measured: the guard costs ~0.06 s per million values.
                expression = sql.SQL(
                    "CASE WHEN {text} < 'A' COLLATE \"C\" AND ascii({text}) IN ({codes}) AND {text} !~* {number} "
                    "THEN {prefix} || {text} ELSE {text} END"
                ).format(
                    text=as_text,
                    codes=sql.SQL(", ").join(sql.Literal(code) for code in formula.PG_TRIGGER_CODES),
                    number=sql.Literal(formula.PG_NUMBER_REGEX),
                    prefix=sql.Literal(formula.ESCAPE_PREFIX),
                )
            alias = formula.escape(title) if options.formula_escape else title
            items.append(sql.SQL("{} AS {}").format(expression, sql.Identifier(alias)))
        # Positional aliases (q(c0, c1, ...)) so that duplicated or odd column names stay addressable.
        positional = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(names)))
        select = sql.SQL("SELECT {} FROM (\n{}\n) AS q{}").format(
            sql.SQL(", ").join(items),
            sql.SQL(self._query),
            sql.SQL("({})").format(positional) if names else sql.SQL(""),
        )
        statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER {}, DELIMITER {}, ENCODING {})").format(
            select,
            sql.SQL("true" if options.header else "false"),
            sql.Literal(options.delimiter),
            sql.Literal(_COPY_ENCODINGS[options.encoding]),
        )
        return statement, headers

    def copy_csv(
        self,
        sink: BinaryIO,
        wanted: Sequence[Column] | None,
        options: CsvOptions,
        progress: RowsCallback | None = None,
    ) -> tuple[int, list[str]]:
        """Stream the whole export as CSV into `sink`; return (data rows, header titles)."""
        statement, headers = self.copy_statement(wanted, options)
        if options.encoding == "utf-8-sig":
            sink.write(UTF8_BOM)
        header_records = 1 if options.header else 0
        try:
            records = self._stream_copy(
                statement.as_bytes(self.connection), sink, options.line_terminator == "crlf", progress, header_records
            )
        except psycopg.Error as error:
            raise self._query_failure(error) from None
        return max(records - header_records, 0), headers

    def _stream_copy(
        self, statement: bytes, sink: BinaryIO, crlf: bool, progress: RowsCallback | None, header_records: int
    ) -> int:
        """Run COPY TO STDOUT on the libpq connection directly; return the number of CSV records written.

        psycopg's `Copy` iterator costs ~0.5 us of Python per row in its wait machinery, more than
        the server needs to produce the row; this loop reads libpq's buffer without blocking and
        waits on the socket with `select` only when it is empty (so signals still interrupt it).
        Measured at 1M rows: ~1.9M rows/s vs ~1.1M rows/s through `Copy` (and psql ~1.4M rows/s).
        The server sends exactly one CopyData message per CSV record, each ending with "\n"
        (protocol docs), which is what makes the crlf rewrite safe.
        """
        pgconn = self.connection.pgconn
        pgconn.send_query(statement)
        result = _next_result(pgconn)
        if result is None or result.status != pq.ExecStatus.COPY_OUT:
            _drain(pgconn)
            raise _error(pgconn, result)
        get_copy_data, socket = pgconn.get_copy_data, pgconn.socket
        pending: list[Any] = []
        size = records = 0
        while True:
            nbytes, data = get_copy_data(1)
            if nbytes > 0:
                pending.append(data)
                size += nbytes
                if size >= FLUSH_BYTES:
                    sink.write(_join_records(pending, crlf))
                    records += len(pending)
                    pending.clear()
                    size = 0
                    if progress is not None:
                        progress(records - header_records)
            elif nbytes == 0:  # libpq's buffer is empty: wait for the socket, then read what arrived
                select.select([socket], [], [])
                pgconn.consume_input()
            else:  # -1: the COPY is over; -2: an error, reported by the result below
                break
        if pending:
            sink.write(_join_records(pending, crlf))
            records += len(pending)
        result = _next_result(pgconn)
        _drain(pgconn)
        if result is None or result.status != pq.ExecStatus.COMMAND_OK:
            raise _error(pgconn, result)
        return records

    # -- other formats: a server-side cursor ----------------------------------------------------

    def stream(self) -> RowStream:
        connection = self.connection
        # Show json/jsonb as the server's text rather than Python objects.
        for type_name in ("json", "jsonb"):
            connection.adapters.register_loader(type_name, TextLoader)
        cursor = connection.cursor(name="exportjob_rows")
        try:
            cursor.execute(sql.SQL(self._query))
        except psycopg.Error as error:
            raise self._query_failure(error) from None
        if cursor.description is None:
            raise permanent(Reason.QUERY_FAILED, "the query returns no rows; use a SELECT")
        columns = [c.name for c in cursor.description]
        return RowStream(columns, self._fetch(cursor))

    def _fetch(self, cursor: psycopg.ServerCursor[Any]) -> Iterator[Batch]:
        size = self._spec.fetch_size
        try:
            while rows := cursor.fetchmany(size):
                yield rows
        except psycopg.Error as error:
            raise self._query_failure(error) from None


def _join_records(records: list[Any], crlf: bool) -> bytes:
    data = b"".join(records)
    if not crlf:
        return data
    if b'"' not in data:  # no quoted field, so every LF ends a record
        return data.replace(b"\n", b"\r\n")
    return b"\r\n".join([record[:-1] for record in records]) + b"\r\n"


def _next_result(pgconn: Any) -> Any:
    """The next result of the running query, waiting on the socket (interruptibly) while libpq is busy."""
    while pgconn.is_busy():
        select.select([pgconn.socket], [], [])
        pgconn.consume_input()
    return pgconn.get_result()


def _drain(pgconn: Any) -> None:
    while _next_result(pgconn) is not None:
        pass


def _error(pgconn: Any, result: Any) -> psycopg.Error:
    if result is not None and result.status == pq.ExecStatus.FATAL_ERROR:
        return psycopg.errors.error_from_result(result, encoding="utf-8")
    message = pgconn.error_message.decode("utf-8", "replace") or "the connection was lost during COPY"
    return psycopg.OperationalError(message)
