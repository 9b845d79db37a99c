"""The PostgreSQL source (psycopg 3): a COPY fast path for CSV, a server-side cursor for everything else.

CSV: the server renders the CSV itself (`COPY (...) TO STDOUT (FORMAT csv)`)
and the rows are streamed to the output as they arrive, with no per-value
Python work. `spec.columns` and the formula guard still hold on this path:
a `LIMIT 0` probe learns the query's column names and types, then the query is
wrapped in a SELECT built with `psycopg.sql` (positional column aliases,
quoted header aliases, the guard as a CASE expression on text-like columns,
booleans as true/false like the Python path) so the server does the work and
numbers are never altered.

`parallelism` N > 1 (CSV): N ranges (of `splitColumn`, or of the table's blocks for `SELECT * FROM
table`) over N connections sharing one exported snapshot; range 0 streams into the output here, ranges
1..N-1 in range processes (`postgres_copy.RangeProcess`) into scratch files appended in order.

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

import os
import select
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import TextLoader

from exportjob.lightspec import plain_table

from .. import formula
from ..credentials import POSTGRES_DSN_ENV
from ..errors import ExportFailure, Reason, permanent
from ..rows import Batch, RowStream, resolve_projection, titles
from .base import RowSource
from .postgres_copy import RangeProcess, RowsCallback, connect, query_failure, single, stream_copy

if TYPE_CHECKING:  # or `exportjob.lightspec` objects: the same attributes
    from exportjob.spec import Column, CsvOptions
    from exportjob.spec import PostgresSource as PostgresSpec

SPILL_COPY_BYTES = 1024 * 1024  # parallel ranges: spilled ranges are appended to the output in blocks of this size
FOLLOW_SECONDS = 0.01  # how often a spill file still being written is read again once the worker has caught up
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10
_BOOL_OID = 16
# pg_type.typcategory of the values the formula guard applies to: string types (text, varchar, char, name,
# citext), enums and user-defined/other types (xml, json, jsonb, hstore, ...: their text can start with anything).
_TEXT_CATEGORIES = ("S", "E", "U", "X")
_COPY_ENCODINGS = {"utf-8": "UTF8", "utf-8-sig": "UTF8", "latin-1": "LATIN1"}
_SESSION_OPTIONS = "-c default_transaction_read_only=on"
_XML_OID = 142
# Text-like types whose text can never start with a trigger character: left out of the guard. uuid (category U)
# always prints as hex digits first; guarding it cost the server ~0.25 us per value (uuid_out twice, the CASE).
_NEVER_TRIGGER_OIDS = frozenset({2950})
_INT_OIDS = (20, 21, 23)  # int8, int2, int4: the types splitColumn accepts


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
        self._connection = connect(
            params, self._dsn, self._spec.statement_timeout_seconds, shared=self._spec.parallelism > 1
        )

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except psycopg.Error:
                pass

    def _query_failure(self, error: psycopg.Error) -> ExportFailure:
        return query_failure(error, self._dsn, self._spec.statement_timeout_seconds)

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
            result = single(self.connection, probe)
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
                found = {int(row[0]) for row in cursor.fetchall()} | ({_XML_OID} & set(oids))
                return found - _NEVER_TRIGGER_OIDS
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
        for query, predicate in self._ranges(names, oids):
            select = sql.SQL("SELECT {} FROM (\n{}\n) AS q({}){}").format(
                sql.SQL(", ").join(items),
                query,
                positional,
                sql.SQL("") if predicate is None else sql.SQL(" WHERE {}").format(predicate),
            )
            statements.append(
                sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER false, DELIMITER {}, ENCODING {})").format(
                    select, sql.Literal(options.delimiter), sql.Literal(_COPY_ENCODINGS[options.encoding])
                )
            )
        return statements, headers

    def _ranges(self, names: list[str], oids: list[int]) -> list[tuple[sql.Composable, sql.Composable | None]]:
        """Per range, in output order: the query to read and a WHERE predicate on its result (or None).

        One range: the query itself. `splitColumn`: equal-width ranges of the key (ascending, NULLs last).
        No splitColumn: the query must read one plain table, cut into ranges of its blocks (`_block_ranges`).
        """
        column = self._spec.split_column
        whole = sql.SQL(self._query)
        if self._spec.parallelism <= 1:
            return [(whole, None)]
        if column is None:
            return [(query, None) for query in self._block_ranges()]
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
            result = single(self.connection, bounds)
        except psycopg.Error as error:
            raise self._query_failure(error) from None
        low, high = result.get_value(0, 0), result.get_value(0, 1)
        if low is None or high is None:
            return [(whole, None)]
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
        return [(whole, predicate) for predicate in predicates]

    def _block_ranges(self) -> list[sql.Composable]:
        """`SELECT * FROM table` cut into ranges of the table's blocks (`ctid` ranges: a TID Range Scan each, so
        no range reads another's blocks, and no bounds query). A sequential scan (synchronize_seqscans off)
        returns the rows in block order, so the ranges in order are the bytes of one connection's export."""
        table = plain_table(self._query)
        if table is None:  # the spec's validation refuses it first; kept for a spec built in code
            raise permanent(
                Reason.INVALID_SPEC,
                "parallelism > 1 needs splitColumn (an integer column of the query to split by), or a query of "
                "the form SELECT * FROM table (split by the table's blocks)",
            )
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT c.relkind::text, c.relhassubclass, pg_relation_size(c.oid) / current_setting("
                    "'block_size')::int8 FROM pg_class c WHERE c.oid = to_regclass(%s)",
                    (table,),
                )
                row = cursor.fetchone()
        except psycopg.Error as error:
            raise self._query_failure(error) from None
        if row is None or row[0] not in ("r", "m") or row[1]:
            raise permanent(
                Reason.INVALID_SPEC,
                f"parallelism > 1 without splitColumn splits a table by its blocks: {table} is not a plain "
                "table or materialized view (a view, a partitioned or inherited table); set splitColumn",
            )
        blocks = int(row[2])
        if blocks <= 1:
            return [sql.SQL(self._query)]
        cuts = split_points(0, blocks - 1, self._spec.parallelism)
        queries: list[sql.Composable] = []
        for number in range(len(cuts) + 1):
            parts = []
            if number > 0:
                parts.append(sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({cuts[number - 1]},0)")))
            if number < len(cuts):
                parts.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({cuts[number]},0)")))
            queries.append(sql.SQL("{} WHERE {}").format(sql.SQL(self._query), sql.SQL(" AND ").join(parts)))
        return queries

    def copy_csv(
        self,
        sink: BinaryIO,
        wanted: Sequence[Column] | None,
        options: CsvOptions,
        progress: RowsCallback | None = None,
        spill: Callable[[], BinaryIO] | None = None,
    ) -> tuple[int, list[str]]:
        """Stream the whole export as CSV into `sink`; return (data rows, header titles).

        With `parallelism` N > 1 the ranges run over N connections sharing one snapshot: the first in
        this process, streaming into `sink`, the others in range processes (`postgres_copy.RangeProcess`)
        streaming into `spill()` files (default: temporary files), appended to `sink` in order (each
        followed while its range still runs), so the file is the one a single connection writes.
        """
        from ..formats.csv_writer import CsvTableWriter

        processes: list[RangeProcess] = []
        try:
            # Started first: their interpreter start-up and psycopg import overlap the probe and bounds queries.
            if self._spec.parallelism > 1:
                for _ in range(1, self._spec.parallelism):
                    file = spill() if spill is not None else tempfile.TemporaryFile()  # noqa: SIM115
                    try:
                        processes.append(RangeProcess(file))
                    except BaseException:
                        file.close()
                        raise
            statements, headers = self.copy_statements(wanted, options)
            for process in processes[len(statements) - 1 :]:  # fewer ranges than asked (a narrow key range)
                process.kill()
            CsvTableWriter(sink, headers, options)  # BOM and header row, byte for byte as the Python path writes them
            crlf = options.line_terminator == "crlf"
            connection = self.connection
            try:
                if len(statements) == 1:
                    rows = stream_copy(connection.pgconn, statements[0].as_bytes(connection), sink, crlf, progress)
                else:
                    rows = self._copy_parallel(
                        [s.as_bytes(connection) for s in statements],
                        sink,
                        crlf,
                        progress,
                        processes[: len(statements) - 1],
                    )
            except psycopg.Error as error:
                raise self._query_failure(error) from None
        except BaseException:
            if processes:  # stop everything: the range processes, and this connection's COPY if it still runs
                for process in processes:
                    process.kill()
                try:
                    self.connection.cancel()
                except psycopg.Error:
                    pass
            raise
        finally:
            for process in processes:
                process.close()
        return rows, headers

    def _copy_parallel(
        self,
        statements: list[bytes],
        sink: BinaryIO,
        crlf: bool,
        progress: RowsCallback | None,
        processes: list[RangeProcess],
    ) -> int:
        """Range 0 on this connection into `sink`, ranges 1.. in the range processes (same snapshot), each into
        its spill file; then the spill files appended in order, each followed while its range still runs
        (`_append_spill`). A range that fails fails the export at once."""
        snapshot = single(self.connection, sql.SQL("SELECT pg_export_snapshot()")).get_value(0, 0).decode("ascii")
        task = {"params": self._params, "dsn": self._dsn, "timeout": self._spec.statement_timeout_seconds}
        for process, statement in zip(processes, statements[1:]):
            process.start({**task, "snapshot": snapshot, "statement": statement.decode("latin-1"), "crlf": crlf})
        pending = {process.stdout: process for process in processes}

        def wait(socket: int) -> None:  # for range 0's data, or a range's reply (a failure is raised at once)
            readable, _, _ = select.select([socket, *pending], [], [])
            for fd in readable:
                if fd != socket:
                    _check_reply(pending.pop(fd))

        rows = stream_copy(self.connection.pgconn, statements[0], sink, crlf, progress, wait)
        for process in processes:
            rows += _append_spill(process, sink, pending)
            if progress is not None:
                progress(rows)
        return rows

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


def _append_spill(process: RangeProcess, sink: BinaryIO, pending: dict[int, RangeProcess]) -> int:
    """Copy a range's spill file to `sink`, following it while the range process still writes it; its rows.

    A range started ~0.2 s after range 0 (its interpreter and psycopg import), so it usually ends later:
    copying (and hashing) what it has written meanwhile uses time the worker would spend waiting, rather
    than copying all of it alone at the end. `os.pread`, because the process writes through the same open
    file (a shared offset). Its reply comes after it closed the file, so once it has replied, reading to
    the end of the file reads everything. Other ranges' replies are checked between blocks (a failure
    fails the export at once); `pending` holds the ranges that have not replied yet.
    """
    fd, offset = process.spill.fileno(), 0
    while True:
        finished = process.stdout not in pending
        try:
            block = os.pread(fd, SPILL_COPY_BYTES, offset)
        except OSError as error:  # reported as the output's write failures are
            failure = getattr(process.spill, "failure", None)
            raise failure(error) if failure is not None else error from None
        if block:
            sink.write(block)
            offset += len(block)
        elif finished:
            return int(process.read_reply()["rows"])
        readable, _, _ = select.select(list(pending), [], [], 0 if block else FOLLOW_SECONDS)
        for ready in readable:
            _check_reply(pending.pop(ready))


def _check_reply(process: RangeProcess) -> None:
    """Raise the failure a range process reported, as it would have been raised in this process."""
    reply = process.read_reply()
    if "rows" in reply:
        return
    if "reason" in reply:
        raise ExportFailure(reply["reason"], reply["message"], retryable=reply["retryable"])
    if "errno" in reply:  # writing its spill file: reported as the output's write failures are
        error = OSError(reply["errno"], os.strerror(reply["errno"]))
        failure = getattr(process.spill, "failure", None)
        raise failure(error) if failure is not None else error
    raise RuntimeError(f"a parallel range failed: {reply.get('crash')}")
