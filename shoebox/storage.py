"""Shipping closed archives: compress, copy to a destination, confirm the copy.

This is the one implementation behind both entry points: the in-process
callbacks (:class:`~shoebox.callbacks.CompressCallback`,
:class:`~shoebox.callbacks.S3UploadCallback`) and the ``shoebox-sidecar``
process. A :class:`Shipper` holds the policy (destination, key template,
compression, verification), built once; shipping one archive is

1. :meth:`Shipper.prepare`: one streaming pass over the archive counts its
   records (walking from header to header; with ``verify`` every record is
   decoded and its checksum checked, and a damaged one raises
   :class:`~shoebox.errors.CorruptRecord`), hashes the original bytes and
   compresses them into a temporary file (memory stays flat whatever the
   archive size), which also gets hashed;
2. :meth:`Shipper.deliver`: copies that file to the destination under a key
   that depends only on the archive (its name, its modification time and
   the host), so a retry after a crash rewrites the same key with the same
   bytes, and confirms the copy (size and checksum) before returning.

Deleting the local archive is the caller's business, and only after
:meth:`Shipper.deliver` has returned. Failures raise
:class:`~shoebox.errors.TransientUploadError` (retry later) or
:class:`~shoebox.errors.PermanentUploadError` (fix something first), both
naming the destination and the key.

boto3 is imported only when an S3 destination is used (``shoebox[s3]``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import errno
import hashlib
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast
from urllib.parse import quote, urlsplit

from . import s3
from ._files import fsync_directory, makedirs_durable, move_no_replace
from .archive import ArchiveReader, DamagedRange
from .codec import (
    DEFAULT_MAX_RECORD_SIZE,
    MARKER_BYTES,
    PREAMBLE_SIZE,
    Incomplete,
    record_length,
    record_version,
)
from .compression import SUFFIXES, check_level, open_compressor
from .errors import CorruptRecord, PermanentUploadError, TransientUploadError, UploadError

#: Where archives go unless told otherwise: date-partitioned (UTC date of the
#: archive's modification time, i.e. when its last record was written), then
#: the host, then the archive's own name plus the compression suffix.
DEFAULT_KEY_TEMPLATE = "{prefix}/%Y/%m/%d/{host}/{name}{suffix}"
#: Objects at least this large are uploaded in parts (boto3's transfer manager).
DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024
#: Size of each part of a multipart upload.
DEFAULT_MULTIPART_CHUNKSIZE = 16 * 1024 * 1024

_PLACEHOLDERS = ("prefix", "host", "name", "suffix")
_CHUNK = 1 << 20
_CONTENT_TYPES = {"gzip": "application/gzip", "zstd": "application/zstd",
                  "none": "application/octet-stream"}
# Error codes S3 (and MinIO, Ceph) answer with for conditions that pass.
_TRANSIENT_CODES = frozenset({
    "BadDigest", "InternalError", "OperationAborted", "RequestTimeout",
    "RequestTimeTooSkewed", "ServiceUnavailable", "SlowDown", "Throttling",
    "ThrottlingException", "TooManyRequests", "XAmzContentSHA256Mismatch",
})
# Local file-system errors that may pass (space freed, a flaky mount back).
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN,
                               errno.ETIMEDOUT, errno.ESTALE, errno.EINTR})


class KeyTemplate:
    """How a destination key is built from an archive, parsed once.

    The template holds strftime codes, applied to the archive's modification
    time in UTC, and the placeholders ``{prefix}`` (the destination's
    prefix), ``{host}``, ``{name}`` (the archive's file name) and
    ``{suffix}`` (the compression suffix, such as ``.gz``). Empty path
    segments are dropped, so an empty prefix leaves no leading ``/``.

    An archive is immutable once closed, so its modification time, hence
    its key, is the same on every retry. Raises ``ValueError`` for an
    unknown placeholder, a template without ``{name}`` (archives would
    collide) or one giving ``.``/``..`` segments.
    """

    def __init__(self, template: str = DEFAULT_KEY_TEMPLATE) -> None:
        unknown = sorted(set(re.findall(r"\{(\w*)\}", template)) - set(_PLACEHOLDERS))
        if unknown:
            raise ValueError(f"key template {template!r} has unknown placeholders "
                             f"{unknown}; known: {', '.join(_PLACEHOLDERS)}")
        if "{name}" not in template:
            raise ValueError(f"key template {template!r} must contain {{name}}, "
                             "or different archives would get the same key")
        self.template = template
        self.render(name="a.events", mtime=0.0, host="host")

    def render(self, *, name: str, mtime: float, host: str, prefix: str = "",
               suffix: str = "") -> str:
        """The key of archive ``name`` last modified at ``mtime`` (epoch seconds)."""
        text = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime(
            self.template)
        values = {"prefix": prefix, "host": host, "name": name, "suffix": suffix}
        text = re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], text)
        parts = [part for part in text.split("/") if part]
        if not parts or any(part in (".", "..") for part in parts):
            raise ValueError(f"key template {self.template!r} gives the key {text!r}, "
                             "which is empty or has '.' or '..' segments")
        return "/".join(parts)


@dataclass
class Prepared:
    """An archive read, hashed and compressed into a temporary file, ready to
    deliver. Made by :meth:`Shipper.prepare`, which removes ``path`` after."""

    #: The local archive.
    source: str
    #: The compressed copy (a temporary file).
    path: str
    #: Destination key (object key or path relative to a directory).
    key: str
    compression: str
    #: Size of the archive.
    bytes_in: int
    #: Size of the compressed copy.
    bytes_out: int
    #: Records that read back (all of them unless ``damaged``).
    records: int
    #: Hex SHA-256 of the archive.
    sha256: str
    #: SHA-256 digest of the compressed copy.
    compressed_sha256: bytes
    #: Record version of the archive's first record (``None`` for an empty archive).
    format_version: int | None
    #: Byte ranges a recovering reader would skip (only without ``verify``).
    damaged: list[DamagedRange] = field(default_factory=list)

    @property
    def compressed_sha256_b64(self) -> str:
        """The compressed copy's SHA-256 as S3 checksums spell it (base64)."""
        return base64.b64encode(self.compressed_sha256).decode("ascii")

    def metadata(self) -> dict[str, str]:
        """Object metadata describing the archive (ASCII, as HTTP headers need)."""
        return {
            "original-name": quote(os.path.basename(self.source), safe=""),
            "original-size": str(self.bytes_in),
            "sha256": self.sha256,
            "records": str(self.records),
            "shoebox-format-version": ("" if self.format_version is None
                                       else str(self.format_version)),
            "compression": self.compression,
            "damaged-bytes": str(sum(damage.length for damage in self.damaged)),
        }


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

    @property
    def ratio(self) -> float:
        """Compression ratio, original size over shipped size."""
        return self.bytes_in / self.bytes_out if self.bytes_out else 1.0


class Destination:
    """Where shipped archives go. Subclasses implement :meth:`check` and
    :meth:`deliver`; ``prefix`` feeds the key template's ``{prefix}``."""

    #: Printable name of the destination (``s3://bucket/prefix`` or a directory).
    url: str = ""
    prefix: str = ""

    def check(self) -> None:
        """Make sure copies can work; raise :class:`PermanentUploadError` (or
        :class:`TransientUploadError` when that cannot be told yet) otherwise."""
        raise NotImplementedError

    def scratch_dir(self) -> str:
        """Where compressed temporary files go by default."""
        return tempfile.gettempdir()

    def locate(self, key: str) -> str:
        """Where the copy under ``key`` is, for people to read."""
        raise NotImplementedError

    def deliver(self, prepared: Prepared) -> bool:
        """Copy ``prepared.path`` under ``prepared.key`` and confirm the copy.

        Returns True if the destination already held this archive (nothing
        written). May consume ``prepared.path`` on success, never on failure,
        so a failed delivery can be retried with the same ``prepared``.
        """
        raise NotImplementedError


class DirectoryDestination(Destination):
    """A local directory (a mounted volume, NFS): the compressed copy is synced
    under a temporary name, renamed into place without replacing anything,
    then its size and SHA-256 are checked."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.url = self.root

    def check(self) -> None:
        try:
            os.makedirs(self.root, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".shoebox-check-"):
                pass
        except OSError as exc:
            raise self._error(exc, None, "cannot write into the destination directory") from exc

    def scratch_dir(self) -> str:
        # Compressing next to the target makes delivery a rename, not a copy.
        return self.root

    def locate(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def deliver(self, prepared: Prepared) -> bool:
        target = self.locate(prepared.key)
        try:
            if os.path.lexists(target):
                if os.path.samefile(target, prepared.source):
                    raise PermanentUploadError(
                        f"{target} is the archive itself: the destination and key template "
                        "must not map an archive onto itself", destination=self.url,
                        key=prepared.key)
                return self._confirm(target, prepared, existing=True)
            # A new date directory must survive a crash as the copy in it
            # does: the archive is deleted once this returns.
            makedirs_durable(os.path.dirname(target))
            with open(prepared.path, "rb") as copy:
                os.fsync(copy.fileno())
            move_no_replace(prepared.path, target)
            fsync_directory(os.path.dirname(target))
        except FileExistsError:
            # Someone else delivered the same key meanwhile: judge their copy.
            return self._confirm(target, prepared, existing=True)
        except OSError as exc:
            raise self._error(exc, prepared.key, f"copying {prepared.source} failed") from exc
        return self._confirm(target, prepared, existing=False)

    def _confirm(self, target: str, prepared: Prepared, *, existing: bool) -> bool:
        """Check the file at ``target`` holds exactly the compressed copy."""
        try:
            digest = _file_sha256(target, sync=existing)
            if existing and digest == prepared.compressed_sha256:
                # An earlier attempt may have been killed before it synced
                # the directory: make the copy durable before the archive
                # is deleted.
                fsync_directory(os.path.dirname(target))
        except OSError as exc:
            raise self._error(exc, prepared.key, "reading the copy back failed") from exc
        if digest == prepared.compressed_sha256:
            return existing
        if existing:
            raise PermanentUploadError(
                f"{target} already exists with other contents than {prepared.source} "
                "compressed; refusing to replace it (change the key template or move it away)",
                destination=self.url, key=prepared.key)
        raise TransientUploadError(f"{target}: the copy of {prepared.source} does not match "
                                   "after writing it", destination=self.url, key=prepared.key)

    def _error(self, exc: OSError, key: str | None, what: str) -> UploadError:
        where = self.root if key is None else self.locate(key)
        kind = TransientUploadError if exc.errno in _TRANSIENT_ERRNOS else PermanentUploadError
        return kind(f"{where}: {what}: {exc}", destination=self.url, key=key)


class S3Destination(Destination):
    """An S3 bucket (or MinIO, Ceph… through ``endpoint_url``), with boto3's
    default credential chain and region.

    Uploads go through boto3's transfer manager: in parts from
    ``multipart_threshold`` bytes on, each part checksummed (SHA-256) and
    verified by the server; smaller objects carry the SHA-256 of the whole
    compressed file, which the server verifies. Every object gets
    :meth:`Prepared.metadata`. ``server_side_encryption`` (``"AES256"``,
    ``"aws:kms"``), ``kms_key_id`` and ``storage_class`` are passed through.
    After the upload a HEAD confirms size, metadata and checksum.

    Before uploading, a HEAD looks for the key: an object holding the same
    archive (same SHA-256) means an earlier attempt got there, and nothing is
    uploaded; any other object is never overwritten
    (:class:`PermanentUploadError`).
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None,
                 endpoint_url: str | None = None,
                 server_side_encryption: str | None = None, kms_key_id: str | None = None,
                 storage_class: str | None = None,
                 multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
                 multipart_chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE,
                 max_concurrency: int = 4) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}"
        self._endpoint_url = endpoint_url
        self._own_client = client is None
        self._client = client if client is not None else s3.client(
            endpoint_url, config=_client_config())
        self._client_pid = os.getpid()
        self.multipart_threshold = multipart_threshold
        from boto3.s3.transfer import TransferConfig

        self._transfer_config = TransferConfig(multipart_threshold=multipart_threshold,
                                               multipart_chunksize=multipart_chunksize,
                                               max_concurrency=max_concurrency)
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        self._boto_errors = (Boto3Error, BotoCoreError, ClientError)
        self._extra_args = {name: value for name, value in (
            ("ServerSideEncryption", server_side_encryption), ("SSEKMSKeyId", kms_key_id),
            ("StorageClass", storage_class)) if value}

    @property
    def client(self) -> Any:
        """The boto3 S3 client. A forked child (a worker of a ``--preload``
        server whose logging uploads archives) gets a client of its own: a
        boto3 client is not fork-safe, its pooled connections would be
        shared with the parent."""
        if self._own_client and self._client_pid != os.getpid():
            self._client = s3.client(self._endpoint_url, config=_client_config())
            self._client_pid = os.getpid()
        return self._client

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._boto_errors as exc:
            raise self._error(exc, None, "checking the bucket failed") from exc

    def locate(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def deliver(self, prepared: Prepared) -> bool:
        key = prepared.key
        existing = self._head(key)
        if existing is not None:
            if existing.get("Metadata", {}).get("sha256") == prepared.sha256:
                return True
            raise PermanentUploadError(
                f"{self.locate(key)} already holds another object (not {prepared.source}); "
                "refusing to overwrite it (change the key template or remove the object)",
                destination=self.url, key=key)
        multipart = prepared.bytes_out >= self.multipart_threshold
        extra: dict[str, Any] = {"Metadata": prepared.metadata(),
                                 "ContentType": _CONTENT_TYPES[prepared.compression],
                                 **self._extra_args}
        if multipart:
            extra["ChecksumAlgorithm"] = "SHA256"
        else:
            extra["ChecksumSHA256"] = prepared.compressed_sha256_b64
        try:
            self.client.upload_file(prepared.path, self.bucket, key, ExtraArgs=extra,
                                    Config=self._transfer_config)
        except self._boto_errors as exc:
            raise self._error(exc, key, f"uploading {prepared.source} failed") from exc
        self._confirm(prepared, multipart)
        return False

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self.client.head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"))
        except self._boto_errors as exc:
            if _status(exc) == 404:
                return None
            raise self._error(exc, key, "HEAD failed") from exc

    def _confirm(self, prepared: Prepared, multipart: bool) -> None:
        head = self._head(prepared.key)
        problem = None
        if head is None:
            problem = "the object is missing after the upload"
        elif head.get("ContentLength") != prepared.bytes_out:
            problem = (f"the server holds {head.get('ContentLength')} bytes, "
                       f"{prepared.bytes_out} were uploaded")
        elif head.get("Metadata", {}).get("sha256") != prepared.sha256:
            problem = "the object's sha256 metadata does not match"
        elif not multipart and head.get("ChecksumSHA256") not in (
                None, prepared.compressed_sha256_b64):
            problem = (f"the server's SHA-256 {head.get('ChecksumSHA256')} is not "
                       f"{prepared.compressed_sha256_b64}")
        if problem:
            raise TransientUploadError(f"{self.locate(prepared.key)}: upload of "
                                       f"{prepared.source} not confirmed: {problem}",
                                       destination=self.url, key=prepared.key)

    def _error(self, exc: Exception, key: str | None, what: str) -> UploadError:
        """Turn a boto3/botocore error into a transient or permanent one."""
        where = f"s3://{self.bucket}" if key is None else self.locate(key)
        code = _error_code(exc)
        status = _status(exc)
        if code in ("NoSuchBucket",) or (key is None and status == 404):
            reason = f"bucket {self.bucket!r} does not exist"
        elif code in ("AccessDenied", "AllAccessDisabled") or status == 403:
            reason = f"access denied to bucket {self.bucket!r} ({code or status})"
        else:
            reason = str(_boto_cause(exc))
        kind = TransientUploadError if _is_transient(exc) else PermanentUploadError
        return kind(f"{where}: {what}: {reason}", destination=self.url, key=key)


class Shipper:
    """Compresses archives and copies them to one destination; the policy is
    fixed at construction.

    ``destination``: a :class:`Destination`. ``key_template``: see
    :class:`KeyTemplate`. ``compression``: ``"gzip"`` (default), ``"zstd"``
    (``shoebox[zstd]``) or ``"none"``, at ``level``. ``verify``: every
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

    def key_for(self, path: str, mtime: float) -> str:
        """The destination key of the archive at ``path`` modified at ``mtime``."""
        return self.key_template.render(
            name=os.path.basename(path), mtime=mtime, host=self.host,
            prefix=self.destination.prefix, suffix=SUFFIXES[self.compression])

    @contextlib.contextmanager
    def prepare(self, path: str) -> Iterator[Prepared]:
        """Read, hash and compress the archive at ``path`` into a temporary
        file, removed when the ``with`` block ends.

        Raises ``FileNotFoundError`` if the archive is gone and, with
        ``verify``, :class:`~shoebox.errors.CorruptRecord` for damage.
        """
        scratch = self.tmp_dir or self.destination.scratch_dir()
        os.makedirs(scratch, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=scratch, prefix=".shoebox-", suffix=".partial")
        try:
            with open(path, "rb") as source, os.fdopen(fd, "wb") as target:
                prepared = self._compress(path, source, target, temporary)
            yield prepared
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

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
            already_present=already)

    def ship(self, path: str) -> ShipResult:
        """Prepare and deliver one archive, once (no retries)."""
        started = time.monotonic()
        with self.prepare(path) as prepared:
            return self.deliver(prepared, started)

    def _compress(self, path: str, source: IO[bytes], target: IO[bytes],
                  temporary: str) -> Prepared:
        status = os.fstat(source.fileno())
        mtime = status.st_mtime
        # The copy gets the archive's permission bits, not mkstemp's 0600,
        # so that a compressed file stays readable by whoever read the archive.
        os.fchmod(target.fileno(), stat.S_IMODE(status.st_mode))
        original = hashlib.sha256()
        compressed = _HashingWriter(target)
        counter = _RecordCounter(self.max_record_size)
        with open_compressor(cast(IO[bytes], compressed), self.compression,
                             self.level) as sink:
            tee = _Tee(source, path, (original.update, sink.write, counter.feed))
            if self.verify:
                # Decodes every record and checks its checksum; the first
                # damaged one raises CorruptRecord naming file and offset.
                for _record in ArchiveReader(cast(IO[bytes], tee),
                                             max_record_size=self.max_record_size):
                    pass
            tee.drain()
        target.flush()
        records, damaged = counter.finish(), []
        if records is None:
            # The header walk stumbled on damage: count what a recovering
            # reader keeps, and where it skips (a second pass, damaged
            # archives only).
            with ArchiveReader(path, recover=True,
                               max_record_size=self.max_record_size) as reader:
                records = sum(1 for _record in reader)
                damaged = reader.damaged
        return Prepared(
            source=path, path=temporary, key=self.key_for(path, mtime),
            compression=self.compression, bytes_in=tee.size, bytes_out=compressed.size,
            records=records, sha256=original.hexdigest(),
            compressed_sha256=compressed.digest.digest(),
            format_version=tee.format_version, damaged=damaged)


def open_destination(dest: str, *, endpoint_url: str | None = None,
                     **s3_options: Any) -> Destination:
    """The destination a ``--dest`` string names: ``s3://bucket/prefix`` (with
    ``endpoint_url`` and the other :class:`S3Destination` options), a
    ``file://`` URL or a directory path. Options whose value is ``None`` are
    left out. Raises ``ValueError`` for other URLs, and for S3 options given
    with a directory."""
    options = {name: value for name, value in s3_options.items() if value is not None}
    if s3.is_s3_url(dest):
        bucket, prefix = s3.parse_s3_url(dest)
        return S3Destination(bucket, prefix, endpoint_url=endpoint_url, **options)
    if endpoint_url is not None or options:
        raise ValueError(f"destination {dest!r} is a directory; "
                         f"{', '.join(sorted(options)) or 'endpoint_url'} only apply to s3://")
    parts = urlsplit(dest)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file:// URL {dest!r} names a remote host")
        return DirectoryDestination(parts.path)
    if parts.scheme and "://" in dest:
        raise ValueError(f"destination {dest!r}: only s3://, file:// and directory paths "
                         "are supported")
    return DirectoryDestination(dest)


class _Tee:
    """A read-only stream over ``source`` that passes every chunk read to
    ``sinks`` (hash, compressor) and notes the first record's version."""

    def __init__(self, source: IO[bytes], name: str,
                 sinks: tuple[Callable[[bytes], object], ...]) -> None:
        self._source = source
        self.name = name  # so CorruptRecord names the archive
        self._sinks = sinks
        self._head = b""
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        for sink in self._sinks:
            sink(chunk)
        if len(self._head) < PREAMBLE_SIZE:
            self._head += chunk[:PREAMBLE_SIZE - len(self._head)]
        self.size += len(chunk)
        return chunk

    def drain(self) -> None:
        """Read to the end (a reader stops at the last record it can use)."""
        while self.read(_CHUNK):
            pass

    def close(self) -> None:
        """The caller owns ``source``."""

    @property
    def format_version(self) -> int | None:
        if len(self._head) < PREAMBLE_SIZE or not self._head.startswith(MARKER_BYTES):
            return None
        return record_version(self._head)


class _RecordCounter:
    """Counts the records of a stream fed chunk by chunk, walking from header
    to header (:func:`~shoebox.codec.record_length`): nothing is
    decoded or checksummed, and only a header's worth of bytes is kept
    between chunks, whatever the record sizes."""

    def __init__(self, max_record_size: int) -> None:
        self._max_record_size = max_record_size
        self._pending = b""  # the start of a header cut by a chunk boundary
        self._skip = 0  # bytes of the current record still to come
        self._count = 0
        self._broken = False

    def feed(self, chunk: bytes) -> None:
        if self._broken or not chunk:
            return
        if self._skip >= len(chunk):
            self._skip -= len(chunk)
            return
        data = self._pending + chunk[self._skip:] if self._pending else chunk[self._skip:]
        self._skip = 0
        position = 0
        while position < len(data):
            try:
                length = record_length(data, position, self._max_record_size)
            except Incomplete:
                break
            except CorruptRecord:
                self._broken = True
                return
            self._count += 1
            position += length
        if position > len(data):
            self._skip, self._pending = position - len(data), b""
        else:
            self._pending = data[position:]

    def finish(self) -> int | None:
        """The number of records, or ``None`` if the stream is damaged (bytes
        that are not a record, or a record cut short at the end)."""
        if self._broken or self._pending or self._skip:
            return None
        return self._count


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


def _file_sha256(path: str, sync: bool = False) -> bytes:
    """SHA-256 digest of the file at ``path``; with ``sync``, fsync it too."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
        if sync:
            os.fsync(file.fileno())
    return digest.digest()


def _client_config() -> Any:
    """botocore settings for the shipping client: bounded timeouts, and few
    retries inside botocore, since callers retry with their own backoff."""
    from botocore.config import Config

    return Config(connect_timeout=10, read_timeout=60,
                  retries={"mode": "standard", "max_attempts": 2})


def _boto_cause(exc: BaseException) -> BaseException:
    """The ClientError behind boto3's S3UploadFailedError wrapper, if any."""
    inner = exc.__cause__ or exc.__context__
    if type(exc).__name__ == "S3UploadFailedError" and inner is not None:
        return inner
    return exc


def _error_code(exc: BaseException) -> str:
    response = getattr(_boto_cause(exc), "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(exc: BaseException) -> int | None:
    response = getattr(_boto_cause(exc), "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _is_transient(exc: BaseException) -> bool:
    """Whether a boto3/botocore error may pass: connection trouble, timeouts,
    5xx answers, throttling."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    cause = _boto_cause(exc)
    if isinstance(cause, (BotoConnectionError, HTTPClientError)):
        return True
    status = _status(cause)
    return _error_code(cause) in _TRANSIENT_CODES or (status is not None and status >= 500)


__all__ = [
    "DEFAULT_KEY_TEMPLATE",
    "DEFAULT_MULTIPART_CHUNKSIZE",
    "DEFAULT_MULTIPART_THRESHOLD",
    "Destination",
    "DirectoryDestination",
    "KeyTemplate",
    "Prepared",
    "S3Destination",
    "ShipResult",
    "Shipper",
    "open_destination",
]
