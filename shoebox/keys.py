"""Where a shipped archive goes: key templates, and when an archive started
(its first record's ``timestamp``, else its file's birth time), which dates
its key. An archive is immutable once closed, so its key is the same on
every retry."""

from __future__ import annotations

import ctypes
import datetime
import functools
import os
import re
import struct
from typing import IO, Any

from ._timestamps import utc_datetime
from .codec import PREAMBLE_SIZE, Incomplete, decode_record
from .errors import CorruptRecord
from .windows import Span, span_token

#: Where archives go unless told otherwise: date-partitioned (UTC date of the
#: archive's start, see :class:`KeyTemplate`), then the host, then the
#: archive's own name plus the compression suffix.
DEFAULT_KEY_TEMPLATE = "{prefix}/%Y/%m/%d/{host}/{name}{suffix}"
#: The layout for query engines: Hive-style ``name=value`` segments for the
#: day and the host, which Athena, Trino, Spark and DuckDB prune on, and the
#: archive's span (first and last record time) before its name, which
#: windowed reads prune on from a listing alone (issue 21).
HIVE_KEY_TEMPLATE = "{prefix}/dt=%Y-%m-%d/host={host}/{span}_{name}{suffix}"
#: Key templates by name, for ``--key-template hive``.
KEY_TEMPLATE_PRESETS = {"default": DEFAULT_KEY_TEMPLATE, "hive": HIVE_KEY_TEMPLATE}

# How much of an archive read_start() reads at a time, looking for its first record.
_KEY_CHUNK = 64 * 1024

_PLACEHOLDERS = ("prefix", "host", "name", "suffix", "span")


class KeyTemplate:
    """How a destination key is built from an archive, parsed once.

    The template (or the name of one of :data:`KEY_TEMPLATE_PRESETS`) holds
    strftime codes, applied in UTC to the time the archive starts, and the
    placeholders ``{prefix}`` (the destination's prefix), ``{host}``,
    ``{name}`` (the archive's file name), ``{suffix}`` (the compression
    suffix, such as ``.gz``) and ``{span}`` (the first and last record
    time, ``20261127T235900Z-20261128T010000Z``, or ``untimed``; see
    :mod:`shoebox.windows`: finding it reads every record's timestamp).
    Empty path segments are dropped, so an empty prefix leaves no leading ``/``.

    The start is the first record's ``timestamp`` metadata where it has
    one, else when the archive's file was created (else, on a file system
    that does not keep that, its modification time): never the time of its
    last record, so an archive spanning midnight lands in the day it
    begins. An archive is immutable once closed, so its start, hence its
    key, is the same on every retry. Raises ``ValueError`` for an unknown
    placeholder, a template without ``{name}`` (archives would collide) or
    one giving ``.``/``..`` segments.
    """

    def __init__(self, template: str = DEFAULT_KEY_TEMPLATE) -> None:
        template = KEY_TEMPLATE_PRESETS.get(template, template)
        unknown = sorted(set(re.findall(r"\{(\w*)\}", template)) - set(_PLACEHOLDERS))
        if unknown:
            raise ValueError(f"key template {template!r} has unknown placeholders "
                             f"{unknown}; known: {', '.join(_PLACEHOLDERS)}")
        if "{name}" not in template:
            raise ValueError(f"key template {template!r} must contain {{name}}, "
                             "or different archives would get the same key")
        self.template = template
        #: Whether keys carry the archive's span (so shipping reads every
        #: record's timestamp).
        self.needs_span = "{span}" in template
        self.render(name="a.events", started=0.0, host="host")

    def render(self, *, name: str, started: float, host: str, prefix: str = "",
               suffix: str = "", span: Span | None = None) -> str:
        """The key of archive ``name`` that started at ``started`` (epoch
        seconds) and holds records from ``span`` (``None``: none with a
        readable timestamp)."""
        text = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime(
            self.template)
        values = {"prefix": prefix, "host": host, "name": name, "suffix": suffix,
                  "span": span_token(span)}
        text = re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], text)
        parts = [part for part in text.split("/") if part]
        if not parts or any(part in (".", "..") for part in parts):
            raise ValueError(f"key template {self.template!r} gives the key {text!r}, "
                             "which is empty or has '.' or '..' segments")
        return "/".join(parts)


class FirstTimestamp:
    """The first record's ``timestamp`` metadata as epoch seconds, from a
    stream fed chunk by chunk (:attr:`value`; ``None`` if it has none, or the
    record is damaged). Holds the bytes of that record only, then nothing."""

    def __init__(self, max_record_size: int) -> None:
        self._max_record_size = max_record_size
        self._parts: list[bytes] = []
        self._have = 0
        self._needed = PREAMBLE_SIZE
        self._done = False
        self.value: float | None = None

    @property
    def done(self) -> bool:
        """Whether the first record has been seen (or found damaged)."""
        return self._done

    def feed(self, chunk: bytes) -> None:
        if self._done or not chunk:
            return
        self._parts.append(chunk)
        self._have += len(chunk)
        if self._have < self._needed:
            return
        head = b"".join(self._parts)
        self._parts = [head]
        try:
            metadata, _payload, _end = decode_record(head, 0, self._max_record_size)
        except Incomplete as more:  # never more than max_record_size
            self._needed = more.needed
            return
        except CorruptRecord:
            metadata = {}
        self._done, self._parts = True, []
        stamp = metadata.get("timestamp")
        moment = None if stamp is None else utc_datetime(stamp)
        self.value = None if moment is None else moment.timestamp()


def archive_start(first: FirstTimestamp, fd: int) -> float:
    """When an archive started, for its key: its first record's timestamp,
    else when its file (open as ``fd``) was created."""
    return first.value if first.value is not None else _created(fd, os.fstat(fd))


def _created(fd: int, status: os.stat_result) -> float:
    """When the open file ``fd`` was created (its inode born: a rename keeps
    it), where the system says; else its modification time."""
    born = getattr(status, "st_birthtime", None)  # BSD, macOS
    if born is None:
        born = _statx_birth_time(fd)
    return status.st_mtime if born is None else float(born)


def _statx_birth_time(fd: int) -> float | None:
    """The birth time Linux's ``statx`` gives for ``fd``, or ``None`` (another
    system, an old C library, a file system that does not record it)."""
    statx = getattr(_libc(), "statx", None)
    if statx is None:
        return None
    buffer = ctypes.create_string_buffer(256)  # struct statx
    if statx(fd, b"", _AT_EMPTY_PATH, _STATX_BTIME, buffer) != 0:
        return None
    (mask,) = struct.unpack_from("<I", buffer, 0)
    if not mask & _STATX_BTIME:
        return None
    seconds, nanoseconds = struct.unpack_from("<qI", buffer, _STX_BTIME_OFFSET)
    return float(seconds) + nanoseconds / 1e9


_AT_EMPTY_PATH = 0x1000
_STATX_BTIME = 0x800
_STX_BTIME_OFFSET = 80  # stx_btime in struct statx (linux/stat.h)


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def read_start(source: IO[bytes], max_record_size: int) -> float:
    """When the archive open as ``source`` (a binary file at its start)
    started: its first record's timestamp, read alone, else its file's
    birth time."""
    first = FirstTimestamp(max_record_size)
    while not first.done and (chunk := source.read(_KEY_CHUNK)):
        first.feed(chunk)
    return archive_start(first, source.fileno())


__all__ = [
    "DEFAULT_KEY_TEMPLATE",
    "HIVE_KEY_TEMPLATE",
    "KEY_TEMPLATE_PRESETS",
    "FirstTimestamp",
    "KeyTemplate",
    "archive_start",
    "read_start",
]
