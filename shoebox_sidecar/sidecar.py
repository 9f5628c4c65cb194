"""The sidecar's run loops: find closed archives, ship each one (verify,
compress, upload, confirm) on worker threads, retrying as
:mod:`~shoebox_sidecar.retry` says, then delete, keep or move it. What
happens is told as :class:`~shoebox_sidecar.events.Event` objects to the
observers (the JSON log among them), and each archive's outcome is kept in
:class:`~shoebox_sidecar.outcomes.Outcomes`."""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoebox._files import check_identity, file_kind, lock_unheld
from shoebox.callbacks import ArchiveCallback, DeleteFileCallback, MoveFileCallback
from shoebox.destinations import Prepared
from shoebox.errors import (
    NO_SPACE_ERRNOS,
    CorruptRecord,
    NotRegularFile,
    TransientUploadError,
    UploadError,
)
from shoebox.naming import OPEN_SUFFIX, QUARANTINE_DIR
from shoebox.recovery import recover
from shoebox.shipping import Shipper, ShipResult

from .backoff import Backoff
from .events import Event, LogObserver, Observers, SidecarObserver
from .outcomes import Outcomes, Summary, identity
from .pool import WorkerPool
from .retry import RetryPolicy, StagingEpisode, Throttle
from .watch import ArchiveWatcher

# How long the main thread blocks at a time. Python runs signal handlers
# (SIGTERM, SIGINT) on the main thread only, and a signal the kernel
# delivers to another thread (a watchdog or worker thread) does not
# interrupt the main thread's wait on a lock: it runs once that wait ends.
# Short waits bound that delay (seen here: SIGTERM ignored for a whole
# --scan-interval).
_SIGNAL_LATENCY = 0.25

#: How long :meth:`Sidecar.run_once` goes on before it gives up: 4 minutes,
#: then up to ``shutdown_timeout`` (30 s) for uploads in progress, so that a
#: cron job against an endpoint that is down ends within 5 minutes.
DEFAULT_ONCE_TIMEOUT = 240.0
#: How long an ``.open`` archive no writer holds must have gone unmodified
#: before ``recover_stale`` finalizes it.
DEFAULT_STALE_AFTER = 60.0
# Seconds: an .open archive younger than this is taken for a live writer's
# without trying its lock (a lock taken just after the writer created it
# would make it give the file up).
_FRESH = 1.0
# Seconds the last round of shipping waits, once nothing is left to ship
# and no archive is open, for a writer that is stopping to open another.
_QUIET = 1.0
# How many archives the summary's message names per group (its fields name
# them all).
_NAMED = 10


@dataclass(frozen=True)
class Backlog:
    """Closed archives waiting to be shipped (being shipped included)."""

    archives: int
    bytes: int
    #: Modification time (when it was closed) of the oldest, if any.
    oldest_mtime: float | None


class Sidecar:
    """Ships the closed archives of ``watch_dir`` matching ``pattern`` with
    ``shipper``, on ``workers`` threads.

    Per archive: :meth:`Shipper.prepare` (with the shipper's ``verify``, a
    damaged archive is moved to ``quarantine_dir`` and reported, never
    shipped or deleted), then :meth:`Shipper.deliver`, retried after
    transient failures with ``backoff`` (forever when ``max_attempts`` is 0),
    then ``after_upload`` (default: delete the archive) once the copy is
    confirmed. A permanent failure is logged and the archive stays. Every
    outcome is one JSON log line, and is told to ``observer`` (a
    :class:`SidecarObserver`).

    Throttling (the destination's ``503 SlowDown``) slows the whole sidecar
    down: every worker holds its next attempt until a pause ends, which
    lasts as long as the answer's ``Retry-After`` asked (up to the
    backoff's maximum), and at least the backoff's wait, growing while
    throttled answers follow one another. Throttled attempts do not count
    against ``max_attempts``: the server is busy, not failing. A full
    staging directory (no space, a quota, a file-size limit) keeps the
    archive and is retried with ``backoff`` (counting against
    ``max_attempts``); it is logged once when it starts (``staging_full``)
    and once when shipping resumes (``staging_resumed``), whatever the
    number of attempts in between.

    Only regular files really in ``watch_dir`` are opened (never through
    a symbolic link, see :func:`shoebox._files.open_regular`); a matching
    name that is a link, a FIFO, a socket or a directory, found by a scan,
    an event, recovery or at the open itself (swapped in after the scan),
    is left alone (never followed, shipped or deleted) and told once per
    path (``skipped_not_regular``). It is no archive: it does not make
    :meth:`run_once` return 1.

    At start, multipart uploads a killed run left unfinished for the
    archives waiting here are aborted (:meth:`Shipper.abort_incomplete`),
    before those archives are shipped again.

    With ``recover_stale``, each scan (at start, then every
    ``scan_interval`` seconds) first finalizes the ``.open`` archives of
    writers that are gone (:func:`shoebox.recover`: no writer holds the
    file's lock, and it has not been modified for ``stale_after`` seconds),
    which are then shipped like the others.

    ``clock`` (seconds; tests inject their own) decides when the next
    periodic scan is due and when :meth:`run_once` gives up. :meth:`run_once`
    ships what is there now, giving up ``once_timeout`` seconds (0: never)
    after the sidecar was made; :meth:`run` watches until :meth:`stop`.
    Either way, stopping (or giving up) takes no new work, abandons backoff
    waits (those archives stay for the next run) and waits up to
    ``shutdown_timeout`` seconds for uploads in progress; :meth:`summary`
    then says where every archive stands.
    """

    def __init__(self, watch_dir: str, shipper: Shipper, *, pattern: str = "*.events",
                 after_upload: ArchiveCallback | None = None, workers: int = 2,
                 quarantine_dir: str | None = None, backoff: Backoff | None = None,
                 max_attempts: int = 0, scan_interval: float = 60.0,
                 shutdown_timeout: float = 30.0, once_timeout: float = DEFAULT_ONCE_TIMEOUT,
                 recover_stale: bool = False, stale_after: float = DEFAULT_STALE_AFTER,
                 clock: Callable[[], float] = time.monotonic,
                 observer: SidecarObserver | None = None) -> None:
        for name, value, least in (("workers", workers, 1),
                                   ("shutdown_timeout", shutdown_timeout, 0),
                                   ("once_timeout", once_timeout, 0),
                                   ("stale_after", stale_after, 0)):
            if value < least:
                raise ValueError(f"{name} must be at least {least}, not {value}")
        if not scan_interval > 0:  # 0 would scan without pause
            raise ValueError(f"scan_interval must be more than 0, not {scan_interval}")
        self.watch_dir = os.path.abspath(watch_dir)
        self.shipper = shipper
        self.after_upload = after_upload if after_upload is not None else DeleteFileCallback()
        self.workers = workers
        self.quarantine = MoveFileCallback(destination_folder=quarantine_dir or os.path.join(
            self.watch_dir, QUARANTINE_DIR))
        self.retry = RetryPolicy(backoff, max_attempts)
        self.scan_interval = scan_interval
        self.shutdown_timeout = shutdown_timeout
        self.once_timeout = once_timeout
        self.recover_stale = recover_stale
        self.stale_after = stale_after
        self._clock = clock
        # once_timeout counts from here: the command's start-up (checking the
        # destination, which may wait for a slow endpoint) is part of the run.
        self._made = clock()
        #: The observer given (the log is told every event too).
        self.observer = observer if observer is not None else SidecarObserver()
        self._tell = Observers([LogObserver(), self.observer]).notify
        #: Whether stopping left uploads running after ``shutdown_timeout``.
        self.abandoned_uploads = False
        self.outcomes = Outcomes()
        # stop() sets _stop_requested: backoff and throttling waits end (an
        # archive that failed is left for the next run; the last round must
        # not wait on a destination that is down). _stopping is set once the
        # last round of shipping is over (run), at once (run_once), or by a
        # second stop(): from then on no work starts.
        self._stop_requested = threading.Event()
        self._stopping = threading.Event()
        self._throttle = Throttle(self.retry.backoff)
        self._staging = StagingEpisode()
        self._pool: WorkerPool | None = None
        self.watcher = ArchiveWatcher(self.watch_dir, pattern, self._submit, self._not_regular)

    def run_once(self) -> int:
        """Ship every closed archive present now, then return: 0 when every one
        was shipped and dealt with, 1 when any is left (not shipped, or
        shipped but not removed), also after :meth:`stop` or giving up."""
        self._pool = WorkerPool(self.process, self.workers)
        deadline = self._made + self.once_timeout if self.once_timeout else None
        try:
            self._recover()
            self._abort_incomplete()
            found = self.watcher.scan()
            self._tell(Event("started", f"shipping {found} archives from {self.watch_dir} to "
                             f"{self.shipper.destination.url}",
                             {"mode": "once", "archives": found}))
            while not self._pool.wait_idle(self._stop_requested, _SIGNAL_LATENCY):
                if self._stop_requested.is_set():
                    break
                if deadline is not None and self._clock() >= deadline:
                    self._give_up()
                    break
        finally:
            self._shutdown()
        summary = self._finished()
        return 1 if summary.not_removed or summary.not_shipped else 0

    def run(self) -> int:
        """Watch and ship until :meth:`stop`, then ship what closed since (see
        :meth:`stop`); return 0 when nothing is left behind, 1 when archives
        are (not shipped, shipped but not removed, or still ``.open``)."""
        self._pool = WorkerPool(self.process, self.workers)
        deadline: float | None = None
        try:
            # Before any worker can start an upload that it would abort.
            self._abort_incomplete()
            self.watcher.start()
            self._recover()
            found = self.watcher.scan()
            self._tell(Event("started", f"watching {self.watch_dir} for "
                             f"{self.watcher.pattern}, shipping to "
                             f"{self.shipper.destination.url}",
                             {"mode": "watch", "archives": found}))
            next_scan = self._clock() + self.scan_interval
            while not self._stop_requested.wait(_SIGNAL_LATENCY):
                if self._clock() < next_scan:
                    continue
                next_scan = self._clock() + self.scan_interval
                try:
                    self._recover()
                    self.watcher.scan()
                except OSError as exc:  # a flaky mount: the next scan tries again
                    self._tell(Event("scan_failed", f"scanning {self.watch_dir} failed: {exc}",
                                     {"error": str(exc)}, logging.ERROR))
            deadline = time.monotonic() + self.shutdown_timeout
            self._ship_the_rest(deadline)
        finally:
            self.watcher.stop()
            self._shutdown(None if deadline is None else deadline - time.monotonic())
        self._note_left()
        summary = self._finished()
        return 1 if summary.not_removed or summary.not_shipped or summary.still_open else 0

    def stop(self) -> None:
        """Ask :meth:`run` or :meth:`run_once` to finish. It takes locks, so a
        signal handler must not call it directly (the thread it interrupts
        may hold one): the command line calls it from another thread.

        :meth:`run` then ships what closed since its last scan (an
        application stopping at the same moment closes its last archives
        now), and waits for the ``.open`` archives being written to be
        closed and shipped too, all within ``shutdown_timeout`` seconds;
        what is left then is told by name in the ``finished`` event (issue
        18: those archives stayed local, and the line said "0 not
        shipped"). :meth:`run_once` takes no new work. Either way, a
        second :meth:`stop` abandons waits at once."""
        if self._stop_requested.is_set():
            self._stopping.set()
        self._stop_requested.set()
        pool = self._pool
        if pool is not None:
            pool.wake()

    def _ship_the_rest(self, deadline: float) -> None:
        """:meth:`run`'s last round, until ``deadline`` (``time.monotonic()``):
        scan, ship, and go on while writers are closing archives."""
        pool = self._pool
        assert pool is not None
        quiet_since: float | None = None
        while not self._stopping.is_set():
            self._submit_new()
            now = time.monotonic()
            if now >= deadline:
                break
            if (not pool.wait_idle(self._stopping, min(deadline - now, _SIGNAL_LATENCY))
                    or self._being_written()):
                quiet_since = None
                continue
            # Nothing to ship, nothing open: done once that has lasted
            # _QUIET seconds, as a writer that rolls opens its next archive
            # only with its next record.
            now = time.monotonic()
            if quiet_since is None:
                quiet_since = now
            if now - quiet_since >= _QUIET:
                # Once more: what a writer renamed since the last look (its
                # .open is gone, so its archive is listed now).
                self._submit_new()
                if pool.wait_idle(self._stopping, 0):
                    break
                quiet_since = None
                continue
            self._stopping.wait(min(_SIGNAL_LATENCY, deadline - now))

    def _submit_new(self) -> None:
        """Submit the archives here that no attempt has failed for yet (a
        failed one waits for the next run, not for the deadline)."""
        try:
            paths = self.watcher.paths()
        except OSError as exc:
            self._tell(Event("scan_failed", f"scanning {self.watch_dir} failed: {exc}",
                             {"error": str(exc)}, logging.ERROR))
            return
        for path in paths:
            if not self.outcomes.tried(path):
                self._submit(path)

    def _being_written(self) -> list[str]:
        """The ``.open`` archives here whose writer is alive (it holds the
        file's lock, or the file is too new to tell): it may still close
        them. A crashed writer's is not waited for (``--recover-stale``
        finalizes those)."""
        pattern = self.watcher.pattern + OPEN_SUFFIX
        now = time.time()  # st_mtime is wall-clock time
        found = []
        try:
            with os.scandir(self.watch_dir) as entries:
                for entry in entries:
                    if not (fnmatch.fnmatchcase(entry.name, pattern)
                            and entry.is_file(follow_symlinks=False)):
                        continue
                    try:
                        # Never lock a file just made: its writer locks it
                        # right after creating it, and would give it up
                        # (see shoebox.recovery.recover).
                        if now - entry.stat(follow_symlinks=False).st_mtime < _FRESH:
                            found.append(entry.path)
                            continue
                        fd = lock_unheld(entry.path)
                    except OSError:
                        continue  # closed meanwhile, or not ours to read
                    if fd is None:
                        if os.path.lexists(entry.path):  # else closed meanwhile
                            found.append(entry.path)
                    else:
                        os.close(fd)
        except OSError:
            return []
        return sorted(found)

    def _note_left(self) -> None:
        """After :meth:`run` stopped: every archive still here unshipped (one
        that closed after the last scan included) counts as not shipped, and
        the ``.open`` archives still being written are noted."""
        try:
            here = self.watcher.paths()
        except OSError:
            here = []
        for path in here:
            try:
                stat = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            self.outcomes.left_here(identity(path, stat))
        self.outcomes.still_open(self._being_written())

    def process(self, path: str) -> ShipResult | None:
        """Ship one archive (the worker's job); return the result, or ``None``
        if it was not shipped (gone, damaged, failed, or stopping)."""
        if self._stopping.is_set():
            # Taken from the queue between stop() and the pool's stop: new
            # work, which a stopping sidecar does not start.
            return None
        started = time.monotonic()  # a measurement, in real seconds
        attempts = 0
        while True:
            try:
                return self._ship(path, started)
            except OSError as exc:
                if exc.errno not in NO_SPACE_ERRNOS:
                    self._failed(path, exc, transient=False)
                    return None
                attempts += 1
                if self.retry.exhausted(attempts):
                    self._failed(path, exc, transient=True)
                    return None
                self._staging_full(path, exc)
                if self._stop_requested.wait(self.retry.delay(attempts)):
                    self._left(path, None)
                    return None

    def _ship(self, path: str, started: float) -> ShipResult | None:
        """One try at :meth:`process`'s job; raises ``OSError`` when staging
        the compressed copy (or reading the archive) fails."""
        try:
            with self.shipper.prepare(path) as prepared:
                self._staging_fine()
                if prepared.damaged:
                    self._tell(Event(
                        "damaged", f"{path} has {len(prepared.damaged)} damaged ranges; "
                        "shipping it as it is",
                        {"archive": path, "key": prepared.key,
                         "damaged": [damage._asdict() for damage in prepared.damaged]},
                        logging.WARNING))
                result = self._deliver(prepared, started)
        except NotRegularFile as exc:
            # Swapped for a link or a FIFO after it was found: the open
            # refused it, nothing was read.
            self.outcomes.gone(path)
            self._not_regular(path, exc.kind)
            return None
        except FileNotFoundError as exc:
            if exc.filename != path:
                self._failed(path, exc, transient=False)
            else:  # shipped and removed meanwhile, or moved away: not left here
                self.outcomes.gone(path)
            return None
        except CorruptRecord as exc:
            self._quarantine(path, exc)
            return None
        except UploadError as exc:
            self._failed(path, exc, transient=exc.transient)
            return None
        except OSError:
            raise  # process() tells a full staging directory (retried) from the rest
        except Exception as exc:
            # Unforeseen (a name S3 cannot take, a bug): still this archive's
            # failure, so that --once exits 1 and the line names the archive.
            self._failed(path, exc, transient=False, exc_info=True)
            return None
        if result is None:
            return None
        self._shipped(path, result)
        return result

    def _deliver(self, prepared: Prepared, started: float) -> ShipResult | None:
        attempts = 0
        while True:
            if not self._throttle.wait(self._stop_requested):
                self._left(prepared.source, prepared.key)
                return None
            try:
                attempt_started = time.monotonic()
                result = self.shipper.deliver(prepared, started)
                self._throttle.passed()
                self.outcomes.shipped(result)
                self._tell(_shipped(prepared.source, result,
                                    time.monotonic() - attempt_started))
                return result
            except TransientUploadError as exc:
                if exc.throttled:
                    delay = self._throttle.pause(exc)
                else:
                    attempts += 1
                    if self.retry.exhausted(attempts):
                        raise  # counted as the archive's failure
                    delay = self.retry.delay(attempts)
                self._tell(Event(
                    "retrying", f"{prepared.source}: {exc}; retrying in {delay:.1f} s",
                    _fields(prepared.source, exc, attempt=attempts, delay=round(delay, 3),
                            throttled=exc.throttled),
                    logging.WARNING, failed_attempt=True))
                if self._stop_requested.wait(delay):
                    self._left(prepared.source, prepared.key)
                    return None

    def _left(self, path: str, key: str | None) -> None:
        self.outcomes.not_shipped(path)  # not tried again in the last round: it failed once
        self._tell(Event("left", f"{path} left for the next run (stopping)",
                         {"archive": path, "key": key}))

    def _staging_full(self, path: str, error: OSError) -> None:
        """An attempt to stage ``path`` found no room: told once an episode
        (the attempts in between at DEBUG)."""
        if self._staging.full():
            self._tell(Event(
                "staging_full", f"staging a compressed copy of {path} failed: {error}; "
                "archives stay and are retried until there is space (logged once until then)",
                _fields(path, error, transient=True, tmp_dir=self.shipper.scratch_dir),
                logging.ERROR, failed_attempt=True))
        else:
            self._tell(Event("staging_still_full", f"{path}: staging still full: {error}",
                             _fields(path, error, transient=True), logging.DEBUG,
                             failed_attempt=True))

    def _staging_fine(self) -> None:
        seconds = self._staging.fine()
        if seconds is not None:
            self._tell(Event("staging_resumed", f"staging space is back after {seconds:.1f} "
                             "s; shipping resumes",
                             {"seconds": round(seconds, 3),
                              "tmp_dir": self.shipper.scratch_dir}))

    def _shipped(self, path: str, result: ShipResult) -> None:
        """Deal with a shipped archive as ``after_upload`` says, if the file
        at ``path`` is still the one read (``result.identity``)."""
        try:
            if result.identity is not None:
                # Renamed away and the name taken by something else since it
                # was read (a link, say): that is not what was shipped, and
                # deleting or moving it is not ours to do.
                check_identity(path, result.identity)
            stat = os.stat(path, follow_symlinks=False)
            remains = self.after_upload.on_close(path)
        except NotRegularFile as exc:
            self.outcomes.finished(path, None)
            self._not_regular(path, exc.kind)
            return
        except OSError as exc:
            self._not_removed(path, result, exc)
            return
        self.outcomes.finished(path, identity(path, stat) if remains == path else None)

    def _not_removed(self, path: str, result: ShipResult, error: OSError) -> None:
        """The copy of ``path`` is confirmed, but deleting or moving it failed.
        Said as such (issue 18: the line said only "[Errno 13] Permission
        denied: '…events'; the archive stays")."""
        self.outcomes.not_removed(path)
        hint = ""
        if isinstance(error, PermissionError):
            hint = (f"; the sidecar's user may not remove files from "
                    f"{os.path.dirname(path)}: make that directory writable by its group "
                    f"(chmod 2770) with the sidecar in the group")
        self._tell(Event("after_upload_failed",
                         f"{path} was shipped (copy confirmed at {result.location}) but "
                         f"removing it failed: {error.strerror or error}{hint}; it stays, and "
                         "the next run finds the copy and only removes it",
                         _fields(path, error, destination=result.location), logging.ERROR))

    def _not_regular(self, path: str, kind: str) -> None:
        """``path`` matches but is not a regular file: told once per path
        (and again if it turns into another kind)."""
        if self.outcomes.not_regular(path, kind):
            error = NotRegularFile(kind, filename=path)
            self._tell(Event("skipped_not_regular", f"{path}: {error.strerror}; left alone",
                             {"archive": path, "kind": kind}, logging.WARNING))

    def _quarantine(self, path: str, error: CorruptRecord) -> None:
        self.outcomes.not_shipped(path)
        try:
            # The damaged file read was regular; a link put in its name since
            # is not it (and the move would only move the link itself).
            kind = file_kind(os.stat(path, follow_symlinks=False).st_mode)
            if kind != "regular":
                self.outcomes.gone(path)
                self._not_regular(path, kind)
                return
            moved = self.quarantine.on_close(path)
        except OSError as exc:
            self._tell(Event("quarantine_failed", f"{path} is damaged ({error}) and could not "
                             f"be quarantined: {exc}; it stays", _fields(path, error),
                             logging.ERROR))
            return
        self._tell(Event("quarantined", f"{path} is damaged ({error}): moved to {moved}, not "
                         "shipped", _fields(path, error, moved_to=moved), logging.ERROR))

    def _failed(self, path: str, error: Exception, *, transient: bool,
                exc_info: bool = False) -> None:
        """The last attempt at ``path`` failed; ``transient``: whether a later
        run may succeed."""
        self.outcomes.not_shipped(path)
        self._tell(Event("failed", f"{path}: {error}; the archive stays",
                         _fields(path, error, transient=transient), logging.ERROR,
                         failed_attempt=True, exc_info=exc_info))

    def backlog(self) -> Backlog:
        """The closed archives in ``watch_dir`` waiting to be shipped, now
        (those kept after shipping, ``after_upload`` "keep", are not)."""
        count = size = 0
        oldest: float | None = None
        for path in self.watcher.paths():
            try:
                stat = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue  # shipped meanwhile
            if self.outcomes.kept(identity(path, stat)):
                continue
            count += 1
            size += stat.st_size
            oldest = stat.st_mtime if oldest is None else min(oldest, stat.st_mtime)
        return Backlog(count, size, oldest)

    def _submit(self, path: str) -> None:
        try:
            stat = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return
        pool = self._pool
        if pool is not None and self.outcomes.take(identity(path, stat)):
            pool.submit(path)

    def _recover(self) -> None:
        """Finalize stale ``.open`` archives, with ``recover_stale``."""
        if not self.recover_stale:
            return
        result = recover(self.watch_dir, self.watcher.pattern, min_idle=self.stale_after)
        for path, kind in result.skipped.items():
            self._not_regular(path, kind)
        for path in result.finalized:
            self.outcomes.gone(path + OPEN_SUFFIX)
            self._tell(Event("recovered", f"finalized stale archive {path}", {"archive": path}))
        for path, reason in result.left.items():
            if self.outcomes.tried(path):
                continue  # told once
            self.outcomes.not_shipped(path)
            hint = ""
            if "Permission denied" in reason or "Operation not permitted" in reason:
                hint = (": make archives writable by the sidecar (the handler's "
                        "file_mode=0o660, a umask that keeps group write, the sidecar in the "
                        "writer's group) or run the sidecar as the writer's user")
            self._tell(Event("recover_failed", f"{path} was left by a crashed writer and "
                             f"cannot be finalized: {reason}; not shipped{hint}",
                             {"archive": path, "error": reason}, logging.ERROR))

    def _abort_incomplete(self) -> None:
        """Abort the unfinished multipart uploads of the archives waiting here
        (an earlier run was killed between parts); a failure is told, and
        shipping goes on."""
        try:
            aborted = self.shipper.abort_incomplete(self.watcher.paths())
        except (UploadError, OSError) as exc:
            self._tell(Event("abort_failed", f"aborting incomplete uploads left by an earlier "
                             f"run failed: {exc} (an AbortIncompleteMultipartUpload lifecycle "
                             "rule removes them)", {"error": str(exc)}, logging.WARNING))
            return
        for upload in aborted:
            self._tell(Event("aborted_upload", f"aborted incomplete multipart upload {upload}, "
                             "left by an earlier run", {"upload": upload}))

    def _give_up(self) -> None:
        left = self.summary().not_shipped
        self._tell(Event("gave_up", f"giving up after {self.once_timeout:g} s (once_timeout): "
                         f"{len(left)} archives not shipped yet stay for the next run",
                         {"seconds": self.once_timeout, "not_shipped": left},
                         logging.WARNING))

    def summary(self) -> Summary:
        """Where the archives taken up so far stand."""
        return self.outcomes.summary()

    @property
    def totals(self) -> dict[str, int]:
        """Totals over the archives shipped so far: archives, records,
        bytes_in, bytes_out."""
        return self.outcomes.totals_now()

    def _finished(self) -> Summary:
        """Tell the run's ``finished`` event; return the summary."""
        summary = self.summary()
        totals = self.outcomes.totals_now()
        message = f"shipped {summary.shipped} archives"
        for what, paths in (("shipped but not removed", summary.not_removed),
                            ("not shipped", summary.not_shipped),
                            ("still being written (.open)", summary.still_open)):
            if paths or what != "still being written (.open)":
                message += f"; {len(paths)} {what}{_named(paths)}"
        message += (f" ({totals['archives']} copies confirmed: {totals['records']} records, "
                    f"{totals['bytes_in']} -> {totals['bytes_out']} bytes)")
        self._tell(Event("finished", message, {
            **totals, "shipped": summary.shipped, "not_removed": summary.not_removed,
            "not_shipped": summary.not_shipped, "still_open": summary.still_open}))
        return summary

    def _shutdown(self, timeout: float | None = None) -> None:
        """Stop the pool: drop what has not started and wait for uploads in
        progress, up to ``timeout`` (default ``shutdown_timeout``) seconds."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # Backoff and throttling waits end too (giving up, or the last
        # round over): what they hold stays for the next run.
        self._stop_requested.set()
        self._stopping.set()
        if timeout is None:
            timeout = self.shutdown_timeout
        if not pool.stop(max(0.0, timeout)):
            self.abandoned_uploads = True
            self._tell(Event("shutdown_timeout", f"uploads still running after "
                             f"{self.shutdown_timeout:.1f} s; leaving them (their archives "
                             "stay for the next run)", {}, logging.WARNING))


def _shipped(path: str, result: ShipResult, upload_seconds: float) -> Event:
    """The event of a confirmed copy; ``upload_seconds``: what the successful
    delivery took."""
    return Event("shipped", f"shipped {path} to {result.location} ({result.records} records, "
                 f"{result.bytes_in} -> {result.bytes_out} bytes)",
                 {"archive": path, "destination": result.location, "key": result.key,
                  "records": result.records, "bytes_in": result.bytes_in,
                  "bytes_out": result.bytes_out, "ratio": round(result.ratio, 3),
                  "seconds": round(result.seconds, 3),
                  "upload_seconds": round(upload_seconds, 6),
                  "already_present": result.already_present})


def _fields(path: str, error: BaseException, **fields: Any) -> dict[str, Any]:
    """The fields of an event about ``error`` shipping ``path``."""
    extra: dict[str, Any] = {"archive": path, "error": str(error),
                             "error_type": type(error).__name__}
    if isinstance(error, UploadError):
        extra.update(destination=error.destination, key=error.key,
                     transient=error.transient)
    extra.update(fields)
    return extra


def _named(paths: list[str]) -> str:
    """``": a, b"`` naming the first few of ``paths``, or nothing for none."""
    if not paths:
        return ""
    more = len(paths) - _NAMED
    return ": " + ", ".join(paths[:_NAMED]) + (f" and {more} more" if more > 0 else "")
