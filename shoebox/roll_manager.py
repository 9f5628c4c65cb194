"""The writing roll manager: which archive file is active and the roll
sequence (names and the ``.open`` suffix: :mod:`shoebox.naming`).

:class:`WritingRollManager` owns one active archive per process. The
active archive is written as ``<final name>.open``; closing it flushes,
fsyncs and atomically renames it to its final name (then fsyncs the
directory) before any callback runs, so whoever lists the directory for
final names only ever sees complete archives.

Reading back across many files is :class:`shoebox.reading.ReadingRollManager`
(still importable from here).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from . import plugins
from ._files import writable_directory
from .archive import DEFAULT_FILE_MODE, DURABILITY_MODES, ArchiveWriter, Durability
from .budget import DiskBudget
from .callbacks import ArchiveCallback
from .codec import DEFAULT_MAX_RECORD_SIZE, Metadata, encode_record
from .errors import ArchiveClosed, ArchiveVanished, BudgetExceeded, NoMoreFiles, UnusableDirectory
from .finisher import Finisher
from .naming import OPEN_SUFFIX, candidates, finalize, name_pattern, render_filename
from .options import flag, one_of, positive_number, whole_number
from .roll_checker import RollChecker

logger = logging.getLogger("shoebox.roll_manager")

_MB = 1024 * 1024
#: How many times :meth:`WritingRollManager.close` finishes an archive to
#: write records logged re-entrantly by the roll before it (a callback, a
#: finalizer); what is logged after the last is counted as dropped.
CLOSE_ROUNDS = 3
#: How often (seconds, by the manager's clock) a write looks whether the
#: active archive was deleted under it: one ``fstat`` per record would cost
#: as much as the write.
VANISHED_CHECK_SECONDS = 1.0
#: Most rolled archives waiting for the finisher (the one it is finishing
#: included). A roll due beyond that is put off: the active archive stays
#: active and grows past its roll size, and the next write looks again
#: (counted in ``stats()["rolls_postponed"]``). A stalled disk thus costs
#: neither the caller a wait nor the process more than this many open
#: files (issue 19). Far more than a healthy disk needs: finishing a 2 MiB
#: archive takes milliseconds, writing it hundreds.
MAX_UNFINISHED = 16

# Managers alive in this process, reset in a forked child (see
# os.register_at_fork below), as logging does for its handlers.
_live_writers: weakref.WeakSet[WritingRollManager] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for manager in list(_live_writers):
        manager._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Waiter:
    """A record queued by a thread that found the manager's lock taken, for
    the lock's holder to write; the thread waits on ``done``."""

    __slots__ = ("done", "error", "record", "records", "retry", "written")

    def __init__(self, record: bytes, records: int) -> None:
        self.record = record
        self.records = records
        self.written = False
        self.error: Exception | None = None
        #: The holder gave up before writing it (it was interrupted): queue it again.
        self.retry = False
        self.done = threading.Lock()
        self.done.acquire()


class WritingRollManager:
    """Writes records into rolling archives in ``directory``.

    ``filename_template`` names each archive (see :func:`render_filename`);
    a taken name gets a unique variant (``name_1.events``), never an
    overwrite. ``roll_checker`` (an instance or a dotted plugin spec) says
    when to roll; time-based checkers also close an idle archive when its
    time is up, from a background thread that :meth:`close` stops; the next
    write opens the next archive. ``archive_callback`` (instance, dotted
    spec, or ``None``) gets ``on_open`` with the ``.open`` path and
    ``on_close`` with the final path. ``durability``, ``max_record_size``,
    ``file_mode`` and ``buffer_size`` are passed on to ``archive_class``
    (see :class:`~shoebox.archive.ArchiveWriter`).

    ``max_local_mb`` (default: none) is a disk budget: the archives in
    ``directory`` whose names the template could give (the active one and
    the finished ones not shipped yet, other processes' too) may hold that
    many MiB. A write that would pass it is dropped and counted, never
    blocked or raised: the active archive is finished (so that it can be
    shipped), one warning per episode goes to ``on_budget_exceeded`` (a
    :class:`~shoebox.errors.BudgetExceeded`; default: logged on the
    ``shoebox.roll_manager`` logger), and writing resumes by itself once
    the sidecar has shipped and deleted enough. Finished archives are never
    deleted to make room; after an episode, writing resumes once the
    archives hold less than 90% of the budget. The directory is not looked
    at per record (see :class:`~shoebox.budget.DiskBudget`; ``clock`` paces
    its rescans).
    :meth:`stats` counts what was written, dropped and lost.

    The manager owns its archive's health, as :class:`logging.FileHandler`
    owns its stream. The directory is created if missing and checked when
    the manager is built: one it may not create files in raises
    :class:`~shoebox.errors.UnusableDirectory` then, and again, naming why,
    from the write that cannot open the next archive. An active archive
    deleted under the writer (its directory removed, say: writes into it
    still succeed, but nobody can read them) is noticed by the first write
    at least :data:`VANISHED_CHECK_SECONDS` after the last look (by
    ``clock``), and at :meth:`close`: it is dropped without being renamed,
    the record that found it is written again into a new archive, and an
    :class:`~shoebox.errors.ArchiveVanished` goes to ``on_archive_vanished``
    (default: logged on the ``shoebox.roll_manager`` logger); the records
    written into the deleted file since the last look are lost.

    Rolls cost the writing thread no wait (issue 19): the record that
    passes the roll size is written, the archive is set aside and the next
    write opens the next one; flushing, fsyncing, renaming, syncing the
    directory and ``on_close`` happen on a background finisher thread, in
    order, one archive at a time (the set-aside archive stays ``.open``,
    its lock held, until renamed: a crash meanwhile leaves it for
    :func:`shoebox.recover`). :meth:`flush` and :meth:`close` wait for the
    finisher. A finisher that falls behind (a stalled disk) holds at most
    :data:`MAX_UNFINISHED` archives; beyond that a due roll is put off and
    counted (``rolls_postponed``), so the caller never waits for it. A
    finish that fails goes to ``on_finish_error(filename, error)``
    (default: logged on ``shoebox.roll_manager``), called on the finisher
    thread inside the ``except`` block, and is counted (``finish_errors``).

    Thread-safe: records are encoded on the caller's thread and appended
    whole under a lock, so they never interleave, and each roll happens
    once. Re-entrant: a write made by the thread already inside the manager
    (an archive callback that logs, a garbage-collected object's
    ``__del__`` or a signal handler run in the middle of a write or a roll)
    is deferred, not nested into the half-done one: the outer call writes
    it before it returns, and :meth:`stats` counts it
    (``records_deferred``; ``records_dropped_reentrant`` if it could not be
    written after all). A thread that finds the lock taken does not sleep on it: it
    queues its record, the lock's holder writes every queued record (in one
    ``write`` call) as it lets go of the lock, and the thread returns once
    its record is written, as if it had written it itself. With
    ``hold_gil=True`` (off by default), once threads have met at the lock,
    the active archive's writes keep Python's interpreter lock during the
    system call (see :mod:`shoebox._gil_write`): threads then stop queuing
    up behind each other, faster with several threads, but a write stalled
    in the kernel (a saturated disk, a network file system) stalls every
    thread of the process, not only those writing (docs/performance.md has
    the numbers). Fork-safe: a forked child never
    writes into its parent's archive; it opens its own on its first write
    (name templates should carry ``{pid}``, or a unique variant is chosen).
    """

    _records_written: int
    _bytes_written: int
    _records_dropped: int
    _errors: int
    _archives_closed: int
    _episode_dropped: int
    _dropping: bool
    _records_deferred: int
    _deferred_dropped: int

    def __init__(self, filename_template: str, roll_checker: RollChecker | plugins.Spec,
                 directory: str | os.PathLike[str] = ".",
                 archive_class: type[ArchiveWriter] = ArchiveWriter,
                 archive_callback: ArchiveCallback | plugins.Spec | None = None, *,
                 durability: Durability = "close",
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
                 file_mode: int = DEFAULT_FILE_MODE,
                 buffer_size: int = 0,
                 max_local_mb: float | str | None = None,
                 on_budget_exceeded: Callable[[BudgetExceeded], object] | None = None,
                 on_archive_vanished: Callable[[ArchiveVanished], object] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 hold_gil: bool = False,
                 on_finish_error: Callable[[str, Exception], object] | None = None,
                 fsync: Callable[[int], None] = os.fsync) -> None:
        if not render_filename(filename_template):
            raise ValueError(f"filename_template {filename_template!r} gives an empty name")
        self.filename_template = filename_template
        self.directory = os.fspath(directory)
        self.roll_checker: RollChecker = plugins.create_as(RollChecker, "roll_checker",
                                                           roll_checker)
        self.archive_class = archive_class
        self.archive_callback: ArchiveCallback = (
            plugins.create_as(ArchiveCallback, "archive_callback", archive_callback)
            if archive_callback is not None else ArchiveCallback())
        # Whether a holder of the lock asked for a background thread to be
        # started or woken (a roll handing the finisher work, a new archive
        # for the idle-roll thread): whoever lets go of the lock does it
        # (see _start_threads).
        self._start_threads_wanted = self._timer_wanted = False
        self._timer_starting = threading.Lock()
        # Checked here, not when the first archive opens: a bad value must fail
        # the configuration, not the first record (issue 11).
        self.max_record_size = whole_number("max_record_size", max_record_size, minimum=1)
        self._archive_options: dict[str, Any] = {
            "durability": one_of("durability", durability, DURABILITY_MODES),
            "max_record_size": self.max_record_size,
            "file_mode": whole_number("file_mode", file_mode),
            "buffer_size": whole_number("buffer_size", buffer_size),
            "fsync": fsync}
        self._hold_gil = flag("hold_gil", hold_gil)
        self._lock = threading.RLock()
        # Whether the lock's holder is inside: only that thread can see it
        # True once it holds the lock, so it is how a re-entrant call (same
        # thread, lock taken again) tells itself apart (issue 17).
        self._busy = False
        # Records of threads that found the lock taken (see write_encoded).
        self._queue: collections.deque[_Waiter] = collections.deque()
        # Records written re-entrantly, for the outer call to write (see _leave).
        self._deferred: collections.deque[tuple[bytes, int]] = collections.deque()
        self._wakeup = threading.Event()  # for the idle-roll thread
        self._archive: ArchiveWriter | None = None
        self._timer: threading.Thread | None = None
        self._closed = False
        self._budget = (None if max_local_mb is None else DiskBudget(
            int(positive_number("max_local_mb", max_local_mb) * _MB), self.directory,
            name_pattern(filename_template), clock=clock))
        self._on_budget_exceeded = on_budget_exceeded
        self._on_archive_vanished = on_archive_vanished
        self._clock = clock
        self._next_vanished_check = clock() + VANISHED_CHECK_SECONDS
        self._on_finish_error = on_finish_error
        self._finisher = Finisher(self._finish, self._end_finisher)
        self._reset_counters()
        # As logging.FileHandler opens its file: a directory that cannot be
        # used fails here, not at every write after. No archive is created,
        # so a forked child still opens its own on its first record.
        writable_directory(self.directory)
        _live_writers.add(self)

    @property
    def active_filename(self) -> str | None:
        """The path of the archive being written (``….open``), if any."""
        archive = self._archive
        return archive.filename if archive is not None else None

    def write(self, metadata: Metadata, payload: str | bytes) -> bool:
        """Validate, encode and append one record; roll if the checker says so.

        Raises what :func:`~shoebox.encode_record` raises for a bad record
        (nothing is written then), :class:`~shoebox.errors.ArchiveClosed`
        after :meth:`close`, and ``OSError`` from the file system (the
        archive keeps only whole records). A roll that fails after the
        record was written is logged (logger ``shoebox.roll_manager``), not
        raised: the record is in the archive.
        """
        return self.write_encoded(encode_record(metadata, payload, self.max_record_size))

    def write_encoded(self, record: bytes, records: int = 1) -> bool:
        """Append one record made by :func:`~shoebox.encode_record` (or
        ``records`` of them, concatenated, written as one); as :meth:`write`.
        Returns False when the disk budget dropped them. A re-entrant call
        (see the class) returns True at once: the record is deferred, and
        its outcome shows in :meth:`stats` only."""
        lock = self._lock
        if not lock.acquire(False):
            return self._write_queued(record, records)
        if self._busy:
            # This thread is inside already, half-way through a write or a
            # roll (issue 17: a __del__ run by the garbage collector, a
            # signal handler): writing now would break that one.
            self._deferred.append((record, records))
            self._records_deferred += records
            lock.release()
            return True
        self._busy = True
        try:
            return self._append(record, records)
        finally:
            if self._deferred or self._start_threads_wanted:
                self._leave(writer=True)
            else:  # the hot path: no call unless threads queued
                self._busy = False
                lock.release()
                # Looked at after releasing: a thread that queued before
                # this look is drained here; one that queued after it finds
                # the lock free and takes it itself.
                if self._queue:
                    self._drain_queued(writer=True)

    def _write_queued(self, record: bytes, records: int) -> bool:
        """The lock is taken: queue the record for whoever holds the lock (or
        takes it next) and wait until it is written.

        Sleeping on the lock itself is what made threads slow (issue 10): a
        released lock went to a sleeping thread, which then needed the
        interpreter lock back before it could run, while the releasing
        thread came round to the lock again and slept in turn. Every holder
        writes what is queued after releasing the lock (:meth:`_drain`), and
        a queued thread tries the lock once more itself, so no record waits
        unnoticed.
        """
        waiter = _Waiter(record, records)
        while True:
            self._queue.append(waiter)
            self._drain()
            waiter.done.acquire()
            if not waiter.retry:
                break
            waiter.retry = False
        if waiter.error is not None:
            raise waiter.error
        return waiter.written

    def _drain(self) -> None:
        """Write the queued records of waiting threads, if the lock is free."""
        queue, lock = self._queue, self._lock
        while queue and lock.acquire(False):
            if self._busy:
                # Re-entered (see write_encoded): the outer call drains.
                lock.release()
                return
            self._busy = True
            try:
                self._write_batch([queue.popleft() for _ in range(len(queue))])
            finally:
                self._leave(drain=False)

    def _leave(self, drain: bool = True, writer: bool = False) -> None:
        """The outermost holder lets go of the lock: it writes the records
        deferred by re-entrant calls meanwhile, releases the lock, then
        writes what other threads queued (every holder must, see
        :meth:`_write_queued`)."""
        try:
            if self._deferred:
                self._write_deferred()
        finally:
            self._busy = False
            self._lock.release()
        if self._start_threads_wanted:
            self._start_threads()
        if drain and self._queue:
            self._drain_queued(writer)

    def _drain_queued(self, writer: bool) -> None:
        """After releasing the lock, with records queued: another writer
        queued behind this one, so threads meet here. With hold_gil, from
        now on the active archive's writes keep the GIL, so that they stop
        meeting (see shoebox._gil_write); the next archive starts without,
        until they meet again. (Other holders, the idle-roll thread or
        stats(), do not count: ``writer`` is False for them.)"""
        archive = self._archive
        if writer and archive is not None and self._hold_gil:
            archive.hold_gil = True
        self._drain()

    def _write_deferred(self) -> None:
        """Under the lock, busy: write the records deferred by re-entrant
        calls (writing one may defer more: a roll's callback that logs)."""
        deferred = self._deferred
        while deferred:
            record, records = deferred.popleft()
            try:
                self._append(record, records)
            except Exception:
                # Nobody is left to raise to: counted, and logged (a
                # re-entrant log record from here is deferred in turn).
                self._deferred_dropped += records
                logger.exception("writing %d record(s) logged re-entrantly failed", records)

    def _write_batch(self, batch: list[_Waiter]) -> None:
        """Under the lock: write the records of waiting threads as one write,
        or, if that fails, each alone (so that each gets its own outcome,
        as if its thread had written it); then wake the threads."""
        try:
            if len(batch) > 1:
                errors = self._errors
                try:
                    written = self._append(b"".join([waiter.record for waiter in batch]),
                                           sum(waiter.records for waiter in batch))
                except Exception:
                    # A full disk, say: the archive kept none of it. Counted
                    # below, per record.
                    self._errors = errors
                else:
                    for waiter in batch:
                        waiter.written = written
                    return
            for waiter in batch:
                try:
                    waiter.written = self._append(waiter.record, waiter.records)
                except Exception as exc:
                    waiter.error = exc
        except BaseException:
            # Interrupted (KeyboardInterrupt in the main thread): the threads
            # whose records were not written queue them again, and those
            # queued meanwhile try again too, so that none waits for a
            # holder that is gone.
            for waiter in batch:
                waiter.retry = not (waiter.written or waiter.error)
            queued = [self._queue.popleft() for _ in range(len(self._queue))]
            for waiter in queued:
                waiter.retry = True
                waiter.done.release()
            raise
        finally:
            for waiter in batch:
                waiter.done.release()

    def _append(self, record: bytes, records: int) -> bool:
        """Under the lock: the write, its counters, the budget, the roll check."""
        if self._closed:
            raise ArchiveClosed(f"write to a closed WritingRollManager ({self.directory})")
        budget = self._budget
        if budget is not None and not budget.admits(len(record), resuming=self._dropping):
            self._drop(budget, records)
            return False
        try:
            archive = self._archive or self._open()
            archive.write_encoded(record)
            now = self._clock()
            if now >= self._next_vanished_check:
                self._next_vanished_check = now + VANISHED_CHECK_SECONDS
                if archive.unlinked:
                    # The record went into the deleted file, with those
                    # written since the last look: it goes into a new one.
                    self._leave_vanished(archive)
                    archive = self._open()
                    archive.write_encoded(record)
        except Exception:
            self._errors += 1
            raise
        self._records_written += records
        if budget is not None:
            budget.written(len(record))
            if self._dropping:
                self._resume()
        if self.roll_checker.check(archive):
            self._roll()
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock; on the way out, write what was deferred or queued
        meanwhile (see :meth:`_leave`). Re-entered by the thread inside (a
        callback asking for :meth:`stats`), it only holds the lock again:
        the outer call leaves."""
        self._lock.acquire()
        if self._busy:
            try:
                yield
            finally:
                self._lock.release()
            return
        self._busy = True
        try:
            yield
        finally:
            self._leave()

    def stats(self) -> dict[str, int]:
        """Counters since the manager was made (in a forked child: since the
        fork): ``records_written``, ``bytes_written`` (encoded bytes appended
        to archives), ``records_dropped`` (by the disk budget), ``errors``
        (writes that raised, rolls that failed), ``archives_closed``,
        ``records_deferred`` (written re-entrantly, so written after the
        outer call: see the class), ``records_dropped_reentrant`` (of
        those, the ones whose write failed or came after :meth:`close`),
        ``skipped_not_regular`` (names in the directory matching the
        archives' that the disk budget's scans found not to be regular
        files, a symbolic link say, and left out, each path once; 0
        without a budget), ``finish_errors`` (rolled archives whose finish
        failed, also counted in ``errors``), ``archives_finishing`` (rolled
        archives the finisher has not finished yet, now) and
        ``rolls_postponed`` (writes that found a roll due while the
        finisher held :data:`MAX_UNFINISHED` archives, see the class)."""
        with self._locked():
            return {"records_written": self._records_written,
                    # Counted per archive, not per write: the archive
                    # keeps its size anyway.
                    "bytes_written": self._bytes_written + (
                        self._archive.size if self._archive is not None else 0),
                    "records_dropped": self._records_dropped,
                    "errors": self._errors + self._finish_errors,
                    "archives_closed": self._archives_closed,
                    "records_deferred": self._records_deferred,
                    "records_dropped_reentrant": self._deferred_dropped,
                    "skipped_not_regular": (self._budget.skipped_not_regular
                                            if self._budget is not None else 0),
                    "finish_errors": self._finish_errors,
                    "archives_finishing": self._finisher.unfinished,
                    "rolls_postponed": self._rolls_postponed}

    def flush(self, timeout: float | None = None) -> bool:
        """Write records pending in the active archive's buffer to the file,
        and wait until the archives rolled before are finished (renamed,
        ``on_close`` run), or ``timeout`` seconds. Returns whether they are
        (False, too, when called by the finisher itself: a callback)."""
        with self._locked():
            if self._archive is not None:
                self._archive.flush()
        return self._finisher.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Finalize the active archive (rename from ``.open``, callbacks), wait
        for the finisher to finish every rolled archive, and stop the
        idle-roll and finisher threads. Closing twice is harmless.

        Records logged meanwhile by a callback or finalizer (from the
        finisher's thread, or re-entrantly from this one) are written into
        a new archive, finished in turn, up to :data:`CLOSE_ROUNDS` times;
        any logged after that are refused (:class:`ArchiveClosed`) or, if
        re-entrant, counted in ``records_dropped_reentrant``. With
        ``timeout``, waits at most that many seconds in all (for the lock,
        another thread writing into a stalled disk, and for the finisher,
        an fsync that does not return) and returns False if it could not
        close or finish everything: the archives left stay ``.open`` for
        their writer, the finisher (which goes on by itself), or
        :func:`shoebox.recover`. A close from inside a write or roll
        (re-entrant) returns False too, closing nothing: the outer call is
        half-way through."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        lock = self._lock
        finished = True
        for round_ in range(CLOSE_ROUNDS):
            left = remaining()
            if not lock.acquire(timeout=-1 if left is None else left):
                return False
            if self._busy or self._closed:
                lock.release()
                return self._closed
            self._busy = True
            try:
                self._write_deferred()
                # Closed in the last round, once a round wrote nothing new,
                # or once out of time.
                last = (round_ == CLOSE_ROUNDS - 1 or not finished
                        or (round_ > 0 and self._archive is None and not self._deferred))
                if last:
                    self._closed = True
                    _live_writers.discard(self)
                    while self._deferred:
                        self._deferred_dropped += self._deferred.popleft()[1]
                if self._archive is not None and self._archive.unlinked:
                    self._leave_vanished(self._archive)  # it cannot be renamed
                if self._archive is not None:
                    # Never put off here: the finisher's backlog may pass
                    # MAX_UNFINISHED by this one.
                    self._roll(postpone=False)
            finally:
                self._leave()  # once closed, threads queued meanwhile get ArchiveClosed
            # Waited for without the lock: callbacks the finisher runs may
            # log, and their records go into a new archive, which the next
            # round rolls.
            finished = self._finisher.wait(remaining())
            if last:
                break
        self._wakeup.set()
        timer, self._timer = self._timer, None
        stopped = self._finisher.stop(remaining())
        if timer is not None and timer is not threading.current_thread():
            timer.join(remaining())
        return finished and stopped

    def _leave_vanished(self, archive: ArchiveWriter) -> None:
        """Under the lock: drop the active ``archive``, deleted under the
        writer, without finalizing it (it can be neither renamed nor written
        usefully), and report it; the next write opens a new archive."""
        self._archive = None
        self._bytes_written += archive.size
        archive.abandon()
        error = ArchiveVanished(f"{archive.filename} was deleted while being written; "
                                f"records written to it since are lost",
                                filename=archive.filename)
        if self._on_archive_vanished is not None:
            self._on_archive_vanished(error)
        else:
            logger.warning("%s", error)

    def __enter__(self) -> WritingRollManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drop(self, budget: DiskBudget, records: int) -> None:
        """Count records the budget refused; at an episode's start, finish
        the active archive (the sidecar ships only finished ones, and only
        shipping frees room) and warn once."""
        self._records_dropped += records
        self._episode_dropped += records
        if self._dropping:
            return
        self._dropping = True
        if self._archive is not None:
            self._roll()
        error = BudgetExceeded(
            f"{self.directory}: archives waiting there hold {budget.used} bytes, the disk "
            f"budget (max_local_mb) is {budget.max_bytes}: dropping records, and counting "
            "them, until shipped archives are deleted", directory=self.directory,
            max_bytes=budget.max_bytes)
        if self._on_budget_exceeded is not None:
            self._on_budget_exceeded(error)
        else:
            logger.warning("%s", error)

    def _resume(self) -> None:
        dropped, self._episode_dropped, self._dropping = self._episode_dropped, 0, False
        if self._on_budget_exceeded is None:
            logger.info("%s: writing again, within the disk budget, after dropping %d "
                        "records", self.directory, dropped)

    def _reset_counters(self) -> None:
        self._records_written = self._bytes_written = self._records_dropped = 0
        self._errors = self._archives_closed = 0
        self._episode_dropped = 0  # by the budget since it was last reached
        self._dropping = False
        self._records_deferred = self._deferred_dropped = 0
        self._finish_errors = self._rolls_postponed = 0

    def _open(self) -> ArchiveWriter:
        """Create the next archive under a name nobody has taken."""
        if self._budget is not None:
            # Once per archive: what other processes wrote, or the sidecar
            # deleted, since the last look.
            self._budget.rescan()
        base = os.path.join(self.directory, render_filename(self.filename_template))
        for final in candidates(base):
            if os.path.lexists(final):
                continue
            try:
                archive = self.archive_class(final + OPEN_SUFFIX, **self._archive_options)
            except FileExistsError:
                continue
            except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
                # The directory went away, was replaced or may no longer be
                # written: say which, as at construction (this also
                # recreates a removed one, and the archive is opened again).
                writable_directory(self.directory)
                if isinstance(exc, FileNotFoundError):
                    archive = self.archive_class(final + OPEN_SUFFIX, **self._archive_options)
                    break
                raise UnusableDirectory(exc.errno or 0, f"archives cannot be written there: "
                                        f"{exc.strerror}", self.directory) from exc
            break
        self._archive = archive
        self.roll_checker.start(archive)
        self._call("on_open", archive.filename)
        if self.roll_checker.remaining(archive) is not None:
            self._start_timer()
        return archive

    def _roll(self, postpone: bool = True) -> bool:
        """Under the lock: set the active archive aside for the finisher (see
        :meth:`_finish`); the next write opens the next archive. With
        ``postpone``, a roll while the finisher holds
        :data:`MAX_UNFINISHED` archives is put off and counted instead, the
        archive staying active. Returns whether it rolled."""
        finisher = self._finisher
        if postpone and finisher.unfinished >= MAX_UNFINISHED:
            self._rolls_postponed += 1
            return False
        archive, self._archive = self._archive, None
        assert archive is not None
        # Counted now: the archive's size is final.
        self._bytes_written += archive.size
        if finisher.submit(archive):
            self._start_threads_wanted = True
        return True

    def _finish(self, archive: ArchiveWriter) -> None:
        """The roll sequence, on the finisher's thread: flush and fsync the
        archive, rename it to its final name and fsync the directory while
        its lock is still held (so :func:`shoebox.recover` cannot take it
        meanwhile), close it, run ``on_close``.

        If the flush or fsync fails, the file still holds whole records
        only: it is finalized all the same, so that it gets shipped. Any
        failure goes to ``on_finish_error``; one of the rename leaves the
        archive ``.open`` for :func:`shoebox.recover`. Never raises.
        """
        error: Exception | None = None
        final: str | None = None
        try:
            try:
                if archive.durability == "never":
                    archive.flush()
                else:
                    archive.sync()
            except OSError as exc:
                error = exc
            try:
                final = finalize(archive.filename)
            finally:
                archive.abandon()  # flushed and synced above: only the descriptor is left
            if error is not None:
                raise error
        except Exception as exc:
            # Counted by the finisher's thread alone, apart from _errors,
            # which the writers' threads change under the lock.
            self._finish_errors += 1
            self._finish_failed(archive.filename, exc)
        if final is not None:
            self._archives_closed += 1
            self._call("on_close", final)

    def _end_finisher(self) -> bool:
        """On the idle finisher's thread: let it end, under the lock (so that
        no roll hands it an archive meanwhile), if the lock is free; never
        waits for it (see shoebox.finisher.Finisher)."""
        lock = self._lock
        if not lock.acquire(False):
            return False
        if self._busy:
            lock.release()
            return False
        self._busy = True
        try:
            return self._finisher.end_if_idle()
        finally:
            self._leave()

    def _finish_failed(self, filename: str, error: Exception) -> None:
        """Report a failed finish; called inside the ``except`` block, so
        that ``sys.exc_info()`` is the error (``Handler.handleError``
        prints it)."""
        try:
            if self._on_finish_error is not None:
                self._on_finish_error(filename, error)
                return
        except Exception:
            logger.exception("on_finish_error(%s) failed", filename)
        logger.error("rolling archive %s failed", filename, exc_info=error)

    def _call(self, method: str, filename: str) -> None:
        # A failing callback must not lose the archive or break the writer:
        # the archive stays where it is and the error is logged.
        try:
            getattr(self.archive_callback, method)(filename)
        except Exception:
            logger.exception("archive callback %s(%s) failed", method, filename)

    def _start_timer(self) -> None:
        """Under the lock: have the idle-roll thread started, or woken, once
        the lock is let go of (see :meth:`_start_threads`)."""
        self._timer_wanted = self._start_threads_wanted = True

    def _start_threads(self) -> None:
        """Start (or wake) the finisher and idle-roll threads that holders of
        the lock asked for, without the lock: ``Thread.start`` waits for the
        new thread and ``Event.set`` for the event's lock, and on either
        thread a garbage collection may run a ``__del__`` that logs, which
        waits for the manager's lock (issue 17's finalizers): started under
        the lock, that deadlocked."""
        self._start_threads_wanted = False
        self._finisher.start()
        if not self._timer_wanted or not self._timer_starting.acquire(False):
            return  # another thread is starting it: it looks at the archive anew
        try:
            self._timer_wanted = False
            if self._timer is None:
                if not self._closed:
                    timer = threading.Thread(target=self._idle_loop, daemon=True,
                                             name="shoebox-idle-roll")
                    self._timer = timer
                    timer.start()
            else:
                self._wakeup.set()
        finally:
            self._timer_starting.release()

    def _idle_loop(self) -> None:
        """Close the active archive once the checker's time is up, even with
        no further writes."""
        while True:
            # Cleared before looking: a change made from here on (a new
            # archive, close()) sets it again, so none goes unnoticed. Not a
            # Condition on the manager's lock: waiting on one releases the
            # lock without writing what threads queued (see _write_queued).
            self._wakeup.clear()
            with self._locked():
                if self._closed:
                    return
                archive = self._archive
                remaining = None if archive is None else self.roll_checker.remaining(archive)
                if remaining is not None and remaining <= 0:
                    if self.roll_checker.check(archive):  # type: ignore[arg-type]
                        if self._roll():
                            continue
                        remaining = 0.1  # put off: the finisher is behind
                    else:
                        remaining = 0.01  # the checker's clock disagrees by a hair
            self._wakeup.wait(remaining)

    def _reset_after_fork(self) -> None:
        """In a forked child: drop the parent's archive and threads."""
        self._lock = threading.RLock()
        self._busy = False
        self._queue = collections.deque()  # the parent's waiting threads are not here
        self._deferred = collections.deque()
        self._wakeup = threading.Event()
        self._timer = None
        archive, self._archive = self._archive, None
        if archive is not None:
            archive.abandon()
        self._finisher.abandon_all()
        self._finisher = Finisher(self._finish, self._end_finisher)
        self._start_threads_wanted = self._timer_wanted = False
        self._timer_starting = threading.Lock()
        self._reset_counters()


def __getattr__(name: str) -> Any:
    # ReadingRollManager lives with the readers (shoebox.reading); its old
    # import path keeps working without making the writer load the readers.
    if name == "ReadingRollManager":
        from .reading import ReadingRollManager
        return ReadingRollManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "OPEN_SUFFIX",
    "NoMoreFiles",
    "WritingRollManager",
    "finalize",
    "render_filename",
]
