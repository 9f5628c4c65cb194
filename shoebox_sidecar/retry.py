"""When the sidecar tries again: the attempt limit, the pause every worker
honours while the destination throttles, and the episodes of a full
staging directory."""

from __future__ import annotations

import threading
import time

from shoebox.errors import TransientUploadError

from .backoff import Backoff


class RetryPolicy:
    """How failed attempts at one archive are retried: after ``backoff``'s
    waits, until ``max_attempts`` attempts failed (0: forever)."""

    def __init__(self, backoff: Backoff | None = None, max_attempts: int = 0) -> None:
        if max_attempts < 0:
            raise ValueError(f"max_attempts must be at least 0, not {max_attempts}")
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` failed attempts are all there may be."""
        return bool(self.max_attempts) and attempts >= self.max_attempts

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` (1 or more) failed attempts."""
        return self.backoff.delay(attempts - 1)


class Throttle:
    """The pause every worker honours after a throttled answer (``503
    SlowDown``, ``429``): it lasts at least ``backoff``'s wait, growing while
    throttled answers follow one another, and at least the answer's
    ``Retry-After`` (up to the backoff's maximum). Real seconds
    (``time.monotonic``), as backoff waits are. Thread-safe."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._in_a_row = 0

    def pause(self, error: TransientUploadError) -> float:
        """Pause every worker after ``error``; return how long this one waits.
        Answers to requests made before the pause (several workers throttled
        at once) extend it, not its growth."""
        now = time.monotonic()
        with self._lock:
            if now >= self._paused_until:
                self._in_a_row += 1
            delay = self._backoff.delay(self._in_a_row - 1)
            if error.retry_after is not None:
                delay = max(delay, min(error.retry_after, self._backoff.maximum))
            self._paused_until = max(self._paused_until, now + delay)
            return self._paused_until - now

    def passed(self) -> None:
        """A request went through: the next throttled answer starts afresh."""
        with self._lock:
            self._in_a_row = 0

    def wait(self, stopping: threading.Event) -> bool:
        """Wait while the pause lasts; False if ``stopping`` was set meanwhile."""
        while True:
            with self._lock:
                remaining = self._paused_until - time.monotonic()
            if remaining <= 0:
                return True
            if stopping.wait(remaining):
                return False


class StagingEpisode:
    """Whether the staging directory is full now, and since when, so that an
    episode is told once when it starts and once when it ends, whatever the
    number of attempts in between. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None

    def full(self) -> bool:
        """Staging found no room; return whether this starts an episode."""
        with self._lock:
            first = self._since is None
            if first:
                self._since = time.monotonic()
            return first

    def fine(self) -> float | None:
        """Staging worked; return how long the episode it ends lasted (seconds),
        or ``None`` when there was none."""
        with self._lock:
            since, self._since = self._since, None
        return None if since is None else time.monotonic() - since
