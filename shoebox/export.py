"""Export archives for query engines: Hive-partitioned Parquet (zstd column
compression) or gzip JSON Lines, in a directory or under an ``s3://`` prefix
(pyarrow: install the ``shoebox-archive[arrow]`` extra; ``shoebox-archive[s3]`` for S3).

Records keep the schema of :mod:`shoebox.arrow`, less the partition
columns, which live in the path as Hive engines expect
(``dt=2026-11-27/host=web-1/…``): DuckDB, Athena, Trino and Spark read the
result as any Hive-partitioned dataset. ``dt`` is each record's own UTC day,
from its ``timestamp`` metadata (ISO 8601; one without a zone is taken as
UTC), so a record lands in its day whatever archive holds it. Any other
partition key is a metadata key (promoted to a column of its own) or a Hive
segment of the sources' paths. A record without the key (or with an empty
value) goes to ``KEY=__HIVE_DEFAULT_PARTITION__``, which the engines read
as null; values are ``%XX``-escaped as pyarrow and Hive do.

Each archive's records of one partition go to one file named after the
archive (compression suffix dropped): ``dt=…/NAME.parquet`` or
``dt=…/NAME.jsonl.gz``. Exporting the same archive again, from wherever it
is read, rewrites the same files with the same bytes instead of adding
copies; two archives of one export must not share a name. JSON Lines hold
the lines ``shoebox cat`` prints.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote

from . import compression, s3
from ._files import makedirs_durable
from ._timestamps import utc_datetime
from .arrow import HIVE_NULL, ON_DAMAGE, Layout, endpoint_url
from .codec import DEFAULT_MAX_RECORD_SIZE
from .errors import MissingExtra
from .jsonl import render_record
from .options import one_of, whole_number
from .sources import STDIN, Source, expand
from .windows import TimeWindow, WindowTally

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
except ImportError as exc:  # pragma: no cover - exercised in a child process
    raise MissingExtra.needs("shoebox.export needs pyarrow", "arrow") from exc

#: Output formats, each with the suffix of its files.
FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl.gz"}
#: The partition key that stands for each record's UTC day.
DAY = "dt"
#: Partitions unless told otherwise: by day.
DEFAULT_PARTITION_BY = (DAY,)
#: Parquet column compression.
PARQUET_COMPRESSION = "zstd"

_TIMESTAMP = "timestamp"
_NOT_KEYS = ("metadata", "payload", "source", "offset")


@dataclass
class ArchiveExport:
    """What exporting one archive wrote."""

    source: str
    records: int = 0
    #: Bytes of the files written.
    bytes_out: int = 0
    #: Where each file went (paths or ``s3://`` URLs), in partition order.
    written: list[str] = field(default_factory=list)


class Exporter:
    """Writes archives into one export destination; the policy is fixed at
    construction.

    ``dest``: a directory or ``s3://bucket/prefix``. ``format``: ``"parquet"``
    or ``"jsonl"``. ``partition_by``: partition keys in path order (empty for
    none; see the module). ``columns``: metadata keys promoted beside the
    default ones. ``storage_options``: ``{"endpoint_url": …}`` for the S3
    sources and destination. ``on_damage``: as for
    :func:`shoebox.arrow.to_table`; ``max_record_size`` as for
    :class:`~shoebox.archive.ArchiveReader`. Raises ``ValueError`` for an unknown
    format, a repeated or unusable partition key, and bad storage options.
    """

    def __init__(self, dest: str | os.PathLike[str], *, format: str = "parquet",
                 partition_by: Sequence[str] = DEFAULT_PARTITION_BY,
                 columns: Iterable[str] | None = None,
                 storage_options: Mapping[str, Any] | None = None,
                 on_damage: str = "raise",
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> None:
        self.format = one_of("format", format, tuple(FORMATS))
        if isinstance(partition_by, str):
            raise TypeError(f"partition_by must be a list of keys, not the string "
                            f"{partition_by!r}")
        self.partition_by = tuple(partition_by)
        for key in self.partition_by:
            if not isinstance(key, str) or not key or key in _NOT_KEYS:
                raise ValueError(f"partition_by: {key!r} cannot be a partition key "
                                 f"(empty, or one of {', '.join(_NOT_KEYS)})")
        if len(set(self.partition_by)) != len(self.partition_by):
            raise ValueError(f"partition_by repeats a key: {list(self.partition_by)}")
        self.columns = list(columns or ())
        # Checks every key now, as it would be promoted, not at the first archive.
        Layout(columns=[*self.columns, *self.partition_by])
        self.on_damage = one_of("on_damage", on_damage, ON_DAMAGE)
        self.max_record_size = whole_number("max_record_size", max_record_size, minimum=1)
        self.endpoint_url = endpoint_url(storage_options)
        self._output = _open_output(os.fspath(dest), self.endpoint_url)
        self.dest = self._output.url
        #: Archives the last :meth:`sources` left out by their names.
        self.pruned = 0

    def sources(self, paths: Iterable[str | os.PathLike[str]], *,
                window: TimeWindow | None = None,
                include_all: bool = False) -> list[Source]:
        """The archives ``paths`` name (see :func:`shoebox.sources.expand`,
        ``include_all`` too; with a ``window``, those that can hold records
        inside it; how many were left out is :attr:`pruned`); raises
        ``ValueError`` when two share a file name, as their exports would,
        and for standard input, which has none."""
        found = expand(paths, endpoint_url=self.endpoint_url, window=window,
                       include_all=include_all)
        self.pruned = found.pruned
        sources = found.sources
        seen: dict[str, str] = {}
        for source in sources:
            if source.name == STDIN:
                raise ValueError("standard input has no archive name to export under")
            stem = _stem(source.name)
            if stem in seen:
                raise ValueError(f"{seen[stem]} and {source.name} would export to the same "
                                 f"files ({stem}{FORMATS[self.format]})")
            seen[stem] = source.name
        return sources

    def layout(self, sources: Iterable[Source]) -> Layout:
        """The columns of an export of ``sources``: a partition key that no
        column holds already (a default one, a Hive segment of the sources)
        is promoted from the metadata."""
        names = [source.name for source in sources]
        layout = Layout(names, columns=self.columns)
        missing = [key for key in self.partition_by
                   if key != DAY and key not in layout.schema.names]
        return Layout(names, columns=[*self.columns, *missing]) if missing else layout

    def export_archive(self, source: Source, layout: Layout, *,
                       tick: Callable[[int, int], object] | None = None,
                       window: TimeWindow | None = None,
                       tally: WindowTally | None = None) -> ArchiveExport:
        """Export one archive's records (those inside ``window``, what it
        leaves out counted in ``tally``), in files named after it; ``tick(records,
        offset)`` is called after each batch. Files are written aside and moved
        into place (or uploaded) only once the whole archive has been read:
        an archive that fails leaves no file of its own half-written."""
        result = ArchiveExport(source.name)
        keep = [name for name in layout.schema.names if name not in self.partition_by]
        schema = pa.schema([layout.schema.field(name) for name in keep])
        with contextlib.ExitStack() as files:
            parts: dict[tuple[str | None, ...], _Part] = {}
            for batch in layout.batches([source], on_damage=self.on_damage,
                                        max_record_size=self.max_record_size,
                                        window=window, tally=tally):
                for key, rows in _split(batch, self.partition_by):
                    part = parts.get(key)
                    if part is None:
                        part = parts[key] = files.enter_context(
                            _Part(self._output.scratch(), self.format, schema))
                    part.write(rows.select(keep))
                result.records += batch.num_rows
                if tick is not None:
                    tick(result.records, batch.column("offset")[-1].as_py())
            stem = _stem(source.name) + FORMATS[self.format]
            for key in sorted(parts, key=lambda key: tuple(v or "" for v in key)):
                path = parts[key].finish()
                result.bytes_out += os.path.getsize(path)
                relative = "/".join([*(f"{quote(name, safe='')}={_segment(value)}"
                                       for name, value in zip(self.partition_by, key,
                                                              strict=True)), stem])
                result.written.append(self._output.publish(path, relative))
        return result


def export(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
           dest: str | os.PathLike[str], *, format: str = "parquet",
           partition_by: Sequence[str] = DEFAULT_PARTITION_BY,
           columns: Iterable[str] | None = None,
           storage_options: Mapping[str, Any] | None = None,
           on_damage: str = "raise") -> list[ArchiveExport]:
    """Export the archives ``source`` names into ``dest`` (see
    :class:`Exporter` for the options); return what each archive wrote."""
    exporter = Exporter(dest, format=format, partition_by=partition_by, columns=columns,
                        storage_options=storage_options, on_damage=on_damage)
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    sources = exporter.sources(paths)
    layout = exporter.layout(sources)
    return [exporter.export_archive(item, layout) for item in sources]


def _stem(name: str) -> str:
    """An archive's file name without a compression suffix."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".zst"):
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[:-len(suffix)]
    return base


def _segment(value: str | None) -> str:
    """A partition value as a path segment: escaped as Hive and pyarrow do."""
    return HIVE_NULL if not value else quote(value, safe="")


def _split(batch: pa.RecordBatch,
           keys: tuple[str, ...]) -> Iterator[tuple[tuple[str | None, ...], pa.RecordBatch]]:
    """The rows of ``batch`` grouped by their partition key values, groups in
    the order first seen, rows in order within each."""
    if not keys:
        yield (), batch
        return
    columns = [_days(batch.column(_TIMESTAMP)) if key == DAY else batch.column(key)
               for key in keys]
    uniques = [pc.unique(column) for column in columns]
    if all(len(unique) == 1 for unique in uniques):  # the common case: one partition
        yield tuple(unique[0].as_py() for unique in uniques), batch
        return
    values = list(zip(*(column.to_pylist() for column in columns), strict=True))
    groups: dict[tuple[str | None, ...], list[int]] = {}
    for row, value in enumerate(values):
        groups.setdefault(value, []).append(row)
    for value, rows in groups.items():
        yield value, batch.take(pa.array(rows, pa.int64()))


def _days(stamps: pa.Array) -> pa.Array:
    """The UTC day (``YYYY-MM-DD``) of each ISO 8601 timestamp; null for a
    missing or unreadable one."""
    try:
        moments = pc.cast(stamps, pa.timestamp("us", tz="UTC"))
        # Through date32: several times faster than strftime.
        return pc.cast(pc.cast(moments, pa.date32()), pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Some lack a zone or are not timestamps at all: one by one.
        return pa.array([_day(stamp) for stamp in stamps.to_pylist()], pa.string())


def _day(stamp: str | None) -> str | None:
    moment = None if stamp is None else utc_datetime(stamp)
    return None if moment is None else moment.strftime("%Y-%m-%d")


class _Part:
    """One output file being written, under a temporary name in ``scratch``."""

    def __init__(self, scratch: str, format: str, schema: pa.Schema) -> None:
        self.path = os.path.join(scratch, f".shoebox-export-{secrets.token_hex(8)}.partial")
        # Created with the usual mode for new files (less the umask), unlike
        # mkstemp's 0600: the export is for others to read.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._format = format
        self._writer: Any
        if format == "parquet":
            self._writer = pq.ParquetWriter(self._file, schema,
                                            compression=PARQUET_COMPRESSION)
        else:
            self._compressor = compression.open_compressor(self._file, "gzip")
            self._writer = self._compressor.__enter__()

    def write(self, rows: pa.RecordBatch) -> None:
        if self._format == "parquet":
            self._writer.write_batch(rows)
            return
        metadata = rows.column("metadata").to_pylist()
        payloads = rows.column("payload").to_pylist()
        self._writer.write("".join(render_record(dict(pairs), payload) for pairs, payload
                                   in zip(metadata, payloads, strict=True)).encode())

    def finish(self) -> str:
        """Complete the file; return its (temporary) path."""
        if self._format == "parquet":
            self._writer.close()
        else:
            self._compressor.__exit__(None, None, None)
        self._file.close()
        return self.path

    def __enter__(self) -> _Part:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._file.closed:
            # Left unfinished (the archive failed): close the writer before
            # its file, so that nothing is left to write into a closed file
            # later; the archive's own error is the one to report.
            with contextlib.suppress(Exception):
                self.finish()
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _Output:
    """Where exported files go."""

    url = ""

    def scratch(self) -> str:
        """The directory for files being written."""
        raise NotImplementedError

    def publish(self, path: str, relative: str) -> str:
        """Put the finished file at ``path`` under ``relative``, replacing
        what an earlier export put there; return where it is."""
        raise NotImplementedError


class _DirectoryOutput(_Output):
    def __init__(self, root: str) -> None:
        self.root = self.url = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def scratch(self) -> str:
        # Beside the targets, so that publishing is a rename.
        return self.root

    def publish(self, path: str, relative: str) -> str:
        target = os.path.join(self.root, *relative.split("/"))
        makedirs_durable(os.path.dirname(target))
        # Replacing is the point here: a re-run rewrites its own files.
        os.replace(path, target)
        return target


class _S3Output(_Output):
    def __init__(self, url: str, endpoint: str | None) -> None:
        self.bucket, prefix = s3.parse_s3_url(url)
        self.prefix = prefix.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self._client = s3.client(endpoint)

    def scratch(self) -> str:
        return tempfile.gettempdir()

    def publish(self, path: str, relative: str) -> str:
        key = "/".join(filter(None, [self.prefix, relative]))
        s3.upload_file(self._client, path, self.bucket, key)
        os.unlink(path)
        return f"s3://{self.bucket}/{key}"


def _open_output(dest: str, endpoint: str | None) -> _Output:
    if s3.is_s3_url(dest):
        return _S3Output(dest, endpoint)
    return _DirectoryOutput(dest)


__all__ = [
    "DAY",
    "DEFAULT_PARTITION_BY",
    "FORMATS",
    "PARQUET_COMPRESSION",
    "ArchiveExport",
    "Exporter",
    "export",
]
