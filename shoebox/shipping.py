"""Shipping closed archives: compress, copy to a destination, confirm the copy.

This is the one implementation behind both entry points: the in-process
callbacks (:class:`CompressCallback`, :class:`S3UploadCallback`, here) and
the ``shoebox-sidecar`` process. Where a copy goes (key templates, when an
archive started) is :mod:`shoebox.keys`. A :class:`Shipper` holds the
policy (destination, key template, compression, verification), built once;
shipping one archive is

1. :meth:`Shipper.prepare`: one streaming pass over the archive counts its
   records (walking from header to header, and decoding the first for its
   ``timestamp``, the key's date; with ``verify`` every record is
   decoded and its checksum checked, and a damaged one raises
   :class:`~shoebox.errors.CorruptRecord`), hashes the original bytes and
   compresses them into a temporary file (memory stays flat whatever the
   archive size), which also gets hashed;
2. :meth:`Shipper.deliver`: copies that file to the destination under a key
   that depends only on the archive (its name, when it started and the
   host), so a retry after a crash rewrites the same key with the same
   bytes, and confirms the copy (size and checksum) before returning.

Deleting the local archive is the caller's business, and only after
:meth:`Shipper.deliver` has returned. Failures raise
:class:`~shoebox.errors.TransientUploadError` (retry later) or
:class:`~shoebox.errors.PermanentUploadError` (fix something first), both
naming the destination and the key.

boto3 is imported only when an S3 destination is used (``shoebox-archive[s3]``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, cast

from ._chunks import ChunkWalker, TeeReader
from ._files import check_entry, check_identity, lock_unheld, open_regular
from .archive import ArchiveReader
from .callbacks import ArchiveCallback, after_upload_callback
from .codec import (
    DEFAULT_MAX_RECORD_SIZE,
    Incomplete,
    record_length,
    record_version,
)
from .compression import SUFFIXES, check_level, open_compressor
from .destinations import Destination, DirectoryDestination, Prepared, open_destination
from .errors import CorruptRecord, NotRegularFile
from .keys import (
    DEFAULT_KEY_TEMPLATE,
    HIVE_KEY_TEMPLATE,
    KEY_TEMPLATE_PRESETS,
    FirstTimestamp,
    KeyTemplate,
    archive_start,
    read_start,
)
from .s3 import S3Options
from .windows import Span, SpanCollector

#: Compressed copies being staged are named ``.shoebox-XXXXXXXX.partial``.
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".shoebox-", ".partial"
#: A staged copy younger than this (seconds) is never taken for a stale
#: one: it may have been created a moment before its maker locked it.
STALE_TEMPORARY_AGE = 10.0


@dataclass(frozen=True)
class ShipResult:
    """What shipping one archive did."""

    source: str
    #: Where the copy is: ``s3://bucket/key`` or a file path.
    location: str
    key: str
    bytes_in: int
    bytes_out: int
    records: int
    #: Seconds spent preparing and delivering.
    seconds: float
    #: True when the destination already held this archive (a retry after a
    #: crash between upload and deletion): nothing was written.
    already_present: bool
    #: ``(st_dev, st_ino)`` of the archive file read: whoever removes or
    #: moves ``source`` afterwards checks it is still that file
    #: (:func:`shoebox._files.check_identity`).
    identity: tuple[int, int] | None = None

    @property
    def ratio(self) -> float:
        """Compression ratio, original size over shipped size."""
        return self.bytes_in / self.bytes_out if self.bytes_out else 1.0


class Shipper:
    """Compresses archives and copies them to one destination; the policy is
    fixed at construction.

    ``destination``: a :class:`Destination`. ``key_template``: see
    :class:`KeyTemplate`. ``compression``: ``"gzip"`` (default), ``"zstd"``
    (``shoebox-archive[zstd]``) or ``"none"``, at ``level``. ``verify``: every
    record is decoded and its checksum checked, and a damaged one makes
    :meth:`prepare` raise :class:`~shoebox.errors.CorruptRecord` (naming
    file and offset). Without it records are only counted, from their
    headers (several times faster); an archive whose structure is damaged
    (bytes that are not a record, a torn tail) ships as it is, with its
    damaged ranges in :attr:`Prepared.damaged` and the object's
    ``damaged-bytes`` metadata; damage inside a record (a checksum that
    does not match) is left for readers to find.
    ``host`` fills ``{host}`` (default: this machine's name).
    ``tmp_dir``: where compressed temporary files go (default: the
    destination's choice).
    """

    def __init__(self, destination: Destination, *,
                 key_template: str | KeyTemplate = DEFAULT_KEY_TEMPLATE,
                 compression: str = "gzip", level: int | None = None,
                 verify: bool = False, host: str | None = None,
                 tmp_dir: str | os.PathLike[str] | None = None,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> None:
        self.destination = destination
        self.key_template = (key_template if isinstance(key_template, KeyTemplate)
                             else KeyTemplate(key_template))
        self.compression = check_level(compression, level)
        self.level = level
        self.verify = verify
        self.host = host or socket.gethostname()
        self.tmp_dir = os.fspath(tmp_dir) if tmp_dir is not None else None
        self.max_record_size = max_record_size

    def render_key(self, path: str, started: float, span: Span | None = None) -> str:
        """The destination key of the archive at ``path`` given when it
        started (``started``, epoch seconds) and the span of its records
        (``span``; see :class:`KeyTemplate`)."""
        return self.key_template.render(
            name=os.path.basename(path), started=started, host=self.host,
            prefix=self.destination.prefix, suffix=SUFFIXES[self.compression], span=span)

    @property
    def scratch_dir(self) -> str:
        """Where :meth:`prepare` stages compressed copies: ``tmp_dir``, else
        the destination's choice."""
        return self.tmp_dir or self.destination.scratch_dir()

    def find_key(self, path: str) -> str:
        """The key the archive at ``path`` ships under, found as
        :meth:`prepare` finds it: by reading its first record (only, unless
        the template names the ``{span}``, which reads them all). Raises
        ``OSError`` (:class:`~shoebox.errors.NotRegularFile` for anything but
        a regular file really at ``path``)."""
        with os.fdopen(open_regular(path), "rb") as source:
            started, span = read_start(source, self.max_record_size), None
            if self.key_template.needs_span:
                # The whole archive, as prepare() reads it (the reader closes
                # the duplicate it is given; the duplicate shares the offset).
                source.seek(0)
                span = _span_of(os.fdopen(os.dup(source.fileno()), "rb"), recover=True,
                                max_record_size=self.max_record_size)
            return self.render_key(path, started, span)

    def abort_incomplete(self, paths: Iterable[str]) -> list[str]:
        """Abort the unfinished copies of the archives at ``paths`` that an
        earlier, killed run left at the destination (see
        :meth:`~shoebox.destinations.Destination.abort_incomplete`): only
        those under the keys these archives ship to, and only of archives
        no live process is shipping now (:meth:`prepare` holds a shared
        lock on the archive until its ``with`` block ends; those archives
        are locked here, exclusively, until the aborts are done). Archives
        gone, being shipped or unreadable are skipped. Returns a
        description of each copy aborted; raises
        :class:`~shoebox.errors.UploadError`."""
        held: list[int] = []
        try:
            keys = set()
            for path in paths:
                try:
                    lock = lock_unheld(path)
                    if lock is None:
                        continue
                    held.append(lock)
                    keys.add(self.find_key(path))
                except OSError:
                    continue  # unreadable: it cannot be shipped either
            return self.destination.abort_incomplete(keys)
        finally:
            for lock in held:
                os.close(lock)

    @contextlib.contextmanager
    def prepare(self, path: str) -> Iterator[Prepared]:
        """Read, hash and compress the archive at ``path`` into a temporary
        file, removed when the ``with`` block ends.

        Raises ``FileNotFoundError`` if the archive is gone,
        :class:`~shoebox.errors.NotRegularFile` if ``path`` is a symbolic
        link (never followed), a FIFO or anything but a regular file really
        there (checked on the descriptor opened, see
        :func:`shoebox._files.open_regular`), and, with ``verify``,
        :class:`~shoebox.errors.CorruptRecord` for damage.
        :attr:`Prepared.identity` is the file read, for callers that
        remove or move ``path`` later to check it is still that file.

        The archive is held with a shared ``flock`` until the block ends
        (deliver inside it): :meth:`abort_incomplete` in another process
        then knows its upload is live.
        """
        shipping = open_regular(path)
        try:
            fcntl.flock(shipping, fcntl.LOCK_SH)
            scratch = self.scratch_dir
            os.makedirs(scratch, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=scratch, prefix=TEMPORARY_PREFIX,
                                             suffix=TEMPORARY_SUFFIX)
            # Locked while it exists, so that remove_stale_temporaries() in
            # another process sharing the directory leaves it alone; the
            # lock lives as long as one descriptor of it is open.
            lock = os.dup(fd)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                with os.fdopen(os.dup(shipping), "rb") as source, \
                        os.fdopen(fd, "wb") as target:
                    prepared = self._compress(path, source, target, temporary)
                yield prepared
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
                os.close(lock)
        finally:
            os.close(shipping)

    def remove_stale_temporaries(self, now: float | None = None) -> list[str]:
        """Remove the compressed copies that processes killed while shipping
        left behind (``.shoebox-*.partial``) in the directories this
        shipper stages into: ``tmp_dir``, the destination's scratch
        directory, and a destination directory's root. Only files no live
        process holds (:meth:`prepare` locks its copy) and older than
        :data:`STALE_TEMPORARY_AGE` seconds at ``now`` (default: the current
        time) go. Returns their paths."""
        now = time.time() if now is None else now
        directories = {self.tmp_dir, self.destination.scratch_dir()}
        if isinstance(self.destination, DirectoryDestination):
            directories.add(self.destination.root)
        removed = []
        for directory in sorted(filter(None, directories)):
            removed += _remove_stale(directory, now)
        return removed

    def deliver(self, prepared: Prepared, started: float | None = None) -> ShipResult:
        """Copy a prepared archive to the destination and confirm it; raises
        :class:`~shoebox.errors.UploadError`. ``started`` (a
        ``time.monotonic()`` value) is when preparing began, for the timing."""
        started = time.monotonic() if started is None else started
        already = self.destination.deliver(prepared)
        return ShipResult(
            source=prepared.source, location=self.destination.locate(prepared.key),
            key=prepared.key, bytes_in=prepared.bytes_in, bytes_out=prepared.bytes_out,
            records=prepared.records, seconds=time.monotonic() - started,
            already_present=already, identity=prepared.identity)

    def ship(self, path: str) -> ShipResult:
        """Prepare and deliver one archive, once (no retries)."""
        started = time.monotonic()
        with self.prepare(path) as prepared:
            return self.deliver(prepared, started)

    def _compress(self, path: str, source: IO[bytes], target: IO[bytes],
                  temporary: str) -> Prepared:
        status = os.fstat(source.fileno())
        # The copy gets the archive's permission bits, not mkstemp's 0600,
        # so that a compressed file stays readable by whoever read the archive.
        os.fchmod(target.fileno(), stat.S_IMODE(status.st_mode))
        original = hashlib.sha256()
        compressed = _HashingWriter(target)
        counter = _RecordCounter(self.max_record_size)
        first = FirstTimestamp(self.max_record_size)
        span = None
        with open_compressor(cast(IO[bytes], compressed), self.compression,
                             self.level) as sink:
            tee = TeeReader(source, original.update, sink.write, counter.feed, first.feed,
                            name=path)
            if self.verify or self.key_template.needs_span:
                # Decodes every record: with verify, checking its checksum
                # (the first damaged one raises CorruptRecord naming file and
                # offset); for the span, reading its timestamp (damage is
                # skipped there: without verify a damaged archive ships).
                span = _span_of(cast(IO[bytes], tee), recover=not self.verify,
                                max_record_size=self.max_record_size)
            tee.drain()
        target.flush()
        records, damaged = counter.finish(), []
        if records is None:
            # The header walk stumbled on damage: count what a recovering
            # reader keeps, and where it skips (a second pass, damaged
            # archives only), in the file already open, not whatever the
            # name leads to now.
            again = os.fdopen(os.dup(source.fileno()), "rb")
            again.seek(0)
            with ArchiveReader(again, filename=path, recover=True,
                               max_record_size=self.max_record_size) as reader:
                records = sum(1 for _record in reader)
                damaged = reader.damaged
        return Prepared(
            source=path, path=temporary,
            key=self.render_key(path, archive_start(first, source.fileno()), span),
            compression=self.compression, bytes_in=tee.size, bytes_out=compressed.size,
            records=records, sha256=original.hexdigest(),
            compressed_sha256=compressed.digest.digest(),
            format_version=counter.first_version, damaged=damaged,
            identity=(status.st_dev, status.st_ino))


def _span_of(stream: IO[bytes], *, recover: bool, max_record_size: int) -> Span | None:
    """The span of the records of the archive ``stream`` (read to its last
    record), for ``{span}``; ``None`` when none has a readable timestamp."""
    spans = SpanCollector()
    with ArchiveReader(stream, recover=recover, max_record_size=max_record_size) as reader:
        for metadata, _payload in reader:
            spans.add(metadata)
    return spans.span


def _remove_stale(directory: str, now: float) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            names = [entry.name for entry in entries
                     if entry.name.startswith(TEMPORARY_PREFIX)
                     and entry.name.endswith(TEMPORARY_SUFFIX)
                     and entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    removed = []
    for name in sorted(names):
        path = os.path.join(directory, name)
        try:
            fd = lock_unheld(path)
        except PermissionError:
            continue  # another user's (a shared /tmp): not ours to judge
        except NotRegularFile:
            continue  # swapped for a link or a FIFO since the listing: never ours
        if fd is None:
            continue
        try:
            if now - os.fstat(fd).st_mtime >= STALE_TEMPORARY_AGE:
                check_entry(path, fd)
                os.unlink(path)
                removed.append(path)
        except (PermissionError, NotRegularFile, FileNotFoundError):
            pass  # not ours to remove, or no longer the file judged stale
        finally:
            os.close(fd)
    return removed


class _RecordCounter(ChunkWalker):
    """Counts the records of a stream fed chunk by chunk, walking from header
    to header (:func:`~shoebox.codec.record_length`): nothing is decoded or
    checksummed. Notes the first record's version."""

    def __init__(self, max_record_size: int) -> None:
        super().__init__()
        self._max_record_size = max_record_size
        self._count = 0
        #: Record version of the first record (``None`` before one is seen).
        self.first_version: int | None = None

    def _step(self, data: bytes, position: int) -> int | None:
        try:
            length = record_length(data, position, self._max_record_size)
        except Incomplete:
            return None
        except CorruptRecord as exc:
            self.error = str(exc)
            return None
        if self.first_version is None:
            self.first_version = record_version(data, position)
        self._count += 1
        return length

    def finish(self) -> int | None:
        """The number of records, or ``None`` if the stream is damaged (bytes
        that are not a record, or a record cut short at the end)."""
        return self._count if self.at_boundary else None


class _HashingWriter:
    """A write-only stream that hashes and counts what passes to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()


class CompressCallback(ArchiveCallback):
    """Compresses the closed archive next to itself (``a.events`` becomes
    ``a.events.gz``) and removes the original once the compressed file is
    synced and its checksum confirmed; returns the compressed file's path.

    ``compression`` is ``"gzip"`` (default) or ``"zstd"`` (``shoebox-archive[zstd]``),
    at ``level``. The work is :class:`~shoebox.Shipper`'s, the same
    code the sidecar runs, into a
    :class:`~shoebox.DirectoryDestination`. It runs on the thread
    that closed the archive (the writer's, or the idle-roll thread), and
    writes to the roll manager wait until it is done.
    """

    def __init__(self, *, compression: str = "gzip", level: int | None = None) -> None:
        if compression == "none":
            raise ValueError("CompressCallback needs a compression method, not 'none'")
        # Checked now, so that a bad method or level or a missing extra
        # fails at configuration time rather than on the first close.
        self.compression = check_level(compression, level)
        self.level = level

    def on_close(self, filename: str) -> str:
        directory = DirectoryDestination(os.path.dirname(filename) or ".")
        shipper = Shipper(directory, key_template="{name}{suffix}",
                          compression=self.compression, level=self.level)
        result = shipper.ship(filename)
        _still_the_archive_read(filename, result)
        os.unlink(filename)
        return result.location


class S3UploadCallback(ArchiveCallback):
    """Compresses the closed archive and uploads it, in process: the same code
    as the sidecar (:class:`~shoebox.Shipper`), one attempt, on the
    thread that closed the archive (writes to the roll manager wait until
    it is done).

    ``destination``: ``s3://bucket/prefix`` (or a directory / ``file://``
    URL); ``s3_options``: how to talk to S3, the same
    :class:`~shoebox.s3.S3Options` the sidecar builds from its flags (an
    instance, or a mapping of its fields as ``dictConfig`` gives it:
    ``{"endpoint_url": …, "read_timeout": 5, "acl": …, "tags": {…},
    "multipart_chunk_mb": 8}``); ``key_template`` (see :class:`KeyTemplate`);
    ``compression`` and ``level``; ``verify``; ``host``;
    ``after_upload``: ``"delete"`` (default), ``"keep"`` or ``"move:DIR"``,
    applied only once the copy is confirmed. A failed upload raises
    :class:`~shoebox.errors.UploadError`; the roll manager logs it and the
    archive stays where it is, for a later ``shoebox-sidecar --once`` run.
    Raises :class:`~shoebox.errors.MissingExtra` for an ``s3://``
    destination without boto3.
    """

    def __init__(self, *, destination: str,
                 s3_options: S3Options | Mapping[str, Any] | None = None,
                 key_template: str = DEFAULT_KEY_TEMPLATE,
                 compression: str = "gzip", level: int | None = None,
                 verify: bool = False, host: str | None = None,
                 after_upload: str = "delete") -> None:
        target = open_destination(destination, s3_options)
        self.shipper = Shipper(target, key_template=key_template,
                               compression=compression, level=level,
                               verify=verify, host=host)
        self.after_upload = after_upload_callback(after_upload)

    def on_close(self, filename: str) -> str | None:
        result = self.shipper.ship(filename)
        _still_the_archive_read(filename, result)
        return self.after_upload.on_close(filename)


def _still_the_archive_read(filename: str, result: ShipResult) -> None:
    """Before an in-process callback removes or moves ``filename`` once its
    copy is confirmed: raise if the name is no longer the file that was
    read (a link or another file put there meanwhile is not ours to touch)."""
    if result.identity is not None:
        check_identity(filename, result.identity)


__all__ = [
    "DEFAULT_KEY_TEMPLATE",
    "HIVE_KEY_TEMPLATE",
    "KEY_TEMPLATE_PRESETS",
    "CompressCallback",
    "KeyTemplate",
    "S3UploadCallback",
    "ShipResult",
    "Shipper",
]
