"""The ExportJob spec without pydantic: the worker's fast check, and the pure rules the models share.

Every export pays its worker's start-up, and importing pydantic and building the models of
`exportjob.spec` costs ~0.13-0.15 s of CPU, more than the rest of the worker's imports together
(PostgreSQL aside). The operator validated the spec before it created the Job, but the worker still
checks what it is given (a Job can be created by hand; `exportjob run` reads local files).

`parse(data)` checks a spec (wire format, camelCase) against the models' rules and returns plain
named tuples with the models' field names, defaults and properties (`Source.kind`, `Column.title`,
`csv_options`, `pdf_options`), which the worker reads exactly as it reads the models. It returns None
for anything outside its exact rules: invalid specs, and also valid but unusual spellings the models
accept (snake_case keys, "5" or 5.0 for an integer, 1 for a boolean). The caller then validates with
the models (`exportjob.spec.parse_spec`), which name every bad field, or accept the spec after all.
So this module accepts a subset of what the models accept, never more, and with the same values:
tests/unit/test_lightspec.py checks that on generated mutations of every field, and that each class
here has its model's fields and defaults.

Also home of the rules both use, so that the worker imports them without pydantic:
`check_relative_path`, `plain_table` and the API's names (re-exported by `exportjob.spec`). Pure.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, NamedTuple

API_GROUP = "exportjob.io"
API_VERSION = "v1alpha1"
KIND = "ExportJob"
PLURAL = "exportjobs"

# DNS-1123 subdomain, as Kubernetes requires for object names (Secrets, PVCs).
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Keys of Secret data, as Kubernetes accepts them.
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

MAX_OUTPUT_PATH_LENGTH = 1024
MAX_INLINE_ROWS = 10_000
MAX_COLUMNS = 512

# `SELECT * FROM table` (an identifier, maybe schema-qualified and quoted): what parallelism may split by the
# table's blocks without a splitColumn (the worker checks that it is a plain table).
_IDENTIFIER = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_PLAIN_TABLE = re.compile(rf"select\s+\*\s+from\s+({_IDENTIFIER}(?:\s*\.\s*{_IDENTIFIER})?)", re.IGNORECASE)


def plain_table(query: str) -> str | None:
    """The table of a query `SELECT * FROM table` (trailing `;` and spaces ignored), else None."""
    match = _PLAIN_TABLE.fullmatch(query.strip().rstrip(";").strip())
    return match.group(1) if match else None


def check_relative_path(path: str) -> str:
    """Return `path` if it is a safe relative POSIX path, else raise ValueError saying why.

    Safe means: not empty, not absolute, no `..` segment, no NUL, no backslash,
    and not naming a directory. This is the lexical check; the worker also
    resolves symlinks at write time, which only it can do.
    """
    if not path:
        raise ValueError("must not be empty")
    if "\x00" in path or "\\" in path:
        raise ValueError("must not contain NUL or backslash characters")
    if path.startswith("/"):
        raise ValueError("must be relative to the volume root, not absolute")
    if ".." in path.split("/"):
        raise ValueError("must not contain '..' segments")
    if path.endswith("/") or posixpath.basename(path) in ("", "."):
        raise ValueError("must name a file, not a directory")
    return path


def parallelism_needs_split(parallelism: int, split_column: str | None, query: str) -> bool:
    """Whether `parallelism` > 1 lacks what it splits by: a splitColumn, or a query `SELECT * FROM table`."""
    return parallelism > 1 and split_column is None and plain_table(query) is None


def usable_delimiter(value: str) -> bool:
    return value not in ('"', "\r", "\n", "\x00")


SOURCE_KINDS = ("synthetic", "inline", "postgres", "http")


def source_kind(source: Any) -> str:
    """The name of the source that is set (a validated Source, of either module, has exactly one)."""
    for name in SOURCE_KINDS:
        if getattr(source, name) is not None:
            return name
    raise AssertionError("validated Source has no source set")


def column_title(name: str, header: str | None) -> str:
    """The header written for a column: its `header`, else its name."""
    return header if header is not None else name


# -- the fast check --------------------------------------------------------------------------------

# The models' patterns, anchored at the very end (pydantic's `$` does not match before a final newline).
_OBJECT_NAME = re.compile(OBJECT_NAME_PATTERN.rstrip("$") + r"\Z")
_SECRET_KEY = re.compile(SECRET_KEY_PATTERN.rstrip("$") + r"\Z")
_HTTP_URL = re.compile(r"https?://")
PDF_FONT_NAMES = (
    "DejaVuSans",
    "NotoSansCJK-SC",
    "NotoSansCJK-TC",
    "NotoSansCJK-HK",
    "NotoSansCJK-JP",
    "NotoSansCJK-KR",
)


class _Outside(Exception):
    """The spec is not one this module accepts: the models decide."""


class SecretKeyRef(NamedTuple):
    name: str
    key: str


class SyntheticSource(NamedTuple):
    records: int
    seed: int = 0


class InlineSource(NamedTuple):
    columns: list[str]
    rows: list[list[str | int | float | bool | None]]  # the model's default is [] (parse always sets it)


class PostgresSource(NamedTuple):
    query: str
    connection_secret_ref: SecretKeyRef
    fetch_size: int = 10_000
    statement_timeout_seconds: int | None = None
    parallelism: int = 1
    split_column: str | None = None


class HttpSource(NamedTuple):
    url: str
    format: str = "ndjson"
    timeout_seconds: int = 30
    bearer_token_secret_ref: SecretKeyRef | None = None


class Source(NamedTuple):
    synthetic: SyntheticSource | None = None
    inline: InlineSource | None = None
    postgres: PostgresSource | None = None
    http: HttpSource | None = None

    @property
    def kind(self) -> str:
        return source_kind(self)


class Column(NamedTuple):
    name: str
    header: str | None = None

    @property
    def title(self) -> str:
        return column_title(self.name, self.header)


class Output(NamedTuple):
    path: str
    claim_name: str | None = None


class CsvOptions(NamedTuple):
    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    formula_escape: bool = True
    line_terminator: str = "crlf"


class PdfOptions(NamedTuple):
    title: str | None = None
    orientation: str = "landscape"
    page_size: str = "A4"
    font_size: float = 8.0
    fonts: list[str] | None = None


class ExportJobSpec(NamedTuple):
    format: str
    source: Source
    output: Output
    columns: list[Column] | None = None
    csv: CsvOptions | None = None
    pdf: PdfOptions | None = None
    priority: int = 0
    backoff_limit: int | None = None
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None

    @property
    def csv_options(self) -> CsvOptions:  # `or`: a set option is a non-empty tuple
        return self.csv or CsvOptions()

    @property
    def pdf_options(self) -> PdfOptions:
        return self.pdf or PdfOptions()


def _object(value: Any, keys: frozenset[str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if type(value) is not dict or not keys.issuperset(value) or any(key not in value for key in required):
        raise _Outside
    return value


def _int(value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _Outside
    return value


def _optional_int(value: Any, low: int, high: int) -> int | None:
    return None if value is None else _int(value, low, high)


def _str(value: Any, low: int, high: int, pattern: re.Pattern[str] | None = None) -> str:
    if type(value) is not str or not low <= len(value) <= high or (pattern is not None and not pattern.match(value)):
        raise _Outside
    try:
        value.encode("utf-8")  # a lone surrogate (json.loads makes them from "\ud800"): the models decide
    except UnicodeEncodeError:
        raise _Outside from None
    return value


def _optional_str(value: Any, low: int, high: int, pattern: re.Pattern[str] | None = None) -> str | None:
    return None if value is None else _str(value, low, high, pattern)


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Outside
    return value


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if type(value) is not str or value not in choices:
        raise _Outside
    return value


def _list(value: Any, low: int, high: int) -> list[Any]:
    if type(value) is not list or not low <= len(value) <= high:
        raise _Outside
    return value


def _secret_ref(value: Any) -> SecretKeyRef:
    data = _object(value, frozenset({"name", "key"}), ("name", "key"))
    return SecretKeyRef(_str(data["name"], 1, 253, _OBJECT_NAME), _str(data["key"], 1, 253, _SECRET_KEY))


def _synthetic(value: Any) -> SyntheticSource:
    data = _object(value, frozenset({"records", "seed"}), ("records",))
    return SyntheticSource(_int(data["records"], 0, 1_000_000_000), _int(data.get("seed", 0), 0, 2**31 - 1))


_CELL_TYPES = (str, int, float, bool, type(None))


def _inline(value: Any) -> InlineSource:
    data = _object(value, frozenset({"columns", "rows"}), ("columns",))
    columns = [_str(name, 1, 256) for name in _list(data["columns"], 1, MAX_COLUMNS)]
    rows = _list(data.get("rows", []), 0, MAX_INLINE_ROWS)
    for row in rows:
        if len(_list(row, 0, MAX_COLUMNS)) != len(columns):
            raise _Outside
        for cell in row:
            if type(cell) not in _CELL_TYPES:
                raise _Outside
            if type(cell) is str:
                _str(cell, 0, len(cell))
    return InlineSource(columns, [list(row) for row in rows])


_POSTGRES_KEYS = frozenset(
    {"query", "connectionSecretRef", "fetchSize", "statementTimeoutSeconds", "parallelism", "splitColumn"}
)


def _postgres(value: Any) -> PostgresSource:
    data = _object(value, _POSTGRES_KEYS, ("query", "connectionSecretRef"))
    source = PostgresSource(
        query=_str(data["query"], 1, 65_536),
        connection_secret_ref=_secret_ref(data["connectionSecretRef"]),
        fetch_size=_int(data.get("fetchSize", 10_000), 100, 1_000_000),
        statement_timeout_seconds=_optional_int(data.get("statementTimeoutSeconds"), 1, 86_400),
        parallelism=_int(data.get("parallelism", 1), 1, 16),
        split_column=_optional_str(data.get("splitColumn"), 1, 256),
    )
    if parallelism_needs_split(source.parallelism, source.split_column, source.query):
        raise _Outside
    return source


def _http(value: Any) -> HttpSource:
    data = _object(value, frozenset({"url", "format", "timeoutSeconds", "bearerTokenSecretRef"}), ("url",))
    token = data.get("bearerTokenSecretRef")
    return HttpSource(
        url=_str(data["url"], 1, 4096, _HTTP_URL),
        format=_choice(data.get("format", "ndjson"), ("ndjson", "csv", "json")),
        timeout_seconds=_int(data.get("timeoutSeconds", 30), 1, 3600),
        bearer_token_secret_ref=None if token is None else _secret_ref(token),
    )


def _source(value: Any) -> Source:
    data = _object(value, frozenset(SOURCE_KINDS))
    if sum(data.get(name) is not None for name in SOURCE_KINDS) != 1:
        raise _Outside
    synthetic, inline, postgres, http = (data.get(name) for name in SOURCE_KINDS)
    return Source(
        synthetic=None if synthetic is None else _synthetic(synthetic),
        inline=None if inline is None else _inline(inline),
        postgres=None if postgres is None else _postgres(postgres),
        http=None if http is None else _http(http),
    )


def _column(value: Any) -> Column:
    data = _object(value, frozenset({"name", "header"}), ("name",))
    return Column(_str(data["name"], 1, 256), _optional_str(data.get("header"), 0, 256))


def _output(value: Any) -> Output:
    data = _object(value, frozenset({"claimName", "path"}), ("path",))
    path = _str(data["path"], 1, MAX_OUTPUT_PATH_LENGTH)
    try:
        check_relative_path(path)
    except ValueError:
        raise _Outside from None
    return Output(path=path, claim_name=_optional_str(data.get("claimName"), 0, 253, _OBJECT_NAME))


_CSV_KEYS = frozenset({"delimiter", "header", "encoding", "formulaEscape", "lineTerminator"})


def _csv(value: Any) -> CsvOptions:
    data = _object(value, _CSV_KEYS)
    delimiter = _str(data.get("delimiter", ","), 1, 1)
    if not usable_delimiter(delimiter):
        raise _Outside
    return CsvOptions(
        delimiter=delimiter,
        header=_bool(data.get("header", True)),
        encoding=_choice(data.get("encoding", "utf-8"), ("utf-8", "utf-8-sig", "latin-1")),
        formula_escape=_bool(data.get("formulaEscape", True)),
        line_terminator=_choice(data.get("lineTerminator", "crlf"), ("crlf", "lf")),
    )


def _pdf(value: Any) -> PdfOptions:
    data = _object(value, frozenset({"title", "orientation", "pageSize", "fontSize", "fonts"}))
    size = data.get("fontSize", 8.0)
    if type(size) not in (int, float) or not 5.0 <= size <= 14.0:
        raise _Outside
    fonts = data.get("fonts")
    return PdfOptions(
        title=_optional_str(data.get("title"), 0, 256),
        orientation=_choice(data.get("orientation", "landscape"), ("portrait", "landscape")),
        page_size=_choice(data.get("pageSize", "A4"), ("A4", "A3", "Letter", "Legal")),
        font_size=float(size),
        fonts=None if fonts is None else [_choice(name, PDF_FONT_NAMES) for name in _list(fonts, 1, 6)],
    )


_SPEC_KEYS = frozenset(
    {
        "format",
        "source",
        "columns",
        "output",
        "csv",
        "pdf",
        "priority",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    }
)


def parse(data: Any) -> ExportJobSpec | None:
    """The spec as plain objects when it is valid and spelled as the operator writes it; else None (see above)."""
    try:
        spec = _object(data, _SPEC_KEYS, ("format", "source", "output"))
        columns = spec.get("columns")
        csv, pdf = spec.get("csv"), spec.get("pdf")
        result = ExportJobSpec(
            format=_choice(spec["format"], ("csv", "pdf")),
            source=_source(spec["source"]),
            output=_output(spec["output"]),
            columns=None if columns is None else [_column(c) for c in _list(columns, 1, MAX_COLUMNS)],
            csv=None if csv is None else _csv(csv),
            pdf=None if pdf is None else _pdf(pdf),
            priority=_int(spec.get("priority", 0), -1000, 1000),
            backoff_limit=_optional_int(spec.get("backoffLimit"), 0, 20),
            active_deadline_seconds=_optional_int(spec.get("activeDeadlineSeconds"), 1, 7 * 86_400),
            ttl_seconds_after_finished=_optional_int(spec.get("ttlSecondsAfterFinished"), 0, 30 * 86_400),
        )
    except _Outside:
        return None
    if (result.pdf is not None and result.format != "pdf") or (result.csv is not None and result.format != "csv"):
        return None
    return result
