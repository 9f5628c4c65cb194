"""Compression shared by the in-process callbacks, the sidecar and the readers.

Methods: ``"gzip"`` (stdlib), ``"zstd"`` (the ``zstandard`` package: install
the ``shoebox[zstd]`` extra) and ``"none"``. Compressed data is detected by
content (magic bytes), not by file name. Everything streams in fixed-size
chunks, so memory stays flat whatever the archive size.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from typing import IO, Any, cast

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
        raise MissingExtra("zstd compression needs the zstandard package: "
                           "pip install 'shoebox[zstd]'") from exc
    return zstandard


def check_method(method: str) -> str:
    """Return ``method`` if it is a known compression method, else raise ``ValueError``."""
    if method not in SUFFIXES:
        raise ValueError(f"compression must be one of {', '.join(SUFFIXES)}, not {method!r}")
    if method == "zstd":
        _zstandard()
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
        return cast(IO[bytes], _zstandard().ZstdDecompressor().stream_reader(
            buffered, read_size=_CHUNK, closefd=False))
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


def compress_stream(source: IO[bytes], target: IO[bytes], method: str,
                    level: int | None = None) -> int:
    """Copy ``source`` into ``target``, compressed with ``method``; return the
    number of uncompressed bytes. ``target`` is left open."""
    copied = 0
    with open_compressor(target, method, level) as sink:
        while chunk := source.read(_CHUNK):
            sink.write(chunk)
            copied += len(chunk)
    return copied


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
