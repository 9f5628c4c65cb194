"""The non-blocking mode's writer: one thread that writes, in order, the
records that application threads hand it through a bounded queue."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Literal

WhenFull = Literal["block", "drop"]
#: What :class:`WriterThread` can do when its queue is full.
WHEN_FULL_MODES: tuple[WhenFull, ...] = ("block", "drop")

#: Writes one encoded record; must not raise (it reports its own errors).
WriteFunction = Callable[[bytes, logging.LogRecord], None]

# Queue items: a record to write, an event to set once all before it are
# written (flush), or None to stop the thread.
_Item = tuple[bytes, logging.LogRecord] | threading.Event | None


def _on_shoebox_thread() -> bool:
    """Whether this is a thread shoebox started (named ``shoebox-…``): such a
    thread may hold the roll manager's lock (a callback logging during a
    roll), which the writer thread needs before the queue can drain, so it
    must never wait for room in the queue."""
    return threading.current_thread().name.startswith("shoebox-")


class WriterThread:
    """Hands records to one daemon thread that calls ``write`` for each, in
    the order they were put.

    The thread starts with the first record. When ``queue_size`` records are
    waiting, :meth:`put` waits for room (``when_full="block"``) or drops the
    record and counts it in :attr:`dropped` (``"drop"``); a shoebox thread
    never waits, it drops. :meth:`flush` returns once everything put before
    it is written; :meth:`close` writes everything put, then stops the
    thread; a record put after :meth:`close` is written on the caller's
    thread. In a forked child, :meth:`reset_after_fork` forgets the
    parent's queue and thread (the parent writes those records); the child
    starts its own thread with its first record.
    """

    def __init__(self, write: WriteFunction, *, queue_size: int,
                 when_full: WhenFull = "block") -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        if when_full not in WHEN_FULL_MODES:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL_MODES)}, "
                             f"not {when_full!r}")
        self._write = write
        self.queue_size = queue_size
        self.when_full = when_full
        self._closed = False
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        """Start afresh with an empty queue and no thread (in a forked child)."""
        #: Records dropped because the queue was full.
        self.dropped = 0
        self._queue: queue.Queue[_Item] = queue.Queue(self.queue_size)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._count_lock = threading.Lock()

    def put(self, encoded: bytes, record: logging.LogRecord) -> None:
        """Queue one encoded record (``record`` is for error reports)."""
        if self._closed:
            self._write(encoded, record)
            return
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait((encoded, record))
        except queue.Full:
            if self.when_full == "block" and not _on_shoebox_thread():
                self._queue.put((encoded, record))
            else:
                with self._count_lock:
                    self.dropped += 1

    def flush(self) -> None:
        """Wait until every record put so far is written."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        done = threading.Event()
        self._queue.put(done)
        while not done.wait(0.5):
            if not thread.is_alive():
                return

    def close(self) -> None:
        """Write everything queued, stop the thread. Closing twice is harmless."""
        self._closed = True
        with self._start_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._queue.put(None)
            thread.join()
        # Records that raced past the stop marker are written here.
        self._drain()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                thread = threading.Thread(target=self._run, name="shoebox-log-writer",
                                          daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._handle(item)

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._handle(item)

    def _handle(self, item: tuple[bytes, logging.LogRecord] | threading.Event) -> None:
        if isinstance(item, threading.Event):
            item.set()
        else:
            self._write(*item)
