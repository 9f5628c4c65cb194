"""Compression shared by the in-process callbacks, the sidecar and the readers.

Methods: ``"gzip"`` (stdlib), ``"zstd"`` (the ``zstandard`` package:
install the ``shoebox-archive[zstd]`` extra) and ``"none"``. Compressed data
is detected by content (magic bytes), not by file name. Everything streams
in fixed-size chunks, so memory stays flat whatever the archive size.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from typing import IO, Any, cast

from ._chunks import ChunkWalker, TeeReader
from .errors import MissingExtra

#: Compression methods, each with the suffix its files get.
SUFFIXES = {"gzip": ".gz", "zstd": ".zst", "none": ""}
#: Default level of each method.
DEFAULT_LEVELS = {"gzip": 6, "zstd": 3, "none": 0}

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise MissingExtra.needs("zstd compression needs the zstandard package",
                                 "zstd") from exc
    return zstandard


def check_method(method: str) -> str:
    """Return ``method`` if it is a known compression method, else raise ``ValueError``."""
    if method not in SUFFIXES:
        raise ValueError(f"compression must be one of {', '.join(SUFFIXES)}, not {method!r}")
    if method == "zstd":
        _zstandard()
    return method


def check_level(method: str, level: int | None) -> str:
    """Return ``method`` if it is a known compression method (see
    :func:`check_method`) and ``level`` one of its
    levels; raise ``ValueError`` otherwise, at configuration rather than on
    every archive."""
    check_method(method)
    try:
        with open_compressor(io.BytesIO(), method, level):
            pass
    except Exception as exc:  # zlib.error, zstandard's ValueError...
        raise ValueError(f"compression level {level!r} is not valid for {method}: "
                         f"{exc}") from exc
    return method


def detect(head: bytes) -> str:
    """The compression method of data starting with ``head`` (4 bytes suffice)."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def peekable(fileobj: IO[bytes]) -> io.BufferedReader:
    """``fileobj`` itself if it can ``peek`` (a ``BufferedReader``), else a
    ``BufferedReader`` over it whose closing leaves ``fileobj`` open."""
    if isinstance(fileobj, io.BufferedReader):
        return fileobj
    return io.BufferedReader(_Unpeekable(fileobj), _CHUNK)


def open_decompressed(fileobj: IO[bytes]) -> IO[bytes]:
    """Wrap a binary stream so that reading it yields decompressed bytes,
    whatever its compression (detected from its first bytes).

    The caller keeps ``fileobj`` and closes it after the returned stream
    (which is ``fileobj`` itself when it is an uncompressed ``BufferedReader``).
    """
    buffered = peekable(fileobj)
    method = detect(buffered.peek(4)[:4])
    if method == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    if method == "zstd":
        zstandard = _zstandard()
        frames = _ZstdFrames()
        reader = zstandard.ZstdDecompressor().stream_reader(
            TeeReader(buffered, frames.feed), read_size=_CHUNK, read_across_frames=True,
            closefd=False)
        return cast(IO[bytes], _ZstdEndChecked(reader, frames, zstandard.ZstdError))
    return buffered


def stream_errors(method: str) -> tuple[type[Exception], ...]:
    """The exceptions that reading a ``method`` stream opened by
    :func:`open_decompressed` raises for damaged or truncated compressed data."""
    if method == "gzip":
        return (EOFError, gzip.BadGzipFile, zlib.error)
    if method == "zstd":
        return (_zstandard().ZstdError,)
    return ()


def open_compressor(target: IO[bytes], method: str,
                    level: int | None = None) -> contextlib.AbstractContextManager[IO[bytes]]:
    """A writable stream that compresses into ``target`` with ``method``; leaving
    its ``with`` block writes the end of the compressed data. ``target`` is
    left open.

    The output is a pure function of the input, method and level (gzip is
    written with ``mtime=0``), so a retry after a crash produces the same bytes.
    """
    level = DEFAULT_LEVELS[check_method(method)] if level is None else level
    if method == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=target, mode="wb", compresslevel=level,
                                             mtime=0))
    if method == "zstd":
        return cast(IO[bytes], _zstandard().ZstdCompressor(
            level=level, write_checksum=True).stream_writer(target, closefd=False))
    return contextlib.nullcontext(target)


class _Unpeekable(io.RawIOBase):
    """Adapts any readable binary stream to a raw stream, so that it can be
    wrapped in a ``BufferedReader`` (which can ``peek``); closing it leaves
    the inner stream open."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


_ZSTD_FRAME = b"\x28\xb5\x2f\xfd"
_ZSTD_SKIPPABLE = 0x184D2A50  # the magic of a skippable frame, low 4 bits free


class _ZstdFrames(ChunkWalker):
    """Follows the frame and block structure of a zstd stream as its bytes go
    by (RFC 8878, section 3.1), decompressing nothing, so that a stream cut
    inside a frame can be told from a complete one: python-zstandard's stream
    reader ends quietly in both cases (a cut between two blocks looks like a
    clean end when the blocks end between two records)."""

    def __init__(self) -> None:
        super().__init__()
        self._in_frame = False  # between a frame header and the frame's last block
        self._checksum = False  # whether the current frame ends with a checksum

    @property
    def complete(self) -> bool:
        """Whether the bytes so far end exactly at the end of a frame."""
        return self.at_boundary and not self._in_frame

    def _step(self, data: bytes, position: int) -> int | None:
        return self._block(data, position) if self._in_frame else self._frame(data, position)

    def _frame(self, buf: bytes, pos: int) -> int | None:
        """The frame header (or whole skippable frame) at ``pos``."""
        if len(buf) - pos < 8:
            return None
        if buf[pos:pos + 4] != _ZSTD_FRAME:
            if int.from_bytes(buf[pos:pos + 4], "little") & ~0xF == _ZSTD_SKIPPABLE:
                return 8 + int.from_bytes(buf[pos + 4:pos + 8], "little")
            self.error = "bytes after a frame are not a zstd frame"
            return None
        descriptor = buf[pos + 4]
        size_flag, single_segment = descriptor >> 6, descriptor >> 5 & 1
        header = (5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 3]
                  + (single_segment, 2, 4, 8)[size_flag])
        if len(buf) - pos < header:
            return None
        self._in_frame = True
        self._checksum = bool(descriptor >> 2 & 1)
        return header

    def _block(self, buf: bytes, pos: int) -> int | None:
        """The block at ``pos``: its header and contents."""
        if len(buf) - pos < 3:
            return None
        header = int.from_bytes(buf[pos:pos + 3], "little")
        kind = header >> 1 & 3
        if kind == 3:
            self.error = "a zstd block of the reserved type"
            return None
        length = 3 + (1 if kind == 1 else header >> 3)  # an RLE block stores one byte
        if header & 1:  # the frame's last block
            self._in_frame = False
            length += 4 * self._checksum
        return length


class _ZstdEndChecked:
    """A zstd stream reader that raises ``error`` at the end of its output if
    the compressed stream did not end at a frame's end (see :class:`_ZstdFrames`)."""

    def __init__(self, reader: Any, frames: _ZstdFrames, error: type[Exception]) -> None:
        self._reader = reader
        self._frames = frames
        self._error = error

    def read(self, size: int = -1) -> bytes:
        return self._checked(self._reader.read(size), size)

    def read1(self, size: int = -1) -> bytes:
        return self._checked(self._reader.read1(size), size)

    def _checked(self, data: bytes, size: int) -> bytes:
        if (not data or size < 0) and size != 0 and not self._frames.complete:
            raise self._error(self._frames.error or "the stream ends inside a frame")
        return data

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> _ZstdEndChecked:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
