"""Where archives are read from: files, directories, globs, stdin and S3.

:func:`expand_paths` turns the PATH arguments a person types into the list
of archives they name, :class:`Source`; :func:`open_archive` reads every
record of them, one archive after another. Compressed archives (gzip,
zstd) are decompressed on the fly, detected by content
(see :class:`~shoebox.archive.ArchiveReader`); S3 objects are streamed,
never downloaded to disk first.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import s3
from .archive import ArchiveReader
from .codec import DEFAULT_MAX_RECORD_SIZE
from .naming import is_open
from .reading import ArchiveStream

#: The PATH that means standard input.
STDIN = "-"

_GLOB_CHARS = re.compile(r"[*?[]")


@dataclass(frozen=True)
class Source:
    """One archive to read: a local path, ``"-"`` (standard input) or an
    ``s3://bucket/key`` URL.

    ``size`` is the number of stored (possibly compressed) bytes when known
    without reading: the size of a regular file or an S3 object.
    :func:`expand_paths` makes sources that share one S3 client; a source
    made by hand creates a default client when it is opened.
    """

    name: str
    size: int | None = None
    _client: Any = field(default=None, repr=False, compare=False)

    def reader(self, *, recover: bool = False,
               max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> ArchiveReader:
        """Open the archive; the :class:`~shoebox.archive.ArchiveReader`
        closes everything it opened (standard input stays open)."""
        options: dict[str, Any] = {"recover": recover, "max_record_size": max_record_size}
        if self.name == STDIN:
            stdin = open(sys.stdin.fileno(), "rb", closefd=False)  # noqa: SIM115
            return ArchiveReader(stdin, filename="<stdin>", **options)
        if s3.is_s3_url(self.name):
            bucket, key = s3.parse_s3_url(self.name)
            client = self._client or s3.client()
            return ArchiveReader(s3.open_object(client, bucket, key),
                                 filename=self.name, **options)
        return ArchiveReader(self.name, **options)


def expand_paths(paths: Iterable[str | os.PathLike[str]], *,
                 endpoint_url: str | None = None) -> list[Source]:
    """The archives that ``paths`` name, each argument's in name order.

    Each path is a file (read even if it is a ``.open`` archive: it was
    named), a directory (every file in its tree), a glob (``*``, ``?``,
    ``[…]``; ``**`` spans directories), ``"-"`` for standard input, or
    ``s3://bucket/key`` (the object with exactly that key if there is one,
    else every object in the folder ``key/``: ``s3://b/prod`` reads
    ``prod/…``, never ``production/…``; a key ending in ``/`` is a folder;
    globs are allowed in the key, and ``prod*`` reads every key that starts
    with ``prod``). Directories, globs and folders skip ``.open`` archives.

    Raises ``FileNotFoundError`` for a path, glob or S3 key that names
    nothing (an empty directory, bucket or S3 folder written with its ``/``
    is just empty), and botocore's errors for failed S3 requests.
    """
    sources: list[Source] = []
    client = None
    for path in (os.fspath(path) for path in paths):
        if path == STDIN:
            sources.append(Source(STDIN))
        elif s3.is_s3_url(path):
            client = client or s3.client(endpoint_url)
            sources.extend(_s3_sources(client, path))
        else:
            sources.extend(_local_sources(path))
    return sources


def open_archive(path_or_url: str | os.PathLike[str], *, recover: bool = False,
                 endpoint_url: str | None = None,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> ArchiveStream:
    """Read every record of the archives ``path_or_url`` names (see
    :func:`expand_paths`): plain, gzip- or zstd-compressed, local or on S3.

    Returns an :class:`ArchiveStream`: iterate it for ``(metadata, payload)``
    pairs; use it as a context manager (or call ``close``) to release the
    file being read if you stop early. ``recover`` skips damaged ranges
    instead of raising :class:`~shoebox.errors.CorruptRecord`; they are
    listed in :attr:`ArchiveStream.damaged`. ``endpoint_url`` points S3
    access at MinIO, Ceph or a test server.
    """
    return ArchiveStream(expand_paths([path_or_url], endpoint_url=endpoint_url),
                         recover=recover, max_record_size=max_record_size)


def _local_sources(path: str) -> list[Source]:
    if os.path.isdir(path):
        names: list[str] = []
        for top, dirs, files in os.walk(path):
            dirs.sort()
            names.extend(os.path.join(top, name) for name in files
                         if not is_open(name))
        return [_local(name) for name in sorted(names)]
    if os.path.exists(path):
        return [_local(path)]
    if _GLOB_CHARS.search(path):
        matches = sorted(name for name in glob.glob(path, recursive=True)
                         if not is_open(name) and not os.path.isdir(name))
        if matches:
            return [_local(name) for name in matches]
    raise FileNotFoundError(errno.ENOENT, "no such archive", path)


def _local(path: str) -> Source:
    """A local file, with its size when it is a regular file."""
    stat = os.stat(path)
    return Source(path, stat.st_size if os.path.isfile(path) else None)


def _s3_sources(client: Any, url: str) -> list[Source]:
    bucket, key = s3.parse_s3_url(url)
    magic = _GLOB_CHARS.search(key)
    if magic:
        prefix = key[:magic.start()]
    elif key and not key.endswith("/"):
        first = s3.first_object(client, bucket, key)
        if first is not None and first[0] == key:
            return [Source(url, first[1], client)]
        # Not an object: a folder. s3://bucket/prod must not read
        # production/… (issue 13); a raw prefix is a glob, prod*.
        prefix = key + "/"
    else:
        prefix = key
    listed = [(name, size) for name, size in s3.list_objects(client, bucket, prefix)
              if not is_open(name) and not name.endswith("/")
              and (not magic or fnmatch.fnmatchcase(name, key))]
    if not listed and prefix != key:
        raise FileNotFoundError(errno.ENOENT, "no such S3 object, folder or match", url)
    return [Source(f"s3://{bucket}/{name}", size, client) for name, size in sorted(listed)]


__all__ = ["STDIN", "ArchiveStream", "Source", "expand_paths", "open_archive"]
