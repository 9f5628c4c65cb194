"""The worker pool: archives are processed by a fixed number of threads, each
archive by one worker at a time however many times it is submitted."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("shoebox_sidecar.pool")


class WorkerPool:
    """Runs ``work(path)`` on ``workers`` threads.

    :meth:`submit` ignores a path already queued or being worked on, so a
    burst of file-system events and scans for one archive gives one run.
    ``work`` should handle its own errors; anything it raises is logged and
    the worker goes on.
    """

    def __init__(self, work: Callable[[str], object], workers: int = 2,
                 name: str = "shoebox-sidecar-worker") -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self._work = work
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._accepting = True
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{index}", daemon=True)
                         for index in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, path: str) -> bool:
        """Queue ``path`` unless it is queued or running already, or the pool
        is stopping; return whether it was queued."""
        with self._lock:
            if not self._accepting or path in self._pending:
                return False
            self._pending.add(path)
        self._queue.put(path)
        return True

    def wait_idle(self, until: threading.Event, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (True), or ``until`` is
        set or ``timeout`` passes (False). Whoever sets ``until`` calls
        :meth:`wake`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._pending and not until.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return not self._pending

    def wake(self) -> None:
        """Wake :meth:`wait_idle` so that it looks at its event again."""
        with self._changed:
            self._changed.notify_all()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop taking work, drop what has not started, and wait up to
        ``timeout`` seconds for the work in progress; return whether every
        worker finished."""
        with self._lock:
            self._accepting = False
        while True:
            try:
                dropped = self._queue.get_nowait()
            except queue.Empty:
                break
            if dropped is not None:
                self._finished(dropped)
        for _thread in self._threads:
            self._queue.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                self._work(path)
            except Exception:
                logger.exception("processing %s failed", path)
            finally:
                self._finished(path)

    def _finished(self, path: str) -> None:
        with self._changed:
            self._pending.discard(path)
            self._changed.notify_all()
