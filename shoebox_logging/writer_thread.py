"""The non-blocking mode's writer: one thread that writes, in order, the
records that application threads hand it."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from shoebox.options import one_of, whole_number

WhenFull = Literal["block", "drop"]
#: What :class:`WriterThread` can do when its queue is full.
WHEN_FULL_MODES: tuple[WhenFull, ...] = ("block", "drop")

#: Writes encoded records (one or several, concatenated); gets the first
#: record, for error reports, and how many there are. Must not raise.
WriteFunction = Callable[[bytes, logging.LogRecord, int], None]
#: Formats and encodes, on the writer thread, a record put unencoded (what
#: ShoeboxJsonFormatter.capture took at the log call, and the record);
#: ``None`` if it failed (and was reported). Must not raise.
EncodeFunction = Callable[[dict[str, Any], logging.LogRecord], "bytes | None"]

#: Most records written with one ``write`` call (and never more than the
#: queue holds): a batch is one write and one roll check, so an archive can
#: pass its roll size by up to a batch.
BATCH_RECORDS = 256

#: Seconds of formatting and encoding after which the writer thread gives
#: the GIL back (issue 19), checked after each record. Formatting is pure
#: Python: without a pause, a thread that wants the GIL (a logging thread,
#: the event loop) waits for the interpreter to force a switch, up to
#: ``sys.getswitchinterval()`` (5 ms, the application's to set, not ours).
#: See docs/performance.md for how it was chosen.
SLICE_SECONDS = 50e-6
#: Records waiting beyond which the writer thread counts as behind (see
#: WriterThread.behind): one batch.
BEHIND_RECORDS = 256
#: How long the writer thread sleeps to give the GIL back: a release as
#: short as a system call is won back by the releasing thread before a
#: waiting one wakes up (CPython hands the GIL over on a forced switch
#: only), so it must last about one wake-up.
GIL_PAUSE_SECONDS = 50e-6


def _give_back_gil() -> None:
    time.sleep(GIL_PAUSE_SECONDS)


# Queue items: a record to write (encoded, or a copy to encode) with the
# record for error reports, or an event to set once everything before it is
# written (flush). No stop marker: the writer stops when told by a flag, as
# a marker could be taken by a thread other than the writer (issue 17).
_Item = tuple[bytes | dict[str, Any], logging.LogRecord] | threading.Event


def _on_shoebox_thread() -> bool:
    """Whether this is a thread shoebox started (named ``shoebox-…``): such a
    thread may hold the roll manager's lock (a callback logging during a
    roll), which the writer thread needs before the queue can drain, so it
    must never wait for room in the queue."""
    return threading.current_thread().name.startswith("shoebox-")


class WriterThread:
    """Hands records to one daemon thread that writes them in the order they
    were put, as many as are waiting in one ``write`` call.

    A record is put encoded, or as what the default formatter captured of
    it (see :meth:`~shoebox_logging.ShoeboxJsonFormatter.capture`), which
    ``encode`` turns into an encoded record on the writer thread.

    The thread starts with the first record. When about ``queue_size``
    records are waiting (threads racing can pass it by a few), :meth:`put`
    waits for room (``when_full="block"``) or drops the record and counts it
    in :attr:`dropped` (``"drop"``); a shoebox thread never waits, it drops.
    :meth:`flush` returns once everything put before it is written;
    :meth:`close` writes everything put, then stops the thread, within its
    ``timeout`` (see there). A record put after :meth:`close` returned is
    written on the caller's thread. In a forked
    child, :meth:`reset_after_fork` forgets the parent's queue and thread
    (the parent writes those records); the child starts its own thread with
    its first record.

    Why not ``queue.Queue``: its ``put`` takes a lock and notifies a
    condition for every record, waking the writer each time, and on a
    machine with few cores the writer then competes with the application
    for the GIL record by record. Here ``put`` appends to a deque (atomic)
    and wakes the writer only when it sleeps; the writer takes every
    waiting record at once.
    """

    def __init__(self, write: WriteFunction, *, queue_size: int,
                 when_full: WhenFull = "block", encode: EncodeFunction | None = None) -> None:
        self._write = write
        self._encode = encode
        self.queue_size = whole_number("queue_size", queue_size, minimum=1)
        self.when_full = one_of("when_full", when_full, WHEN_FULL_MODES)
        # close() goes through three states (issue 17). Closing: the writer
        # stops once the queue is empty, or at _deadline (time.monotonic()),
        # dropping what is left; put() never waits, and queues at most
        # _late_room more records (so that a thread logging in a loop cannot
        # keep the writer going), dropping the others. Stopped: the writer
        # thread is gone and close() writes what is left; put() drops.
        # Closed: put() writes on the caller's thread, after everything
        # queued, so that a thread's records stay in order.
        self._closing = False
        self._deadline: float | None = None
        self._late_room = 0
        self._stopped = False
        self._closed = False
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        """Start afresh with an empty queue and no thread (in a forked child)."""
        #: Records dropped because the queue was full.
        self.dropped = 0
        #: Records still queued when :meth:`close` ran out of time.
        self.dropped_closing = 0
        self._items: collections.deque[_Item] = collections.deque()
        self._wakeup = threading.Event()
        # Re-entrant locks, both: a thread holding one may log again (a
        # signal handler, a __del__ run by the garbage collector), and a
        # plain lock would deadlock it (issue 17).
        self._room = threading.Condition(threading.RLock())
        self._waiting_for_room = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.RLock()

    @property
    def behind(self) -> bool:
        """Whether more than half the queue is waiting: the writer thread is
        not keeping up (a logging thread in a tight loop takes the GIL
        from it), and a caller had better hand it records encoded
        already, which cost it only their write (issue 19)."""
        return len(self._items) > min(self.queue_size // 2, BEHIND_RECORDS)

    def put(self, encoded: bytes | dict[str, Any], record: logging.LogRecord) -> None:
        """Queue one record: encoded, or what
        :meth:`~shoebox_logging.ShoeboxJsonFormatter.capture` took of it, for
        the writer thread to format and encode; ``record`` is for error
        reports."""
        if self._closing:
            if self._closed:
                self._write_one(encoded, record)
                return
            if self._stopped or self._late_room <= 0:
                self._drop_closing(1)
                return
            self._late_room -= 1  # threads racing can pass it by a few
        if self._thread is None:
            self._start()
        if len(self._items) >= self.queue_size and not self._wait_for_room():
            with self._start_lock:
                self.dropped += 1
            return
        item = (encoded, record)
        self._enqueue(item)
        if self._stopped:
            # close() stopped the writer between the checks above and the
            # append, and may have written what was queued already: unless
            # close() took it, the record would wait forever. Only this
            # record: taking others (a flush event, another thread's record)
            # is close()'s job (issue 17: a put() that wrote what was
            # waiting took the writer's stop marker, and close() hung).
            try:
                self._items.remove(item)
            except ValueError:
                return  # close() took it
            if self._closed:
                self._write_one(encoded, record)  # after everything queued
            else:
                self._drop_closing(1)

    def _write_one(self, encoded: bytes | dict[str, Any], record: logging.LogRecord) -> None:
        data = self._encoded(encoded, record)
        if data is not None:
            self._write(data, record, 1)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record put so far is written, or ``timeout``
        seconds; returns whether they were."""
        with self._start_lock:  # a thread being started is started once it is released
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        done = threading.Event()
        self._enqueue(done)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if done.wait(max(0.0, wait)):
                return True
            if not thread.is_alive() or (deadline is not None and time.monotonic() >= deadline):
                return done.is_set()

    def close(self, timeout: float | None = None) -> bool:
        """Write everything queued, stop the thread. Closing twice is harmless.

        With ``timeout``, returns within about that many seconds whatever
        other threads do (issue 17: a daemon thread logging in a loop while
        the interpreter exits hung it): records still queued then are
        counted in :attr:`dropped_closing`, not written. While it closes,
        :meth:`put` never waits for room and queues at most ``queue_size``
        more records; the others are counted in :attr:`dropped_closing`.
        Returns False if the writer thread is still inside a write at the
        timeout (a stalled disk, a callback that does not return): it
        finishes that on its own, and records put from then on are written
        on the callers' threads."""
        if self._closing:
            return not self._thread_alive()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._late_room = self.queue_size
        self._closing = True
        self._make_room()  # threads waiting for room stop waiting (see _wait_for_room)
        with self._start_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._wakeup.set()
            thread.join(timeout)
            if thread.is_alive():
                self._stopped = self._closed = True
                return False
        self._stopped = True
        # Records queued after the writer's last look are written here (at
        # most _late_room of them), or counted if time is up.
        self._write_waiting()
        self._closed = True
        return True

    def _thread_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _enqueue(self, item: _Item) -> None:
        self._items.append(item)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _wait_for_room(self) -> bool:
        """Whether the caller may queue its record after all (block mode),
        having waited until the writer took records from a full queue."""
        if self.when_full != "block" or _on_shoebox_thread() or self._closing:
            return False
        with self._room:
            self._waiting_for_room += 1
            try:
                while len(self._items) >= self.queue_size and not self._closing:
                    self._room.wait()
            finally:
                self._waiting_for_room -= 1
        return not self._closing or len(self._items) < self.queue_size

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closing:
                thread = threading.Thread(target=self._run, name="shoebox-log-writer",
                                          daemon=True)
                # Known before it starts: a put() re-entered while it starts
                # (a signal handler) must not start a second one.
                self._thread = thread
                try:
                    thread.start()
                except BaseException:
                    self._thread = None
                    raise

    def _run(self) -> None:
        try:
            while True:
                self._wakeup.wait()
                # Cleared before taking records: a record put from here on
                # sets it again, so none waits unnoticed.
                self._wakeup.clear()
                self._write_waiting()
                if self._closing and not self._items:
                    # Records put from here on: close() writes them, or
                    # the threads that put them (see put).
                    return
        finally:
            self._make_room()

    def _write_waiting(self) -> None:
        """Write every waiting record, in batches; set flush events on the
        way. Closing, past the deadline: count the rest as dropped instead.
        Every :data:`SLICE_SECONDS` of formatting, give the GIL back."""
        items = self._items
        batch: list[bytes] = []
        first: logging.LogRecord | None = None
        clock = time.perf_counter
        slice_end = clock() + SLICE_SECONDS
        # Room is made after every slice, so the queue may refill while a
        # batch grows: bounded by the queue's size too, as before slices.
        most = min(BATCH_RECORDS, self.queue_size)
        while items:
            if self._closing and self._past_deadline():
                self._drop_waiting()
                break
            item = items.popleft()
            if isinstance(item, tuple):
                data = self._encoded(*item)
                if data is None:
                    continue
                if first is None:
                    first = item[1]
                batch.append(data)
                if clock() >= slice_end:
                    self._make_room()
                    _give_back_gil()
                    slice_end = clock() + SLICE_SECONDS
                if len(batch) < most:
                    continue
            if first is not None:
                self._write(b"".join(batch), first, len(batch))
                batch.clear()
                first = None
                self._make_room()
            if isinstance(item, threading.Event):
                item.set()
        if first is not None:
            self._write(b"".join(batch), first, len(batch))
            self._make_room()

    def _past_deadline(self) -> bool:
        deadline = self._deadline
        return deadline is not None and time.monotonic() >= deadline

    def _drop_waiting(self) -> None:
        """Count the waiting records as dropped (close() ran out of time);
        set the flush events: nothing more will be written for them."""
        items = self._items
        dropped = 0
        while items:
            try:
                item = items.popleft()
            except IndexError:  # a put() took its own record back
                break
            if isinstance(item, tuple):
                dropped += 1
            else:
                item.set()
        self._drop_closing(dropped)

    def _drop_closing(self, records: int) -> None:
        with self._start_lock:
            self.dropped_closing += records

    def _encoded(self, item: bytes | dict[str, Any], record: logging.LogRecord) -> bytes | None:
        if isinstance(item, bytes):
            return item
        assert self._encode is not None, "a record put unencoded needs encode="
        return self._encode(item, record)

    def _make_room(self) -> None:
        if self._waiting_for_room:
            with self._room:
                self._room.notify_all()
