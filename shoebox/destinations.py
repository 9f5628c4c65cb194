"""Destinations: where shipped archives go, and how a copy is confirmed.

A :class:`Destination` is given a :class:`Prepared` archive (compressed
into a temporary file, hashed) and copies it under its key, then confirms
the copy (size and checksum) before :meth:`Destination.deliver` returns:
only then may the local archive be deleted. :class:`DirectoryDestination`
writes into a local directory (a mounted volume, NFS), :class:`S3Destination`
into a bucket. Failures raise
:class:`~shoebox.errors.TransientUploadError` (retry later) or
:class:`~shoebox.errors.PermanentUploadError` (fix something first), both
naming the destination and the key.

A new destination is a subclass implementing :meth:`Destination.check`,
:meth:`~Destination.locate` and :meth:`~Destination.deliver`, reached from
:func:`open_destination`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote, urlsplit

from . import s3
from ._files import (
    fsync_directory,
    makedirs_durable,
    move_no_replace,
    not_a_directory,
    open_regular,
)
from .archive import DamagedRange
from .errors import PASSING_ERRNOS, PermanentUploadError, TransientUploadError, UploadError

_CHUNK = 1 << 20
_CONTENT_TYPES = {"gzip": "application/gzip", "zstd": "application/zstd",
                  "none": "application/octet-stream"}


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
    #: ``(st_dev, st_ino)`` of the archive's file as it was read (``None``
    #: when not known): whoever removes or moves ``source`` afterwards checks
    #: that the name still leads to that file, not to a link swapped in.
    identity: tuple[int, int] | None = None

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

    def abort_incomplete(self, keys: Collection[str]) -> list[str]:
        """Abort the unfinished copies (multipart uploads a killed process left)
        of the objects under ``keys``, and only those; return a description
        of each one aborted. A directory has none of its own: a killed copy
        is a staged temporary file, which
        :meth:`~shoebox.shipping.Shipper.remove_stale_temporaries` removes."""
        return []


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
            blocking = not_a_directory(self.root)
            if blocking is not None:  # not "[Errno 17] File exists" (issue 18)
                raise PermanentUploadError(
                    f"{self.root}: cannot write into the destination directory: "
                    f"{blocking} is a file, not a directory", destination=self.url) from exc
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
                if _same_entry(target, prepared.source):
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
        kind = TransientUploadError if exc.errno in PASSING_ERRNOS else PermanentUploadError
        return kind(f"{where}: {what}: {exc}", destination=self.url, key=key)


class S3Destination(Destination):
    """An S3 bucket (or MinIO, Ceph… through the options' ``endpoint_url``),
    with boto3's default credential chain and region, talked to as
    ``options`` (an :class:`~shoebox.s3.S3Options`, or a mapping of its
    fields) says.

    Uploads go through boto3's transfer manager: in parts from the options'
    multipart threshold on, each part checksummed (SHA-256) and verified by
    the server; smaller objects carry the SHA-256 of the whole compressed
    file, which the server verifies. Each request waits at most the options'
    timeouts: a stalled request fails, transiently, to be retried. Every
    object gets :meth:`Prepared.metadata`, and the options' encryption,
    storage class, ACL and tags. After the upload a HEAD confirms size,
    metadata and checksum.

    Before uploading, a HEAD looks for the key: an object holding the same
    archive (same SHA-256) means an earlier attempt got there, and nothing is
    uploaded; any other object is never overwritten
    (:class:`PermanentUploadError`). Raises
    :class:`~shoebox.errors.MissingExtra` without boto3.

    Its errors carry botocore's message with the credentials of the endpoint
    URL hidden, and are raised ``from None``: botocore's own error, whose
    message repeats the URL whole, is left out of tracebacks (an
    application's log prints them, through the roll manager, for the
    in-process callbacks); it stays reachable as ``__context__``.
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None,
                 options: s3.S3Options | Mapping[str, Any] | None = None) -> None:
        self.options = s3.S3Options.of(options)
        self._config = s3.client_config(self.options)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}"
        self._own_client = client is None
        self._client = client if client is not None else s3.client(
            self.options.endpoint_url, config=self._config)
        self._client_pid = os.getpid()
        self.multipart_threshold = self.options.multipart_threshold
        self._transfer_config = s3.transfer_config(self.options)
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        self._boto_errors = (Boto3Error, BotoCoreError, ClientError)
        self._extra_args = self.options.upload_arguments()

    @property
    def client(self) -> Any:
        """The boto3 S3 client. A forked child (a worker of a ``--preload``
        server whose logging uploads archives) gets a client of its own: a
        boto3 client is not fork-safe, its pooled connections would be
        shared with the parent."""
        if self._own_client and self._client_pid != os.getpid():
            self._client = s3.client(self.options.endpoint_url, config=self._config)
            self._client_pid = os.getpid()
        return self._client

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._boto_errors as exc:
            if s3.http_status(exc) == 403 and s3.error_code(exc) in ("", "403"):
                # The answer to a HEAD has no body, so no reason (botocore
                # makes its code "403"): ask once more with a GET, whose
                # answer names it (issue 18: wrong credentials were
                # reported as "access denied to bucket").
                try:
                    self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
                except self._boto_errors as detailed:
                    if s3.error_code(detailed) not in ("", "403"):
                        exc = detailed
            raise self._error(exc, None, "checking the bucket failed") from None

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
        # The algorithm header (x-amz-sdk-checksum-algorithm) goes with the
        # value too: buckets with Object Lock retention refuse a PUT that
        # carries only x-amz-checksum-sha256 (or no Content-MD5).
        extra["ChecksumAlgorithm"] = "SHA256"
        if not multipart:
            extra["ChecksumSHA256"] = prepared.compressed_sha256_b64
        try:
            self.client.upload_file(prepared.path, self.bucket, key, ExtraArgs=extra,
                                    Config=self._transfer_config)
        except self._boto_errors as exc:
            error = self._error(exc, key, f"uploading {prepared.source} failed")
            # The answer to the request that completed the upload may be what
            # was lost (a connection reset after the server acted), and
            # botocore's retry of it then fails (NoSuchUpload): the object
            # may be there, whole. The confirmation below judges it. Not
            # after throttling: the server asked for fewer requests.
            if (isinstance(error, TransientUploadError) and error.throttled) or \
                    not self._landed(prepared):
                raise error from None
        self._confirm(prepared, multipart)
        if multipart:
            self._abort_orphans(key)
        return False

    def _abort_orphans(self, key: str) -> None:
        """After a confirmed multipart upload, abort the uploads still open
        under its very key: orphans of this delivery, created by the server
        when the answer carrying their id was lost (botocore then retried
        CreateMultipartUpload), billed until aborted. Best effort: the copy
        is confirmed, so a failure here only leaves what an
        AbortIncompleteMultipartUpload lifecycle rule cleans."""
        with contextlib.suppress(UploadError):
            self.abort_incomplete([key])

    def _landed(self, prepared: Prepared) -> bool:
        """Whether the key holds this archive after a failed upload (judged by
        its sha256 metadata; :meth:`_confirm` checks the rest)."""
        try:
            head = self._head(prepared.key)
        except UploadError:
            return False
        return head is not None and head.get("Metadata", {}).get("sha256") == prepared.sha256

    def abort_incomplete(self, keys: Collection[str]) -> list[str]:
        """Abort the multipart uploads in progress under ``keys`` (among those
        whose key starts with the prefix): a sidecar killed between parts
        left them, and S3 bills their parts until they are aborted. Uploads
        of other keys, someone else's, are never touched. Listing needs the
        ``s3:ListBucketMultipartUploads`` permission, aborting
        ``s3:AbortMultipartUpload``; raises :class:`UploadError` when either
        fails."""
        wanted = set(keys)
        aborted: list[str] = []
        if not wanted:
            return aborted
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            uploads = [upload for page in paginator.paginate(Bucket=self.bucket,
                                                             Prefix=self.prefix)
                       for upload in page.get("Uploads", ())]
        except self._boto_errors as exc:
            raise self._error(exc, None, "listing incomplete multipart uploads failed") from None
        for upload in uploads:
            key, upload_id = upload["Key"], upload["UploadId"]
            if key not in wanted:
                continue
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                   UploadId=upload_id)
            except self._boto_errors as exc:
                if s3.error_code(exc) == "NoSuchUpload":  # completed or aborted meanwhile
                    continue
                raise self._error(exc, key, f"aborting multipart upload {upload_id} "
                                            "failed") from None
            aborted.append(f"{self.locate(key)} (upload {upload_id}, started "
                           f"{upload.get('Initiated', 'at an unknown time')})")
        return aborted

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self.client.head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"))
        except self._boto_errors as exc:
            if s3.http_status(exc) == 404:
                return None
            raise self._error(exc, key, "HEAD failed") from None

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
        reason = s3.reason(exc, self.bucket, about_bucket=key is None)
        message = f"{where}: {what}: {reason}"
        if not s3.is_transient(exc):
            return PermanentUploadError(message, destination=self.url, key=key)
        return TransientUploadError(message, destination=self.url, key=key,
                                    throttled=s3.is_throttling(exc),
                                    retry_after=s3.retry_after(exc))


def open_destination(dest: str,
                     s3_options: s3.S3Options | Mapping[str, Any] | None = None) -> Destination:
    """The destination a ``--dest`` string names: ``s3://bucket/prefix`` (an
    :class:`S3Destination` taking ``s3_options``), a ``file://`` URL or a
    directory path. Raises ``ValueError`` for other URLs, and for S3 options
    that would change a copy (endpoint, encryption, storage class, ACL,
    tags) given with a directory; the others (timeouts, part sizes) do not
    concern a directory."""
    options = s3.S3Options.of(s3_options)
    if s3.is_s3_url(dest):
        bucket, prefix = s3.parse_s3_url(dest)
        return S3Destination(bucket, prefix, options=options)
    refused = [name for name in options.changed() if name not in options.TRANSPORT]
    if refused:
        raise ValueError(f"destination {dest!r} is a directory; "
                         f"{', '.join(refused)} only apply to s3://")
    parts = urlsplit(dest)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file:// URL {dest!r} names a remote host")
        return DirectoryDestination(parts.path)
    if parts.scheme and "://" in dest:
        raise ValueError(f"destination {dest!r}: only s3://, file:// and directory paths "
                         "are supported")
    return DirectoryDestination(dest)


def _same_entry(first: str, second: str) -> bool:
    """Whether two directory entries, links not followed, are one file."""
    one, other = os.lstat(first), os.lstat(second)
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _file_sha256(path: str, sync: bool = False) -> bytes:
    """SHA-256 digest of the regular file at ``path`` (never through a link:
    a copy confirmed through one could change after the archive is
    deleted); with ``sync``, fsync it too."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
        if sync:
            os.fsync(file.fileno())
    return digest.digest()


__all__ = [
    "Destination",
    "DirectoryDestination",
    "Prepared",
    "S3Destination",
    "open_destination",
]
