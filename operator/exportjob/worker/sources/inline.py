"""The inline source: the rows written in the manifest itself (small by construction: the spec caps them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..rows import RowStream, from_rows
from .base import RowSource

if TYPE_CHECKING:  # or `exportjob.lightspec.InlineSource`: the same attributes
    from exportjob.spec import InlineSource as InlineSpec


class InlineSource(RowSource):
    kind = "inline"

    def __init__(self, spec: InlineSpec) -> None:
        self._spec = spec

    def stream(self) -> RowStream:
        stream = from_rows(self._spec.columns, (tuple(row) for row in self._spec.rows))
        stream.total = len(self._spec.rows)
        return stream
