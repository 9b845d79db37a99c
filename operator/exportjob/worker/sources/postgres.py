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
import tempfile
import threading
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

FLUSH_BYTES = 256 * 1024  # COPY rows are gathered up to this size, then written (and hashed) at once
SPILL_COPY_BYTES = 1024 * 1024  # parallel ranges: spilled ranges are appended to the output in blocks of this size
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10
_BOOL_OID = 16
# pg_type.typcategory of the values the formula guard applies to: string types (text, varchar, char, name,
# citext), enums and user-defined/other types (xml, json, jsonb, hstore, ...: their text can start with anything).
_TEXT_CATEGORIES = ("S", "E", "U", "X")
_COPY_ENCODINGS = {"utf-8": "UTF8", "utf-8-sig": "UTF8", "latin-1": "LATIN1"}
# Login problems that a retry cannot fix (checked on the connect error's text; libpq gives no SQLSTATE there).
_LOGIN_REJECTED = re.compile(
    r"password authentication failed|no password supplied|authentication failed|"
    r"role \".*\" does not exist|database \".*\" does not exist|pg_hba\.conf|"
    r"permission denied for database|SSL .*required",
    re.IGNORECASE,
)
# libpq's complaints about a parameter value of the DSN (port=notaport, sslmode=bogus, ...): permanent.
_INVALID_PARAMETER = re.compile(
    r"invalid (integer value|port number|\w+ value|connection option|\w+ method)|"
    r"unrecognized (value|option)|could not parse",
    re.IGNORECASE,
)
_SESSION_OPTIONS = "-c default_transaction_read_only=on"
_XML_OID = 142
_INT_OIDS = (20, 21, 23)  # int8, int2, int4: the types splitColumn accepts
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
        # The session itself is read-only (not only the transaction), so that nothing the query does can
        # start a writable transaction; `-c` options are applied by the server at login.
        params["options"] = (str(params.get("options") or "") + " " + _SESSION_OPTIONS).strip()
        self._params = params
        self._connection = self._connect()

    def _connect(self, snapshot: str | None = None) -> psycopg.Connection[Any]:
        """One more connection with the export's settings, in a READ ONLY transaction (REPEATABLE READ when
        several connections share one snapshot)."""
        try:
            connection = psycopg.connect(**self._params)
        except psycopg.Error as error:
            raise self._connect_failure(error) from None
        try:
            connection.read_only = True
            if self._spec.parallelism > 1:
                connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            settings = {"cursor_tuple_fraction": "1", "synchronize_seqscans": "off"}
            if self._spec.statement_timeout_seconds is not None:
                settings["statement_timeout"] = f"{self._spec.statement_timeout_seconds}s"
            with connection.cursor() as cursor:
                if snapshot is not None:  # must be the transaction's first statement
                    cursor.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                for name, value in settings.items():
                    cursor.execute("SELECT set_config(%s, %s, true)", (name, value))
        except psycopg.Error as error:
            connection.close()
            raise self._query_failure(error) from None
        return connection

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except psycopg.Error:
                pass

    def _connect_failure(self, error: psycopg.Error) -> ExportFailure:
        text = _one_line(redact(str(error), [self._dsn]))
        if _INVALID_PARAMETER.search(text):
            return permanent(
                Reason.INVALID_CREDENTIALS,
                f"the PostgreSQL connection string has an invalid parameter (fix the connection Secret): {text}",
            )
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

    @staticmethod
    def copy_supported(options: CsvOptions) -> bool:
        """Whether COPY can render this CSV: it takes only a one-byte delimiter (others use the cursor path)."""
        return options.delimiter.isascii() and options.delimiter != "\x00"

    def describe(self) -> tuple[list[str], list[int]]:
        """Column names and type OIDs of the query, from a `LIMIT 0` probe."""
        probe = sql.SQL("SELECT * FROM (\n{}\n) AS q LIMIT 0").format(sql.SQL(self._query))
        try:
            result = _single(self.connection, probe)
        except psycopg.Error as error:
            raise self._query_failure(error) from None
        if result.nfields == 0:
            raise permanent(Reason.QUERY_FAILED, "the query returns no columns; use a SELECT")
        names = [(result.fname(i) or b"").decode("utf-8", "replace") for i in range(result.nfields)]
        return names, [result.ftype(i) for i in range(result.nfields)]

    def _text_like(self, oids: Sequence[int]) -> set[int]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT oid::int8 FROM pg_type WHERE oid = ANY(%s::oid[]) AND typcategory = ANY(%s)",
                    (list(set(oids)), list(_TEXT_CATEGORIES)),
                )
                return {int(row[0]) for row in cursor.fetchall()} | ({_XML_OID} & set(oids))
        except psycopg.Error as error:
            raise self._query_failure(error) from None

    def copy_statements(
        self, wanted: Sequence[Column] | None, options: CsvOptions
    ) -> tuple[list[sql.Composed], list[str]]:
        """The COPY statements that render the export server-side (one per range), and the header titles.

        The header row is not COPY's: PostgreSQL cuts identifiers to 63 bytes, so the worker writes the
        titles itself (exactly as the Python CSV path does) and every COPY runs with HEADER false.
        """
        names, oids = self.describe()
        indexes = resolve_projection(names, wanted)
        if indexes is None:
            indexes = list(range(len(names)))
        headers = titles(names, wanted)
        text_like = self._text_like([oids[i] for i in indexes]) if options.formula_escape else set()
        items = []
        for position, index in enumerate(indexes):
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
            items.append(sql.SQL("{} AS {}").format(expression, sql.Identifier(f"o{position}")))
        # Positional aliases (q(c0, c1, ...)) so that duplicated or odd column names stay addressable.
        positional = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(names)))
        statements = []
        for predicate in self._ranges(names, oids):
            select = sql.SQL("SELECT {} FROM (\n{}\n) AS q({}){}").format(
                sql.SQL(", ").join(items),
                sql.SQL(self._query),
                positional,
                sql.SQL("") if predicate is None else sql.SQL(" WHERE {}").format(predicate),
            )
            statements.append(
                sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER false, DELIMITER {}, ENCODING {})").format(
                    select, sql.Literal(options.delimiter), sql.Literal(_COPY_ENCODINGS[options.encoding])
                )
            )
        return statements, headers

    def _ranges(self, names: list[str], oids: list[int]) -> list[sql.Composable | None]:
        """One WHERE predicate per range of `splitColumn` (ascending, NULLs last), or [None] for one range."""
        column = self._spec.split_column
        if self._spec.parallelism <= 1 or column is None:
            return [None]
        if column not in names:
            raise permanent(
                Reason.INVALID_SPEC, f"splitColumn {column!r} is not a column of the query (it has: {', '.join(names)})"
            )
        index = names.index(column)
        if oids[index] not in _INT_OIDS:
            raise permanent(Reason.INVALID_SPEC, f"splitColumn {column!r} must be an integer column (int2/4/8)")
        key = sql.SQL("q.{}").format(sql.Identifier(f"c{index}"))
        positional = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(names)))
        bounds = sql.SQL("SELECT min({k})::int8, max({k})::int8 FROM (\n{q}\n) AS q({p})").format(
            k=key, q=sql.SQL(self._query), p=positional
        )
        try:
            result = _single(self.connection, bounds)
        except psycopg.Error as error:
            raise self._query_failure(error) from None
        low, high = result.get_value(0, 0), result.get_value(0, 1)
        if low is None or high is None:
            return [None]
        cuts = split_points(int(low), int(high), self._spec.parallelism)
        predicates: list[sql.Composable | None] = []
        for number in range(len(cuts) + 1):
            parts = []
            if number > 0:
                parts.append(sql.SQL("{} >= {}").format(key, sql.Literal(cuts[number - 1])))
            if number < len(cuts):
                parts.append(sql.SQL("{} < {}").format(key, sql.Literal(cuts[number])))
            if number == len(cuts):  # the last range also takes the NULL keys (they sort last)
                parts = [sql.SQL("({} OR {} IS NULL)").format(sql.SQL(" AND ").join(parts) or sql.SQL("true"), key)]
            predicates.append(sql.SQL(" AND ").join(parts))
        return predicates

    def copy_csv(
        self,
        sink: BinaryIO,
        wanted: Sequence[Column] | None,
        options: CsvOptions,
        progress: RowsCallback | None = None,
        spill: Callable[[], BinaryIO] | None = None,
    ) -> tuple[int, list[str]]:
        """Stream the whole export as CSV into `sink`; return (data rows, header titles).

        With `parallelism` N > 1 the ranges run over N connections sharing one snapshot; the first
        streams into `sink`, the others into `spill()` files (default: temporary files), appended to
        `sink` in order once the first is done, so the file is the one a single connection writes.
        """
        from ..formats.csv_writer import CsvTableWriter

        statements, headers = self.copy_statements(wanted, options)
        CsvTableWriter(sink, headers, options)  # BOM and header row, byte for byte as the Python path writes them
        crlf = options.line_terminator == "crlf"
        connection = self.connection
        try:
            if len(statements) == 1:
                rows = _stream_copy(connection.pgconn, statements[0].as_bytes(connection), sink, crlf, progress)
            else:
                rows = self._copy_parallel([s.as_bytes(connection) for s in statements], sink, crlf, progress, spill)
        except psycopg.Error as error:
            raise self._query_failure(error) from None
        return rows, headers

    def _copy_parallel(
        self,
        statements: list[bytes],
        sink: BinaryIO,
        crlf: bool,
        progress: RowsCallback | None,
        spill: Callable[[], BinaryIO] | None,
    ) -> int:
        """Range 0 on this connection into `sink`, ranges 1.. on new connections (same snapshot) into spill files."""
        snapshot = _single(self.connection, sql.SQL("SELECT pg_export_snapshot()")).get_value(0, 0)
        others: list[psycopg.Connection[Any]] = []
        files: list[BinaryIO] = []
        outcomes: list[int | BaseException] = [0] * len(statements)
        threads: list[threading.Thread] = []

        def run(number: int) -> None:
            try:
                pgconn = others[number - 1].pgconn
                outcomes[number] = _stream_copy(pgconn, statements[number], files[number - 1], crlf, None)
            except BaseException as error:  # handed to the main thread
                outcomes[number] = error

        try:
            for number in range(1, len(statements)):
                others.append(self._connect(snapshot.decode("ascii")))
                files.append(spill() if spill is not None else tempfile.TemporaryFile())  # noqa: SIM115
                threads.append(threading.Thread(target=run, args=(number,), name=f"copy-range-{number}", daemon=True))
            for thread in threads:
                thread.start()
            rows = _stream_copy(self.connection.pgconn, statements[0], sink, crlf, progress)
            for thread in threads:
                thread.join()
            for outcome, file in zip(outcomes[1:], files):
                if isinstance(outcome, BaseException):
                    raise outcome
                file.seek(0)
                while block := file.read(SPILL_COPY_BYTES):
                    sink.write(block)
                rows += outcome
                if progress is not None:
                    progress(rows)
            return rows
        except BaseException:
            for connection in others:
                try:
                    connection.cancel()
                except psycopg.Error:
                    pass
            for thread in threads:
                thread.join(timeout=10)
            raise
        finally:
            for connection in others:
                connection.close()
            for file in files:
                file.close()

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


def split_points(low: int, high: int, parts: int) -> list[int]:
    """Ascending cut points splitting the integers low..high into at most `parts` equal-width ranges."""
    span = high - low + 1
    parts = max(1, min(parts, span))
    width = -(-span // parts)
    return [low + width * i for i in range(1, parts) if low + width * i <= high]


def _single(connection: psycopg.Connection[Any], statement: sql.Composable) -> Any:
    """Run one statement with the extended query protocol, which refuses more than one; its result."""
    pgconn = connection.pgconn
    pgconn.send_query_params(statement.as_bytes(connection), None)
    result = _next_result(pgconn)
    _drain(pgconn)
    if result is None or result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        raise _error(pgconn, result)
    return result


def _stream_copy(pgconn: Any, statement: bytes, sink: BinaryIO, crlf: bool, progress: RowsCallback | None) -> int:
    """Run one COPY TO STDOUT on the libpq connection directly; return the number of CSV records written.

    The extended query protocol (`send_query_params`) runs exactly one statement: a query that
    closes the wrapping subquery and appends `; COMMIT; DROP ...` is a syntax error, not a script.
    psycopg's `Copy` iterator costs ~0.5 us of Python per row in its wait machinery, more than
    the server needs to produce the row; this loop reads libpq's buffer without blocking and
    waits on the socket with `select` only when it is empty (so signals still interrupt it).
    Measured at 1M rows: ~1.9M rows/s vs ~1.1M rows/s through `Copy` (and psql ~1.4M rows/s).
    The server sends exactly one CopyData message per CSV record, each ending with "\n"
    (protocol docs), which is what makes the crlf rewrite safe.
    """
    pgconn.send_query_params(statement, None)
    result = _next_result(pgconn)
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _drain(pgconn)
        raise _error(pgconn, result)
    get_copy_data, socket, consume_input = pgconn.get_copy_data, pgconn.socket, pgconn.consume_input
    pending: list[Any] = []
    append = pending.append
    size = records = 0
    while True:
        nbytes, data = get_copy_data(1)
        while nbytes > 0:  # everything libpq's buffer holds (bounded by the buffer), then flush and wait
            append(data)
            size += nbytes
            nbytes, data = get_copy_data(1)
        if size >= FLUSH_BYTES:
            sink.write(_join_records(pending, crlf))
            records += len(pending)
            pending.clear()
            size = 0
            if progress is not None:
                progress(records)
        if nbytes == 0:  # libpq's buffer is empty: wait for the socket, then read what arrived
            select.select([socket], [], [])
            consume_input()
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
