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
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import s3
from .archive import ArchiveReader
from .codec import DEFAULT_MAX_RECORD_SIZE
from .naming import GLOB_CHARS, is_leftover, is_open
from .reading import ArchiveStream
from .windows import TimeWindow, day_of_name

#: The PATH that means standard input.
STDIN = "-"



@dataclass(frozen=True)
class Source:
    """One archive to read: a local path, ``"-"`` (standard input) or an
    ``s3://bucket/key`` URL.

    ``size`` is the number of stored (possibly compressed) bytes when known
    without reading: the size of a regular file or an S3 object. A local
    ``.open`` archive is read as a live one: a record its writer has not
    finished yet ends the reading, unreported (see ``live`` in
    :class:`~shoebox.archive.ArchiveReader`).
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
        return ArchiveReader(self.name, live=is_open(self.name), **options)


@dataclass
class Expansion:
    """What :func:`expand` found: the archives to read, and the ``.open``
    archives it left out."""

    sources: list[Source] = field(default_factory=list)
    #: ``.open`` archives in the directories, globs and S3 folders named,
    #: left out (without ``include_open``), in the order met.
    skipped_open: list[str] = field(default_factory=list)
    #: Archives left out by a window, judged by their names (their ``dt=``
    #: day, their span): how many were listed and not read.
    pruned: int = 0
    #: Files in them that are not archives (:func:`shoebox.naming.is_leftover`:
    #: ``.damaged`` originals, quarantined, hidden or temporary files), left
    #: out (without ``include_all``), in the order met.
    skipped_leftovers: list[str] = field(default_factory=list)


def expand_paths(paths: Iterable[str | os.PathLike[str]], *,
                 endpoint_url: str | None = None,
                 include_open: bool = False, include_all: bool = False,
                 window: TimeWindow | None = None) -> list[Source]:
    """The archives that ``paths`` name (see :func:`expand`)."""
    return expand(paths, endpoint_url=endpoint_url, include_open=include_open,
                  include_all=include_all, window=window).sources


def expand(paths: Iterable[str | os.PathLike[str]], *, endpoint_url: str | None = None,
           include_open: bool = False, include_all: bool = False,
           window: TimeWindow | None = None) -> Expansion:
    """The archives that ``paths`` name, each argument's in name order.

    Each path is a file (read even if it is a ``.open`` archive: it was
    named), a directory (every file in its tree), a glob (``*``, ``?``,
    ``[…]``; ``**`` spans directories), ``"-"`` for standard input, or
    ``s3://bucket/key`` (the object with exactly that key if there is one,
    else every object in the folder ``key/``: ``s3://b/prod`` reads
    ``prod/…``, never ``production/…``; a key ending in ``/`` is a folder;
    globs are allowed in the key, and ``prod*`` reads every key that starts
    with ``prod``). Directories, globs and folders leave out ``.open``
    archives (listed in :attr:`Expansion.skipped_open`) unless
    ``include_open``, and files that are not archives (repair's
    ``.damaged`` originals, the ``quarantine`` directory, hidden and
    temporary files: :func:`shoebox.naming.is_leftover`; listed in
    :attr:`Expansion.skipped_leftovers`) unless ``include_all``.

    With a ``window``, archives whose names show they hold no record inside
    it are left out (counted in :attr:`Expansion.pruned`; see
    :meth:`~shoebox.windows.TimeWindow.may_hold`), and an S3 folder's or a
    directory's ``dt=DAY`` sub-folders outside the window's days are not
    even listed. Reading the rest and keeping the records inside the
    window gives exactly what reading everything would.

    Raises ``FileNotFoundError`` for a path, glob or S3 key that names
    nothing (an empty directory, bucket or S3 folder written with its ``/``
    is just empty), and botocore's errors for failed S3 requests.
    """
    found = Expansion()
    client = None
    for path in (os.fspath(path) for path in paths):
        if path == STDIN:
            found.sources.append(Source(STDIN))
            continue
        if s3.is_s3_url(path):
            client = client or s3.client(endpoint_url)
            listed = _s3_sources(client, path, window)
        else:
            listed = _local_sources(path, window)
        for source in listed:
            if source.name == path:  # named: read whatever it is
                found.sources.append(source)
            elif not include_all and is_leftover(source.name, path):
                found.skipped_leftovers.append(source.name)
            elif window is not None and not window.may_hold(source.name):
                found.pruned += 1
            elif include_open or not is_open(source.name):
                found.sources.append(source)
            else:
                found.skipped_open.append(source.name)
    return found


def open_archive(path_or_url: str | os.PathLike[str], *, recover: bool = False,
                 endpoint_url: str | None = None,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
                 include_all: bool = False) -> ArchiveStream:
    """Read every record of the archives ``path_or_url`` names (see
    :func:`expand_paths`): plain, gzip- or zstd-compressed, local or on S3.

    Returns an :class:`ArchiveStream`: iterate it for ``(metadata, payload)``
    pairs; use it as a context manager (or call ``close``) to release the
    file being read if you stop early. ``recover`` skips damaged ranges
    instead of raising :class:`~shoebox.errors.CorruptRecord`; they are
    listed in :attr:`ArchiveStream.damaged`. ``endpoint_url`` points S3
    access at MinIO, Ceph or a test server. ``include_all`` also reads the
    files of a directory, glob or prefix that are not archives (see
    :func:`expand`).
    """
    return ArchiveStream(expand_paths([path_or_url], endpoint_url=endpoint_url,
                                      include_all=include_all),
                         recover=recover, max_record_size=max_record_size)


def _local_sources(path: str, window: TimeWindow | None = None) -> list[Source]:
    """The files ``path`` names, ``.open`` ones and leftovers included; with
    a ``window``, ``dt=`` directories outside its days are not walked."""
    if os.path.isdir(path):
        names: list[str] = []
        for top, dirs, files in os.walk(path):
            if window is not None:
                dirs[:] = [name for name in dirs if _walks(window, top, name)]
            dirs.sort()
            names.extend(os.path.join(top, name) for name in files)
        return _locals(sorted(names))
    if os.path.exists(path):
        return [_local(path)]
    if GLOB_CHARS.search(path):
        matches = _locals(sorted(name for name in glob.glob(path, recursive=True)
                                 if not os.path.isdir(name)))
        if matches:
            return matches
    raise FileNotFoundError(errno.ENOENT, "no such archive", path)


def _locals(names: list[str]) -> list[Source]:
    """Local files, leaving out those gone since they were listed (a live
    archive renamed by its writer, a shipped one deleted)."""
    sources = []
    for name in names:
        try:
            sources.append(_local(name))
        except FileNotFoundError:
            continue
    return sources


def _local(path: str) -> Source:
    """A local file, with its size when it is a regular file."""
    stat = os.stat(path)
    return Source(path, stat.st_size if os.path.isfile(path) else None)


def _walks(window: TimeWindow, top: str, name: str) -> bool:
    """Whether a windowed read goes into directory ``name`` of ``top``."""
    day = day_of_name(f"{top}/{name}/")
    return day is None or window.lists_day(day)


def _s3_sources(client: Any, url: str, window: TimeWindow | None = None) -> list[Source]:
    bucket, key = s3.parse_s3_url(url)
    magic = GLOB_CHARS.search(key)
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
    objects = (s3.list_objects(client, bucket, prefix) if window is None or magic
               else _s3_window_objects(client, bucket, prefix, window))
    listed = [(name, size) for name, size in objects
              if not name.endswith("/") and (not magic or fnmatch.fnmatchcase(name, key))]
    if not listed and prefix != key:
        raise FileNotFoundError(errno.ENOENT, "no such S3 object, folder or match", url)
    return [Source(f"s3://{bucket}/{name}", size, client) for name, size in sorted(listed)]


def _s3_window_objects(client: Any, bucket: str, prefix: str,
                       window: TimeWindow) -> Iterator[tuple[str, int]]:
    """The objects under folder ``prefix`` a windowed read may need: its
    ``dt=DAY/`` sub-folders are listed only for the window's days (one
    listing of the folder's own level finds them), everything else whole."""
    for name, size, folder in s3.list_level(client, bucket, prefix):
        if folder:
            day = day_of_name(name)
            if day is None or window.lists_day(day):
                yield from s3.list_objects(client, bucket, name)
        else:
            yield name, size


__all__ = ["STDIN", "ArchiveStream", "Expansion", "Source", "expand", "expand_paths",
           "open_archive"]
