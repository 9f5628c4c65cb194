"""Archives as Dask collections, read and decoded on the workers (dask,
distributed, s3fs: install the ``shoebox-archive[dask]`` extra).

:func:`read_archives` gives a ``dask.bag.Bag`` of records, :func:`to_dataframe`
a ``dask.dataframe.DataFrame`` in the schema of :mod:`shoebox.arrow`. The
client only lists the archives; each becomes one partition, which a worker
opens through fsspec (local files, ``s3://`` with s3fs, any other fsspec
file system), decompresses if it is gzip or zstd (detected by content) and
decodes. No record passes through the client until you compute a result.

With ``on_damage="skip"`` the :class:`~shoebox.errors.DamageSkipped`
warnings are issued where the decoding runs: on a distributed cluster, on
the workers (in their logs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .archive import ArchiveReader
from .codec import DEFAULT_MAX_RECORD_SIZE
from .errors import MissingExtra
from .naming import GLOB_CHARS, is_leftover, is_open
from .options import one_of
from .windows import Moment, TimeWindow, day_of_name

try:
    import dask.bag as db
    import dask.dataframe as dd
    import fsspec
    import pandas as pd
    import pyarrow as pa
    from fsspec.implementations.local import LocalFileSystem
except ImportError as exc:  # pragma: no cover - exercised in a child process
    raise MissingExtra.needs("shoebox.dask needs dask, distributed, fsspec and pyarrow",
                             "dask") from exc

from .arrow import ON_DAMAGE, Layout, archive_records


@dataclass(frozen=True)
class FsspecArchive:
    """One archive on an fsspec file system (a :class:`~shoebox.reading.Openable`),
    pickled to the worker that reads it."""

    fs: Any
    path: str
    #: The path (local files) or URL that names it in ``source`` and in errors.
    name: str

    def reader(self, *, recover: bool = False,
               max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> ArchiveReader:
        """Open the archive for reading; the reader closes the file."""
        return ArchiveReader(self.fs.open(self.path, "rb"), filename=self.name,
                             recover=recover, max_record_size=max_record_size)


def list_archives(urlpath: str | Iterable[str], *,
                  storage_options: Mapping[str, Any] | None = None,
                  window: TimeWindow | None = None,
                  include_all: bool = False) -> list[FsspecArchive]:
    """The archives ``urlpath`` names, each argument's in name order.

    Each is a file, a directory or prefix (every file under it), or a glob
    (``*``, ``?``, ``[…]``; ``**`` spans directories); directories and globs
    skip ``.open`` archives and, unless ``include_all``, files that are not
    archives (``.damaged`` originals, the quarantine, hidden files:
    :func:`shoebox.naming.is_leftover`). ``storage_options`` go to the fsspec file
    system (for s3fs: ``{"endpoint_url": …}``, ``{"client_kwargs": …}``,
    ``key``/``secret``…). Raises ``FileNotFoundError`` for a path that names
    nothing, except a remote prefix ending in ``/``, which is just empty.
    With a ``window``, archives whose names show they hold no record inside
    it are left out, and a directory's ``dt=DAY`` sub-folders outside its
    days are not listed (as :func:`shoebox.sources.expand` does).
    """
    archives: list[FsspecArchive] = []
    for url in [urlpath] if isinstance(urlpath, str) else list(urlpath):
        fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        local = isinstance(fs, LocalFileSystem)
        if GLOB_CHARS.search(root):
            found = [path for path, info in fs.glob(root, detail=True).items()
                     if info.get("type") == "file" and not is_open(path)]
        elif fs.isfile(root):
            found = [root]
        elif fs.isdir(root):
            found = [path for path in _find(fs, root, window) if not is_open(path)]
        elif url.endswith("/") and not local:
            found = []
        else:
            raise FileNotFoundError(f"no such archive, directory or prefix: {url}")
        if not include_all:
            found = [path for path in found if path == root or not is_leftover(path, root)]
        if window is not None:
            found = [path for path in found if window.may_hold(path)]
        archives += [FsspecArchive(fs, path, path if local else fs.unstrip_protocol(path))
                     for path in sorted(found)]
    return archives


def _find(fs: Any, root: str, window: TimeWindow | None) -> list[str]:
    """Every file under ``root``; with a ``window``, its ``dt=DAY``
    sub-folders outside the window's days are not listed."""
    if window is None:
        return list(fs.find(root))
    found = []
    for info in fs.ls(root, detail=True):
        path = info["name"]
        if info.get("type") != "directory":
            found.append(path)
            continue
        day = day_of_name(path.rstrip("/") + "/")
        if day is None or window.lists_day(day):
            found += fs.find(path)
    return found


def read_archives(urlpath: str | Iterable[str], *,
                  storage_options: Mapping[str, Any] | None = None,
                  on_damage: str = "raise", since: Moment | None = None,
                  until: Moment | None = None, include_all: bool = False) -> db.Bag:
    """A bag of ``{"metadata": {…}, "payload": "<json text>"}`` records, one
    partition per archive of ``urlpath`` (see :func:`list_archives`).

    ``on_damage``: ``"raise"`` (computing fails with the
    :class:`~shoebox.errors.CorruptRecord` naming file and offset) or
    ``"skip"`` (see :func:`shoebox.arrow.archive_records`). ``since``,
    ``until``: only the records inside that window, from the archives that
    can hold some (see :func:`shoebox.arrow.to_batches`). ``include_all``:
    see :func:`list_archives`.
    """
    one_of("on_damage", on_damage, ON_DAMAGE)
    window = TimeWindow.of(since, until)
    archives = list_archives(urlpath, storage_options=storage_options, window=window,
                             include_all=include_all)
    if not archives:
        return db.from_sequence([], npartitions=1)
    return db.from_sequence(archives, npartitions=len(archives)).map_partitions(
        _records, on_damage=on_damage, window=window)


def to_dataframe(urlpath: str | Iterable[str], *, columns: Iterable[str] | None = None,
                 storage_options: Mapping[str, Any] | None = None,
                 on_damage: str = "raise", since: Moment | None = None,
                 until: Moment | None = None, include_all: bool = False) -> dd.DataFrame:
    """A dask DataFrame of the records of the archives ``urlpath`` names,
    one partition per archive, with the columns of
    :func:`shoebox.arrow.to_table` as pandas ``ArrowDtype`` columns
    (``metadata`` a map, ``offset`` an int64, the rest strings). Arguments
    as for :func:`read_archives`; ``columns`` as for ``to_table``.
    """
    one_of("on_damage", on_damage, ON_DAMAGE)
    window = TimeWindow.of(since, until)
    archives = list_archives(urlpath, storage_options=storage_options, window=window,
                             include_all=include_all)
    layout = Layout((archive.name for archive in archives), columns=columns)
    meta = _frame(layout.schema.empty_table())
    if not archives:
        return dd.from_pandas(meta, npartitions=1)
    return dd.from_map(_frame_of, archives, meta=meta, label="shoebox-archives",
                       layout=layout, on_damage=on_damage, window=window)


def _records(partition: list[FsspecArchive], on_damage: str,
             window: TimeWindow | None) -> list[dict[str, Any]]:
    """A bag partition: the records of its archive (inside ``window``)."""
    return [{"metadata": metadata, "payload": payload}
            for archive in partition
            for metadata, payload, _offset in archive_records(archive, on_damage=on_damage,
                                                              window=window)]


def _frame_of(archive: FsspecArchive, layout: Layout, on_damage: str,
              window: TimeWindow | None) -> pd.DataFrame:
    """A DataFrame partition: the records of one archive (inside ``window``)."""
    batches = layout.batches([archive], on_damage=on_damage, window=window)
    return _frame(pa.Table.from_batches(list(batches), schema=layout.schema))


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=pd.ArrowDtype)


__all__ = ["FsspecArchive", "list_archives", "read_archives", "to_dataframe"]
