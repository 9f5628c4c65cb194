"""Reading many archives one after another: :class:`ArchiveStream`, the one
multi-archive reader behind :func:`shoebox.open_archive`, and
:class:`ReadingRollManager`, which reads the archives in a directory that
match a wildcard."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Protocol

from . import plugins
from .archive import ArchiveReader, DamagedRange
from .callbacks import ArchiveCallback
from .codec import DEFAULT_MAX_RECORD_SIZE, Record
from .errors import ArchiveClosed, NoMoreFiles
from .naming import is_leftover, is_open


class Openable(Protocol):
    """An archive that can be opened for reading: a local file, an S3 object,
    standard input (see :class:`shoebox.sources.Source`)."""

    @property
    def name(self) -> str: ...

    def reader(self, *, recover: bool = False,
               max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> ArchiveReader: ...


#: What an :class:`ArchiveStream` reads: a path, or an :class:`Openable`.
Archive = Openable | str | os.PathLike[str]


class ArchiveStream:
    """The records of several archives, read one after another, in order.

    ``archives`` are paths or :class:`Openable` objects. Each is opened when
    reading reaches it and closed when its last record has been read;
    ``on_open(name)`` and ``on_close(name)`` are called then. Iterate for
    ``(metadata, payload)`` pairs, or call :meth:`read`, which raises
    :class:`~shoebox.errors.NoMoreFiles` after the last record; both take
    from the same sequence. ``recover`` skips damaged ranges instead of
    raising :class:`~shoebox.errors.CorruptRecord`; they are listed in
    :attr:`damaged`.

    :meth:`close` (or leaving a ``with`` block) stops reading: the archive
    being read is closed, iteration ends, and :meth:`read` raises
    :class:`~shoebox.errors.ArchiveClosed`.
    """

    def __init__(self, archives: Iterable[Archive], *, recover: bool = False,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
                 on_open: Callable[[str], object] | None = None,
                 on_close: Callable[[str], object] | None = None) -> None:
        #: Archives not opened yet, in the order they will be read.
        self.pending: list[Archive] = list(archives)
        self.recover = recover
        self.max_record_size = max_record_size
        self._on_open = on_open
        self._on_close = on_close
        self._done: list[DamagedRange] = []
        self._reader: ArchiveReader | None = None
        self._closed = False
        self._records: Generator[Record, None, None] = self._read()

    @property
    def damaged(self) -> list[DamagedRange]:
        """Ranges skipped so far in every archive read (``recover=True``)."""
        current = self._reader.damaged if self._reader is not None else []
        return self._done + current

    def __iter__(self) -> Iterator[Record]:
        return self._records

    def read(self) -> Record:
        """The next ``(metadata, payload)``; raises ``NoMoreFiles`` after the
        last record of the last archive."""
        if self._closed:
            raise ArchiveClosed("read from a closed archive stream")
        try:
            return next(self._records)
        except StopIteration:
            raise NoMoreFiles("no more files to read") from None

    def close(self) -> None:
        """Stop reading and close the archive being read. Closing twice is harmless."""
        self._closed = True
        self._records.close()

    def __enter__(self) -> ArchiveStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read(self) -> Generator[Record, None, None]:
        while self.pending:
            archive = self.pending.pop(0)
            if isinstance(archive, (str, os.PathLike)):
                name = os.fspath(archive)
                reader = ArchiveReader(name, recover=self.recover,
                                       max_record_size=self.max_record_size)
            else:
                name = archive.name
                reader = archive.reader(recover=self.recover,
                                        max_record_size=self.max_record_size)
            with reader:
                self._reader = reader
                if self._on_open is not None:
                    self._on_open(name)
                try:
                    yield from reader
                finally:
                    self._reader = None
                    self._done.extend(reader.damaged)
                    if self._on_close is not None:
                        self._on_close(name)


__all__ = ["Archive", "ArchiveStream", "Openable", "ReadingRollManager"]


class ReadingRollManager(ArchiveStream):
    """Reads every archive in ``directory`` matching the wildcard
    ``filename_template``, in name order, skipping ``.open`` files and,
    unless ``include_all``, files that are not archives (``.damaged``
    originals, the quarantine, hidden files:
    :func:`shoebox.naming.is_leftover`; a template that names them, such
    as ``*.damaged``, reads them).
    Archives stored gzip- or zstd-compressed are read too, detected by
    content (see :class:`~shoebox.archive.ArchiveReader`).

    :meth:`read` returns ``(metadata, payload)`` and raises
    :class:`NoMoreFiles` after the last record of the last file; iterating
    yields the same pairs. ``archive_callback`` gets ``on_open`` and
    ``on_close`` for each file. With ``recover=True`` damaged ranges are
    skipped and listed in :attr:`damaged`. :meth:`close` stops reading
    (see :class:`~shoebox.reading.ArchiveStream`).
    """

    def __init__(self, filename_template: str, directory: str | os.PathLike[str] = ".", *,
                 archive_callback: ArchiveCallback | plugins.Spec | None = None,
                 recover: bool = False,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
                 include_all: bool = False) -> None:
        pattern = os.path.join(glob.escape(os.fspath(directory)), filename_template)
        self.archive_callback: ArchiveCallback = (
            plugins.create_as(ArchiveCallback, "archive_callback", archive_callback)
            if archive_callback is not None else ArchiveCallback())
        # Directories too are left out: "*" matched the sidecar's quarantine/.
        super().__init__(sorted(name for name in glob.glob(pattern) if not is_open(name)
                                and (include_all or not is_leftover(
                                    name, os.path.join(directory, filename_template)))
                                and not os.path.isdir(name)),
                         recover=recover, max_record_size=max_record_size,
                         on_open=self.archive_callback.on_open,
                         on_close=self.archive_callback.on_close)

    @property
    def files_to_read(self) -> list[Archive]:
        """Files not opened yet, in order (the original shoebox's name for
        :attr:`~shoebox.reading.ArchiveStream.pending`)."""
        return self.pending

    def __enter__(self) -> ReadingRollManager:
        return self
