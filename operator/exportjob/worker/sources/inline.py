"""The inline source: the rows written in the manifest itself (small by construction: the spec caps them)."""

from __future__ import annotations

from exportjob.spec import InlineSource as InlineSpec

from ..rows import RowStream, from_rows
from .base import RowSource


class InlineSource(RowSource):
    kind = "inline"

    def __init__(self, spec: InlineSpec) -> None:
        self._spec = spec

    def stream(self) -> RowStream:
        stream = from_rows(self._spec.columns, (tuple(row) for row in self._spec.rows))
        stream.total = len(self._spec.rows)
        return stream
