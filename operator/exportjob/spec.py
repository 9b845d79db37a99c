"""The ExportJob API: one typed model of `spec`, shared by every part of the project.

The worker validates the spec it is given with `exportjob.lightspec` (the same rules without
pydantic, for its start-up) and falls back to these models for anything else; `exportjob run`
validates local manifests with them, the operator reads ExportJobs through them,
and the CRD's OpenAPI schema is generated from them (`exportjob.crd`), so the
schema the API server enforces and the model the code uses cannot drift.

Field names are camelCase on the wire (Kubernetes convention) and snake_case in
Python. Docstrings of models and `description=` of fields become the CRD's
descriptions, which `kubectl explain exportjob.spec...` shows to users: write
them for users.

This module is pure: it imports neither a Kubernetes client nor Kopf.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .lightspec import API_GROUP as API_GROUP
from .lightspec import API_VERSION as API_VERSION
from .lightspec import KIND as KIND
from .lightspec import MAX_COLUMNS as MAX_COLUMNS
from .lightspec import MAX_INLINE_ROWS as MAX_INLINE_ROWS
from .lightspec import MAX_OUTPUT_PATH_LENGTH as MAX_OUTPUT_PATH_LENGTH
from .lightspec import OBJECT_NAME_PATTERN as _OBJECT_NAME_PATTERN
from .lightspec import PLURAL as PLURAL
from .lightspec import SECRET_KEY_PATTERN as _SECRET_KEY_PATTERN
from .lightspec import SOURCE_KINDS, column_title, parallelism_needs_split, source_kind, usable_delimiter
from .lightspec import check_relative_path as check_relative_path
from .lightspec import plain_table as plain_table


class _Model(BaseModel):
    """Base of every API model: camelCase aliases, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
    )


class SecretKeyRef(_Model):
    """A key of a Secret in the ExportJob's namespace. Secrets are only ever referenced, never inlined."""

    name: str = Field(min_length=1, max_length=253, pattern=_OBJECT_NAME_PATTERN, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, pattern=_SECRET_KEY_PATTERN, description="Key within the Secret.")


class SyntheticSource(_Model):
    """Deterministic, realistic rows (id, uuid, name, email, amount, timestamp, flag, category) for demos and load."""

    records: int = Field(ge=0, le=1_000_000_000, description="Number of rows to generate.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed; the same seed always yields the same rows.")


# A cell of an inline row: a JSON scalar.
InlineCell = str | int | float | bool | None


class InlineSource(_Model):
    """Rows written in the manifest itself, for small exports."""

    columns: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        min_length=1, max_length=MAX_COLUMNS, description="Column names, in order."
    )
    rows: list[Annotated[list[InlineCell], Field(max_length=MAX_COLUMNS)]] = Field(
        default_factory=list,
        max_length=MAX_INLINE_ROWS,
        description="Rows; each is a list of JSON scalars (string, number, boolean or null) with one value per column.",
    )

    @model_validator(mode="after")
    def _rows_match_columns(self) -> InlineSource:
        width = len(self.columns)
        for index, row in enumerate(self.rows):
            if len(row) != width:
                raise ValueError(f"rows[{index}] has {len(row)} values but there are {width} columns")
        return self


class PostgresSource(_Model):
    """Rows of a PostgreSQL query. The connection string (libpq DSN or URI) is read from a Secret."""

    query: str = Field(
        min_length=1, max_length=65_536, description="A single SELECT (or other row-returning) statement."
    )
    connection_secret_ref: SecretKeyRef = Field(description="Secret key holding the libpq connection string.")
    fetch_size: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="Rows fetched per round trip from the server-side cursor (formats other than CSV).",
    )
    statement_timeout_seconds: int | None = Field(
        default=None, ge=1, le=86_400, description="Server-side statement_timeout for the export query."
    )
    parallelism: int = Field(
        default=1,
        ge=1,
        le=16,
        description=(
            "CSV only: connections that export the result at once, each one range of splitColumn (or, without "
            "it, of the table's blocks when the query is SELECT * FROM table), all reading one consistent "
            "snapshot; the ranges are written in ascending order into the one file. 1: one connection, the "
            "query's own order."
        ),
    )
    split_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description=(
            "Integer column of the query's result that parallelism splits into equal-width ranges of its "
            "min..max (rows with NULL keys last); required when parallelism > 1, unless the query is "
            "SELECT * FROM table."
        ),
    )

    @model_validator(mode="after")
    def _a_split_for_parallelism(self) -> PostgresSource:
        if parallelism_needs_split(self.parallelism, self.split_column, self.query):
            raise ValueError(
                "parallelism > 1 needs splitColumn (an integer column of the query to split by), or a query of "
                "the form SELECT * FROM table (split by the table's blocks)"
            )
        return self


class HttpSource(_Model):
    """Rows fetched over HTTP(S) and parsed incrementally while the response streams in."""

    url: str = Field(min_length=1, max_length=4096, pattern=r"^https?://", description="http:// or https:// URL.")
    format: Literal["ndjson", "csv", "json"] = Field(
        default="ndjson",
        description="ndjson: one JSON object per line; csv: a header row then rows; json: one array of objects.",
    )
    timeout_seconds: int = Field(
        default=30,
        ge=1,
        le=3600,
        description=(
            "Seconds for connecting and receiving the response headers, redirects included, in total; then for "
            "each read of the body (the whole export is bounded by activeDeadlineSeconds)."
        ),
    )
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token sent as the Authorization header."
    )


class Source(_Model):
    """Where rows come from. Exactly one of the fields must be set."""

    synthetic: SyntheticSource | None = None
    inline: InlineSource | None = None
    postgres: PostgresSource | None = None
    http: HttpSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        chosen = [name for name in SOURCE_KINDS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "exactly one of synthetic, inline, postgres, http must be set"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        return self

    @property
    def kind(self) -> str:
        """The name of the source that is set: synthetic, inline, postgres or http."""
        return source_kind(self)


class Column(_Model):
    """One output column: which source column, and the header to write for it."""

    name: str = Field(min_length=1, max_length=256, description="Source column name.")
    header: str | None = Field(default=None, max_length=256, description="Header to write; defaults to name.")

    @property
    def title(self) -> str:
        return column_title(self.name, self.header)


class Output(_Model):
    """Where the file is written: a path relative to the root of a PersistentVolumeClaim."""

    claim_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=_OBJECT_NAME_PATTERN,
        description="PersistentVolumeClaim in the ExportJob's namespace; defaults to the operator's default claim.",
    )
    path: str = Field(
        min_length=1,
        max_length=MAX_OUTPUT_PATH_LENGTH,
        description="File path relative to the volume root, e.g. reports/orders.csv. No absolute paths, no '..'.",
    )

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        return check_relative_path(value)


class CsvOptions(_Model):
    """CSV output options (RFC 4180)."""

    delimiter: str = Field(default=",", min_length=1, max_length=1, description="Field delimiter, one character.")
    header: bool = Field(default=True, description="Write a header row.")
    encoding: Literal["utf-8", "utf-8-sig", "latin-1"] = Field(
        default="utf-8", description="utf-8-sig writes a byte-order mark so that Excel detects UTF-8."
    )
    formula_escape: bool = Field(
        default=True,
        description=(
            "Neutralise text cells starting with =, +, -, @, tab or carriage return by prefixing a single quote, "
            "so spreadsheets do not evaluate them (CSV injection). Numbers are never altered."
        ),
    )
    line_terminator: Literal["crlf", "lf"] = Field(default="crlf", description="Record separator; RFC 4180 says crlf.")

    @field_validator("delimiter")
    @classmethod
    def _usable_delimiter(cls, value: str) -> str:
        if not usable_delimiter(value):
            raise ValueError("must not be a double quote, CR, LF or NUL")
        return value


PdfFontName = Literal[
    "DejaVuSans", "NotoSansCJK-SC", "NotoSansCJK-TC", "NotoSansCJK-HK", "NotoSansCJK-JP", "NotoSansCJK-KR"
]


class PdfOptions(_Model):
    """PDF output options: a paginated table."""

    title: str | None = Field(default=None, max_length=256, description="Title printed on every page.")
    orientation: Literal["portrait", "landscape"] = Field(default="landscape", description="Page orientation.")
    page_size: Literal["A4", "A3", "Letter", "Legal"] = Field(default="A4", description="Paper size.")
    font_size: float = Field(default=8.0, ge=5.0, le=14.0, description="Body font size in points.")
    fonts: list[PdfFontName] | None = Field(
        default=None,
        min_length=1,
        max_length=6,
        description=(
            "Font fallback chain, embedded as subsets: each character is printed with the first font that has it "
            "(a character none has prints as '?', counted in replacedGlyphs). Default [DejaVuSans, NotoSansCJK-SC]: "
            "Latin, Greek, Cyrillic, then Chinese/Japanese/Korean. Put e.g. NotoSansCJK-JP first among the CJK "
            "fonts for Japanese glyph forms."
        ),
    )


ExportFormat = Literal["csv", "pdf"]


class ExportJobSpec(_Model):
    """What to export, from where, and to which file. An ExportJob is a request: its spec cannot change once created."""

    format: ExportFormat = Field(description="Output format.")
    source: Source = Field(description="Where rows come from; exactly one source.")
    columns: list[Column] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_COLUMNS,
        description="Select, rename and order output columns; all source columns in source order when omitted.",
    )
    output: Output = Field(description="Destination file on a PersistentVolumeClaim.")
    csv: CsvOptions | None = Field(default=None, description="CSV options; only with format csv.")
    pdf: PdfOptions | None = Field(default=None, description="PDF options; only with format pdf.")
    priority: int = Field(
        default=0,
        ge=-1000,
        le=1000,
        description=(
            "Order among this namespace's waiting exports: higher first, equal priorities by creation time. "
            "It never moves an export ahead of another namespace's: free slots are shared fairly across namespaces."
        ),
    )
    backoff_limit: int | None = Field(
        default=None, ge=0, le=20, description="Retries of retryable failures; operator default when omitted."
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 86_400,
        description="Wall-clock limit of the export once admitted; operator default when omitted.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86_400,
        description=(
            "Seconds to keep the finished worker Job (not the file, not this ExportJob); operator default when omitted."
        ),
    )

    @model_validator(mode="after")
    def _options_match_format(self) -> ExportJobSpec:
        if self.pdf is not None and self.format != "pdf":
            raise ValueError("pdf options are only allowed with format: pdf")
        if self.csv is not None and self.format != "csv":
            raise ValueError("csv options are only allowed with format: csv")
        return self

    @property
    def csv_options(self) -> CsvOptions:
        return self.csv if self.csv is not None else CsvOptions()

    @property
    def pdf_options(self) -> PdfOptions:
        return self.pdf if self.pdf is not None else PdfOptions()


class ObjectMeta(_Model):
    """The part of Kubernetes object metadata a local manifest may carry; the rest is ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)
    name: str = Field(default="export", min_length=1, max_length=253)
    namespace: str | None = None


class ExportJobManifest(_Model):
    """A whole ExportJob manifest, as written in a YAML file for `exportjob run` or `kubectl apply`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)
    api_version: Literal["exportjob.io/v1alpha1"]
    kind: Literal["ExportJob"]
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ExportJobSpec


class SpecError(ValueError):
    """An invalid spec or manifest; the message names every bad field by its wire path."""


def _field_path(location: tuple[int | str, ...], prefix: str) -> str:
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", part):
            path += f".{part}" if path else part
        # Skip pydantic's union-branch labels such as 'function-after[...]' or 'str'.
    return path


def describe_validation_error(error: ValidationError, prefix: str) -> str:
    """One line per problem, each naming the field by its camelCase path, e.g. `spec.output.path: ...`."""
    lines = []
    for problem in error.errors(include_url=False):
        location = tuple(problem.get("loc", ()))
        message = problem["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        lines.append(f"{_field_path(location, prefix) or prefix}: {message}")
    return "\n".join(dict.fromkeys(lines))


def parse_spec(data: Any) -> ExportJobSpec:
    """Validate a spec mapping (wire format, camelCase); raise SpecError naming the bad fields."""
    try:
        return ExportJobSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(describe_validation_error(error, "spec")) from None


def parse_manifest(data: Any) -> ExportJobManifest:
    """Validate a whole ExportJob manifest; raise SpecError naming the bad fields."""
    try:
        return ExportJobManifest.model_validate(data)
    except ValidationError as error:
        raise SpecError(describe_validation_error(error, "")) from None


def spec_to_wire(spec: ExportJobSpec) -> dict[str, Any]:
    """The spec as the API server stores it: camelCase, without unset optional fields."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)
