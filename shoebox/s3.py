"""Everything shoebox knows about boto3 and S3, shared by the destinations,
the sidecar and the readers: ``s3://`` URLs, clients and their settings,
listing and streaming objects, and sorting boto3's errors into those that
may pass and those that will not. boto3 is imported here, when first
needed (install the ``shoebox-archive[s3]`` extra)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import IO, Any, ClassVar
from urllib.parse import urlencode

from ._redact import redact, remember_url
from .errors import InvalidOption, MissingExtra
from .options import positive_number, whole_number

#: Error codes S3 (and MinIO, Ceph) answer with for conditions that pass.
TRANSIENT_CODES = frozenset({
    "BadDigest", "InternalError", "OperationAborted", "RequestTimeout",
    "RequestTimeTooSkewed", "ServiceUnavailable", "SlowDown", "Throttling",
    "ThrottlingException", "TooManyRequests", "XAmzContentSHA256Mismatch",
})


#: Error codes that mean "slow down": the server is loaded, not failing
#: (``SlowDownRead``/``SlowDownWrite``: MinIO's).
THROTTLING_CODES = frozenset({
    "SlowDown", "SlowDownRead", "SlowDownWrite", "Throttling", "ThrottlingException",
    "TooManyRequests", "RequestLimitExceeded", "RequestThrottled",
})

#: S3's canned ACLs, for :attr:`S3Options.acl`.
CANNED_ACLS = ("authenticated-read", "aws-exec-read", "bucket-owner-full-control",
               "bucket-owner-read", "log-delivery-write", "private", "public-read",
               "public-read-write")
#: S3's server-side encryption modes, for :attr:`S3Options.sse`.
SSE_MODES = ("AES256", "aws:kms", "aws:kms:dsse")
#: S3's limits on object tags.
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 10, 128, 256
#: S3's smallest part (all but the last part of a multipart upload), in MiB.
MIN_MULTIPART_CHUNK_MB = 5
_MB = 1024 * 1024


@dataclass(frozen=True)
class S3Options:
    """How shoebox talks to an S3 bucket, as one value: built and checked
    once, then taken whole by :class:`~shoebox.destinations.S3Destination`,
    :class:`~shoebox.shipping.S3UploadCallback` and the sidecar (whose flags
    of the same names default to these fields' defaults). Building it needs
    no boto3.

    - ``endpoint_url``: MinIO, Ceph or a local test server (default: boto3's
      configuration, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``);
    - ``connect_timeout``, ``read_timeout``: seconds to wait to connect and
      for each read of an answer (more than 0: a stalled request fails, to be
      retried);
    - ``sse`` (one of :data:`SSE_MODES`), ``sse_kms_key_id``,
      ``storage_class``, ``acl`` (one of :data:`CANNED_ACLS`): passed to
      every upload; ``tags``: the uploaded objects' tags (a mapping, at most
      :data:`MAX_TAGS`);
    - ``multipart_threshold_mb``: upload in parts from this size on;
      ``multipart_chunk_mb``: each part's size (at least
      :data:`MIN_MULTIPART_CHUNK_MB`); ``max_concurrency``: parts in flight.

    Numbers may be given as strings (configuration files do). A bad value
    raises :class:`~shoebox.errors.InvalidOption` (a ``ValueError``)
    naming the field; an unknown field, ``TypeError``.
    """

    #: The fields that say how to talk to S3, not what a copy is: a
    #: directory destination ignores them.
    TRANSPORT: ClassVar[tuple[str, ...]] = (
        "connect_timeout", "read_timeout", "multipart_threshold_mb", "multipart_chunk_mb",
        "max_concurrency")

    endpoint_url: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    acl: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    multipart_threshold_mb: float = 64.0
    multipart_chunk_mb: float = 16.0
    max_concurrency: int = 4

    def __post_init__(self) -> None:
        def take(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("connect_timeout", "read_timeout", "multipart_threshold_mb",
                     "multipart_chunk_mb"):
            # botocore takes a timeout of 0 as "none": a stall would last forever.
            value = getattr(self, name)
            unit = " seconds" if name.endswith("timeout") else ""
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and not value > 0:
                raise InvalidOption(name, f"must be more than 0{unit}, not {value:g}")
            take(name, positive_number(name, value))
        if self.multipart_chunk_mb < MIN_MULTIPART_CHUNK_MB:
            raise InvalidOption("multipart_chunk_mb", f"must be at least "
                                f"{MIN_MULTIPART_CHUNK_MB} (S3's smallest part), "
                                f"not {self.multipart_chunk_mb:g}")
        take("max_concurrency", whole_number("max_concurrency", self.max_concurrency,
                                             minimum=1))
        for name in ("endpoint_url", "sse", "sse_kms_key_id", "storage_class", "acl"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, not {type(value).__name__}")
            take(name, value or None)
        for name, choices in (("sse", SSE_MODES), ("acl", CANNED_ACLS)):
            if getattr(self, name) not in (None, *choices):
                raise InvalidOption(name, f"must be one of {', '.join(choices)}, "
                                          f"not {getattr(self, name)!r}")
        take("tags", _checked_tags(self.tags))

    @classmethod
    def of(cls, value: S3Options | Mapping[str, Any] | None) -> S3Options:
        """``value`` as options: itself, the defaults for ``None``, or built
        from a mapping of fields (what ``dictConfig`` gives)."""
        if value is None:
            return cls()
        if isinstance(value, S3Options):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        raise TypeError(f"S3 options must be S3Options or a mapping, not "
                        f"{type(value).__name__}")

    def changed(self) -> list[str]:
        """The names of the fields that differ from their defaults."""
        default = S3Options()
        return [item.name for item in fields(self)
                if getattr(self, item.name) != getattr(default, item.name)]

    @property
    def multipart_threshold(self) -> int:
        """:attr:`multipart_threshold_mb` in bytes."""
        return int(self.multipart_threshold_mb * _MB)

    @property
    def multipart_chunksize(self) -> int:
        """:attr:`multipart_chunk_mb` in bytes."""
        return int(self.multipart_chunk_mb * _MB)

    def upload_arguments(self) -> dict[str, str]:
        """What every upload passes to S3 (``ExtraArgs``), without the unset."""
        tagging = urlencode(dict(self.tags)) if self.tags else None
        return {name: value for name, value in (
            ("ServerSideEncryption", self.sse), ("SSEKMSKeyId", self.sse_kms_key_id),
            ("StorageClass", self.storage_class), ("ACL", self.acl), ("Tagging", tagging))
            if value}


def _checked_tags(tags: Any) -> dict[str, str]:
    """Object tags as a new dict; raises for tags S3 would refuse."""
    if not isinstance(tags, Mapping):
        raise TypeError(f"tags must be a mapping of strings, not {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise InvalidOption("tags", f"S3 allows at most {MAX_TAGS} tags per object, "
                                    f"not {len(tags)}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"tags must map strings to strings, not {key!r}: {value!r}")
        if not 0 < len(key) <= MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            raise InvalidOption("tags", f"{key!r}: S3 takes keys of 1 to {MAX_TAG_KEY} "
                                        f"characters and values of up to {MAX_TAG_VALUE}")
    return dict(tags)


def is_s3_url(text: str) -> bool:
    """Whether ``text`` is an ``s3://`` URL."""
    return text.startswith("s3://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into ``(bucket, prefix)``; the prefix has no
    leading slash and may be empty. Raises ``ValueError`` for other URLs.

    The prefix is taken as written: ``?``, ``#`` and ``%`` are ordinary
    characters in S3 keys (and ``?`` a glob character for readers), not URL
    syntax.
    """
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme.lower() != "s3" or not bucket:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    return bucket, prefix.lstrip("/")


def client(endpoint_url: str | None = None, **options: Any) -> Any:
    """A boto3 S3 client using boto3's default credential chain and region;
    ``endpoint_url`` points it at MinIO, Ceph or a local test server. Without
    it, boto3 takes the endpoint from its configuration: the environment
    variables ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, or
    ``endpoint_url`` in the AWS config file (botocore 1.31 and later).
    The credentials of the endpoints given here or in those variables are
    hidden from redacted text from then on, however they are spelled
    (:func:`~shoebox._redact.remember_url`); one set only in the AWS config
    file is hidden by the URL pattern alone. Raises ``ValueError`` for an
    endpoint botocore refuses, naming it with its credentials hidden."""
    # botocore repeats the endpoint in its messages, with any password in
    # it as given (issue 17): from now on, every redacted text hides it.
    for url in (endpoint_url, os.environ.get("AWS_ENDPOINT_URL_S3"),
                os.environ.get("AWS_ENDPOINT_URL")):
        remember_url(url)
    try:
        return boto3().client("s3", endpoint_url=endpoint_url, **options)
    except ValueError as exc:
        # botocore's "Invalid endpoint: URL" repeats the URL whole, with
        # any password in it (issue 17).
        raise ValueError(redact(str(exc))) from None


def boto3() -> Any:
    """The boto3 module; raises :class:`~shoebox.errors.MissingExtra` naming
    the extra when it is not installed."""
    try:
        import boto3
    except ImportError as exc:
        raise MissingExtra.needs("S3 access needs boto3", "s3") from exc
    return boto3


def list_objects(s3_client: Any, bucket: str, prefix: str = "") -> Iterator[tuple[str, int]]:
    """``(key, size)`` of every object in ``bucket`` whose key starts with
    ``prefix``, in key order, page after page (list_objects_v2 paginator)."""
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            yield item["Key"], item["Size"]


def list_level(s3_client: Any, bucket: str,
               prefix: str) -> Iterator[tuple[str, int, bool]]:
    """One level of the folder ``prefix`` (ending in ``/``, or empty):
    ``(key, size, False)`` for each object directly in it and ``(folder,
    0, True)`` for each sub-folder (``prefix/name/``), in key order, page
    after page (a delimited list_objects_v2: the sub-folders' contents are
    not listed)."""
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        level = [(item["Key"], item["Size"], False) for item in page.get("Contents", ())]
        level += [(item["Prefix"], 0, True) for item in page.get("CommonPrefixes", ())]
        yield from sorted(level)


def first_object(s3_client: Any, bucket: str, prefix: str) -> tuple[str, int] | None:
    """``(key, size)`` of the first object whose key starts with ``prefix``
    (the object named ``prefix`` itself, if there is one: it sorts first),
    in one request; ``None`` when there is none."""
    page = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    for item in page.get("Contents", ()):
        return item["Key"], item["Size"]
    return None


def open_object(s3_client: Any, bucket: str, key: str) -> IO[bytes]:
    """A binary stream of one object's bytes, fetched from the network as it is
    read (nothing is written to disk). Close it when done."""
    body: IO[bytes] = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    return body


def upload_file(s3_client: Any, path: str, bucket: str, key: str) -> None:
    """Upload the file at ``path`` as ``bucket``/``key``, replacing any object
    there (boto3's transfer manager: in parts when large)."""
    s3_client.upload_file(path, bucket, key)


def is_s3_error(error: BaseException) -> bool:
    """Whether ``error`` is a botocore error (a failed request, missing
    credentials, a missing bucket or key) or boto3's (its transfer
    manager's ``S3UploadFailedError``), without importing either."""
    botocore = sys.modules.get("botocore.exceptions")
    boto3 = sys.modules.get("boto3.exceptions")
    return (botocore is not None and isinstance(
        error, (botocore.BotoCoreError, botocore.ClientError))) or (
        boto3 is not None and isinstance(error, boto3.Boto3Error))


def client_config(options: S3Options) -> Any:
    """botocore settings for a shipping client: the options' bounded timeouts
    (a stalled connection or answer fails after them, and is retried), and
    one quick retry inside botocore, since callers retry with their own
    backoff. Raises :class:`~shoebox.errors.MissingExtra` without boto3."""
    boto3()
    from botocore.config import Config

    return Config(connect_timeout=options.connect_timeout, read_timeout=options.read_timeout,
                  retries={"mode": "standard", "total_max_attempts": 2})


def transfer_config(options: S3Options) -> Any:
    """boto3's transfer settings (when and how to upload in parts) for the
    options."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=options.multipart_threshold,
                          multipart_chunksize=options.multipart_chunksize,
                          max_concurrency=options.max_concurrency)


def boto_cause(exc: BaseException) -> BaseException:
    """The ClientError behind boto3's S3UploadFailedError wrapper, if any."""
    inner = exc.__cause__ or exc.__context__
    if type(exc).__name__ == "S3UploadFailedError" and inner is not None:
        return inner
    return exc


def error_code(exc: BaseException) -> str:
    """The S3 error code (``NoSuchBucket``, ``SlowDown``…) of a boto3 error, or ``""``."""
    response = getattr(boto_cause(exc), "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of the answer behind a boto3 error, if there was one."""
    response = getattr(boto_cause(exc), "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


#: Error codes that mean the credentials themselves are wrong (an unknown
#: access key, a bad secret, an expired session), not the bucket's policy.
CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                              "InvalidToken", "TokenRefreshRequired"})


def reason(exc: BaseException, bucket: str, *, about_bucket: bool = False) -> str:
    """Why a request to ``bucket`` failed, naming the bucket when it is the
    trouble (it does not exist, access is denied), else botocore's message
    with the credentials of the URLs in it hidden (botocore repeats the
    endpoint URL whole: ``Could not connect to the endpoint URL: …``).
    ``about_bucket``: the request was about the bucket itself, whose 404
    answer (to a HEAD) has no error code."""
    code = error_code(exc)
    status = http_status(exc)
    if code == "NoSuchBucket" or (about_bucket and status == 404):
        return f"bucket {bucket!r} does not exist ({code or status})"
    if code in CREDENTIAL_CODES:
        return f"the credentials were refused ({code}), not just access to bucket {bucket!r}"
    if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
        return f"access denied to bucket {bucket!r} ({code or status})"
    return redact(str(boto_cause(exc)))


def is_throttling(exc: BaseException) -> bool:
    """Whether a boto3/botocore error is the server asking to slow down: a
    throttling code, or any ``503`` or ``429`` answer (an answer to a HEAD
    has no body, so no code: S3's ``SlowDown`` to a HEAD is a bare 503)."""
    return error_code(exc) in THROTTLING_CODES or http_status(exc) in (429, 503)


def retry_after(exc: BaseException) -> float | None:
    """The seconds the ``Retry-After`` header of the answer behind a boto3
    error asks for, if it sent one in seconds (not an HTTP date)."""
    response = getattr(boto_cause(exc), "response", None) or {}
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def is_transient(exc: BaseException) -> bool:
    """Whether a boto3/botocore error may pass: connection trouble, timeouts,
    5xx answers, throttling."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    cause = boto_cause(exc)
    if isinstance(cause, (BotoConnectionError, HTTPClientError)) or is_throttling(cause):
        return True
    status = http_status(cause)
    return error_code(cause) in TRANSIENT_CODES or (status is not None and status >= 500)
