"""Everything shoebox knows about boto3 and S3, shared by the destinations,
the sidecar and the readers: ``s3://`` URLs, clients and their settings,
listing and streaming objects, and sorting boto3's errors into those that
may pass and those that will not. boto3 is imported here, when first
needed (install the ``shoebox-archive[s3]`` extra)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import IO, Any

from ._redact import redact, remember_url
from .errors import MissingExtra

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

#: Seconds a shipping client waits to connect, and for each read of an answer.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0


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
    The endpoints' credentials are hidden from redacted text from then on
    (:func:`~shoebox._redact.remember_url`). Raises ``ValueError`` for an
    endpoint botocore refuses, naming it with its credentials hidden."""
    try:
        import boto3
    except ImportError as exc:
        raise MissingExtra("S3 access needs boto3: pip install 'shoebox-archive[s3]'") from exc
    # botocore repeats the endpoint in its messages, with any password in
    # it as given (issue 17): from now on, every redacted text hides it.
    for url in (endpoint_url, os.environ.get("AWS_ENDPOINT_URL_S3"),
                os.environ.get("AWS_ENDPOINT_URL")):
        remember_url(url)
    try:
        return boto3.client("s3", endpoint_url=endpoint_url, **options)
    except ValueError as exc:
        # botocore's "Invalid endpoint: URL" repeats the URL whole, with
        # any password in it (issue 17).
        raise ValueError(redact(str(exc))) from None


def list_objects(s3_client: Any, bucket: str, prefix: str = "") -> Iterator[tuple[str, int]]:
    """``(key, size)`` of every object in ``bucket`` whose key starts with
    ``prefix``, in key order, page after page (list_objects_v2 paginator)."""
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            yield item["Key"], item["Size"]


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


def client_config(*, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                  read_timeout: float = DEFAULT_READ_TIMEOUT) -> Any:
    """botocore settings for a shipping client: bounded timeouts (seconds; a
    stalled connection or answer fails after them, and is retried), and one
    quick retry inside botocore, since callers retry with their own backoff.
    Raises ``ValueError`` for a timeout that is not more than 0."""
    for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
        if not value > 0:  # botocore takes 0 as "no timeout": a stall would last forever
            raise ValueError(f"{name} must be more than 0 seconds, not {value}")
    from botocore.config import Config

    return Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                  retries={"mode": "standard", "total_max_attempts": 2})


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
