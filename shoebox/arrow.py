"""Archives as Arrow record batches and tables, in one schema (pyarrow:
install the ``shoebox-archive[arrow]`` extra).

:func:`to_table` and :func:`to_batches` read anything the ``shoebox``
command reads (files, directories, globs, ``.gz``/``.zst``, ``s3://``
prefixes). Every batch of a read, every reader (:mod:`shoebox.dask` too)
and ``shoebox export`` share one schema, whatever keys the records hold:

============  =======================  ===============================================
column        type                     holds
============  =======================  ===============================================
``metadata``  ``map<string, string>``  every metadata key of the record
``level`` …   ``string``               one column per promoted key (:data:`DEFAULT_COLUMNS`,
                                       more with ``columns=``), null where a record lacks it
``payload``   ``string``               the payload (JSON text by convention), as stored
``source``    ``string``               the archive's path or ``s3://`` URL
``offset``    ``int64``                where the record starts in the archive
                                       (decompressed bytes, for ``.gz``/``.zst``)
``dt`` …      ``string``               one column per Hive-style ``name=value`` directory
                                       segment of the sources (``%XX`` decoded), null for
                                       a source without it, unless a column of that name
                                       exists already
============  =======================  ===============================================

``source`` and ``offset`` lead back to the original record: ``ArchiveReader``
reads it again from there. The columns are fixed before the first record is
read (the Hive segments from the names of all sources), so the schema never
changes from batch to batch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import accumulate, chain, repeat
from typing import Any
from urllib.parse import unquote

from .archive import DamagedRange
from .codec import DEFAULT_MAX_RECORD_SIZE, Metadata
from .errors import DamageSkipped, MissingExtra, NotAnArchive
from .options import one_of, whole_number
from .reading import Openable
from .sources import expand_paths
from .windows import Moment, TimeWindow, WindowTally

try:
    import pyarrow as pa
except ImportError as exc:  # pragma: no cover - exercised in a child process
    raise MissingExtra.needs("shoebox.arrow needs pyarrow", "arrow") from exc

#: Metadata keys promoted to columns of their own by default: the keys
#: ``shoebox_logging.ShoeboxHandler`` writes into every record.
DEFAULT_COLUMNS = ("level", "logger", "timestamp", "host", "pid")
#: What :func:`to_table` and the other readers can do with damaged data.
ON_DAMAGE = ("raise", "skip")
#: Records per batch, at most (batches also end after about
#: :data:`BATCH_BYTES` of archive data).
DEFAULT_BATCH_SIZE = 65_536
#: Archive bytes after which a batch ends: far below the 2 GiB that one
#: Arrow ``string`` array can hold, whatever the record sizes.
BATCH_BYTES = 256 << 20
#: The value Hive and pyarrow write as a partition segment for null.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

_FIXED = ("metadata", "payload", "source", "offset")


def hive_partitions(name: str) -> dict[str, str | None]:
    """The Hive-style ``name=value`` segments of the directories in path or
    URL ``name`` (the file name itself is not one), ``%XX`` escapes decoded;
    :data:`HIVE_NULL` stands for null. A name repeated deeper wins."""
    found: dict[str, str | None] = {}
    for segment in name.split("/")[:-1]:
        key, equals, value = segment.partition("=")
        if equals and key:
            found[unquote(key)] = None if value == HIVE_NULL else unquote(value)
    return found


def archive_records(archive: Openable, *, on_damage: str = "raise",
                    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
                    window: TimeWindow | None = None,
                    tally: WindowTally | None = None,
                    ) -> Iterator[tuple[Metadata, str, int]]:
    """``(metadata, payload, offset)`` of every record of one archive (a
    :class:`~shoebox.sources.Source`, or any :class:`~shoebox.reading.Openable`).

    ``on_damage="raise"``: a damaged record raises its
    :class:`~shoebox.errors.CorruptRecord` (naming file and offset) and an
    unreadable archive its ``OSError``. ``"skip"``: damaged bytes are
    skipped, and so is the rest of an archive that cannot be read, each
    reported by a :class:`~shoebox.errors.DamageSkipped` warning naming the
    archive and the offset; the records before and after are kept; a file
    that is not an archive (:class:`~shoebox.errors.NotAnArchive`) is
    skipped whole, with a warning saying so.
    ``max_record_size`` bounds what a length field can make the reader allocate.
    With a ``window``, only the records inside it (see
    :class:`~shoebox.windows.TimeWindow`), what it leaves out counted in
    ``tally``.
    """
    skip = one_of("on_damage", on_damage, ON_DAMAGE) == "skip"
    tally = WindowTally() if tally is None else tally
    name = archive.name
    reader = None
    try:
        with archive.reader(recover=skip, max_record_size=max_record_size) as reader:
            for metadata, payload in reader:
                if window is not None and not tally.admits(window, metadata.get("timestamp")):
                    continue
                offset = reader.record_offset
                assert offset is not None  # set by every read
                yield metadata, payload, offset
    except NotAnArchive as error:
        if not skip:
            raise
        warnings.warn(DamageSkipped(f"{name}: skipped the file, {error.reason}"), stacklevel=2)
        return
    except OSError as error:
        if not skip:
            raise
        if reader is None:
            what = "the archive, which could not be opened"
        else:
            _warn_damaged(name, reader.damaged)
            what = f"the rest of the archive from offset {reader.offset}, which could not be read"
        warnings.warn(DamageSkipped(f"{name}: skipped {what}: {error}"), stacklevel=2)
        return
    _warn_damaged(name, reader.damaged)


def _warn_damaged(name: str, damaged: list[DamagedRange]) -> None:
    for item in damaged:
        warnings.warn(DamageSkipped(
            f"{item.filename or name}: skipped {item.length} damaged bytes at offset "
            f"{item.offset}: {item.reason}"), stacklevel=3)


class Layout:
    """The columns of one read, fixed before its first record.

    ``names`` are the archives to be read (paths or URLs), for their Hive
    segments; ``columns`` are metadata keys to promote beside
    :data:`DEFAULT_COLUMNS`. Raises ``TypeError`` for ``columns`` that is a
    string or holds a non-string, and ``ValueError`` for an empty key or
    one that names a fixed column (``metadata``, ``payload``, ``source``,
    ``offset``).
    """

    def __init__(self, names: Iterable[str] = (), *,
                 columns: Iterable[str] | None = None) -> None:
        #: Every promoted metadata key, defaults first.
        self.columns = _promoted(columns)
        taken = {*_FIXED, *self.columns}
        partitions: dict[str, None] = {}
        for name in names:
            partitions.update((key, None) for key in hive_partitions(name) if key not in taken)
        #: Names of the Hive partition columns, in the order first seen.
        self.partitions = tuple(partitions)
        string = pa.string()
        #: The schema of every batch.
        self.schema = pa.schema(
            [pa.field("metadata", pa.map_(string, string))]
            + [pa.field(key, string) for key in self.columns]
            + [pa.field("payload", string), pa.field("source", string),
               pa.field("offset", pa.int64())]
            + [pa.field(key, string) for key in self.partitions])

    def batches(self, archives: Iterable[Openable], *, on_damage: str = "raise",
                batch_size: int = DEFAULT_BATCH_SIZE,
                max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
                window: TimeWindow | None = None,
                tally: WindowTally | None = None) -> Iterator[pa.RecordBatch]:
        """Record batches of the ``archives``, read one after another (see
        :func:`archive_records` for ``on_damage``, ``max_record_size``,
        ``window`` and ``tally``). A batch
        holds up to ``batch_size`` records and may span archives; only one
        batch's records are held as Python objects at a time."""
        one_of("on_damage", on_damage, ON_DAMAGE)
        metadatas: list[Metadata] = []
        payloads: list[str] = []
        offsets: list[int] = []
        runs: list[tuple[int, str]] = []  # (first row, archive) of each archive in the batch
        carried = 0  # archive bytes in the batch from the archives before this one
        for archive in archives:
            name = archive.name
            runs.append((len(payloads), name))
            mark = offset = 0  # where the batch's part of this archive starts; the last record
            for metadata, payload, offset in archive_records(
                    archive, on_damage=on_damage, max_record_size=max_record_size,
                    window=window, tally=tally):
                metadatas.append(metadata)
                payloads.append(payload)
                offsets.append(offset)
                if len(payloads) >= batch_size or carried + offset - mark >= BATCH_BYTES:
                    yield self.make_batch(metadatas, payloads, offsets, runs)
                    metadatas, payloads, offsets = [], [], []
                    runs = [(0, name)]
                    carried, mark = 0, offset
            carried += offset - mark
        if payloads:
            yield self.make_batch(metadatas, payloads, offsets, runs)

    def make_batch(self, metadatas: list[Metadata], payloads: list[str], offsets: list[int],
                   runs: list[tuple[int, str]]) -> pa.RecordBatch:
        """One batch, built column by column from the records' parts; ``runs``
        gives the ``(first row, archive name)`` of each archive's rows, in order."""
        string = pa.string()
        ends = pa.array(list(accumulate(map(len, metadatas), initial=0)), pa.int32())
        keys = pa.array(list(chain.from_iterable(metadatas)), string)
        values = pa.array(list(chain.from_iterable(map(dict.values, metadatas))), string)
        arrays = [pa.MapArray.from_arrays(ends, keys, values)]
        arrays += [pa.array([metadata.get(key) for metadata in metadatas], string)
                   for key in self.columns]
        counts = [end - start for (start, _), (end, _) in
                  zip(runs, [*runs[1:], (len(payloads), "")], strict=True)]
        names = [name for _, name in runs]
        arrays += [pa.array(payloads, string), _repeated(names, counts),
                   pa.array(offsets, pa.int64())]
        found = [hive_partitions(name) for name in names]
        arrays += [_repeated([values.get(key) for values in found], counts)
                   for key in self.partitions]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _repeated(values: Sequence[str | None], counts: list[int]) -> pa.Array:
    """A string array holding each of ``values`` ``counts`` times in turn."""
    return pa.array(list(chain.from_iterable(map(repeat, values, counts))), pa.string())


def _promoted(columns: Iterable[str] | None) -> tuple[str, ...]:
    if columns is None:
        return DEFAULT_COLUMNS
    if isinstance(columns, str):
        raise TypeError(f"columns must be a list of metadata keys, not the string {columns!r}")
    promoted = dict.fromkeys(DEFAULT_COLUMNS)
    for key in columns:
        if not isinstance(key, str):
            raise TypeError(f"columns must hold metadata keys (str), not {key!r}")
        if not key or key in _FIXED:
            raise ValueError(f"columns: {key!r} cannot be a promoted metadata key "
                             f"(empty, or one of {', '.join(_FIXED)})")
        promoted[key] = None
    return tuple(promoted)


def endpoint_url(storage_options: Mapping[str, Any] | None) -> str | None:
    """The S3 endpoint that fsspec-style ``storage_options`` name
    (``{"endpoint_url": …}`` or ``{"client_kwargs": {"endpoint_url": …}}``),
    for the readers that talk to S3 through boto3. Credentials and region
    come from boto3's usual chain; any other option raises ``ValueError``
    naming it rather than being ignored."""
    options = dict(storage_options or {})
    client_kwargs = dict(options.pop("client_kwargs", None) or {})
    url = options.pop("endpoint_url", None)
    inner = client_kwargs.pop("endpoint_url", None)
    unknown = sorted(options) + [f"client_kwargs.{key}" for key in sorted(client_kwargs)]
    if unknown:
        raise ValueError(f"storage_options {', '.join(unknown)} not supported: only "
                         "endpoint_url (boto3 takes credentials and region from its "
                         "environment and configuration)")
    if url is not None and inner is not None and url != inner:
        raise ValueError(f"storage_options give two endpoint URLs: {url!r} and {inner!r}")
    found = url if url is not None else inner
    if found is not None and not isinstance(found, str):
        raise TypeError(f"storage_options endpoint_url must be a string, not {found!r}")
    return found


def to_batches(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
               columns: Iterable[str] | None = None,
               storage_options: Mapping[str, Any] | None = None,
               on_damage: str = "raise",
               batch_size: int = DEFAULT_BATCH_SIZE,
               since: Moment | None = None,
               until: Moment | None = None,
               include_all: bool = False) -> pa.RecordBatchReader:
    """The records of the archives ``source`` names, as a stream of record
    batches in the module's schema, for data larger than memory.

    ``source`` is a path, glob, directory, ``"-"`` or ``s3://bucket/prefix``
    (see :func:`shoebox.sources.expand_paths`), or a list of them; they are
    listed now (``FileNotFoundError`` for one that names nothing) and read
    as the batches are. ``columns``: metadata keys promoted to columns
    beside :data:`DEFAULT_COLUMNS`. ``storage_options``: see
    :func:`endpoint_url`. ``on_damage``: ``"raise"`` (a
    :class:`~shoebox.errors.CorruptRecord` naming file and offset) or
    ``"skip"`` (damaged bytes and unreadable archives skipped, each
    reported by a :class:`~shoebox.errors.DamageSkipped` warning).
    ``batch_size``: records per batch, at most. ``since``, ``until``: only
    the records with ``since <= timestamp < until`` (``datetime`` or ISO
    8601 text, UTC without a zone; see :class:`~shoebox.windows.TimeWindow`),
    and only the archives that can hold some are read; raises
    :class:`~shoebox.errors.InvalidOption` (a ``ValueError``) for
    unreadable text or ``since >= until``. ``include_all``: also read
    the files of directories, globs and prefixes that are not archives
    (``.damaged`` originals, the quarantine, hidden files; see
    :func:`shoebox.sources.expand`).
    """
    one_of("on_damage", on_damage, ON_DAMAGE)
    batch_size = whole_number("batch_size", batch_size, minimum=1)
    window = TimeWindow.of(since, until)
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    sources = expand_paths(paths, endpoint_url=endpoint_url(storage_options), window=window,
                           include_all=include_all)
    layout = Layout((item.name for item in sources), columns=columns)
    batches = layout.batches(sources, on_damage=on_damage, batch_size=batch_size,
                             window=window)
    return pa.RecordBatchReader.from_batches(layout.schema, batches)


def to_table(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
             columns: Iterable[str] | None = None,
             storage_options: Mapping[str, Any] | None = None,
             on_damage: str = "raise", since: Moment | None = None,
             until: Moment | None = None, include_all: bool = False) -> pa.Table:
    """The records of the archives ``source`` names as one ``pyarrow.Table``
    in the module's schema (built batch by batch; see :func:`to_batches`
    for the arguments and errors)."""
    return to_batches(source, columns=columns, storage_options=storage_options,
                      on_damage=on_damage, since=since, until=until,
                      include_all=include_all).read_all()


__all__ = [
    "BATCH_BYTES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_COLUMNS",
    "HIVE_NULL",
    "ON_DAMAGE",
    "Layout",
    "archive_records",
    "endpoint_url",
    "hive_partitions",
    "to_batches",
    "to_table",
]
