"""A one-line progress bar for the ``shoebox`` command, drawn on a terminal only."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TextIO

_WIDTH = 20  # characters in the bar itself


class Progress:
    """Shows how far a read over many archives has got, on ``stream``.

    Draws only when ``enabled`` (the command passes "stderr is a
    terminal"), so pipes and CI logs stay clean. The line is redrawn when a
    file starts and at most every ``interval`` seconds by :meth:`tick`;
    :meth:`clear` erases it before other output goes to the terminal.
    """

    def __init__(self, stream: TextIO, *, files: int, enabled: bool,
                 clock: Callable[[], float] = time.monotonic, interval: float = 0.2,
                 unit: str = "files") -> None:
        self.stream = stream
        self.enabled = enabled
        self._files = files
        self._unit = unit  # what is counted: "files", "days"
        self._clock = clock
        self._interval = interval
        self._done = 0
        self._name = ""
        self._size: int | None = None
        self._records = 0
        self._bytes = 0  # archive bytes read in finished files
        self._next_draw = 0.0
        self._shown = False

    @property
    def total(self) -> int:
        """How many files (or days…) there are to read, once known."""
        return self._files

    @total.setter
    def total(self, count: int) -> None:
        self._files = count

    def start_file(self, name: str, size: int | None) -> None:
        """Reading moves on to archive ``name`` of ``size`` bytes (if known, uncompressed)."""
        self._name = name
        self._size = size
        if self.enabled:
            self._draw(0)

    def tick(self, records: int, offset: int) -> None:
        """Redraw if it is time: ``records`` read so far in all, ``offset``
        bytes into the current archive."""
        if self.enabled and self._clock() >= self._next_draw:
            self._records = records
            self._draw(offset)

    def finish_file(self, records: int, offset: int) -> None:
        """The current archive is read to its end (``offset`` archive bytes)."""
        self._done += 1
        self._records = records
        self._bytes += offset
        self._size = None

    def clear(self) -> None:
        """Erase the bar, so that other output starts on a clean line."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def _draw(self, offset: int) -> None:
        part = min(1.0, offset / self._size) if self._size else 0.0
        fraction = min(1.0, (self._done + part) / self._files) if self._files else 1.0
        filled = round(fraction * _WIDTH)
        line = (f"[{'#' * filled}{'.' * (_WIDTH - filled)}] "
                f"{self._done}/{self._files} {self._unit}, {self._records:,} records, "
                f"{(self._bytes + offset) / 1e6:,.1f} MB  {self._name}")
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            width = 0
        width = width or 80  # a terminal that does not know its size says 0
        self.stream.write("\r" + line[:max(width - 1, 1)] + "\x1b[K")
        self.stream.flush()
        self._shown = True
        self._next_draw = self._clock() + self._interval
