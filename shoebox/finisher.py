"""The finisher: a thread of its own that finishes a writer's rolled
archives, in order, one at a time, so that the writing thread never waits
for a roll's flush, fsync, rename and directory fsync (issue 19). Used by
:class:`~shoebox.roll_manager.WritingRollManager`, which hands it the roll
sequence."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from .archive import ArchiveWriter

#: Seconds the finisher thread waits for the next rolled archive before it
#: ends (the next roll starts it again): long enough that rolls in a busy
#: run reuse one thread, short enough that an idle process keeps none.
FINISHER_IDLE_SECONDS = 1.0


class Finisher:
    """Finishes rolled archives on a thread of its own ("shoebox-finisher"),
    in the order they were rolled, one at a time (issue 19: the flush,
    fsync, rename and directory fsync of a roll cost the caller whose
    record crossed the roll size up to milliseconds).

    ``finish`` is the roll sequence for one archive; it must not raise.
    ``try_end`` is called by the thread when it has been idle for
    :data:`FINISHER_IDLE_SECONDS` (or was stopped): it must call
    :meth:`end_if_idle` holding what :meth:`submit` is called under (the
    manager's lock), and return what that returned, or False if it could
    not take the lock.

    The thread never waits for a lock that a thread calling
    :meth:`submit` may hold, nor the other way round: a ``__del__`` run by
    the garbage collector on the finisher's thread may log, and so wait for
    the manager's lock, whose holder may be submitting.
    """

    def __init__(self, finish: Callable[[ArchiveWriter], None],
                 try_end: Callable[[], bool]) -> None:
        self._finish = finish
        self._try_end = try_end
        # For wait(); the finisher notifies it after each archive. Nobody
        # takes it holding the manager's lock.
        self._changed = threading.Condition(threading.RLock())
        self._wakeup = threading.Event()
        self._archives: collections.deque[ArchiveWriter] = collections.deque()
        #: The archive being finished (a forked child closes its descriptor).
        self.current: ArchiveWriter | None = None
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self._stopping = False

    @property
    def unfinished(self) -> int:
        """Archives handed over and not finished yet."""
        return len(self._archives) + (self.current is not None)

    def submit(self, archive: ArchiveWriter) -> bool:
        """Hand ``archive`` over (under the manager's lock); never waits.
        Returns whether the thread must be started (:meth:`start`), which
        the caller does once it has let go of the manager's lock."""
        self._archives.append(archive)
        self._wakeup.set()
        return self._thread is None

    def start(self) -> None:
        """Start the thread if it is not running and there is work, without
        the manager's lock: ``Thread.start`` waits for the new thread, and a
        garbage collection on the new thread may run a ``__del__`` that
        logs, which waits for the manager's lock (issue 17's finalizers)."""
        if not self._starting.acquire(False):
            return  # another thread is starting it (or this one, re-entered)
        try:
            if self._thread is None and self._archives:
                self._stopping = False
                thread = threading.Thread(target=self._run, name="shoebox-finisher",
                                          daemon=True)
                self._thread = thread
                thread.start()
        finally:
            self._starting.release()

    def end_if_idle(self) -> bool:
        """Under the manager's lock, on the finisher's thread: whether the
        thread may end (nothing left); the next submit starts another."""
        if self._archives:
            return False
        self._thread = None
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every archive handed over is finished, or ``timeout``
        seconds; returns whether they are. On the finisher's own thread (a
        callback that flushes) it cannot wait for itself: False if any
        are left."""
        if threading.current_thread() is self._thread:
            return not self._archives
        with self._changed:
            return self._changed.wait_for(lambda: not self.unfinished, timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Let the thread end once nothing is left; wait for it up to
        ``timeout`` seconds. Returns whether it ended (or never ran)."""
        self._stopping = True
        self._wakeup.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        return not thread.is_alive()

    def abandon_all(self) -> None:
        """In a forked child: close the descriptors of the parent's archives
        (the parent finishes them; the lock on each is shared with the
        parent's descriptor, so it holds). The child then makes a new
        finisher."""
        for archive in [*self._archives, *filter(None, [self.current])]:
            archive.abandon()

    def _run(self) -> None:
        archives, wakeup = self._archives, self._wakeup
        while True:
            if not archives:
                # Cleared before looking again: a submit from here on sets it.
                wakeup.clear()
                if archives:
                    continue
                idle = self._stopping or not wakeup.wait(FINISHER_IDLE_SECONDS)
                if idle and not archives:
                    if self._try_end():
                        return
                    time.sleep(0.01)  # the manager's lock was taken: look again soon
                continue
            # Current before it leaves the queue: unfinished never undercounts.
            self.current = archives[0]
            archive = archives.popleft()
            try:
                self._finish(archive)
            finally:
                self.current = None
                with self._changed:
                    self._changed.notify_all()


__all__ = ["FINISHER_IDLE_SECONDS", "Finisher"]
