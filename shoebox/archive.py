"""One archive file: :class:`ArchiveWriter` appends records, :class:`ArchiveReader`
reads them back."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from typing import IO, Literal, NamedTuple

from . import compression
from ._gil_write import gil_write
from .codec import (
    CURRENT,
    DEFAULT_MAX_RECORD_SIZE,
    MARKER_BYTES,
    PREAMBLE_SIZE,
    Buffer,
    Incomplete,
    Metadata,
    Record,
    decode_record,
    encode_record,
    record_length,
    record_version,
)
from .errors import (
    ArchiveClosed,
    BadCompressedData,
    CorruptRecord,
    EndOfFile,
    NotAnArchive,
    TruncatedRecord,
)
from .options import one_of, whole_number

Durability = Literal["close", "record", "never"]
#: When an :class:`ArchiveWriter` calls ``fsync``.
DURABILITY_MODES: tuple[Durability, ...] = ("close", "record", "never")
#: Permission bits of new archive files (before the process umask applies).
DEFAULT_FILE_MODE = 0o640
# A refill that must bring in more than this (a long record) reads into
# one buffer of the record's size, in pieces of this size.
_PIECE = 1 << 20


class ArchiveWriter:
    """Appends records to a new archive file.

    The file is created exclusively (``O_EXCL``): an existing file is never
    truncated or overwritten, and :class:`FileExistsError` is raised instead
    (also when :func:`shoebox.recover` took the new file for a stale one
    before this writer could lock it).
    While open, the writer holds an exclusive advisory lock (``flock``) on
    it, which tells :func:`shoebox.recover` that the file is live.

    With ``buffer_size=0`` (default) each record reaches the operating
    system in one ``write`` call before :meth:`write` returns, so a crash of
    the process loses nothing written. With ``buffer_size=N`` records
    collect in memory and go out together once ``N`` bytes are pending (and
    on :meth:`flush` and :meth:`close`): fewer system calls, but a crash
    loses what was pending. ``durability`` says when written data is also
    forced to stable storage: ``"close"`` (default, ``fsync`` on close),
    ``"record"`` (after every record, which also flushes every record) or
    ``"never"``. ``fsync`` is the call that does it (:func:`os.fsync`
    unless a test injects its own: one that blocks as a stalled disk
    does, say).
    """

    def __init__(self, filename: str | os.PathLike[str], *,
                 durability: Durability = "close",
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
                 file_mode: int = DEFAULT_FILE_MODE,
                 buffer_size: int = 0,
                 fsync: Callable[[int], None] = os.fsync) -> None:
        self.filename = os.fspath(filename)
        self._fsync = fsync
        self.durability = one_of("durability", durability, DURABILITY_MODES)
        self.max_record_size = whole_number("max_record_size", max_record_size, minimum=1)
        buffer_size = whole_number("buffer_size", buffer_size)
        self.buffer_size = 0 if durability == "record" else buffer_size
        self._fd: int | None = os.open(
            self.filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, file_mode)
        try:
            # Between creating the file and locking it, shoebox.recover may
            # take the new, unlocked file for a crashed writer's and finalize
            # it. The name is then not ours: writing on would put records
            # into a final-named archive (perhaps shipped and deleted).
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._taken() from None
            try:
                ours = os.path.samestat(os.fstat(self._fd), os.stat(self.filename))
            except FileNotFoundError:
                ours = False
            if not ours:
                raise self._taken()
        except OSError:
            os.close(self._fd)
            raise
        #: Bytes of records written so far, pending ones included.
        self.size = 0
        self._on_disk = 0
        self._pending: list[bytes] = []
        self._syscall: Callable[[int, bytes], int] = os.write

    @property
    def hold_gil(self) -> bool:
        """Whether each ``write`` system call keeps Python's interpreter lock
        (default False; see :mod:`shoebox._gil_write` for why and what it
        costs). :class:`~shoebox.roll_manager.WritingRollManager` sets it
        once threads queue on its lock."""
        return self._syscall is not os.write

    @hold_gil.setter
    def hold_gil(self, hold: bool) -> None:
        self._syscall = gil_write() if hold else os.write

    def _taken(self) -> FileExistsError:
        return FileExistsError(errno.EEXIST, "taken by shoebox.recover while being created",
                               self.filename)

    def write(self, metadata: Metadata, payload: str | bytes) -> None:
        """Validate, encode and append one record.

        ``metadata`` must be a ``dict`` of ``str`` to ``str`` and ``payload``
        a ``str`` or ``bytes`` holding UTF-8 (JSON text by convention; it is
        not parsed). A record that is refused (``RecordTypeError``,
        ``InvalidRecord``, ``RecordTooLarge``) leaves the file untouched.
        """
        self.write_encoded(encode_record(metadata, payload, self.max_record_size))

    def write_encoded(self, record: bytes) -> None:
        """Append one record already encoded by :func:`shoebox.encode_record`.

        If a write to the file fails part way (a full disk), the file is
        truncated back to its last whole record and the ``OSError`` raised;
        the records of that write are not kept.
        """
        if self._fd is None:
            raise ArchiveClosed(f"{self.filename}: write to a closed archive")
        self.size += len(record)
        if self.buffer_size:
            self._pending.append(record)
            if self.size - self._on_disk >= self.buffer_size:
                self.flush()
        else:
            self._write(record)

    def flush(self) -> None:
        """Write pending records to the file (with ``buffer_size`` set)."""
        if self._pending and self._fd is not None:
            data = b"".join(self._pending)
            self._pending.clear()
            self._write(data)

    def _write(self, data: bytes) -> None:
        fd = self._fd
        assert fd is not None
        written = 0
        try:
            # One write takes it all but for a full disk or a signal: the
            # memoryview of the rest is made only then.
            written = self._syscall(fd, data)
            while written < len(data):
                written += os.write(fd, memoryview(data)[written:])
            if self.durability == "record":
                self._fsync(fd)
        except BaseException:
            if written:
                # Truncating does not move the file offset: without the seek
                # the next record would land after a hole of zero bytes.
                os.ftruncate(fd, self._on_disk)
                os.lseek(fd, self._on_disk, os.SEEK_SET)
            self.size = self._on_disk
            raise
        self._on_disk += written

    def sync(self) -> None:
        """Flush, then force everything written to stable storage (``fsync``)."""
        self.flush()
        if self._fd is not None:
            self._fsync(self._fd)

    def close(self) -> None:
        """Flush, ``fsync`` unless durability is ``"never"``, and close the file.

        Closing twice is harmless.
        """
        fd = self._fd
        if fd is None:
            return
        try:
            self.flush()
            if self.durability != "never":
                self._fsync(fd)
        finally:
            self._fd = None
            self._pending.clear()
            os.close(fd)

    def abandon(self) -> None:
        """Close the descriptor without writing pending records or syncing:
        for a forked child, which must leave its parent's archive alone, and
        for a roll manager that has flushed and synced already."""
        self._pending.clear()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or :meth:`abandon`) has been called."""
        return self._fd is None

    @property
    def unlinked(self) -> bool:
        """Whether the file was deleted while open (one ``fstat``): writes
        still succeed then, but into a file nobody can read. ``False`` once
        closed."""
        fd = self._fd
        return fd is not None and os.fstat(fd).st_nlink == 0

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _head(raw: IO[bytes]) -> bytes | None:
    """The first bytes of a regular file, read without moving its offset;
    ``None`` for a file that cannot seek (a pipe), whose bytes are read once."""
    try:
        return os.pread(raw.fileno(), 4, 0)
    except OSError:
        return None


#: How many times over a recovering reader may check bytes of records that
#: turn out damaged, per byte of the file before them (see :class:`_Allowance`).
RECHECK_RATIO = 2


class _Allowance:
    """The bound that keeps a recovering reader linear in the size of the
    file, whatever its bytes (issue 17; ``docs/format.md``, "Damage and
    recovery").

    Checking a record (checksum, UTF-8, lengths) costs its claimed length L,
    and a record that fails leaves the reader one byte further on: a file
    of fake headers, each claiming a record half the file long, made
    recovery quadratic. So the bytes of records checked and refused are
    *spent*, and a record of claimed length L at file offset b is checked
    only if ``spent + L <= min(max_record_size, reach) + RECHECK_RATIO * b``,
    where ``reach`` is the furthest end of a record checked so far (the
    candidate's own included). A record that may not be checked counts as
    damaged. Every record checked lies inside the file, so ``reach`` and
    ``b`` are at most its size N: the bytes spent on refused records never
    exceed ``(RECHECK_RATIO + 1) * N``, and the records returned take N at
    most. Honest damage never meets the bound: damaged records are disjoint,
    so they spend at most b before offset b, and one length field
    corrupted to claim a longer record is paid by ``reach``.
    """

    __slots__ = ("_cap", "_reach", "spent")

    def __init__(self, max_record_size: int) -> None:
        self._cap = max_record_size
        self._reach = 0
        #: Bytes of records checked and refused so far.
        self.spent = 0

    def allows(self, offset: int, length: int) -> bool:
        """Whether the record of ``length`` bytes at file ``offset`` may be checked."""
        reach = max(self._reach, offset + length)
        return self.spent + length <= min(self._cap, reach) + RECHECK_RATIO * offset

    def may_check(self, buf: Buffer, pos: int, offset: int) -> bool:
        """Whether the record whose header is at ``buf[pos]`` (file
        ``offset``) may be checked: False for a header no record has.
        Raises :class:`~shoebox.codec.Incomplete` when ``buf`` ends in it."""
        try:
            length = record_length(buf, pos, self._cap)
        except CorruptRecord:
            return False
        return self.allows(offset, length)

    def decode(self, buf: Buffer, pos: int, offset: int) -> tuple[Metadata, str, int]:
        """``decode_record`` of the record at ``buf[pos]`` (file ``offset``),
        once damage has been met only if it may be checked (else
        :class:`~shoebox.errors.CorruptRecord`, "left unchecked"); a record
        checked and found damaged is counted."""
        if self.spent:
            length = record_length(buf, pos, self._cap)
            if not self.allows(offset, length):
                raise CorruptRecord(
                    f"record of {length} bytes left unchecked: {self.spent} bytes of "
                    f"damaged records checked already, the most recovery checks here")
        try:
            return decode_record(buf, pos, self._cap)
        except CorruptRecord:
            try:
                length = record_length(buf, pos, self._cap)
            except (Incomplete, CorruptRecord):
                length = 0  # refused on its preamble or header: nothing else was read
            self.refused(offset, length)
            raise

    def limit(self, offset: int) -> int:
        """A length up to which every record from ``offset`` on may be
        checked (without asking :meth:`allows` for each)."""
        if not self.spent:
            return self._cap
        reach = max(self._reach, offset)
        return min(self._cap, reach) + RECHECK_RATIO * offset - self.spent

    def refused(self, offset: int, length: int) -> None:
        """Count a record of ``length`` bytes checked and found damaged."""
        if length:
            self.spent += length
            self._reach = max(self._reach, offset + length)


class DamagedRange(NamedTuple):
    """A byte range a recovering reader skipped, and why."""

    filename: str | None
    offset: int
    length: int
    reason: str


class ArchiveReader:
    """Reads the records of one archive, of any registered record version.

    ``read()`` returns ``(metadata, payload)`` or raises
    :class:`~shoebox.errors.EndOfFile`; iterating yields the same pairs.

    In strict mode (default) a damaged record raises a
    :class:`~shoebox.errors.CorruptRecord` subclass naming the file and the
    byte offset. With ``recover=True`` the reader skips damaged bytes, scans
    forward to the next record that validates, and appends a
    :class:`DamagedRange` to :attr:`damaged` for each skipped range; a torn
    last record ends the file there and is reported the same way. Damaged
    bytes are never returned as data.

    ``source`` is a path or a binary file object (read sequentially; the
    reader closes it, and every file it opened). Archives stored gzip- or
    zstd-compressed are decompressed on the fly, detected by content, not
    by name: :attr:`compression` says which; damaged or truncated
    compressed data is reported as :class:`~shoebox.errors.BadCompressedData`
    (offsets count decompressed bytes). ``filename`` names a file object's
    archive in errors (default: its ``name``). ``max_record_size`` bounds
    what a length field can make the reader allocate. ``live`` says the
    archive may still be being written (a ``.open`` file): a last record
    that the file holds only the start of is then one not written yet, and
    reading ends before it instead of reporting a torn record.
    """

    def __init__(self, source: str | os.PathLike[str] | IO[bytes], *,
                 recover: bool = False,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
                 chunk_size: int = 1 << 20,
                 filename: str | None = None,
                 live: bool = False) -> None:
        with contextlib.ExitStack() as opened:
            stream: IO[bytes]
            if isinstance(source, (str, os.PathLike)):
                self.filename: str | None = os.fspath(source)
                stream = opened.enter_context(open(self.filename, "rb", buffering=0))
                head = _head(stream)
                # Fast path: an uncompressed regular file is read in big
                # chunks straight from the raw file.
                plain = head is not None and compression.detect(head) == "none"
            else:
                name = getattr(source, "name", None)
                self.filename = filename or (name if isinstance(name, str) else None)
                stream = source
                opened.callback(source.close)
                plain = False
            if plain:
                #: How the archive is stored: ``"none"``, ``"gzip"`` or ``"zstd"``.
                self.compression = "none"
                self._read = stream.read
            else:
                buffered = opened.enter_context(compression.peekable(stream))
                self.compression = compression.detect(buffered.peek(4)[:4])
                stream = opened.enter_context(compression.open_decompressed(buffered))
                # read1 returns what one step of decompression produced, so
                # the data before damaged compressed bytes is never lost
                # inside a read that raises.
                self._read = getattr(stream, "read1", stream.read)
            self._stream_errors = compression.stream_errors(self.compression)
            self._closing = opened.pop_all()
        self._stream_error: BadCompressedData | None = None
        self.recover = recover
        self.max_record_size = max_record_size
        self.live = live
        self.damaged: list[DamagedRange] = []
        self._allowance = _Allowance(max_record_size)
        self._chunk_size = chunk_size
        # bytes, or a bytearray after a refill for a long record.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._base = 0  # file offset of self._buf[0]
        # Where the record read last starts: buffer and offset in it, and
        # the file offset of that buffer once a refill has replaced it.
        self._last_buf: bytes | bytearray = b""
        self._start = 0
        self._last_base = 0
        self._eof = False
        self._started = False

    @property
    def offset(self) -> int:
        """File offset of the next record to read."""
        return self._base + self._pos

    @property
    def record_bytes(self) -> bytes | None:
        """The bytes of the record :meth:`read` returned last, as stored
        (``None`` before the first): written out again, they keep the
        record's version and checksum."""
        if not self._last_buf:
            return None
        # No size limit: the record was read, so its length is good.
        end = self._start + record_length(self._last_buf, self._start, 1 << 64)
        return bytes(self._last_buf[self._start:end])

    @property
    def record_offset(self) -> int | None:
        """File offset where the record :meth:`read` returned last starts
        (``None`` before the first): where to find that record again. Like
        :attr:`offset`, it counts decompressed bytes."""
        if not self._last_buf:
            return None
        base = self._base if self._last_buf is self._buf else self._last_base
        return base + self._start

    @property
    def version(self) -> int | None:
        """Record version of the record :meth:`read` returned last (``None``
        before the first); reading it costs nothing per record until asked."""
        if not self._last_buf:
            return None
        return record_version(self._last_buf, self._start)

    def read(self) -> Record:
        """Return the next ``(metadata, payload)``; raise ``EndOfFile`` after the last.

        Raises :class:`~shoebox.errors.NotAnArchive` (with ``recover`` too)
        at the first read of a file that is too short to hold a record or,
        without ``recover``, does not start with a record marker; with
        ``recover``, when such a file holds no record at all."""
        if not self._started:
            return self._read_first()
        while True:
            try:
                metadata, payload, end = self._decode()
            except Incomplete as more:
                if self._fill(more.needed):
                    continue
                if self._stream_error is not None:
                    error, self._stream_error = self._stream_error, None
                    self._damage(error)
                elif self._pos == len(self._buf) or self.live:
                    raise EndOfFile(self.filename or "archive") from None
                else:
                    self._damage(TruncatedRecord(
                        f"record needs {more.needed} bytes but the file ends after "
                        f"{len(self._buf) - self._pos}"))
            except CorruptRecord as error:
                self._damage(error)
            else:
                self._last_buf = self._buf
                self._start = self._pos
                self._pos = end
                return metadata, payload

    def _read_first(self) -> Record:
        """:meth:`read` for the first record: a file that does not start with
        a record marker is not reported as damage at offset 0 but as not an
        archive (issue 18: ``shoebox cat /etc/passwd`` said "bad
        begin-of-record marker", and ``--recover`` printed nothing, exit 0)."""
        self._started = True
        self._fill(PREAMBLE_SIZE)
        head = self._buf[:PREAMBLE_SIZE]
        # An empty file is an archive of no records; a live one may hold
        # only the start of its first record so far.
        if head and len(head) < PREAMBLE_SIZE and not self.live:
            raise NotAnArchive(
                f"not a shoebox archive: {len(head)} bytes is too short to be one "
                f"(a record takes at least {PREAMBLE_SIZE})", filename=self.filename, offset=0)
        foreign = bool(head) and not head.startswith(MARKER_BYTES[:len(head)])
        if foreign and not self.recover:
            raise NotAnArchive(
                f"not a shoebox archive: it starts with {head[:len(MARKER_BYTES)]!r}, "
                f"not a record marker", filename=self.filename, offset=0)
        try:
            return self.read()
        except EndOfFile:
            if foreign:  # recover scanned it all and found no record
                raise NotAnArchive(
                    f"not a shoebox archive: no record found in its {self.offset} bytes",
                    filename=self.filename, offset=0) from None
            raise

    def __iter__(self) -> Iterator[Record]:
        # Runs of plain current-version records wholly in the buffer come
        # from the codec's decode_run, one resumption per record; read()
        # handles the rest (other versions, refills, damage, the end). A
        # read() called between two yields moves the offset, which ends
        # the run. After damage, a run takes only records the allowance
        # lets be checked; read() asks it about each of the others.
        decode_run = CURRENT.decode_run
        allowance = self._allowance
        while True:
            buf = self._buf
            start = self._pos
            limit = allowance.limit(self._base + start)
            for metadata, payload, end in decode_run(buf, start, limit):
                self._last_buf, self._start, self._pos = buf, start, end
                yield metadata, payload
                if self._pos != end:
                    break
                start = end
            try:
                yield self.read()
            except EndOfFile:
                return

    def close(self) -> None:
        """Close every file the reader holds. Closing twice is harmless."""
        self._closing.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _decode(self) -> tuple[Metadata, str, int]:
        """Decode the record at the current offset (when recovering, within
        the allowance)."""
        if self.recover:
            return self._allowance.decode(self._buf, self._pos, self.offset)
        return decode_record(self._buf, self._pos, self.max_record_size)

    def _fill(self, needed: int) -> bool:
        """Make ``needed`` bytes available from ``self._pos``; False at end of file."""
        if self._eof:
            return False
        if self._last_buf is self._buf:
            # Noted here rather than per record, off the iteration fast path.
            self._last_base = self._base
        buf = self._buf[self._pos:]
        self._base += self._pos
        self._pos = 0
        if needed - len(buf) > _PIECE:
            return self._fill_long(buf, needed)
        parts = [buf]
        have = len(buf)
        while have < needed or have == len(buf):
            chunk = self._read_chunk(max(self._chunk_size, needed - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self._buf = b"".join(parts)
        return have > len(buf)

    def _read_chunk(self, size: int) -> bytes:
        """Up to ``size`` bytes more of the archive; ``b""`` at its end and
        when its compressed data is damaged (noted for :meth:`read` to
        report)."""
        try:
            chunk = self._read(size)
        except self._stream_errors as exc:
            self._stream_error = BadCompressedData(
                f"{self.compression} data is damaged or ends early ({exc})")
            chunk = b""
        if not chunk:
            self._eof = True
        return chunk

    def _fill_long(self, start: bytes | bytearray, needed: int) -> bool:
        """Read up to ``needed`` bytes into one buffer that begins with
        ``start``: a long record is copied once, not read in pieces and
        joined (a second copy of its size; issue 17)."""
        target = bytearray(needed)
        have = len(start)
        target[:have] = start
        piece = max(self._chunk_size, _PIECE)
        with memoryview(target) as view:
            while have < needed:
                chunk = self._read_chunk(min(piece, needed - have))
                if not chunk:
                    break
                view[have:have + len(chunk)] = chunk
                have += len(chunk)
        self._buf = target if have == needed else target[:have]
        return have > len(start)

    def _damage(self, error: CorruptRecord) -> None:
        """Raise ``error`` at the current offset (strict), or skip to the next
        record that validates and report the skipped range (recover)."""
        start = self.offset
        if not self.recover:
            raise error.located(self.filename, start) from None
        self._pos += 1
        while True:
            found = self._buf.find(MARKER_BYTES, self._pos)
            if found >= 0:
                self._pos = found
                if self._validates():
                    break
                self._pos += 1
                continue
            # Keep a possible partial marker at the end; read on.
            self._pos = max(self._pos, len(self._buf) - (len(MARKER_BYTES) - 1))
            if not self._fill(len(self._buf) - self._pos + 1):
                self._pos = len(self._buf)
                break
        reason = error.reason
        self.damaged.append(DamagedRange(self.filename, start, self.offset - start, reason))

    def _validates(self) -> bool:
        """Whether a whole, valid record starts at ``self._pos`` (reading more
        of the file if needed), checked only if the allowance lets it be:
        the length in its header says what checking it costs, and the
        header is read before the rest."""
        allowance = self._allowance
        while True:
            try:
                if not allowance.may_check(self._buf, self._pos, self.offset):
                    return False
                allowance.decode(self._buf, self._pos, self.offset)
            except Incomplete as more:
                if not self._fill(more.needed):
                    return False
            except CorruptRecord:
                return False
            else:
                return True


__all__ = [
    "DEFAULT_FILE_MODE",
    "DURABILITY_MODES",
    "ArchiveReader",
    "ArchiveWriter",
    "DamagedRange",
    "Durability",
]
