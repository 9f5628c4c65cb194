"""The non-blocking mode's writer: one thread that writes, in order, the
records that application threads hand it."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from shoebox._options import one_of, whole_number

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

#: Most records written with one ``write`` call: a batch is one write and
#: one roll check, so an archive can pass its roll size by up to a batch.
BATCH_RECORDS = 256

# Queue items: a record to write (encoded, or a copy to encode) with the
# record for error reports, an event to set once everything before it is
# written (flush), or None to stop the thread.
_Item = tuple[bytes | dict[str, Any], logging.LogRecord] | threading.Event | None


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
    :meth:`close` writes everything put, then stops the thread; a record put
    after :meth:`close` is written on the caller's thread. In a forked
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
        self._closed = False
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        """Start afresh with an empty queue and no thread (in a forked child)."""
        #: Records dropped because the queue was full.
        self.dropped = 0
        self._items: collections.deque[_Item] = collections.deque()
        self._wakeup = threading.Event()
        self._room = threading.Condition(threading.Lock())
        self._waiting_for_room = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def put(self, encoded: bytes | dict[str, Any], record: logging.LogRecord) -> None:
        """Queue one record: encoded, or what
        :meth:`~shoebox_logging.ShoeboxJsonFormatter.capture` took of it, for
        the writer thread to format and encode; ``record`` is for error
        reports."""
        if self._closed:
            data = self._encoded(encoded, record)
            if data is not None:
                self._write(data, record, 1)
            return
        if self._thread is None:
            self._start()
        if len(self._items) >= self.queue_size and not self._wait_for_room():
            with self._start_lock:
                self.dropped += 1
            return
        self._enqueue((encoded, record))
        if self._closed:
            # close() ran between the check above and the append, and may
            # have drained the queue already: this record would wait forever.
            self._write_waiting()

    def flush(self) -> None:
        """Wait until every record put so far is written."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        done = threading.Event()
        self._enqueue(done)
        while not done.wait(0.5):
            if not thread.is_alive():
                return

    def close(self) -> None:
        """Write everything queued, stop the thread. Closing twice is harmless."""
        self._closed = True
        with self._start_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._enqueue(None)
            thread.join()
        # Records that raced past the stop marker are written here.
        self._write_waiting()

    def _enqueue(self, item: _Item) -> None:
        self._items.append(item)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _wait_for_room(self) -> bool:
        """Whether the caller may queue its record after all (block mode),
        having waited until the writer took records from a full queue."""
        if self.when_full != "block" or _on_shoebox_thread():
            return False
        with self._room:
            self._waiting_for_room += 1
            try:
                while len(self._items) >= self.queue_size and not self._closed:
                    self._room.wait()
            finally:
                self._waiting_for_room -= 1
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                thread = threading.Thread(target=self._run, name="shoebox-log-writer",
                                          daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            self._wakeup.wait()
            # Cleared before taking records: a record put from here on sets
            # it again, so none waits unnoticed.
            self._wakeup.clear()
            if not self._write_waiting():
                return

    def _write_waiting(self) -> bool:
        """Write every waiting record, in batches; set flush events on the way.
        Returns False once the stop marker was taken."""
        items = self._items
        batch: list[bytes] = []
        first: logging.LogRecord | None = None
        running = True
        while items:
            item = items.popleft()
            if isinstance(item, tuple):
                data = self._encoded(*item)
                if data is None:
                    continue
                if first is None:
                    first = item[1]
                batch.append(data)
                if len(batch) < BATCH_RECORDS:
                    continue
            if first is not None:
                self._write(b"".join(batch), first, len(batch))
                batch.clear()
                first = None
                self._make_room()
            if isinstance(item, threading.Event):
                item.set()
            elif item is None:
                running = False
        if first is not None:
            self._write(b"".join(batch), first, len(batch))
            self._make_room()
        return running

    def _encoded(self, item: bytes | dict[str, Any], record: logging.LogRecord) -> bytes | None:
        if isinstance(item, bytes):
            return item
        assert self._encode is not None, "a record put unencoded needs encode="
        return self._encode(item, record)

    def _make_room(self) -> None:
        if self._waiting_for_room:
            with self._room:
                self._room.notify_all()
