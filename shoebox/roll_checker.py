"""Roll checkers: when the active archive should be closed and a new one begun.

A checker is told when an archive starts (:meth:`RollChecker.start`) and is
asked after each write whether to roll (:meth:`RollChecker.check`). A
checker whose rolls depend on time also says how long until it will want
to roll with no further writes (:meth:`RollChecker.remaining`), so the roll
manager can close an idle archive on time.

Constructors take keyword arguments only (they come from config files and
plugin specs), accept numbers given as strings, and raise ``ValueError`` or
``TypeError`` at construction for values that make no sense.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from . import plugins
from .options import positive_number


class SizedArchive(Protocol):
    """What a checker may look at: the bytes written so far."""

    size: int


class RollChecker:
    """Base class: never asks for a roll. Subclasses override what they need."""

    def start(self, archive: SizedArchive) -> None:
        """A new archive has been opened."""

    def check(self, archive: SizedArchive) -> bool:
        """Whether to roll ``archive`` now (called after each write)."""
        return False

    def remaining(self, archive: SizedArchive) -> float | None:
        """Seconds until this checker wants a roll without further writes,
        or ``None`` if it never will."""
        return None


class NeverRollChecker(RollChecker):
    """Never rolls: one archive until the roll manager is closed."""


class SizeRollChecker(RollChecker):
    """Rolls once an archive holds at least ``roll_size_mb`` MiB (fractions allowed)."""

    def __init__(self, *, roll_size_mb: float | str) -> None:
        self.roll_size_mb = positive_number("roll_size_mb", roll_size_mb)
        self._limit = int(self.roll_size_mb * 1024 * 1024)

    def check(self, archive: SizedArchive) -> bool:
        return archive.size >= self._limit


class TimeRollChecker(RollChecker):
    """Rolls once an archive has been open ``roll_minutes`` minutes (fractions
    allowed), even if nothing more is written.

    ``clock`` returns seconds (default :func:`time.monotonic`); tests inject
    their own.
    """

    def __init__(self, *, roll_minutes: float | str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.roll_minutes = positive_number("roll_minutes", roll_minutes)
        self._seconds = self.roll_minutes * 60
        self._clock = clock
        self._deadline = clock() + self._seconds

    def start(self, archive: SizedArchive) -> None:
        self._deadline = self._clock() + self._seconds

    def check(self, archive: SizedArchive) -> bool:
        return self._clock() >= self._deadline

    def remaining(self, archive: SizedArchive) -> float | None:
        return max(0.0, self._deadline - self._clock())


class AnyOfRollChecker(RollChecker):
    """Rolls when any of ``checkers`` says so (size *or* time, say).

    ``checkers`` are instances or plugin specs (dotted names) built with no
    arguments.
    """

    def __init__(self, *, checkers: Iterable[RollChecker | plugins.Spec]) -> None:
        self.checkers = [plugins.create_as(RollChecker, "checkers", spec) for spec in checkers]
        if not self.checkers:
            raise ValueError("AnyOfRollChecker needs at least one checker")

    def start(self, archive: SizedArchive) -> None:
        for checker in self.checkers:
            checker.start(archive)

    def check(self, archive: SizedArchive) -> bool:
        # A loop, not any(generator): this runs after every record written,
        # and the generator costs about a microsecond more.
        for checker in self.checkers:  # noqa: SIM110
            if checker.check(archive):
                return True
        return False

    def remaining(self, archive: SizedArchive) -> float | None:
        times = [t for t in (c.remaining(archive) for c in self.checkers) if t is not None]
        return min(times, default=None)


def size_or_time(*, roll_size_mb: float | str | None = None,
                 roll_minutes: float | str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> RollChecker:
    """The checker production usually wants: roll at a size, after a time, or
    whichever comes first; :class:`NeverRollChecker` when neither is given."""
    checkers: list[RollChecker] = []
    if roll_size_mb is not None:
        checkers.append(SizeRollChecker(roll_size_mb=roll_size_mb))
    if roll_minutes is not None:
        checkers.append(TimeRollChecker(roll_minutes=roll_minutes, clock=clock))
    if not checkers:
        return NeverRollChecker()
    if len(checkers) == 1:
        return checkers[0]
    return AnyOfRollChecker(checkers=checkers)
