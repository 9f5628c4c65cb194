"""The lake: a fleet's small archives compacted into a few large, sorted
Parquet files per day, exactly once (pyarrow: install the
``shoebox-archive[arrow]`` extra; ``[dask]`` to spread the work over a
cluster, ``[s3]`` for S3).

:func:`compact` turns the archives under a directory or an ``s3://`` prefix
(SRC) into a Hive-partitioned dataset under DEST::

    DEST/dt=2026-11-27/part-<plan>-000.parquet      records of that UTC day
    DEST/dt=__HIVE_DEFAULT_PARTITION__/part-…       records without a readable timestamp
    DEST/_shoebox/days/2026-11-27.json              the manifest of that day

**Files.** ``dt`` is each record's own UTC day (from its ``timestamp``
metadata). A day's rows are sorted by ``host``, then ``time``, then
``source`` and ``offset``, and cut into files of about ``target_mb``
(a smaller day is one file) holding row groups of :data:`ROW_GROUP_ROWS`
rows: the files' and row groups' min/max statistics then skip both the
hosts and the times a query excludes. Columns: those of
:mod:`shoebox.arrow` (``metadata``, ``level``, ``logger``, ``timestamp``,
``host``, ``pid``, ``payload``, ``source``, ``offset``) and ``time``, the
timestamp as a ``timestamp[us, UTC]``; zstd compression.

**The manifest** is the truth. ``_shoebox/days/DAY.json`` lists the files
of that day's runs and every source archive compacted into them, with its
size (archives are immutable: a size that changed is refused) and the
days it has records in. A file that no manifest lists is left over from
a run that was killed: the next run deletes it before doing anything else
(and would write it again under the same name). A run compacts only
sources (or days of sources) no manifest holds yet, so a re-run with
nothing new does nothing, and a late archive adds one file to the days it
has records in, leaving the others alone.

**Exactly once.** A day's files are written aside and put in place whole
(a rename in a directory, an upload on S3, so a reader globbing
``dt=*/*.parquet`` never sees half a file), then its manifest is replaced
in one step (a rename; a single PUT). A run killed at any moment leaves
either the whole day committed or files that the next run deletes.
Compactions of one DEST must not run at the same time.

A day whose archives hold more than ``target_mb`` (stored) is compacted in
parts of about that much, each a range of hosts (a host's archives stay in
one part): parts run side by side on a cluster, each held in one worker's
memory while it is sorted, and the day is committed once all are written.

Which days a source has records in is known without reading it when its
name carries its span (the sidecar's ``hive`` keys, :mod:`shoebox.windows`);
other sources are read once more, first, to find out. Records without a
readable timestamp are written by the run of their archive's first day (or,
for an archive without any, of ``__HIVE_DEFAULT_PARTITION__``).
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import hashlib
import json
import os
import secrets
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import s3
from ._files import fsync_directory, makedirs_durable
from ._timestamps import utc_datetime
from .arrow import HIVE_NULL, ON_DAMAGE, Layout, archive_records
from .codec import DEFAULT_MAX_RECORD_SIZE
from .errors import DamageSkipped, MissingExtra, ShoeboxError
from .options import one_of, positive_number, whole_number
from .sources import Source, expand
from .windows import NO_SPAN, Moment, TimeWindow, span_of_name

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as exc:  # pragma: no cover - exercised in a child process
    raise MissingExtra("shoebox.lake needs pyarrow: "
                       "pip install 'shoebox-archive[arrow]'") from exc

#: Where the manifests live under DEST: one JSON file per day.
MANIFEST_DIR = "_shoebox/days"
#: The manifest format this code writes and reads.
MANIFEST_FORMAT = 1
#: The "day" of records without a readable timestamp (Hive's null).
UNDATED = HIVE_NULL
#: Rows per row group (DuckDB's advice: 100k to 1M).
ROW_GROUP_ROWS = 131_072
#: The file size compaction aims at unless told otherwise, in MB.
DEFAULT_TARGET_MB = 256.0
#: The columns rows are sorted by, in order.
SORT_KEYS = ("host", "time", "source", "offset")
PARQUET_COMPRESSION = "zstd"
_PART_PREFIX = "part-"
_TEMPORARY = ".partial"
_MB = 1_000_000


class LakeError(ShoeboxError, ValueError):
    """Compaction cannot go on: DEST inside SRC, a source archive that
    changed since it was compacted, a manifest that cannot be read."""


def schema() -> pa.Schema:
    """The columns of every compacted file."""
    base = Layout().schema
    return base.append(pa.field("time", pa.timestamp("us", tz="UTC")))


# --- where the lake is --------------------------------------------------------

class LakeStore:
    """DEST: a directory or an ``s3://`` prefix, addressed by paths relative
    to it (``dt=…/part-….parquet``). Pickled to Dask workers without its
    S3 client, which each process makes again."""

    def __init__(self, dest: str, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.is_s3 = s3.is_s3_url(dest)
        if self.is_s3:
            self.bucket, prefix = s3.parse_s3_url(dest)
            self.prefix = prefix.strip("/")
            self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        else:
            self.root = os.path.abspath(dest)
            self.url = self.root
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client(self.endpoint_url)
        return self._client

    def locate(self, relative: str) -> str:
        """The path or URL of ``relative``."""
        if self.is_s3:
            return f"s3://{self.bucket}/{self._key(relative)}"
        return os.path.join(self.root, *relative.split("/"))

    def _key(self, relative: str) -> str:
        return "/".join(filter(None, [self.prefix, relative]))

    def list(self) -> list[tuple[str, int]]:
        """``(relative path, size)`` of every file under DEST."""
        if self.is_s3:
            start = len(self.prefix) + 1 if self.prefix else 0
            return [(key[start:], size) for key, size in s3.list_objects(
                self.client, self.bucket, self.prefix + "/" if self.prefix else "")]
        found = []
        for top, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(top, name)
                with contextlib.suppress(FileNotFoundError):
                    found.append((os.path.relpath(path, self.root).replace(os.sep, "/"),
                                  os.path.getsize(path)))
        return sorted(found)

    def read(self, relative: str) -> bytes | None:
        """The bytes of ``relative``, ``None`` when there is no such file."""
        if self.is_s3:
            try:
                with s3.open_object(self.client, self.bucket, self._key(relative)) as body:
                    return body.read()
            except Exception as error:
                if s3.error_code(error) in ("NoSuchKey", "404"):
                    return None
                raise
        try:
            with open(self.locate(relative), "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def writing(self, relative: str) -> Iterator[str]:
        """A temporary path to write ``relative`` into; when the block ends
        without an error, the file is put in place whole (replacing
        ``relative``): renamed beside it locally, uploaded on S3."""
        if self.is_s3:
            directory = tempfile.gettempdir()
        else:
            directory = os.path.dirname(self.locate(relative))
            makedirs_durable(directory)
        # A hidden name: no reader's *.parquet glob matches it.
        temporary = os.path.join(directory, f".{os.path.basename(relative)}."
                                            f"{secrets.token_hex(4)}{_TEMPORARY}")
        try:
            yield temporary
            if self.is_s3:
                s3.upload_file(self.client, temporary, self.bucket, self._key(relative))
            else:
                with open(temporary, "rb+") as file:
                    os.fsync(file.fileno())
                os.replace(temporary, self.locate(relative))
                fsync_directory(directory)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def delete(self, relative: str) -> None:
        if self.is_s3:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(relative))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.locate(relative))


# --- the manifest ---------------------------------------------------------------

@dataclass
class DayManifest:
    """What is committed for one day: its files and the sources they hold."""

    day: str
    #: Relative path → {"rows", "bytes", "sources": [names]}.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Source name → {"size", "days": [every day it has records in]}.
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def relative(self) -> str:
        return f"{MANIFEST_DIR}/{self.day}.json"

    def to_json(self) -> bytes:
        return json.dumps({"format": MANIFEST_FORMAT, "day": self.day, "files": self.files,
                           "sources": self.sources}, indent=1, sort_keys=True).encode()

    @classmethod
    def load(cls, store: LakeStore, day: str) -> DayManifest:
        """The committed manifest of ``day`` (an empty one if there is none)."""
        manifest = cls(day)
        data = store.read(manifest.relative)
        if data is None:
            return manifest
        try:
            parsed = json.loads(data)
            if parsed.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {parsed.get('format')!r}, not {MANIFEST_FORMAT}")
            return cls(day, dict(parsed["files"]), dict(parsed["sources"]))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise LakeError(f"{store.locate(manifest.relative)}: not a manifest this "
                            f"version reads ({error})") from None


def load_manifests(store: LakeStore) -> dict[str, DayManifest]:
    """Every committed day manifest of the lake, by day."""
    days = [relative[len(MANIFEST_DIR) + 1:-len(".json")] for relative, _size in store.list()
            if relative.startswith(MANIFEST_DIR + "/") and relative.endswith(".json")]
    return {day: DayManifest.load(store, day) for day in days}


# --- planning -------------------------------------------------------------------

@dataclass(frozen=True)
class SourceArchive:
    """One source archive as the workers get it: ``key``, its path (or key)
    relative to SRC, which names it in the manifest, whatever SRC's
    spelling; ``url``, where it is read; its size and the S3 endpoint to
    read it through."""

    key: str
    url: str
    size: int | None
    endpoint_url: str | None = None

    def source(self) -> Source:
        client = _client(self.endpoint_url) if s3.is_s3_url(self.url) else None
        return Source(self.url, self.size, client)


@functools.lru_cache(maxsize=8)
def _client(endpoint_url: str | None) -> Any:
    """One S3 client per endpoint and process (worker): making one takes
    longer than reading a small archive, and clients are thread-safe."""
    return s3.client(endpoint_url)


def _host(item: SourceArchive) -> str:
    """The host an archive's key names (its ``host=`` folder), else its key."""
    for segment in item.key.split("/")[:-1]:
        if segment.startswith("host="):
            return segment[5:]
    return item.key


def _parts(items: list[SourceArchive], budget: int) -> list[tuple[SourceArchive, ...]]:
    """A day's sources in parts of about ``budget`` stored bytes each, by
    host order (a host's archives stay together): parts compact side by
    side on a cluster, each held in one worker's memory, and their files
    cover separate ranges of hosts. A day of less than ``budget`` is one part."""
    parts: list[list[SourceArchive]] = [[]]
    filled = 0
    by_host: dict[str, list[SourceArchive]] = {}
    for item in items:
        by_host.setdefault(_host(item), []).append(item)
    for host in sorted(by_host):
        size = sum(item.size or 0 for item in by_host[host])
        if parts[-1] and filled + size > budget:
            parts.append([])
            filled = 0
        parts[-1] += by_host[host]
        filled += size
    return [tuple(part) for part in parts]


@dataclass(frozen=True)
class DayTask:
    """Compact ``sources`` into ``day`` (their rows of that day, and the
    untimed rows of those whose first day it is, in ``homes``): a whole day,
    or a part of one (see :func:`_parts`)."""

    day: str
    sources: tuple[SourceArchive, ...]
    homes: frozenset[str]
    store: LakeStore
    target_bytes: int
    on_damage: str
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE

    @property
    def tag(self) -> str:
        """Names this task's files: the same plan gives the same names."""
        digest = hashlib.sha256(self.day.encode())
        for item in sorted(self.sources, key=lambda item: item.key):
            digest.update(f"\0{item.key}\0{item.size}".encode())
        return digest.hexdigest()[:16]


@dataclass
class DayResult:
    """What one day's task (or all its parts) wrote."""

    day: str
    #: The sources read for it.
    sources: tuple[SourceArchive, ...] = ()
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: int = 0
    bytes_out: int = 0
    #: Damage skipped with ``on_damage="skip"``, as messages.
    skipped: list[str] = field(default_factory=list)


@dataclass
class CompactResult:
    """What a compaction did."""

    #: Source archives read (for records; those read only to find their days
    #: are not counted twice).
    archives: int = 0
    #: Archives skipped because the manifest holds them already.
    skipped: int = 0
    records: int = 0
    files: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    #: Days committed, in order.
    days: list[str] = field(default_factory=list)
    #: Files left by killed runs that were deleted.
    removed: list[str] = field(default_factory=list)
    #: Damage skipped (``on_damage="skip"``), as messages naming archive and offset.
    damaged: list[str] = field(default_factory=list)


def _days_of_span(name: str) -> list[str] | None:
    """The days a source has timed records in, by its name; ``None``: unknown."""
    span = span_of_name(name)
    if span is None:
        return None
    if span is NO_SPAN:
        return []
    return [day.isoformat() for day in span.days]


def scan_days(item: SourceArchive, on_damage: str,
              max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
              ) -> tuple[list[str], bool, list[str]]:
    """Read a source whose name tells nothing: the days it has timed
    records in, whether it has untimed ones, and damage skipped."""
    days: set[str] = set()
    untimed = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DamageSkipped)
        for metadata, _payload, _offset in archive_records(
                item.source(), on_damage=on_damage, max_record_size=max_record_size):
            moment = _moment(metadata)
            if moment is None:
                untimed = True
            else:
                days.add(moment.date().isoformat())
    return sorted(days), untimed, [str(warning.message) for warning in caught]


def _moment(metadata: dict[str, str]) -> datetime.datetime | None:
    stamp = metadata.get("timestamp")
    return None if stamp is None else utc_datetime(stamp)


# --- one day's work -------------------------------------------------------------

def compact_day(task: DayTask) -> DayResult:
    """Read the task's sources, keep the rows of its day (and the untimed
    rows of its home sources), sort them, and write them as files of about
    the target size; return what was written (nothing is committed here)."""
    result = DayResult(task.day, task.sources)
    layout = Layout()
    dated: dict[str, list[Any]] = {"metadata": [], "payload": [], "offset": [], "time": [],
                                   "source": []}
    undated: dict[str, list[Any]] = {key: [] for key in dated}
    inside = None  # the task's UTC day, as a window (none for the undated "day")
    if task.day != UNDATED:
        start = datetime.datetime.combine(datetime.date.fromisoformat(task.day),
                                          datetime.time(), datetime.timezone.utc)
        inside = TimeWindow(start, start + datetime.timedelta(days=1)).contains
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DamageSkipped)
        for item in task.sources:
            home = item.key in task.homes
            for metadata, payload, offset in archive_records(
                    item.source(), on_damage=task.on_damage,
                    max_record_size=task.max_record_size):
                moment = _moment(metadata)
                if moment is None:
                    if not home:
                        continue
                    rows = undated
                elif inside is not None and inside(moment):
                    rows = dated
                else:
                    continue
                rows["metadata"].append(metadata)
                rows["payload"].append(payload)
                rows["offset"].append(offset)
                rows["time"].append(moment)
                rows["source"].append(item.url)
    result.skipped = [str(warning.message) for warning in caught]
    for day, rows in ((task.day, dated), (UNDATED, undated)):
        if not rows["payload"]:
            continue
        table = _table(layout, rows)
        prefix = f"dt={day}/{_PART_PREFIX}"
        if day != task.day:  # untimed rows written by their archives' first day
            prefix += f"{task.day}-"
        for relative, written, size in _write_files(task, table, prefix):
            keys = {item.url: item.key for item in task.sources}
            names = sorted({keys[url] for url in written.column("source").to_pylist()})
            rows_written = written.num_rows
            result.files[relative] = {"rows": rows_written, "bytes": size, "sources": names}
            result.records += rows_written
            result.bytes_out += size
    return result


def _table(layout: Layout, rows: dict[str, list[Any]]) -> pa.Table:
    """The rows as a table of the lake's schema, sorted by :data:`SORT_KEYS`."""
    runs: list[tuple[int, str]] = []
    for index, name in enumerate(rows["source"]):
        if not runs or runs[-1][1] != name:
            runs.append((index, name))
    batch = layout.make_batch(rows["metadata"], rows["payload"], rows["offset"], runs)
    times = pa.array(rows["time"], pa.timestamp("us", tz="UTC"))
    table = pa.Table.from_batches([batch]).append_column(schema().field("time"), times)
    return table.sort_by([(key, "ascending") for key in SORT_KEYS])


def _write_files(task: DayTask, table: pa.Table,
                 prefix: str) -> Iterator[tuple[str, pa.Table, int]]:
    """Write ``table`` as files of about the target size, row group by row
    group; yield ``(relative path, its rows, bytes)`` of each, in place."""
    start, number = 0, 0
    while start < table.num_rows:
        relative = f"{prefix}{task.tag}-{number:03d}.parquet"
        with task.store.writing(relative) as temporary:
            with open(temporary, "wb") as file, pq.ParquetWriter(
                    file, table.schema, compression=PARQUET_COMPRESSION) as writer:
                first = start
                while start < table.num_rows:
                    writer.write_table(table.slice(start, ROW_GROUP_ROWS),
                                       row_group_size=ROW_GROUP_ROWS)
                    start += ROW_GROUP_ROWS
                    if file.tell() >= task.target_bytes:
                        break
            size = os.path.getsize(temporary)
        yield relative, table.slice(first, start - first), size
        number += 1


# --- the whole run ----------------------------------------------------------------

class Compaction:
    """One compaction of SRC into DEST, planned at construction (see the
    module). ``client``: a ``distributed.Client`` to run the days on its
    workers (default: in this process). ``on_progress(event, fields)`` is
    told each step: ``"plan"`` (days, archives, skipped), ``"scanned"``
    (an archive read to find its days), ``"day"`` (a day committed, with its
    counts)."""

    def __init__(self, source: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                 since: Moment | None = None, until: Moment | None = None,
                 target_mb: float = DEFAULT_TARGET_MB, endpoint_url: str | None = None,
                 on_damage: str = "raise", client: Any = None,
                 on_progress: Callable[[str, dict[str, Any]], object] | None = None,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> None:
        self.src = os.fspath(source)
        self.window = TimeWindow.of(since, until)
        self.target_bytes = int(positive_number("target_mb", target_mb) * _MB)
        self.on_damage = one_of("on_damage", on_damage, ON_DAMAGE)
        self.max_record_size = whole_number("max_record_size", max_record_size, minimum=1)
        self.endpoint_url = endpoint_url
        self.client = client
        self.store = LakeStore(os.fspath(dest), endpoint_url)
        self._tell = on_progress or (lambda event, fields: None)
        # Every source's days (its first one takes its untimed rows), by name.
        self._days_of: dict[str, list[str]] = {}
        _check_apart(self.src, self.store)

    def run(self) -> CompactResult:
        """Compact; return what was done. Raises the error of a damaged
        source (``on_damage="raise"``), :class:`LakeError`, ``OSError`` and
        botocore's errors; what was committed before stays committed."""
        result = CompactResult()
        manifests = load_manifests(self.store)
        result.removed = self._remove_leftovers(manifests)
        # Whole days are compacted: every archive with records of those days.
        days = None if self.window is None else self.window.whole_days()
        found = expand([self.src], endpoint_url=self.endpoint_url, window=days)
        # Hidden files are never archives: a sidecar's copy being staged
        # (.shoebox-….partial) in a directory destination, say.
        sources = [SourceArchive(_relative(self.src, item.name), item.name, item.size,
                                 self.endpoint_url) for item in found.sources
                   if not item.name.rsplit("/", 1)[-1].startswith(".")]
        tasks, result.skipped = self._plan(sources, manifests, result)
        self._tell("plan", {"days": len({task.day for task in tasks}), "parts": len(tasks),
                            "archives": len(
            {item.key for task in tasks for item in task.sources}), "skipped": result.skipped})
        read: set[str] = set()
        parts = collections.Counter(task.day for task in tasks)
        written: dict[str, list[tuple[DayTask, DayResult]]] = {}
        for task, part in self._run_days(tasks):
            result.damaged += part.skipped
            written.setdefault(task.day, []).append((task, part))
            if len(written[task.day]) < parts[task.day]:
                continue  # a day is committed whole, once all its parts are written
            day = _merged(written.pop(task.day))
            self._commit(task.day, day, manifests)
            new = {item.key for item in day.sources} - read
            read |= new
            result.archives += len(new)
            result.bytes_in += sum(item.size or 0 for item in day.sources
                                   if item.key in new)
            result.records += day.records
            result.files += len(day.files)
            result.bytes_out += day.bytes_out
            result.days.append(task.day)
            self._tell("day", {"day": task.day, "archives": len(day.sources),
                               "records": day.records, "files": len(day.files),
                               "bytes_out": day.bytes_out})
        return result

    def _remove_leftovers(self, manifests: dict[str, DayManifest]) -> list[str]:
        """Delete the part files no manifest lists (a killed run's) and
        temporary files left beside them."""
        listed = {relative for manifest in manifests.values() for relative in manifest.files}
        removed = []
        for relative, _size in self.store.list():
            base = relative.rsplit("/", 1)[-1]
            # Part files in day folders; anything written aside (parts and
            # manifests alike) that was never put in place.
            ours = ((relative.startswith("dt=") and base.startswith(_PART_PREFIX)
                     and base.endswith(".parquet"))
                    or (base.startswith(".") and base.endswith(_TEMPORARY)))
            if ours and relative not in listed:
                self.store.delete(relative)
                removed.append(relative)
        return removed

    def _plan(self, sources: list[SourceArchive], manifests: dict[str, DayManifest],
              result: CompactResult) -> tuple[list[DayTask], int]:
        """The day tasks still to do, and how many sources are wholly done."""
        committed: dict[str, tuple[int | None, list[str], set[str]]] = {}
        for manifest in manifests.values():
            for name, entry in manifest.sources.items():
                size, days, done = committed.get(name, (entry.get("size"), entry["days"], set()))
                done.add(manifest.day)
                committed[name] = (size, days, done)
        todo: dict[str, list[SourceArchive]] = {}
        homes: dict[str, set[str]] = {}
        unknown = []
        skipped = 0
        days_of = self._days_of
        for item in sources:
            if item.key in committed:
                size, days, done = committed[item.key]
                if item.size is not None and size is not None and size != item.size:
                    raise LakeError(f"{item.url}: {size} bytes when it was compacted, "
                                    f"{item.size} now; archives do not change, so this is "
                                    "another archive under the same name: compact it into "
                                    "another lake, or remove the days holding the old one")
                days_of[item.key] = days
            else:
                known = _days_of_span(item.key)
                if known is None:
                    unknown.append(item)
                    continue
                # A span says nothing of untimed records: the first day (or,
                # with no timed record, the undated "day") takes them.
                days_of[item.key] = known or [UNDATED]
        for item, (days, untimed, damage) in zip(unknown, self._scan(unknown), strict=True):
            result.damaged += damage
            days_of[item.key] = days or ([UNDATED] if untimed else [])
        for item in sources:
            days = days_of[item.key]
            done = committed.get(item.key, (None, [], set()))[2]
            wanted = [day for day in days if day not in done and self._in_window(day)]
            if not wanted and set(days) <= done:
                skipped += 1
            for day in wanted:
                todo.setdefault(day, []).append(item)
            if days:
                homes.setdefault(days[0], set()).add(item.key)
        tasks = [DayTask(day, part, frozenset(homes.get(day, ())), self.store,
                         self.target_bytes, self.on_damage, self.max_record_size)
                 for day, items in sorted(todo.items())
                 for part in _parts(items, self.target_bytes)]
        return tasks, skipped

    def _in_window(self, day: str) -> bool:
        if self.window is None:
            return True
        if day == UNDATED:
            return False
        return self.window.touches_day(datetime.date.fromisoformat(day))

    def _scan(self, unknown: list[SourceArchive]) -> list[tuple[list[str], bool, list[str]]]:
        """Read each source of ``unknown`` for its days, on the cluster if any."""
        if not unknown:
            return []
        if self.client is None:
            found = []
            for item in unknown:
                found.append(scan_days(item, self.on_damage, self.max_record_size))
                self._tell("scanned", {"archive": item.url})
            return found
        futures = self.client.map(scan_days, unknown, on_damage=self.on_damage,
                                  max_record_size=self.max_record_size, pure=False)
        return list(self.client.gather(futures))

    def _run_days(self, tasks: list[DayTask]) -> Iterator[tuple[DayTask, DayResult]]:
        """Each task with its result, as they finish."""
        if self.client is None:
            for task in tasks:
                yield task, compact_day(task)
            return
        # All submitted at once, so the workers run days side by side; the
        # results are committed in day order (a day waits for the earlier).
        futures = [self.client.submit(compact_day, task, pure=False) for task in tasks]
        for task, future in zip(tasks, futures, strict=True):
            yield task, future.result()

    def _commit(self, name: str, day: DayResult,
                manifests: dict[str, DayManifest]) -> None:
        """Replace the day's manifest with one that also holds this run's
        files and sources: the moment they count as compacted."""
        manifest = manifests.get(name) or DayManifest(name)
        manifest.files.update(day.files)
        for item in day.sources:
            manifest.sources[item.key] = {"size": item.size,
                                           "days": self._days_of[item.key]}
        with self.store.writing(manifest.relative) as temporary, \
                open(temporary, "wb") as file:
            file.write(manifest.to_json())
        manifests[name] = manifest


def _relative(root: str, name: str) -> str:
    """Archive ``name`` (a path or URL) relative to SRC ``root``."""
    if s3.is_s3_url(root):
        prefix = s3.parse_s3_url(root)[1]
        key = s3.parse_s3_url(name)[1]
        prefix = prefix.strip("/")
        return key[len(prefix) + 1:] if prefix and key.startswith(prefix + "/") else key
    if os.path.isdir(root):
        return os.path.relpath(name, root).replace(os.sep, "/")
    return os.path.basename(name)


def _merged(parts: list[tuple[DayTask, DayResult]]) -> DayResult:
    """One day's result from its parts'."""
    merged = DayResult(parts[0][0].day)
    for _task, part in parts:
        merged.sources += part.sources
        merged.files.update(part.files)
        merged.records += part.records
        merged.bytes_out += part.bytes_out
        merged.skipped += part.skipped
    return merged


def _check_apart(src: str, store: LakeStore) -> None:
    """Refuse a DEST inside SRC: compaction would read its own output."""
    if s3.is_s3_url(src) != store.is_s3:
        return
    if store.is_s3:
        bucket, prefix = s3.parse_s3_url(src)
        inside = bucket == store.bucket and (
            not prefix.strip("/") or (store.prefix + "/").startswith(prefix.strip("/") + "/"))
    else:
        root = os.path.realpath(src)
        dest = os.path.realpath(store.root)
        inside = dest == root or dest.startswith(root.rstrip(os.sep) + os.sep)
    if inside:
        raise LakeError(f"DEST {store.url} is inside SRC {src}: compaction would read "
                        "its own files; put the lake elsewhere")


def compact(source: str | os.PathLike[str], dest: str | os.PathLike[str], *,
            since: Moment | None = None, until: Moment | None = None,
            target_mb: float = DEFAULT_TARGET_MB, endpoint_url: str | None = None,
            on_damage: str = "raise", client: Any = None) -> CompactResult:
    """Compact the archives under ``source`` (a directory or ``s3://``
    prefix) into the lake at ``dest`` (see the module and
    :class:`Compaction`): only the days ``since``/``until`` touch, when
    given. ``on_damage="skip"`` skips damaged records and unreadable
    archives (listed in :attr:`CompactResult.damaged`); ``"raise"`` stops
    at the first, naming archive and offset."""
    return Compaction(source, dest, since=since, until=until, target_mb=target_mb,
                      endpoint_url=endpoint_url, on_damage=on_damage, client=client).run()


__all__ = [
    "DEFAULT_TARGET_MB",
    "MANIFEST_DIR",
    "ROW_GROUP_ROWS",
    "SORT_KEYS",
    "UNDATED",
    "CompactResult",
    "Compaction",
    "DayManifest",
    "LakeError",
    "LakeStore",
    "compact",
    "compact_day",
    "load_manifests",
    "schema",
]
