"""The ``shoebox`` command: read, check, repair and summarise archives.

``shoebox cat|verify|stats PATH…`` read plain, gzip and zstd archives from
files, directories, globs, standard input (``-``) and ``s3://`` prefixes
(see :func:`shoebox.sources.expand_paths`); ``shoebox export PATH… --to
DEST`` writes them as Parquet or JSON Lines for query engines
(:mod:`shoebox.export`); ``shoebox recover DIR`` finalizes archives left
``.open`` by writers that crashed; ``shoebox repair FILE…`` rewrites
finished archives holding damage (the original is kept). ``docs/cli.md``
shows examples.

Exit status: 0 success; 1 damaged data found (``verify``, or a damaged
record met by ``cat``/``stats`` without ``--recover``); 2 usage or I/O
error; 141 (like a process killed by ``SIGPIPE``) when the reader of the
output went away, as with ``shoebox cat … | head``; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import __version__, jsonl, otlp, recovery, repairing, s3
from ._progress import Progress
from ._redact import RedactingFormatter, redact, remember_url
from .archive import ArchiveReader, DamagedRange
from .codec import DEFAULT_MAX_RECORD_SIZE, Metadata, Record
from .errors import CorruptRecord, DamageSkipped, NotAnArchive, NotRegularFile, ShoeboxError
from .follow import Follower
from .sources import STDIN, Source, expand
from .windows import TimeWindow, WindowTally, parse_moment

EXIT_OK = 0
EXIT_DAMAGED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

_TICK = 4096  # records between progress bar updates (a power of two)
_BATCH = 1024  # output lines per write
_FOLLOW_INTERVAL = 0.2  # seconds between two looks at the archives cat --follow reads


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``shoebox`` command with ``argv`` (default ``sys.argv[1:]``);
    return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error
        return stop.code if isinstance(stop.code, int) else EXIT_ERROR
    command: Callable[[argparse.Namespace], int] = args.command
    # Before anything can fail and say where: see shoebox._redact.
    remember_url(getattr(args, "endpoint_url", None))
    try:
        with _log_to_stderr():
            status = command(args)
            sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader of our output is gone (``| head``). As the Python docs
        # advise (signal module, "Note on SIGPIPE"), point stdout at devnull
        # so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except _UsageError as error:
        _error(str(error))
        return EXIT_ERROR
    except NotAnArchive as error:  # --recover cannot help: no hint
        _error(str(error))
        return EXIT_DAMAGED
    except CorruptRecord as error:
        _error(f"{error} (--recover skips damaged records)")
        return EXIT_DAMAGED
    except Exception as error:
        if not _is_io_error(error):
            raise
        _error(str(error))
        return EXIT_ERROR


# --- cat -------------------------------------------------------------------

def _cat(args: argparse.Namespace) -> int:
    output = _Output(args)
    if args.follow:
        return _follow(args, output)
    sources = _sources(args, ", --follow follows them as they are written")
    # A bar on the terminal the records are printed on would garble them.
    progress = _progress(len(sources), extra_condition=not sys.stdout.isatty())
    walk = _Walk(args, progress)
    try:
        with output.printing():
            for source in sources:
                if output.done:
                    break
                with walk.open(source) as archive:
                    for metadata, payload in archive:
                        output.add(metadata, payload)
                        if output.done:
                            break
                    _report_damage(archive.reader.damaged, progress)
    finally:
        progress.clear()
    walk.report_window()
    return EXIT_OK


def _follow(args: argparse.Namespace, output: _Output) -> int:
    """``cat --follow``: print records as they are written until Ctrl-C (or
    ``--limit``)."""
    for path in args.paths:
        if path == STDIN or s3.is_s3_url(path):
            raise _UsageError(f"--follow follows local archives, not {path}")
    if args.since is not None or args.until is not None:
        raise _UsageError("--follow prints records as they come: --since/--until "
                          "read a window of finished archives")
    pause = threading.Event()  # never set: its wait() is a sleep Ctrl-C interrupts
    no_bar = _progress(0, extra_condition=False)
    with Follower(args.paths, recover=args.recover,
                  max_record_size=args.max_record_size) as follower, output.printing():
        while not output.done:  # --limit 0
            with closing(follower.poll()) as records:
                for metadata, payload in records:
                    output.add(metadata, payload)
                    if output.done:
                        return EXIT_OK
            output.flush()  # now, for whoever watches
            _report_damage(follower.damaged, no_bar)
            follower.damaged.clear()
            for skipped in follower.skipped:  # each path once
                _error(str(skipped))
            follower.skipped.clear()
            pause.wait(_FOLLOW_INTERVAL)
    return EXIT_OK


class _Output:
    """Records rendered as ``cat`` prints them, written to stdout
    :data:`_BATCH` lines at a time."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._render = (jsonl.render_metadata if args.metadata_only else
                        jsonl.render_payload if args.payload_only else jsonl.render_record)
        # --format otlp: records are kept as they are and each batch printed
        # as one OTLP ExportLogsServiceRequest line.
        self._otlp = args.format == "otlp"
        if self._otlp and (args.metadata_only or args.payload_only):
            raise _UsageError("--format otlp prints whole records: no --metadata-only "
                              "or --payload-only")
        self._records: list[tuple[Metadata, str]] = []
        self._match = _matcher(args.where)
        self._limit: int | None = args.limit
        self._out = sys.stdout.buffer
        self._lines: list[str] = []
        #: Records printed (or about to be).
        self.written = 0

    @property
    def done(self) -> bool:
        """Whether ``--limit`` records are printed."""
        return self.written == self._limit

    def add(self, metadata: Metadata, payload: str) -> None:
        """Print the record if it matches ``--where``."""
        if self._match is not None and not self._match(metadata):
            return
        self.written += 1
        if self._otlp:
            self._records.append((metadata, payload))
            if len(self._records) == _BATCH:
                self._lines.append(otlp.render_request(self._records))
                self._records.clear()
        else:
            self._lines.append(self._render(metadata, payload))
        if len(self._lines) == _BATCH or (self._otlp and self._lines):
            self._out.write("".join(self._lines).encode())
            self._lines.clear()

    def flush(self) -> None:
        if self._records:
            self._lines.append(otlp.render_request(self._records))
            self._records.clear()
        self._out.write("".join(self._lines).encode())
        self._lines.clear()
        self._out.flush()

    @contextmanager
    def printing(self) -> Iterator[None]:
        """Flush at the end, also when reading stops at damage, an I/O error
        or Ctrl-C: the good records read before are printed."""
        try:
            yield
        except BaseException as error:
            if not isinstance(error, BrokenPipeError):
                self.flush()
            raise
        self.flush()


def _condition(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def _matcher(conditions: list[tuple[str, str]]) -> Callable[[Metadata], bool] | None:
    """A test that metadata meets every ``(key, value)`` condition (values may
    be globs), or ``None`` when there are none."""
    if not conditions:
        return None
    tests: list[tuple[str, Callable[[str], object]]] = []
    for key, value in conditions:
        if any(char in value for char in "*?["):
            tests.append((key, re.compile(fnmatch.translate(value)).match))
        else:
            tests.append((key, value.__eq__))

    def match(metadata: Metadata) -> bool:
        for key, test in tests:
            value = metadata.get(key)
            if value is None or not test(value):
                return False
        return True

    return match


# --- verify ----------------------------------------------------------------

def _verify(args: argparse.Namespace) -> int:
    sources = _sources(args)
    progress = _progress(len(sources))
    counts = collections.Counter[str]()
    walk = _Walk(args, progress, recover=True)
    try:
        for source in sources:
            try:
                with walk.open(source) as archive:
                    for _record in archive:
                        pass
                summary = _Summary.of_file(archive)
            except NotAnArchive as error:
                progress.clear()
                print(f"{source.name}: {error.reason}")
                counts["not archives"] += 1
                continue
            except Exception as error:
                if not _is_io_error(error):
                    raise
                progress.clear()
                _error(str(error) if isinstance(error, _Unreadable)
                       else f"{source.name}: {error}")
                counts["unreadable"] += 1
                continue
            progress.clear()
            state = "DAMAGED" if summary.damaged else "ok"
            counts[state] += 1
            print(f"{source.name}: {state}, {summary.records} records, "
                  f"{summary.bytes} bytes{_stored(summary)}")
            for damaged in summary.damaged:
                print(f"  offset {damaged.offset}, length {damaged.length}: {damaged.reason}")
    finally:
        progress.clear()
    if len(sources) != 1:
        not_archives = (f", {counts['not archives']} not archives"
                        if counts["not archives"] else "")
        print(f"{len(sources)} archives: {counts['ok']} ok, {counts['DAMAGED']} damaged, "
              f"{counts['unreadable']} unreadable{not_archives}")
    if counts["unreadable"]:
        return EXIT_ERROR
    return EXIT_DAMAGED if counts["DAMAGED"] or counts["not archives"] else EXIT_OK


def _stored(summary: _Summary) -> str:
    if summary.compression in ("none", "") or summary.stored is None:
        return ""
    return f" ({summary.compression}, {summary.stored} stored)"


# --- stats -----------------------------------------------------------------

@dataclass
class _Summary:
    """What ``stats`` and ``verify`` report about one archive or many."""

    name: str
    records: int = 0
    bytes: int = 0
    stored: int | None = 0  # stored (compressed) bytes; None when unknown
    compression: str = ""  # "none", "gzip", "zstd", or "mixed"
    first: str | None = None
    last: str | None = None
    versions: collections.Counter[int] = field(default_factory=collections.Counter)
    top: dict[str, collections.Counter[str]] = field(default_factory=dict)
    damaged: list[DamagedRange] = field(default_factory=list)

    @classmethod
    def of_file(cls, archive: _Archive) -> _Summary:
        """What reading ``archive`` to its end found."""
        reader = archive.reader
        return cls(archive.source.name, archive.records, reader.offset, archive.source.size,
                   reader.compression, damaged=list(reader.damaged))

    @property
    def ratio(self) -> float | None:
        """Archive bytes per stored byte, for compressed archives."""
        if self.compression in ("none", "") or not self.stored:
            return None
        return self.bytes / self.stored

    def add(self, other: _Summary) -> None:
        self.records += other.records
        self.bytes += other.bytes
        self.stored = (None if self.stored is None or other.stored is None
                       else self.stored + other.stored)
        if self.compression != other.compression:
            self.compression = other.compression if not self.compression else "mixed"
        self.first = min(filter(None, (self.first, other.first)), default=None)
        self.last = max(filter(None, (self.last, other.last)), default=None)
        self.versions.update(other.versions)
        for key, counter in other.top.items():
            self.top.setdefault(key, collections.Counter()).update(counter)
        self.damaged.extend(other.damaged)

    def as_json(self, top_n: int) -> dict[str, Any]:
        return {
            "name": self.name, "records": self.records, "bytes": self.bytes,
            "stored_bytes": self.stored, "compression": self.compression or None,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "first_timestamp": self.first, "last_timestamp": self.last,
            "versions": {str(version): count for version, count in sorted(self.versions.items())},
            "top": {key: [{"value": value, "count": count}
                          for value, count in counter.most_common(top_n)]
                    for key, counter in self.top.items()},
            "damaged": [{"file": damaged.filename, "offset": damaged.offset,
                         "length": damaged.length, "reason": damaged.reason}
                        for damaged in self.damaged],
        }


def _stats(args: argparse.Namespace) -> int:
    sources = _sources(args)
    progress = _progress(len(sources))
    total = _Summary("total")
    files = []
    timestamp_key = args.timestamp_key
    walk = _Walk(args, progress)
    try:
        for source in sources:
            with walk.open(source) as archive:
                reader = archive.reader
                versions = collections.Counter[int]()
                counters = {key: collections.Counter[str]() for key in args.top}
                first = last = None
                for metadata, _payload in archive:
                    versions[reader.version or 0] += 1  # never None after a read
                    stamp = metadata.get(timestamp_key)
                    if stamp is not None:
                        # ISO 8601 text in one time zone sorts in time order.
                        first = stamp if first is None or stamp < first else first
                        last = stamp if last is None or stamp > last else last
                    for key, counter in counters.items():
                        value = metadata.get(key)
                        if value is not None:
                            counter[value] += 1
            summary = _Summary.of_file(archive)
            summary.first, summary.last = first, last
            summary.versions, summary.top = versions, counters
            files.append(summary)
            total.add(summary)
    finally:
        progress.clear()
    walk.report_window()
    if args.json:
        json.dump({"files": [summary.as_json(args.top_n) for summary in files],
                   "total": total.as_json(args.top_n)}, sys.stdout, ensure_ascii=False)
        print()
    else:
        _print_table(files, total, args.top_n)
    return EXIT_OK


def _print_table(files: list[_Summary], total: _Summary, top_n: int) -> None:
    header = ("archive", "records", "bytes", "stored", "compression", "ratio", "damaged")
    rows = [header] + [
        (summary.name, f"{summary.records:,}", f"{summary.bytes:,}",
         "?" if summary.stored is None else f"{summary.stored:,}",
         summary.compression or "-",
         "-" if summary.ratio is None else f"{summary.ratio:.2f}",
         str(len(summary.damaged)))
        for summary in [*files, total]]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells).rstrip())
    print()
    details = [
        ("first timestamp", total.first or "-"),
        ("last timestamp", total.last or "-"),
        ("record versions", ", ".join(f"v{version}: {count:,}"
                                      for version, count in sorted(total.versions.items()))
         or "-"),
    ]
    details += [(f"top {key}", ", ".join(f"{value} ({count:,})"
                                         for value, count in counter.most_common(top_n)) or "-")
                for key, counter in total.top.items()]
    width = max(len(name) for name, _value in details)
    for name, value in details:
        print(f"{name.ljust(width)}  {value}")


# --- recover ---------------------------------------------------------------

def _recover(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.directory):
        _error(f"{args.directory}: not a directory")
        return EXIT_ERROR
    result = recovery.recover(args.directory, args.pattern,
                              max_record_size=args.max_record_size)
    for path, kind in result.skipped.items():  # left alone; no failure of recovery
        _error(str(NotRegularFile(kind, filename=path)))
    for path in result.finalized:
        print(f"finalized {path}")
    print(f"{len(result.finalized)} stale .open archive(s) finalized in {args.directory}")
    # A stale archive recover() had to leave (its log, on stderr, says why)
    # is an I/O error.
    return EXIT_ERROR if result.left else EXIT_OK


# --- repair ----------------------------------------------------------------

def _repair(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            result = repairing.repair(path, max_record_size=args.max_record_size)
        except Exception as error:
            if not (_is_io_error(error) or isinstance(error, ValueError)):
                raise
            _error(str(error) if path in str(error) else f"{path}: {error}")
            failed += 1
            continue
        if result.original is None:
            print(f"{path}: ok, {result.records} records, nothing to repair")
            continue
        print(f"{path}: {result.records} records kept ({result.kept_bytes} bytes) in "
              f"{result.path}, {result.dropped_bytes} bytes dropped; the original is now "
              f"{result.original}")
        for damaged in result.dropped:
            print(f"  dropped offset {damaged.offset}, length {damaged.length}: "
                  f"{damaged.reason}")
    return EXIT_ERROR if failed else EXIT_OK


# --- export ----------------------------------------------------------------

def _export(args: argparse.Namespace) -> int:
    from .export import Exporter  # pyarrow: only this command needs it

    storage = {"endpoint_url": args.endpoint_url} if args.endpoint_url else None
    try:
        exporter = Exporter(args.to, format=args.format, partition_by=args.partition_by,
                            columns=args.columns, storage_options=storage,
                            on_damage="skip" if args.recover else "raise",
                            max_record_size=args.max_record_size)
        window = _window(args)
        sources = exporter.sources(args.paths, window=window, include_all=args.all_files)
    except (TypeError, ValueError) as error:
        raise _UsageError(str(error)) from None
    tally = WindowTally()
    layout = exporter.layout(sources)
    progress = _progress(len(sources))
    records = files = bytes_out = 0
    try:
        for source in sources:
            progress.start_file(source.name, None)

            def tick(count: int, offset: int, before: int = records) -> None:
                progress.tick(before + count, offset)

            with warnings.catch_warnings(record=True) as skipped:
                warnings.simplefilter("always", DamageSkipped)
                result = exporter.export_archive(source, layout, tick=tick, window=window,
                                                 tally=tally)
            if skipped:
                progress.clear()
            for warning in skipped:
                if issubclass(warning.category, DamageSkipped):
                    _error(str(warning.message))
                else:  # not ours to judge: shown as it would have been
                    warnings.showwarning(warning.message, warning.category,
                                         warning.filename, warning.lineno)
            records += result.records
            files += len(result.written)
            bytes_out += result.bytes_out
            progress.finish_file(records, source.size or 0)
    finally:
        progress.clear()
    bytes_in = sum(source.size or 0 for source in sources)
    print(f"exported {len(sources)} archive{'' if len(sources) == 1 else 's'}, "
          f"{records:,} records, "
          f"{bytes_in / 1e6:,.1f} MB in, {bytes_out / 1e6:,.1f} MB out: "
          f"{files} {args.format} files in {exporter.dest}")
    if window is not None:
        _error(_window_summary(window, records, tally, exporter.pruned))
    return EXIT_OK


# --- compact ---------------------------------------------------------------

def _compact(args: argparse.Namespace) -> int:
    from .lake import Compaction  # pyarrow: only this command needs it

    _window(args)  # checked here, for the flags' names in the message
    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise _UsageError("--scheduler needs distributed: "
                              "pip install 'shoebox-archive[dask]'") from None
        client = Client(args.scheduler)
    progress = Progress(sys.stderr, files=0, enabled=sys.stderr.isatty(), unit="days")
    log = _JsonLines(enabled=not progress.enabled)
    records = archives = total = 0

    def tell(event: str, fields: dict[str, Any]) -> None:
        # The bar counts days, records and the archives read (an archive
        # with records of two days is counted with each).
        nonlocal records, archives, total
        log.emit(event, fields)
        if event == "plan":
            progress.total, total = fields["days"], fields["archives"]
            progress.start_file(f"0/{total} archives", None)
        elif event == "day":
            records += fields["records"]
            archives = min(total, archives + fields["archives"])
            progress.finish_file(records, 0)
            progress.start_file(f"{archives}/{total} archives, day {fields['day']} done",
                                None)

    try:
        try:
            compaction = Compaction(
                args.src, args.to, since=args.since, until=args.until,
                target_mb=args.target_mb,
                endpoint_url=args.endpoint_url,
                on_damage="skip" if args.recover else "raise", client=client,
                on_progress=tell, max_record_size=args.max_record_size)
        except (TypeError, ValueError) as error:
            raise _UsageError(str(error)) from None
        with _naming(args.src):
            result = compaction.run()
    finally:
        progress.clear()
        if client is not None:
            client.close()
    for message in result.damaged:
        _error(message)
    for removed in result.removed:
        _error(f"removed {removed}, left by a compaction that did not finish")
    days = len(result.days)
    print(f"compacted {result.archives} archive{'' if result.archives == 1 else 's'} "
          f"({result.skipped} skipped as already done), {result.records:,} records, "
          f"{result.bytes_in / 1e6:,.1f} MB in, {result.bytes_out / 1e6:,.1f} MB out: "
          f"{result.files} parquet file{'' if result.files == 1 else 's'} over {days} "
          f"day{'' if days == 1 else 's'} in {compaction.store.url}")
    log.emit("summary", {"archives": result.archives, "skipped": result.skipped,
                         "records": result.records, "files": result.files,
                         "bytes_in": result.bytes_in, "bytes_out": result.bytes_out,
                         "days": days, "damaged": len(result.damaged)})
    return EXIT_OK


class _JsonLines:
    """Progress as JSON lines on stderr, in the sidecar's style (``timestamp``,
    ``level``, ``logger``, ``message``, ``event`` and the event's fields),
    when no bar can be drawn: for logs and CI."""

    _MESSAGES: ClassVar[dict[str, str]] = {
        "plan": "planned", "scanned": "archive read for its days", "day": "day compacted",
        "summary": "compaction done"}

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        import datetime

        line = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "level": "INFO", "logger": "shoebox.lake",
                "message": self._MESSAGES.get(event, event), "event": event, **fields}
        print(json.dumps(line), file=sys.stderr, flush=True)


# --- ddl -------------------------------------------------------------------

def _ddl(args: argparse.Namespace) -> int:
    from .ddl import first_day, table_ddl

    start = None
    if args.engine == "athena":
        with _naming(args.lake):
            start = first_day(args.lake, args.endpoint_url)
    try:
        sys.stdout.write(table_ddl(args.lake, engine=args.engine, table=args.table,
                                   first_day=start))
    except ValueError as error:
        raise _UsageError(str(error)) from None
    return EXIT_OK


def _keys(text: str) -> list[str]:
    """Comma-separated keys; the empty string gives none."""
    return [key.strip() for key in text.split(",")] if text.strip() else []


# --- shared ----------------------------------------------------------------

class _UsageError(Exception):
    """A command-line argument that argparse let through but cannot work."""


class _Unreadable(OSError):
    """An S3 request for a PATH failed; the message names the PATH and, when
    it is the trouble, the bucket (botocore's own messages name neither)."""


@contextmanager
def _naming(path: str) -> Iterator[None]:
    """Raise a failed S3 request for ``path`` as :class:`_Unreadable`."""
    try:
        yield
    except Exception as error:
        if not (s3.is_s3_url(path) and s3.is_s3_error(error)):
            raise
        bucket, _key = s3.parse_s3_url(path)
        raise _Unreadable(f"{path}: {s3.reason(error, bucket)}") from error


def _sources(args: argparse.Namespace, hint: str = "") -> list[Source]:
    """The archives the command's PATH arguments name; say on stderr how
    many ``.open`` archives were left out (and ``hint`` what else does)."""
    sources: list[Source] = []
    skipped = leftovers = 0
    window = _window(args)
    args.pruned = 0
    for path in args.paths:  # one at a time, so that an error names its PATH
        try:
            with _naming(path):
                found = expand([path], endpoint_url=args.endpoint_url,
                               include_open=args.include_open, include_all=args.all_files,
                               window=window)
        except ValueError as error:  # an s3:// URL without a bucket
            raise _UsageError(str(error)) from None
        sources += found.sources
        skipped += len(found.skipped_open)
        args.pruned += found.pruned
        leftovers += len(found.skipped_leftovers)
    if leftovers:
        # Said, so that a file left out on purpose is never a silent surprise.
        files = "files that are not archives" if leftovers > 1 else "file that is not an archive"
        _error(f"skipped {leftovers} {files} (.damaged originals, quarantine/, hidden or "
               f"temporary files): --all-files reads them")
    if skipped:
        # Without this, a directory of live archives read as nothing, exit 0
        # (issue 13).
        _error(f"skipped {skipped} .open archive{'s' if skipped > 1 else ''} (being written, "
               f"or left by a crashed writer): --include-open reads them{hint}")
    return sources


@dataclass
class _Archive:
    """One archive being read by a command: iterate for its records."""

    source: Source
    reader: ArchiveReader
    walk: _Walk
    #: Records read from it so far.
    read: int = 0
    #: Records it gave (those inside ``--since``/``--until``).
    records: int = 0

    def __iter__(self) -> Iterator[Record]:
        reader, progress, before = self.reader, self.walk.progress, self.walk.records
        window, tally = self.walk.window, self.walk.tally
        count = given = 0
        try:
            for count, record in enumerate(reader, 1):
                if not count & (_TICK - 1):
                    progress.tick(before + count, reader.offset)
                if window is not None and not tally.admits(window, record[0].get("timestamp")):
                    continue
                given += 1
                yield record
        finally:
            self.read, self.records = count, given


class _Walk:
    """A command's read over its archives, one after another, on the
    progress bar: ``with walk.open(source) as archive: for record in archive``."""

    def __init__(self, args: argparse.Namespace, progress: Progress, *,
                 recover: bool | None = None) -> None:
        self.args = args
        self.progress = progress
        self.recover = args.recover if recover is None else recover
        #: Records read so far in all archives.
        self.records = 0
        #: ``--since``/``--until``, and what it left out.
        self.window: TimeWindow | None = getattr(args, "window", None)
        self.tally = WindowTally()
        self.given = 0

    def report_window(self) -> None:
        """Say on stderr what ``--since``/``--until`` left out."""
        if self.window is not None:
            _error(_window_summary(self.window, self.given, self.tally,
                                   getattr(self.args, "pruned", 0)))

    @contextmanager
    def open(self, source: Source) -> Iterator[_Archive]:
        """Open ``source`` with the command's options and show it on the bar;
        the archive counts as read when the ``with`` block ends."""
        with _naming(source.name), source.reader(
                recover=self.recover, max_record_size=self.args.max_record_size) as reader:
            self.progress.start_file(source.name, source.size
                                     if reader.compression == "none" else None)
            archive = _Archive(source, reader, self)
            yield archive
            self.records += archive.read
            self.given += archive.records
            self.progress.finish_file(self.records, reader.offset)


def _window_summary(window: TimeWindow, given: int, tally: WindowTally, pruned: int) -> str:
    """The stderr line of a windowed command: what it kept and left out."""
    return (f"{window.describe()}: {given:,} record{'' if given == 1 else 's'} inside, "
            f"{tally.outside:,} outside, {tally.untimed:,} without a readable timestamp "
            f"(outside every window); {pruned:,} archive{'' if pruned == 1 else 's'} "
            f"left unread (their names show no record inside)")


def _moment(text: str) -> str:
    """A ``--since``/``--until`` value, checked now: ISO 8601 text."""
    try:
        parse_moment(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2026-11-27T14:00:00Z (UTC without a "
            f"zone), not {text!r}") from None
    return text


def _window(args: argparse.Namespace) -> TimeWindow | None:
    """The command's ``--since``/``--until`` as a window (``None`` without
    either); kept on ``args.window``."""
    try:
        window = TimeWindow.of(getattr(args, "since", None), getattr(args, "until", None))
    except ValueError as error:
        raise _UsageError(f"--{error}") from None
    args.window = window
    return window


def _progress(files: int, *, extra_condition: bool = True) -> Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal."""
    return Progress(sys.stderr, files=files,
                    enabled=extra_condition and sys.stderr.isatty())


def _report_damage(damaged: list[DamagedRange], progress: Progress) -> None:
    if damaged:
        progress.clear()
    for item in damaged:
        _error(f"{item.filename}: skipped damaged bytes at offset {item.offset}, "
               f"length {item.length}: {item.reason}")


def _is_io_error(error: BaseException) -> bool:
    """Whether ``error`` is about the input (a file, a bucket, an extra to
    install) rather than a bug."""
    return isinstance(error, (OSError, ShoeboxError)) or s3.is_s3_error(error)


def _error(message: str) -> None:
    # Every message of the command goes out here: botocore's repeat the
    # endpoint URL, with any password in it (issue 17).
    print(f"shoebox: {redact(message)}", file=sys.stderr)


@contextmanager
def _log_to_stderr() -> Iterator[None]:
    """Show shoebox's warnings (such as a torn tail truncated by ``recover``)
    on stderr while a command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(logging.Formatter("shoebox: %(message)s")))
    logger = logging.getLogger("shoebox")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _non_negative(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, not {text!r}")
    return number


def _positive(text: str) -> int:
    number = _non_negative(text)
    if number == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, not 0")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoebox", description="Read, check, repair and summarise shoebox archives.",
        epilog="exit status: 0 ok, 1 damaged data, 2 usage or I/O error")
    parser.add_argument("--version", action="version", version=f"shoebox {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND", required=True)

    size = argparse.ArgumentParser(add_help=False)
    size.add_argument("--max-record-size", type=_positive, default=DEFAULT_MAX_RECORD_SIZE,
                      metavar="BYTES", help="largest record to accept (default: %(default)s)")
    # export reads finished archives only: a live one's file would be
    # exported under a name it loses when it is finished.
    endpoint = argparse.ArgumentParser(add_help=False)
    endpoint.add_argument("--endpoint-url", metavar="URL",
                          help="S3 endpoint, for MinIO, Ceph or a test server (default: "
                               "$AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS config)")
    finished = argparse.ArgumentParser(add_help=False, parents=[size, endpoint])
    finished.add_argument("paths", nargs="+", metavar="PATH",
                          help="archive file, directory, glob, - (stdin) or s3://bucket/key "
                               "(that object, else the folder key/; globs allowed); gzip and "
                               "zstd archives are detected by content")
    finished.add_argument("--all-files", action="store_true",
                          help="also read the files in directories, globs and S3 folders "
                               "that are not archives: repair's .damaged originals, the "
                               "sidecar's quarantine/ directory, hidden and temporary files")
    reading = argparse.ArgumentParser(add_help=False, parents=[finished])
    reading.add_argument("--include-open", action="store_true",
                         help="also read the .open archives in directories, globs and S3 "
                              "folders (a live writer's: up to its last whole record)")
    windowed = argparse.ArgumentParser(add_help=False)
    windowed.add_argument("--since", type=_moment, metavar="WHEN",
                          help="only records whose timestamp metadata is at or after WHEN "
                               "(ISO 8601; UTC without a zone); archives whose names show "
                               "they hold none are not read")
    windowed.add_argument("--until", type=_moment, metavar="WHEN",
                          help="only records whose timestamp is before WHEN; records "
                               "without a readable timestamp are outside every window")
    recovering = argparse.ArgumentParser(add_help=False)
    recovering.add_argument("--recover", action="store_true",
                            help="skip damaged records (reported on stderr) instead of stopping")

    cat = commands.add_parser(
        "cat", parents=[reading, windowed, recovering], help="print records as JSON Lines",
        description='Print every record as one JSON object per line: {"metadata": {...}, '
                    '"payload": ...}. A payload that is valid JSON is embedded as JSON, '
                    'any other payload as a string.')
    only = cat.add_mutually_exclusive_group()
    only.add_argument("--metadata-only", action="store_true", help="print the metadata alone")
    only.add_argument("--payload-only", action="store_true", help="print the payload alone")
    cat.add_argument("--where", action="append", type=_condition, default=[],
                     metavar="KEY=VALUE",
                     help="only records whose metadata KEY matches VALUE (a glob allowed); "
                          "repeat to require several")
    cat.add_argument("--limit", type=_non_negative, metavar="N", help="stop after N records")
    cat.add_argument("--format", choices=["jsonl", "otlp"], default="jsonl",
                     help="jsonl (default): one record per line; otlp: OTLP JSON log records, "
                          f"one ExportLogsServiceRequest per line of up to {_BATCH} records, "
                          "to replay into an OpenTelemetry pipeline")
    cat.add_argument("-f", "--follow", action="store_true",
                     help="print every record there, then the records of live (.open) "
                          "archives as they are written, across rolls, until Ctrl-C "
                          "(local paths only)")
    cat.set_defaults(command=_cat)

    verify = commands.add_parser(
        "verify", parents=[reading], help="check every record's checksum",
        description="Read every record and check every checksum; print records, bytes and "
                    "damaged ranges per archive. Exit status 0 when all are clean, 1 when "
                    "damage is found, 2 for usage or I/O errors.")
    verify.set_defaults(command=_verify)

    stats = commands.add_parser(
        "stats", parents=[reading, windowed, recovering], help="summarise archives",
        description="Records, bytes, compression ratio, first and last timestamp, record "
                    "versions and the most frequent metadata values.")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.add_argument("--top", action="append", default=[], metavar="KEY",
                       help="count the most frequent values of metadata KEY (repeatable)")
    stats.add_argument("--top-n", type=_positive, default=5, metavar="N",
                       help="how many values --top shows (default: %(default)s)")
    stats.add_argument("--timestamp-key", default="timestamp", metavar="KEY",
                       help="metadata key holding ISO 8601 timestamps (default: %(default)s)")
    stats.set_defaults(command=_stats)

    export = commands.add_parser(
        "export", parents=[finished, windowed, recovering],
        help="write archives as Hive-partitioned Parquet or JSON Lines",
        description="Write the records of the archives as Parquet (zstd columns) or gzip JSON "
                    "Lines under a directory or an s3:// prefix, Hive-partitioned "
                    "(dt=YYYY-MM-DD/..., dt being each record's own UTC day), one file per "
                    "archive and partition, named after the archive: exporting an archive "
                    "again rewrites its files. DuckDB, Athena, Trino and Spark read the "
                    "result as any Hive-partitioned dataset. docs/query.md shows how.")
    export.add_argument("--to", required=True, metavar="DEST",
                        help="directory or s3://bucket/prefix to write into")
    export.add_argument("--format", choices=["parquet", "jsonl"], default="parquet",
                        help="output format (default: %(default)s)")
    export.add_argument("--partition-by", type=_keys, default=["dt"], metavar="KEY,...",
                        help="partition keys in path order: dt (the record's day), metadata "
                             "keys, Hive segments of the sources; '' for none "
                             "(default: dt)")
    export.add_argument("--columns", type=_keys, default=[], metavar="KEY,...",
                        help="metadata keys to give columns of their own, beside level, "
                             "logger, timestamp, host and pid")
    export.set_defaults(command=_export)

    compact = commands.add_parser(
        "compact", parents=[size, endpoint, windowed, recovering],
        help="compact archives into a few large sorted Parquet files per day",
        description="Turn the archives under SRC (a directory or s3:// prefix) into a "
                    "Hive-partitioned Parquet lake under DEST: dt=YYYY-MM-DD by each record's "
                    "own day, few large zstd files per day sorted by host then time, and a "
                    "manifest (DEST/_shoebox/days/) of the archives each file holds. "
                    "Incremental and exactly once: a re-run compacts only what no manifest "
                    "holds; a run killed at any moment is finished by the next. "
                    "docs/query.md shows how to query the result.")
    compact.add_argument("src", metavar="SRC", help="directory or s3://bucket/prefix of "
                                                    "archives (the sidecar's --dest)")
    compact.add_argument("--to", required=True, metavar="DEST",
                         help="directory or s3://bucket/prefix of the lake (not inside SRC)")
    compact.add_argument("--target-mb", type=float, default=256.0, metavar="MB",
                         help="size of the files to write; a smaller day is one file "
                              "(default: %(default)s)")
    compact.add_argument("--scheduler", metavar="ADDRESS",
                         help="a Dask scheduler (tcp://host:8786) whose workers compact "
                              "the days (default: in this process)")
    compact.set_defaults(command=_compact)

    ddl = commands.add_parser(
        "ddl", parents=[endpoint], help="print the table definition of a compacted lake",
        description="Print the SQL that defines a table over a lake written by shoebox "
                    "compact: a DuckDB view over read_parquet(..., hive_partitioning = true); "
                    "an Athena table with partition projection on dt (no MSCK REPAIR ever); "
                    "Trino and Spark tables with the statement that registers the days.")
    ddl.add_argument("lake", metavar="LAKE", help="the lake: directory or s3://bucket/prefix")
    ddl.add_argument("--engine", required=True, choices=["duckdb", "athena", "trino", "spark"])
    ddl.add_argument("--table", required=True, metavar="NAME",
                     help="the table's name ([catalog.][schema.]name)")
    ddl.set_defaults(command=_ddl)

    recover = commands.add_parser(
        "recover", parents=[size], help="finalize archives left .open by crashed writers",
        description="Finalize stale .open archives (no live writer holds their lock): "
                    "truncate a torn last record, then rename each to its final name.")
    recover.add_argument("directory", metavar="DIR")
    recover.add_argument("--pattern", default="*",
                         help="wildcard for final archive names (default: %(default)s)")
    recover.set_defaults(command=_recover)

    mend = commands.add_parser(
        "repair", parents=[size], help="rewrite damaged archives with the records that validate",
        description="Write a new archive of every record of FILE that validates (copied "
                    "byte for byte: version 1 records stay version 1; stored with FILE's "
                    "compression) under FILE's name, and keep the original as "
                    "FILE.damaged; never in place, never replacing a file. Reports the "
                    "records kept and the byte ranges dropped. An archive without damage "
                    "is left as it is.")
    mend.add_argument("files", nargs="+", metavar="FILE")
    mend.set_defaults(command=_repair)
    return parser


__all__ = ["main"]
