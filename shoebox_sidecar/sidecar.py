"""The sidecar proper: finds closed archives, ships each one (verify,
compress, upload, confirm) with retries, then deletes, keeps or moves it."""

from __future__ import annotations

import errno
import fnmatch
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shoebox._files import lock_unheld
from shoebox.callbacks import ArchiveCallback, DeleteFileCallback, MoveFileCallback
from shoebox.destinations import Prepared
from shoebox.errors import CorruptRecord, TransientUploadError, UploadError
from shoebox.naming import OPEN_SUFFIX, QUARANTINE_DIR
from shoebox.recovery import recover
from shoebox.shipping import Shipper, ShipResult

from .backoff import Backoff
from .logs import logger
from .pool import WorkerPool
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
#: Errors staging a compressed copy that say the staging directory is full
#: (or the process may write no bigger file): retried, they pass once space
#: returns.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class SidecarObserver:
    """What a :class:`Sidecar` tells about its work, as it happens, from its
    worker threads (:mod:`~shoebox_sidecar.metrics` counts it). The methods
    do nothing here; a subclass overrides those it needs, and must not
    raise or block."""

    def shipped(self, result: ShipResult, upload_seconds: float) -> None:
        """A copy was confirmed; ``upload_seconds`` the successful delivery took."""

    def failed(self, path: str, error: BaseException) -> None:
        """An attempt to ship ``path`` failed (retried later or not; a
        throttled one is a :class:`TransientUploadError` whose
        ``throttled`` is true)."""

    def quarantined(self, path: str) -> None:
        """``path`` is damaged and was moved to the quarantine directory."""


@dataclass(frozen=True)
class Backlog:
    """Closed archives waiting to be shipped (being shipped included)."""

    archives: int
    bytes: int
    #: Modification time (when it was closed) of the oldest, if any.
    oldest_mtime: float | None


@dataclass(frozen=True)
class Summary:
    """Where the archives a run was given stand: three disjoint groups."""

    #: Archives shipped and then deleted, moved or kept, as ``after_upload`` says.
    shipped: int
    #: Archives shipped whose deletion or move failed: still here, by path.
    not_removed: list[str]
    #: Archives not shipped (failed, damaged, given up, or not reached before
    #: stopping): still here, or quarantined, by path.
    not_shipped: list[str]
    #: Archives still being written (``.open``, a live writer's) when
    #: :meth:`Sidecar.run` stopped: not shipped either.
    still_open: list[str] = field(default_factory=list)


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
        for name, value, least in (("workers", workers, 1), ("max_attempts", max_attempts, 0),
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
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.scan_interval = scan_interval
        self.shutdown_timeout = shutdown_timeout
        self.once_timeout = once_timeout
        self.recover_stale = recover_stale
        self.stale_after = stale_after
        self._clock = clock
        # once_timeout counts from here: the command's start-up (checking the
        # destination, which may wait for a slow endpoint) is part of the run.
        self._made = clock()
        self.observer = observer if observer is not None else SidecarObserver()
        #: Whether stopping left uploads running after ``shutdown_timeout``.
        self.abandoned_uploads = False
        #: Totals over the archives shipped so far.
        self.totals = {"archives": 0, "records": 0, "bytes_in": 0, "bytes_out": 0}
        # stop() sets _stop_requested: backoff and throttling waits end (an
        # archive that failed is left for the next run; the last round must
        # not wait on a destination that is down). _stopping is set once the
        # last round of shipping is over (run), at once (run_once), or by a
        # second stop(): from then on no work starts.
        self._stop_requested = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # .open archives still being written when run() stopped.
        self._still_open: list[str] = []
        # Archives taken up and not yet shipped and dealt with, by path:
        # "pending" (no outcome yet), "not_shipped" or "not_removed".
        self._unfinished: dict[str, str] = {}
        self._finished = 0
        # Archives shipped but still here (after_upload "keep"), by identity,
        # so that scans do not ship them again.
        self._kept: set[tuple[str, int, int]] = set()
        # Throttling: no worker starts a request before _paused_until (a
        # time.monotonic() value: a real wait, as backoff waits are);
        # _throttled counts throttled answers in a row.
        self._paused_until = 0.0
        self._throttled = 0
        # When (time.monotonic()) the staging directory was found full, if it still is.
        self._staging_full_since: float | None = None
        self._pool: WorkerPool | None = None
        self.watcher = ArchiveWatcher(self.watch_dir, pattern, self._submit)

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
            logger.info("shipping %d archives from %s to %s", found, self.watch_dir,
                        self.shipper.destination.url,
                        extra={"event": "started", "mode": "once", "archives": found})
            while not self._pool.wait_idle(self._stop_requested, _SIGNAL_LATENCY):
                if self._stop_requested.is_set():
                    break
                if deadline is not None and self._clock() >= deadline:
                    self._give_up()
                    break
        finally:
            self._shutdown()
        summary = self._summary()
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
            logger.info("watching %s for %s, shipping to %s", self.watch_dir,
                        self.watcher.pattern, self.shipper.destination.url,
                        extra={"event": "started", "mode": "watch", "archives": found})
            next_scan = self._clock() + self.scan_interval
            while not self._stop_requested.wait(_SIGNAL_LATENCY):
                if self._clock() < next_scan:
                    continue
                next_scan = self._clock() + self.scan_interval
                try:
                    self._recover()
                    self.watcher.scan()
                except OSError as exc:  # a flaky mount: the next scan tries again
                    logger.error("scanning %s failed: %s", self.watch_dir, exc,
                                 extra={"event": "scan_failed", "error": str(exc)})
            deadline = time.monotonic() + self.shutdown_timeout
            self._ship_the_rest(deadline)
        finally:
            self.watcher.stop()
            self._shutdown(None if deadline is None else deadline - time.monotonic())
        self._note_left()
        summary = self._summary()
        return 1 if summary.not_removed or summary.not_shipped or summary.still_open else 0

    def stop(self) -> None:
        """Ask :meth:`run` or :meth:`run_once` to finish. It takes locks, so a
        signal handler must not call it directly (the thread it interrupts
        may hold one): the command line calls it from another thread.

        :meth:`run` then ships what closed since its last scan (an
        application stopping at the same moment closes its last archives
        now), and waits for the ``.open`` archives being written to be
        closed and shipped too, all within ``shutdown_timeout`` seconds;
        what is left then is told by name in the ``finished`` line (issue
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
            logger.error("scanning %s failed: %s", self.watch_dir, exc,
                         extra={"event": "scan_failed", "error": str(exc)})
            return
        for path in paths:
            with self._lock:
                tried = self._unfinished.get(path, "pending") != "pending"
            if not tried:
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
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            with self._lock:
                if (path, stat.st_ino, stat.st_mtime_ns) not in self._kept:
                    self._unfinished.setdefault(path, "not_shipped")
        self._still_open = self._being_written()

    def process(self, path: str) -> ShipResult | None:
        """Ship one archive (the worker's job); return the result, or ``None``
        if it was not shipped (gone, damaged, failed, or stopping)."""
        if self._stopping.is_set():
            # Taken from the queue between stop() and the pool's stop: new
            # work, which a stopping sidecar does not start.
            return None
        started = time.monotonic()  # a measurement, in real seconds
        attempt = 0
        while True:
            try:
                return self._ship(path, started)
            except OSError as exc:
                if exc.errno not in NO_SPACE_ERRNOS:
                    self._failed(path, exc)
                    return None
                attempt += 1
                if self.max_attempts and attempt >= self.max_attempts:
                    self._failed(path, exc)
                    return None
                self._staging_full(path, exc)
                if self._stop_requested.wait(self.backoff.delay(attempt - 1)):
                    self._left(path, None)
                    return None

    def _ship(self, path: str, started: float) -> ShipResult | None:
        """One try at :meth:`process`'s job; raises ``OSError`` when staging
        the compressed copy (or reading the archive) fails."""
        try:
            with self.shipper.prepare(path) as prepared:
                self._staging_ok()
                if prepared.damaged:
                    logger.warning(
                        "%s has %d damaged ranges; shipping it as it is", path,
                        len(prepared.damaged),
                        extra={"event": "damaged", "archive": path, "key": prepared.key,
                               "damaged": [damage._asdict() for damage in prepared.damaged]})
                result = self._deliver(prepared, started)
        except FileNotFoundError as exc:
            if exc.filename != path:
                self._failed(path, exc)
            else:  # shipped and removed meanwhile, or moved away: not left here
                self._gone(path)
            return None
        except CorruptRecord as exc:
            self._quarantine(path, exc)
            return None
        except UploadError as exc:
            self._failed(path, exc)
            return None
        except OSError:
            raise  # process() tells a full staging directory (retried) from the rest
        except Exception as exc:
            # Unforeseen (a name S3 cannot take, a bug): still this archive's
            # failure, so that --once exits 1 and the line names the archive.
            self._failed(path, exc, exc_info=True)
            return None
        if result is None:
            return None
        self._shipped(path, result)
        return result

    def _deliver(self, prepared: Prepared, started: float) -> ShipResult | None:
        attempt = 0
        while True:
            if not self._wait_unpaused():
                self._left(prepared.source, prepared.key)
                return None
            try:
                attempt_started = time.monotonic()
                result = self.shipper.deliver(prepared, started)
                self._unthrottled()
                self.observer.shipped(result, time.monotonic() - attempt_started)
                return result
            except TransientUploadError as exc:
                if exc.throttled:
                    delay = self._pause(exc)
                else:
                    attempt += 1
                    if self.max_attempts and attempt >= self.max_attempts:
                        raise  # counted as the archive's failure
                    delay = self.backoff.delay(attempt - 1)
                self.observer.failed(prepared.source, exc)
                logger.warning("%s: %s; retrying in %.1f s", prepared.source, exc, delay,
                               extra=self._fields(prepared.source, exc, event="retrying",
                                                  attempt=attempt, delay=round(delay, 3),
                                                  throttled=exc.throttled))
                if self._stop_requested.wait(delay):
                    self._left(prepared.source, prepared.key)
                    return None

    def _left(self, path: str, key: str | None) -> None:
        with self._lock:  # not tried again in the last round: it failed once already
            self._unfinished[path] = "not_shipped"
        logger.info("%s left for the next run (stopping)", path,
                    extra={"event": "left", "archive": path, "key": key})

    def _pause(self, error: TransientUploadError) -> float:
        """Pause every worker after a throttled answer; return how long this
        one waits. Answers to requests made before the pause (several
        workers throttled at once) extend it, not its growth."""
        now = time.monotonic()
        with self._lock:
            if now >= self._paused_until:
                self._throttled += 1
            delay = self.backoff.delay(self._throttled - 1)
            if error.retry_after is not None:
                delay = max(delay, min(error.retry_after, self.backoff.maximum))
            self._paused_until = max(self._paused_until, now + delay)
            return self._paused_until - now

    def _unthrottled(self) -> None:
        with self._lock:
            self._throttled = 0

    def _wait_unpaused(self) -> bool:
        """Wait while throttling pauses the workers; False if stopping came
        meanwhile (the pause is abandoned, as a backoff wait is; without a
        pause, an archive already prepared goes on, as uploads in progress
        do)."""
        while True:
            with self._lock:
                remaining = self._paused_until - time.monotonic()
            if remaining <= 0:
                return True
            if self._stop_requested.wait(remaining):
                return False

    def _staging_full(self, path: str, error: OSError) -> None:
        """An attempt to stage ``path`` found no space: logged once an episode."""
        self.observer.failed(path, error)
        with self._lock:
            first = self._staging_full_since is None
            if first:
                self._staging_full_since = time.monotonic()
        if first:
            logger.error("staging a compressed copy of %s failed: %s; archives stay and are "
                         "retried until there is space (logged once until then)", path, error,
                         extra=self._fields(path, error, event="staging_full",
                                            tmp_dir=self.shipper.scratch_dir))
        else:
            logger.debug("%s: staging still full: %s", path, error,
                         extra=self._fields(path, error, event="staging_still_full"))

    def _staging_ok(self) -> None:
        with self._lock:
            since, self._staging_full_since = self._staging_full_since, None
        if since is not None:
            seconds = time.monotonic() - since
            logger.info("staging space is back after %.1f s; shipping resumes", seconds,
                        extra={"event": "staging_resumed", "seconds": round(seconds, 3),
                               "tmp_dir": self.shipper.scratch_dir})

    def _shipped(self, path: str, result: ShipResult) -> None:
        with self._lock:
            for name, value in (("archives", 1), ("records", result.records),
                                ("bytes_in", result.bytes_in), ("bytes_out", result.bytes_out)):
                self.totals[name] += value
        logger.info(
            "shipped %s to %s (%d records, %d -> %d bytes)", path, result.location,
            result.records, result.bytes_in, result.bytes_out,
            extra={"event": "shipped", "archive": path, "destination": result.location,
                   "key": result.key, "records": result.records, "bytes_in": result.bytes_in,
                   "bytes_out": result.bytes_out, "ratio": round(result.ratio, 3),
                   "seconds": round(result.seconds, 3),
                   "already_present": result.already_present})
        try:
            stat = os.stat(path)
            remains = self.after_upload.on_close(path)
        except OSError as exc:
            self._not_removed(path, result, exc)
            return
        with self._lock:
            self._unfinished.pop(path, None)
            self._finished += 1
            if remains == path:
                self._kept.add((path, stat.st_ino, stat.st_mtime_ns))

    def _quarantine(self, path: str, error: CorruptRecord) -> None:
        with self._lock:
            self._unfinished[path] = "not_shipped"
        try:
            moved = self.quarantine.on_close(path)
        except OSError as exc:
            logger.error("%s is damaged (%s) and could not be quarantined: %s; it stays",
                         path, error, exc, extra=self._fields(path, error,
                                                              event="quarantine_failed"))
            return
        logger.error("%s is damaged (%s): moved to %s, not shipped", path, error, moved,
                     extra=self._fields(path, error, event="quarantined", moved_to=moved))
        self.observer.quarantined(path)

    def _not_removed(self, path: str, result: ShipResult, error: OSError) -> None:
        """The copy of ``path`` is confirmed, but deleting or moving it failed.
        Said as such (issue 18: the line said only "[Errno 13] Permission
        denied: '…events'; the archive stays")."""
        with self._lock:
            self._unfinished[path] = "not_removed"
        hint = ""
        if isinstance(error, PermissionError):
            hint = (f"; the sidecar's user may not remove files from "
                    f"{os.path.dirname(path)}: make that directory writable by its group "
                    f"(chmod 2770) with the sidecar in the group")
        logger.error("%s was shipped (copy confirmed at %s) but removing it failed: %s%s; it "
                     "stays, and the next run finds the copy and only removes it", path,
                     result.location, error.strerror or error, hint,
                     extra=self._fields(path, error, event="after_upload_failed",
                                        destination=result.location))

    def _failed(self, path: str, error: Exception, event: str = "failed",
                exc_info: bool = False) -> None:
        with self._lock:
            self._unfinished[path] = "not_shipped"
        logger.error("%s: %s; the archive stays", path, error, exc_info=exc_info,
                     extra=self._fields(path, error, event=event))
        self.observer.failed(path, error)

    def _fields(self, path: str, error: BaseException, **fields: object) -> dict[str, object]:
        extra: dict[str, object] = {"archive": path, "error": str(error),
                                    "error_type": type(error).__name__, **fields}
        if isinstance(error, UploadError):
            extra.update(destination=error.destination, key=error.key,
                         transient=error.transient)
        return extra

    def backlog(self) -> Backlog:
        """The closed archives in ``watch_dir`` waiting to be shipped, now
        (those kept after shipping, ``after_upload`` "keep", are not)."""
        count = size = 0
        oldest: float | None = None
        for path in self.watcher.paths():
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue  # shipped meanwhile
            with self._lock:
                if (path, stat.st_ino, stat.st_mtime_ns) in self._kept:
                    continue
            count += 1
            size += stat.st_size
            oldest = stat.st_mtime if oldest is None else min(oldest, stat.st_mtime)
        return Backlog(count, size, oldest)

    def _submit(self, path: str) -> None:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return
        with self._lock:
            if (path, stat.st_ino, stat.st_mtime_ns) in self._kept:
                return
            if self._pool is None:
                return
            # Kept as it is if known: one shipped but not removed is only
            # shipped again (found at the destination) and removed.
            self._unfinished.setdefault(path, "pending")
        self._pool.submit(path)

    def _gone(self, path: str) -> None:
        with self._lock:
            self._unfinished.pop(path, None)

    def _recover(self) -> None:
        """Finalize stale ``.open`` archives, with ``recover_stale``. One that
        cannot be finalized counts as not shipped (issue 18: a torn tail the
        sidecar may not cut was logged, and ``--once`` said "0 not shipped",
        exit 0), and is logged once, saying what to change."""
        if not self.recover_stale:
            return
        result = recover(self.watch_dir, self.watcher.pattern, min_idle=self.stale_after)
        for path in result.finalized:
            with self._lock:
                self._unfinished.pop(path + OPEN_SUFFIX, None)
            logger.info("finalized stale archive %s", path,
                        extra={"event": "recovered", "archive": path})
        for path, reason in result.left.items():
            with self._lock:
                first = self._unfinished.get(path) != "not_shipped"
                self._unfinished[path] = "not_shipped"
            if not first:
                continue
            hint = ""
            if "Permission denied" in reason or "Operation not permitted" in reason:
                hint = (": make archives writable by the sidecar (the handler's "
                        "file_mode=0o660, a umask that keeps group write, the sidecar in the "
                        "writer's group) or run the sidecar as the writer's user")
            logger.error("%s was left by a crashed writer and cannot be finalized: %s; not "
                         "shipped%s", path, reason, hint,
                         extra={"event": "recover_failed", "archive": path, "error": reason})

    def _abort_incomplete(self) -> None:
        """Abort the unfinished multipart uploads of the archives waiting here
        (an earlier run was killed between parts); a failure is logged, and
        shipping goes on."""
        try:
            aborted = self.shipper.abort_incomplete(self.watcher.paths())
        except (UploadError, OSError) as exc:
            logger.warning("aborting incomplete uploads left by an earlier run failed: %s "
                           "(an AbortIncompleteMultipartUpload lifecycle rule removes them)",
                           exc, extra={"event": "abort_failed", "error": str(exc)})
            return
        for upload in aborted:
            logger.info("aborted incomplete multipart upload %s, left by an earlier run",
                        upload, extra={"event": "aborted_upload", "upload": upload})

    def _give_up(self) -> None:
        left = self.summary().not_shipped
        logger.warning("giving up after %g s (once_timeout): %d archives not shipped yet stay "
                       "for the next run", self.once_timeout, len(left),
                       extra={"event": "gave_up", "seconds": self.once_timeout,
                              "not_shipped": left})

    def summary(self) -> Summary:
        """Where the archives taken up so far stand."""
        with self._lock:
            states = dict(self._unfinished)
            finished = self._finished
        return Summary(finished, sorted(path for path, state in states.items()
                                        if state == "not_removed"),
                       sorted(path for path, state in states.items()
                              if state != "not_removed"), list(self._still_open))

    def _summary(self) -> Summary:
        summary = self.summary()
        with self._lock:
            totals = dict(self.totals)
        message = "shipped %d archives"
        values: list[object] = [summary.shipped]
        for what, paths in (("shipped but not removed", summary.not_removed),
                            ("not shipped", summary.not_shipped),
                            ("still being written (.open)", summary.still_open)):
            if paths or what != "still being written (.open)":
                message += f"; %d {what}%s"
                values += [len(paths), _named(paths)]
        message += " (%d copies confirmed: %d records, %d -> %d bytes)"
        values += [totals["archives"], totals["records"], totals["bytes_in"],
                   totals["bytes_out"]]
        logger.info(message, *values, extra={
            "event": "finished", **totals, "shipped": summary.shipped,
            "not_removed": summary.not_removed, "not_shipped": summary.not_shipped,
            "still_open": summary.still_open})
        return summary

    def _shutdown(self, timeout: float | None = None) -> None:
        """Stop the pool: drop what has not started and wait for uploads in
        progress, up to ``timeout`` (default ``shutdown_timeout``) seconds."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        self._stopping.set()
        if timeout is None:
            timeout = self.shutdown_timeout
        if not pool.stop(max(0.0, timeout)):
            self.abandoned_uploads = True
            logger.warning("uploads still running after %.1f s; leaving them (their "
                           "archives stay for the next run)", self.shutdown_timeout,
                           extra={"event": "shutdown_timeout"})


def _named(paths: list[str]) -> str:
    """``": a, b"`` naming the first few of ``paths``, or nothing for none."""
    if not paths:
        return ""
    more = len(paths) - _NAMED
    return ": " + ", ".join(paths[:_NAMED]) + (f" and {more} more" if more > 0 else "")
