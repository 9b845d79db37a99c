"""Rows in flight: a `RowStream` (column names + batches of row tuples) and the `spec.columns` projection.

Sources produce a RowStream; the engine projects it onto `spec.columns` and
hands the batches to a format writer. Rows travel in batches (lists of tuples)
so that per-row Python work stays out of the hot path: a projection is one
`map(itemgetter)` per batch, and writers work column-wise per batch.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .errors import Reason, permanent

if TYPE_CHECKING:  # the spec model (pydantic) is not imported by the rows a range process needs
    from exportjob.spec import Column

Row = tuple[Any, ...]
Batch = list[Row]

DEFAULT_BATCH_SIZE = 2_000


@dataclass
class RowStream:
    """Column names and an iterator of row batches; every row has one value per column.

    `total` is the number of rows when the source knows it in advance (for progress bars).
    """

    columns: list[str]
    batches: Iterator[Batch]
    total: int | None = None

    def rows(self) -> Iterator[Row]:
        """The rows one by one (convenient for tests and small consumers; the engine uses batches)."""
        for batch in self.batches:
            yield from batch


def batched(rows: Iterable[Row], size: int = DEFAULT_BATCH_SIZE) -> Iterator[Batch]:
    """Group rows into lists of at most `size` rows (the last one may be shorter; none is empty)."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def from_rows(columns: Sequence[str], rows: Iterable[Row], size: int = DEFAULT_BATCH_SIZE) -> RowStream:
    return RowStream(list(columns), batched(rows, size))


def resolve_projection(available: Sequence[str], wanted: Sequence[Column] | None) -> list[int] | None:
    """Indexes into `available` for each wanted column, or None when the projection changes nothing.

    Raises a permanent InvalidSpec failure naming the unknown column and the available ones.
    """
    if wanted is None:
        return None
    position: dict[str, int] = {}
    for index, name in enumerate(available):
        position.setdefault(name, index)  # a duplicated source name selects its first occurrence
    indexes = []
    for number, column in enumerate(wanted):
        if column.name not in position:
            shown = ", ".join(available[:50]) + (", ..." if len(available) > 50 else "")
            raise permanent(
                Reason.INVALID_SPEC,
                f"spec.columns[{number}].name: the source has no column {column.name!r}; "
                f"available: {shown or '(none)'}",
            )
        indexes.append(position[column.name])
    if indexes == list(range(len(available))):
        return None
    return indexes


def titles(available: Sequence[str], wanted: Sequence[Column] | None) -> list[str]:
    """The header titles: `spec.columns` headers (or names) when given, else the source's names."""
    if wanted is None:
        return list(available)
    return [column.title for column in wanted]


def row_picker(indexes: Sequence[int]) -> Callable[[Row], Row]:
    """A function taking a row to the tuple of its values at `indexes` (itemgetter, C speed)."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda row: (row[only],)
    return itemgetter(*indexes)


def project(stream: RowStream, wanted: Sequence[Column] | None) -> RowStream:
    """Select, order and rename the stream's columns as `spec.columns` says."""
    names = titles(stream.columns, wanted)
    indexes = resolve_projection(stream.columns, wanted)
    if indexes is None:
        return RowStream(names, stream.batches, stream.total)
    pick = row_picker(indexes)
    return RowStream(names, (list(map(pick, batch)) for batch in stream.batches), stream.total)
