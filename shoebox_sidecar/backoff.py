"""How long to wait before trying a failed upload again."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Exponential backoff with jitter, capped.

    The ``attempt``-th wait (from 0) is drawn between half and all of
    ``min(maximum, initial * 2**attempt)`` seconds: it grows quickly, never
    exceeds ``maximum``, and sidecars that failed together do not retry in
    step. ``rand`` returns a float in [0, 1) (injectable for tests).
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0,
                 rand: Callable[[], float] = random.random) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got initial={initial}, "
                             f"maximum={maximum}")
        self.initial = initial
        self.maximum = maximum
        self._rand = rand

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** min(attempt, 64))
        return ceiling / 2 + self._rand() * ceiling / 2
