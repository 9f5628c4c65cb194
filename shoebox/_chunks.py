"""Helpers for data that streams by in chunks: a reader that copies what it
reads to other consumers, and a walker that follows length-prefixed units
(records, zstd frames and blocks) across chunk boundaries."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

_CHUNK = 1 << 20


class TeeReader:
    """A read-only stream over ``source`` that passes every chunk read to each
    of ``sinks`` (a hash's ``update``, a compressor's ``write``, a walker's
    ``feed``) and counts the bytes in :attr:`size`. Closing it leaves
    ``source`` open: its caller owns it. ``name`` is what errors call the
    stream (readers name a damaged archive by its stream's ``name``)."""

    def __init__(self, source: IO[bytes], *sinks: Callable[[bytes], object],
                 name: str | None = None) -> None:
        self._source = source
        self._sinks = sinks
        self.name = name
        #: Bytes read so far.
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        for sink in self._sinks:
            sink(chunk)
        self.size += len(chunk)
        return chunk

    def drain(self) -> None:
        """Read to the end (a reader stops at the last record it can use)."""
        while self.read(_CHUNK):
            pass

    def close(self) -> None:
        """Leaves ``source`` open."""


class ChunkWalker:
    """Follows a stream made of units, each a header that gives the unit's
    length, as the stream is fed chunk by chunk: it keeps at most a cut
    header between chunks, however long the units are, and never copies a
    unit's body.

    Subclasses implement :meth:`_step`. :attr:`error` says why the stream
    is damaged (``None`` while it is not); :attr:`at_boundary` whether the
    bytes fed so far end exactly where a unit ends.
    """

    def __init__(self) -> None:
        self._pending = b""  # the start of a header cut by a chunk boundary
        self._skip = 0  # bytes of the current unit still to come
        #: Why the stream is damaged; ``None`` while it is not.
        self.error: str | None = None

    @property
    def at_boundary(self) -> bool:
        """Whether the bytes so far end exactly at the end of a unit."""
        return self.error is None and not self._pending and not self._skip

    def feed(self, chunk: bytes) -> None:
        """Walk the next ``chunk`` of the stream."""
        if self.error is not None or not chunk:
            return
        if self._skip >= len(chunk):
            self._skip -= len(chunk)
            return
        data = self._pending + chunk[self._skip:] if self._pending else chunk[self._skip:]
        self._skip = 0
        position = 0
        while position < len(data):
            length = self._step(data, position)
            if length is None:
                break
            position += length
        if position > len(data):
            self._skip, self._pending = position - len(data), b""
        else:
            self._pending = data[position:] if self.error is None else b""

    def _step(self, data: bytes, position: int) -> int | None:
        """Take the unit whose header starts at ``data[position]``: return its
        whole length (which may run past the end of ``data``), or ``None``
        when ``data`` ends inside the header, or after setting
        :attr:`error` for damage."""
        raise NotImplementedError
