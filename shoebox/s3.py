"""S3 plumbing shared by the upload callback, the sidecar and the readers:
``s3://`` URLs and clients. boto3 is imported here, when first needed
(install the ``shoebox[s3]`` extra)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .errors import MissingExtra


def is_s3_url(text: str) -> bool:
    """Whether ``text`` is an ``s3://`` URL."""
    return text.startswith("s3://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into ``(bucket, prefix)``; the prefix has no
    leading slash and may be empty. Raises ``ValueError`` for other URLs."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    return parts.netloc, parts.path.lstrip("/")


def client(endpoint_url: str | None = None, **options: Any) -> Any:
    """A boto3 S3 client using boto3's default credential chain and region;
    ``endpoint_url`` points it at MinIO, Ceph or a local test server."""
    try:
        import boto3
    except ImportError as exc:
        raise MissingExtra("S3 access needs boto3: pip install 'shoebox[s3]'") from exc
    return boto3.client("s3", endpoint_url=endpoint_url, **options)
