"""``ShoeboxHandler``: a ``logging.Handler`` that archives every record as
string metadata plus a JSON payload, in rolling shoebox archives."""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from pythonjsonlogger.core import BaseJsonFormatter

from shoebox.archive import Durability
from shoebox.codec import Metadata, encode_record
from shoebox.errors import ArchiveVanished, BudgetExceeded, InvalidRecord
from shoebox.options import one_of
from shoebox.roll_manager import WritingRollManager

from . import _options
from ._text import as_text, utc_timestamp, utf8_safe
from .formatter import ShoeboxJsonFormatter
from .writer_thread import WHEN_FULL_MODES, WhenFull, WriterThread

#: Archive names unless ``filename_template`` says otherwise.
DEFAULT_FILENAME_TEMPLATE = "log_%Y%m%d_%H%M%S_%f_{host}_{pid}.events"
# Handlers alive in this process, reset in a forked child, as logging does
# for its handler locks and the core for its roll managers.
_live_handlers: weakref.WeakSet[ShoeboxHandler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handler in list(_live_handlers):
        handler._reset_after_fork()
        # A multiprocessing child leaves through os._exit: no atexit, so no
        # logging.shutdown(), and records still queued would be lost. It runs
        # multiprocessing's own finalizers, though, once it has cleared those
        # inherited from the parent and run its after-fork hooks.
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            mp_util.register_after_fork(handler, _close_at_multiprocessing_exit)


def _close_at_multiprocessing_exit(handler: ShoeboxHandler) -> None:
    from multiprocessing import util

    util.Finalize(None, _close_if_alive, args=(weakref.ref(handler),), exitpriority=0)


def _close_if_alive(handler_ref: weakref.ref[ShoeboxHandler]) -> None:
    handler = handler_ref()
    if handler is not None:
        handler.close()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text, parse_constant=_refuse_constant), dict)
    except ValueError:
        return False


def _trusted(formatter: logging.Formatter | None) -> bool:
    """Whether ``formatter`` always produces a JSON object, so its output
    need not be parsed: python-json-logger's formatters do, unless told to
    put a prefix before the JSON."""
    return isinstance(formatter, BaseJsonFormatter) and not formatter.prefix


# A write failure: the error's type and errno.
_Failure = tuple[type, "int | None"]


class _Emitting(threading.local):
    """Per thread, in non-blocking mode: whether the thread is inside the
    handler (``emit`` or ``close``), so that a log call it makes meanwhile
    (a ``__del__`` run by the garbage collector, a signal handler, a
    callback) is known as re-entrant: one attribute look-up per record."""

    busy = False


class ShoeboxHandler(logging.Handler):
    """Archives every record it handles as metadata plus a JSON payload.

    Options are keyword arguments with JSON-friendly values, so
    ``logging.config.dictConfig`` passes them straight through:

    - ``directory`` (required): where archives are written (created if
      missing, again if deleted). One that cannot be created or written
      raises :class:`~shoebox.errors.UnusableDirectory` (an ``OSError``)
      naming it and why, here rather than at the first record.
    - ``filename_template``: archive names, strftime codes in UTC plus
      ``{host}`` and ``{pid}`` (:data:`DEFAULT_FILENAME_TEMPLATE`).
    - ``roll_size_mb``, ``roll_minutes``: roll at this size or after this
      long, whichever comes first (64 MiB and 15 minutes unless given); an
      idle archive is closed when its time is up.
    - ``roll_checker``: instead, a :class:`~shoebox.roll_checker.RollChecker`
      instance, dotted name, or ``{"()": dotted name, **options}``.
    - ``callbacks``: a list of archive callbacks run when an archive is
      complete, each an instance, a dotted name, or a ``{"()": dotted name,
      **options}`` mapping.
    - ``metadata_fields``: names (a list, or one comma-separated string) of
      record attributes, ``extra`` fields included, copied into the
      metadata with ``str()`` when the record has them, beside the standard
      :data:`STANDARD_METADATA`; for a record whose message is a dict
      (structlog's event dict), that dict's keys are looked up first.
    - ``durability``: ``"close"`` (fsync when an archive is finished),
      ``"record"`` or ``"never"``.
    - ``max_record_mb``: the largest record written (64 MiB).
    - ``queue_size``: 0 (default) writes on the logging thread; N > 0 hands
      encoded records to a writer thread through a queue of N, and
      ``when_full`` (``"block"`` or ``"drop"``) says what a full queue does.
    - ``max_local_mb``: a disk budget for the archives waiting in
      ``directory`` (default: none). Past it, records are dropped and
      counted (``stats()["records_dropped_budget"]``), never blocking the
      application; the active archive is finished so that it can be
      shipped, the first drop of each episode is reported through
      :meth:`handleError`, and writing resumes once shipped archives are
      deleted (see :class:`~shoebox.roll_manager.WritingRollManager`).
    - ``hold_gil`` (default ``False``): in blocking mode, once threads meet
      at the archive, each record's ``write`` system call keeps Python's
      interpreter lock (a microsecond; it keeps threads from queuing up
      behind each other: faster with many threads, see
      docs/performance.md), at a price: a write the kernel stalls (a
      saturated disk, a network file system) then stalls every thread of
      the process, not only those logging.
    - ``close_timeout`` (default 5 seconds): the longest :meth:`close`
      takes, and :meth:`flush`, whatever other threads do (so
      ``logging.shutdown()`` at exit takes at most twice that per
      handler); records still queued when it runs out are counted as
      dropped (``records_dropped_closing``).
    - ``clock``: seconds, for the time-based roll, for the roll manager's
      check (at most once every
      :data:`~shoebox.roll_manager.VANISHED_CHECK_SECONDS`) that the archive
      being written was not deleted, and for the disk budget's looks at the
      directory; :func:`time.monotonic` unless a test injects its own.
    - ``fsync``: the call forcing an archive to disk; :func:`os.fsync`
      unless a test injects its own (one that blocks as a stalled disk
      does, say).

    Rolls never make a log call wait (issue 19): the archive is finished
    (synced, renamed, callbacks run) on a background thread of the roll
    manager; :meth:`flush` and :meth:`close` wait for it, within
    ``close_timeout``. A finish that fails (a full disk at the rename, the
    directory gone) is reported through :meth:`handleError` and counted
    (``stats()["finish_errors"]``), never raised.

    The payload is the formatter's output: :class:`ShoeboxJsonFormatter`
    unless a formatter is set. Output that is not a JSON object is kept as
    ``{"message": <text>}`` and the misconfiguration reported once.

    The handler never raises into the application: errors go to
    :meth:`handleError`; a run of the same write failure (a full disk, an
    unwritable directory) is reported once and the records lost counted in
    :attr:`failed`. Writing resumes by itself when the problem is gone; a
    deleted directory is created again with a new archive. Records dropped
    from a full queue are counted in :attr:`dropped`.

    Re-entrant log calls (a record logged by the thread while it is inside
    the handler: a ``__del__`` run by the garbage collector in the middle of
    a write, a signal handler, a callback run during a roll) never deadlock
    and never nest into the call in progress: the record is set aside and
    written by the outer call before it returns
    (``stats()["records_deferred"]``); one logged during :meth:`close`
    after its last write is counted in ``records_dropped_reentrant``. In
    blocking mode the roll manager does that (see
    :class:`~shoebox.roll_manager.WritingRollManager`), at no cost per
    record; in non-blocking mode the handler does, with a per-thread flag.
    """

    _budget_error: BudgetExceeded | None
    _vanished_error: ArchiveVanished | None

    def __init__(self, *, directory: str | os.PathLike[str],
                 filename_template: str = DEFAULT_FILENAME_TEMPLATE,
                 roll_size_mb: float | str | None = None,
                 roll_minutes: float | str | None = None,
                 metadata_fields: str | Iterable[str] = (),
                 roll_checker: Any = None,
                 callbacks: Any = None,
                 durability: Durability = "close",
                 max_record_mb: float | str | None = None,
                 queue_size: int | str | None = 0,
                 when_full: WhenFull = "block",
                 level: int | str = logging.NOTSET,
                 max_local_mb: float | str | None = None,
                 hold_gil: bool = False,
                 close_timeout: float | str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 fsync: Callable[[int], None] = os.fsync) -> None:
        # Options first: a handler refusing one is never registered with
        # logging, so logging.shutdown() does not close half of one.
        self.metadata_fields = _options.field_names(metadata_fields)
        self.max_record_size = _options.record_size(max_record_mb)
        size = _options.queue_size(queue_size)
        self.close_timeout = _options.close_timeout(close_timeout)
        when_full = one_of("when_full", when_full, WHEN_FULL_MODES)  # also without a queue
        self._writer = (WriterThread(self._write, queue_size=size, when_full=when_full,
                                     encode=self._encode_captured)
                        if size else None)
        self._manager = WritingRollManager(
            filename_template,
            _options.roll_checker(roll_checker, roll_size_mb, roll_minutes, clock),
            directory,
            archive_callback=_options.callbacks(callbacks), durability=durability,
            max_record_size=self.max_record_size, max_local_mb=max_local_mb,
            on_budget_exceeded=self._budget_exceeded,
            on_archive_vanished=self._archive_vanished, clock=clock, hold_gil=hold_gil,
            on_finish_error=self._finish_failed, fsync=fsync)
        super().__init__(level)
        self._clock = clock
        self.setFormatter(ShoeboxJsonFormatter())
        self._host = socket.gethostname()
        self._failure: _Failure | None = None
        # (formatter, whether its output is trusted to be a JSON object),
        # replaced whole so threads never pair a formatter with another's answer.
        self._formatter_check: tuple[logging.Formatter | None, bool] = (None, False)
        self._reported_non_json = False
        self._reset_after_fork()
        _live_handlers.add(self)

    @property
    def directory(self) -> str:
        """Where archives are written."""
        return self._manager.directory

    @property
    def active_filename(self) -> str | None:
        """The archive being written (``….open``), if any."""
        return self._manager.active_filename

    def stats(self) -> dict[str, int]:
        """Counters for this process: ``records_written``, ``bytes_written``
        (encoded bytes appended to archives), ``records_dropped`` (by the
        disk budget, ``records_dropped_budget``, and from a full queue,
        ``records_dropped_queue``, still queued when :meth:`close` ran out of
        time, ``records_dropped_closing``, and logged re-entrantly too late
        to be written, ``records_dropped_reentrant``), ``errors`` (records
        lost to errors: a failed write, as in :attr:`failed`, a formatter
        that raised, a record too large), ``archives_closed``,
        ``records_deferred`` (records logged re-entrantly and written, or
        dropped, after the outer call, already counted in one of the
        others), ``skipped_not_regular`` (names in the directory that
        the disk budget found not to be regular files, a symbolic link say,
        and left out; each path once), ``finish_errors`` (rolled archives
        whose finish failed, reported through :meth:`handleError`; their
        records are in the file), ``archives_finishing`` (rolled archives
        not finished yet, now) and ``rolls_postponed`` (see
        :class:`~shoebox.roll_manager.WritingRollManager`). A record is in
        exactly one of written, dropped and errors once :meth:`flush`
        returned."""
        core = self._manager.stats()
        writer = self._writer
        queue = writer.dropped if writer is not None else 0
        closing = writer.dropped_closing if writer is not None else 0
        with self._failure_lock:
            errors = self.failed + self._unwritable
            reentrant = core["records_dropped_reentrant"] + self._deferred_dropped
            deferred = core["records_deferred"] + self._records_deferred
        return {"records_written": core["records_written"],
                "bytes_written": core["bytes_written"],
                "records_dropped": core["records_dropped"] + queue + closing + reentrant,
                "records_dropped_budget": core["records_dropped"],
                "records_dropped_queue": queue, "records_dropped_closing": closing,
                "records_dropped_reentrant": reentrant, "errors": errors,
                "archives_closed": core["archives_closed"], "records_deferred": deferred,
                "skipped_not_regular": core["skipped_not_regular"],
                "finish_errors": core["finish_errors"],
                "archives_finishing": core["archives_finishing"],
                "rolls_postponed": core["rolls_postponed"]}

    @property
    def dropped(self) -> int:
        """Records dropped because the non-blocking queue was full."""
        return self._writer.dropped if self._writer is not None else 0

    # Python 3.12+ returns the record a filter put in place of the original.
    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Filter, then :meth:`emit`, without holding the handler's lock.

        ``Handler.handle`` holds ``self.lock`` around ``emit``, so formatting
        and encoding would run one thread at a time; with several threads
        logging, that lock bouncing between cores is what slows handlers down
        (issue 3's benchmark). Here only the write itself is serialised, by
        the roll manager's lock. The formatter is therefore called from
        several threads at once: logging's and python-json-logger's
        formatters keep no per-call state, and a custom one must not either.
        """
        result = self.filter(record)
        if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may replace it
            record = result
        if result:
            self.emit(record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        """Build metadata and payload, encode them, and write the record; in
        non-blocking mode, queue it, formatted on the writer thread where
        the default formatter can take what it needs now (see
        :meth:`ShoeboxJsonFormatter.capture`). Called re-entrantly (see the
        class), set the record aside for the outer call to write."""
        writer = self._writer
        if writer is None:
            # Blocking mode: nothing here a re-entrant call could break;
            # the roll manager defers a write by the thread inside it.
            try:
                self._write(self._encode(self._metadata(record), self._payload(record)),
                            record, 1)
            except RecursionError:  # See CPython's StreamHandler.emit (bpo-36272).
                raise
            except Exception:
                self._unwritable_record(record)
            return
        emitting = self._emitting
        if emitting.busy:
            # Issue 17: this thread is inside the handler, maybe holding a
            # lock of the writer thread (a signal handler waiting for room
            # in the queue, nested in another, ran out of stack; one in
            # Event.set deadlocked); the outer call queues the record.
            self._deferred.append(record)
            with self._failure_lock:
                self._records_deferred += 1
            return
        emitting.busy = True
        try:
            self._queue(writer, record)
            if self._deferred:
                self._emit_deferred(writer)
        finally:
            # A record set aside after the look above (a signal just then)
            # waits for the next log call, on any thread, or close().
            emitting.busy = False

    def _emit_deferred(self, writer: WriterThread) -> None:
        """Queue the records set aside by re-entrant calls, from any thread
        inside the handler (queuing one may set more aside)."""
        deferred = self._deferred
        while deferred:
            try:
                record = deferred.popleft()
            except IndexError:  # another thread took the last one
                return
            self._queue(writer, record)

    def _queue(self, writer: WriterThread, record: logging.LogRecord) -> None:
        """Non-blocking mode: hand the record to the writer thread."""
        try:
            formatter = self.formatter
            # Only a class that says so itself (the default formatter, the
            # integrations'): a subclass's hooks might look at the thread
            # they run on. And only while the writer keeps up: behind, it
            # would make this thread wait for room, or for the GIL, while
            # it formats a backlog (issue 19); the record formatted here
            # costs this thread tens of µs, never milliseconds.
            captured = (formatter.capture(record)  # type: ignore[union-attr]
                        if vars(type(formatter)).get("deferrable") and not writer.behind
                        else None)
            writer.put(self._encode(self._metadata(record), self._payload(record))
                       if captured is None else captured, record)
        except RecursionError:  # See CPython's StreamHandler.emit (bpo-36272).
            raise
        except Exception:
            self._unwritable_record(record)

    def _encode_captured(self, captured: dict[str, Any],
                         record: logging.LogRecord) -> bytes | None:
        """On the writer thread: a record from what was captured at the log
        call, formatted and encoded; ``None`` (reported) if that failed."""
        copy = ShoeboxJsonFormatter.restore(captured, type(record))
        try:
            return self._encode(self._metadata(copy), self._payload(copy))
        except Exception:  # RecursionError too: it must not end the writer thread
            self._unwritable_record(copy)
            return None

    def _unwritable_record(self, record: logging.LogRecord) -> None:
        """Count and report a record lost before writing (a formatter that
        raised, a record too large)."""
        with self._failure_lock:
            self._unwritable += 1
        self.handleError(record)

    def flush(self) -> None:
        """Wait until every record handled so far is written to its archive,
        and every rolled archive is finished (renamed, callbacks run), or
        ``close_timeout`` seconds.

        Records reach the operating system when written; ``durability``
        says when they are also forced to disk.
        """
        self.wait_written()

    def wait_written(self, timeout: float | None = None) -> bool:
        """:meth:`flush`, waiting at most ``timeout`` seconds if that is less
        than ``close_timeout``; return whether every record handled so far
        is written, and every archive rolled before is finished (renamed,
        its callbacks run)."""
        wait = self.close_timeout if timeout is None else min(timeout, self.close_timeout)
        deadline = time.monotonic() + max(0.0, wait)
        done = True
        writer = self._writer
        if writer is not None:
            done = writer.flush(max(0.0, wait))
        if not self._emitting.busy:  # not from a callback of ours, logging
            done = self._manager.flush(max(0.0, deadline - time.monotonic())) and done
        return done

    def close(self) -> None:
        """Write what is queued, then finalize the active archive (rename from
        ``.open``, callbacks), within ``close_timeout`` seconds whatever
        other threads do: records still queued then are counted as dropped
        (``records_dropped_closing``); an archive another thread is still
        writing then (a stalled disk) stays ``.open`` for
        :func:`shoebox.recover`, reported through :meth:`handleError`.
        Closing twice is harmless; records handled after closing are
        reported through :meth:`handleError`."""
        emitting = self._emitting
        outer = not emitting.busy
        # Records logged by this thread while it closes (a finalizer run by
        # an allocation here, a signal handler) are set aside, not nested
        # (non-blocking mode; in blocking mode the roll manager's close()
        # writes them).
        emitting.busy = True
        deadline = time.monotonic() + self.close_timeout
        try:
            writer = self._writer
            if writer is not None:
                writer.close(self.close_timeout)
                if outer:
                    self._emit_deferred(writer)
            closed = self._manager.close(timeout=max(0.0, deadline - time.monotonic()))
            self._report_vanished(logging.makeLogRecord(
                {"name": __name__, "msg": "closing %s", "args": (self,)}))
            if not closed:
                self._report_not_closed()
        finally:
            if outer:
                emitting.busy = False
                # Set aside after the archive was finished: too late.
                while self._deferred:
                    self._deferred.popleft()
                    with self._failure_lock:
                        self._deferred_dropped += 1
            _live_handlers.discard(self)
            super().close()

    def _finish_failed(self, filename: str, error: Exception) -> None:
        """The roll manager's report of a failed finish, on its finisher
        thread, inside the ``except`` block: to :meth:`handleError`."""
        self.handleError(logging.makeLogRecord(
            {"name": __name__, "msg": "finishing archive %s", "args": (filename,)}))

    def _report_not_closed(self) -> None:
        active = self._manager.active_filename
        try:
            raise TimeoutError(f"{self!r}: close() gave up after close_timeout="
                               f"{self.close_timeout}s, another thread still writing "
                               f"{active}, or a rolled archive still being finished; "
                               "shoebox.recover() finishes what is left .open")
        except TimeoutError:
            self.handleError(logging.makeLogRecord(
                {"name": __name__, "msg": "closing %s", "args": (self,)}))

    def _encode(self, metadata: Metadata, payload: str) -> bytes:
        """The encoded record; text UTF-8 cannot encode is escaped rather
        than the record lost. Raises ``InvalidRecord`` (an oversized record)."""
        try:
            return encode_record(metadata, payload, self.max_record_size)
        except InvalidRecord:
            safe_metadata = {utf8_safe(key): utf8_safe(value) for key, value in metadata.items()}
            safe_payload = utf8_safe(payload)
            if safe_metadata == metadata and safe_payload == payload:
                raise  # not an encoding problem
            return encode_record(safe_metadata, safe_payload, self.max_record_size)

    def _metadata(self, record: logging.LogRecord) -> Metadata:
        metadata = {"level": record.levelname, "logger": record.name,
                    "timestamp": utc_timestamp(record.created),
                    "host": self._host, "pid": self._pid}
        if self.metadata_fields:
            attributes = record.__dict__
            # A dict logged as the message (structlog's event dict, through
            # ProcessorFormatter.wrap_for_formatter) holds the record's
            # fields; its keys win, as in the default formatter's payload.
            event = record.msg if isinstance(record.msg, dict) else None
            for name in self.metadata_fields:
                if event is not None and name in event:
                    value = event[name]
                elif name in attributes:
                    value = attributes[name]
                else:
                    continue
                # Most are strings already: no call for them.
                metadata[name] = value if type(value) is str else as_text(value)
        return metadata

    def _payload(self, record: logging.LogRecord) -> str:
        text = self.format(record)
        formatter, trusted = self._formatter_check
        if formatter is not self.formatter:
            formatter, trusted = self.formatter, _trusted(self.formatter)
            self._formatter_check = (formatter, trusted)
        if trusted or _is_json_object(text):
            return text
        self._report_non_json(record, text)
        return json.dumps({"message": text})

    def _report_non_json(self, record: logging.LogRecord, text: str) -> None:
        with self._failure_lock:
            reported, self._reported_non_json = self._reported_non_json, True
        if reported:
            return
        try:
            raise ValueError(f"{self!r}: formatter {self.formatter!r} gave text that is not "
                             f"a JSON object ({text[:60]!r}); records are archived as "
                             f'{{"message": <text>}} (reported once)')
        except ValueError:
            self.handleError(record)

    def _write(self, encoded: bytes, record: logging.LogRecord, count: int) -> None:
        """Write ``count`` encoded records (concatenated); report a failure
        with the first one's ``record``, never raise."""
        try:
            written = self._manager.write_encoded(encoded, count)
        except Exception:
            self._write_failed(record, count)
            return
        finally:
            self._report_vanished(record)
        self._failure = None
        if not written:
            self._report_budget(record)

    def _budget_exceeded(self, error: BudgetExceeded) -> None:
        """The roll manager's report of a budget episode, on the writing
        thread, under its lock: kept for :meth:`_report_budget`, which
        reports it through handleError once the lock is released."""
        self._budget_error = error

    def _archive_vanished(self, error: ArchiveVanished) -> None:
        """The roll manager's report of its archive deleted under it, on the
        writing thread, under its lock: kept for :meth:`_report_vanished`,
        which reports it through handleError once the lock is released."""
        self._vanished_error = error

    def _report_vanished(self, record: logging.LogRecord) -> None:
        error, self._vanished_error = self._vanished_error, None
        if error is not None:
            try:
                raise error
            except ArchiveVanished:
                self.handleError(record)

    def _report_budget(self, record: logging.LogRecord) -> None:
        error, self._budget_error = self._budget_error, None
        if error is None:
            return  # the episode is reported already
        try:
            raise error
        except BudgetExceeded:
            self.handleError(record)

    def _write_failed(self, record: logging.LogRecord, count: int) -> None:
        """Count records lost to a write error; report the first of a run of
        the same error (a full disk fails every record until space returns)."""
        error = sys.exc_info()[1]
        failure: _Failure = (type(error), getattr(error, "errno", None))
        with self._failure_lock:
            self.failed += count
            new = failure != self._failure
            self._failure = failure
        if new:
            self.handleError(record)

    def _reset_after_fork(self) -> None:
        """Per-process state: at construction, and in a forked child."""
        self._pid = str(os.getpid())
        #: Records lost to write errors in this process.
        self.failed = 0
        # Records lost before writing (a formatter that raised, a record too
        # large), for stats().
        self._unwritable = 0
        self._budget_error = None
        self._vanished_error = None
        self._failure = None
        # Re-entrant: a signal handler may log while this thread holds it.
        self._failure_lock = threading.RLock()
        # Records logged re-entrantly (see emit), for an outer call to
        # write; how many, and how many of them came too late (see close).
        self._deferred: collections.deque[logging.LogRecord] = collections.deque()
        self._records_deferred = self._deferred_dropped = 0
        self._emitting = _Emitting()
        if self._writer is not None:
            self._writer.reset_after_fork()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} {self.directory} ({level})>"
