"""What every source is: a context manager that opens a `RowStream`.

`open_source` (in `sources/__init__.py`) builds one from the spec; the engine
enters it before creating the output file (so that an unreachable source fails
before anything is written), takes `stream()` once, and closes it at the end.
"""

from __future__ import annotations

from types import TracebackType

from ..rows import RowStream


class RowSource:
    """Base of the sources. Subclasses implement `stream()` and, when they hold resources, `close()`."""

    kind = "unknown"

    def open(self) -> None:
        """Connect or send the request (called on entering the context), so failures surface early."""

    def stream(self) -> RowStream:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and responses; safe to call twice."""

    def __enter__(self) -> RowSource:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
