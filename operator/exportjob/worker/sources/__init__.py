"""The row sources, and `open_source`, which builds the one a spec names.

Each source streams (none loads the whole result) and is a context manager:
see `base.RowSource`. The PostgreSQL source additionally offers `copy_csv`,
the COPY fast path the engine uses for CSV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import RowSource

if TYPE_CHECKING:  # a PostgreSQL range process imports this package: it needs neither (nor pydantic)
    from exportjob.spec import ExportJobSpec

    from ..credentials import Credentials


def open_source(spec: ExportJobSpec, credentials: Credentials) -> RowSource:
    """The (not yet opened) source for `spec.source`; enter it to connect."""
    source = spec.source
    if source.synthetic is not None:
        from .synthetic import SyntheticSource

        return SyntheticSource(source.synthetic.records, source.synthetic.seed)
    if source.inline is not None:
        from .inline import InlineSource

        return InlineSource(source.inline)
    if source.postgres is not None:
        from .postgres import PostgresSource

        return PostgresSource(source.postgres, credentials.postgres_dsn)
    if source.http is not None:
        from ..egress import EgressConfigError, EgressPolicy
        from ..errors import Reason, permanent
        from .http import HttpSource

        try:
            egress = EgressPolicy.from_env()
        except EgressConfigError as error:  # the operator's worker settings, not the user's spec
            raise permanent(Reason.INVALID_SPEC, f"the worker's egress setting is invalid: {error}") from None
        return HttpSource(source.http, spec.columns, credentials.http_bearer_token, egress)
    raise AssertionError(f"unknown source kind {source.kind!r}")


__all__ = ["RowSource", "open_source"]
