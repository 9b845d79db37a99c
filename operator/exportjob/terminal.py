"""One status line redrawn in place on a terminal (progress of `exportjob run` and `exportjob download`)."""

from __future__ import annotations

from typing import TextIO


class StatusLine:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._drawn = False

    def draw(self, text: str) -> None:
        """Replace the line with `text` (carriage return, then erase to the end of the line)."""
        self._stream.write("\r" + text + "\x1b[K")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """End the line, if one was drawn, so later output starts on a fresh one."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
