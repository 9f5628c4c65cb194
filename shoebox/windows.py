"""Time windows and time spans: which records a windowed read keeps, and
which archives it can leave unread.

A :class:`TimeWindow` is ``since <= timestamp < until`` over each record's
``timestamp`` metadata (ISO 8601; a time without a zone is UTC, see
:mod:`shoebox._timestamps`); either end may be open. A record without a
readable timestamp is outside every window.

A :class:`Span` is the first and last record time of an archive. The
sidecar writes it into the object name through the ``{span}`` placeholder
of its key template (the ``hive`` preset has it), so that a listing alone
tells a windowed read which archives can hold records of the window:
``20261127T235900Z-20261128T010000Z_NAME`` (whole seconds, the first
rounded down and the last up, so the named span always encloses the
records' times), or ``untimed_NAME`` for an archive none of whose records
has a readable timestamp. Names without either read as "span unknown": the
archive is read.

Pruning by ``dt=DAY`` folders relies on the sidecar's rule that an archive's
day is the day of its *first* record, and on its records lying within 24
hours of that first record (any roll policy of less than a day gives this).
A windowed read therefore looks at the days from the day before ``since``
to the day after ``until``; see ``docs/query.md``.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from urllib.parse import unquote

from ._timestamps import utc_datetime
from .errors import InvalidOption

UTC = datetime.timezone.utc
#: The metadata key a window reads (the logging handler writes it).
TIMESTAMP_KEY = "timestamp"
#: What ``{span}`` renders for an archive without a readable timestamp.
UNTIMED = "untimed"
#: How far from its first record an archive's records may lie for
#: ``dt=`` folder pruning to be exact.
DAY = datetime.timedelta(days=1)

_SPAN_FORMAT = "%Y%m%dT%H%M%SZ"
_SPAN_NAME = re.compile(r"(?:(\d{8}T\d{6}Z)-(\d{8}T\d{6}Z)|untimed)_.")
_TICK = datetime.timedelta(microseconds=1)

Moment = datetime.datetime | str


def parse_moment(value: Moment, option: str = "time") -> datetime.datetime:
    """``value`` (a ``datetime``, or ISO 8601 text) as an aware UTC
    ``datetime``; a time without a zone is UTC. Raises
    :class:`~shoebox.errors.InvalidOption` naming ``option`` for text that
    is no ISO 8601 time, ``TypeError`` for other types."""
    if isinstance(value, datetime.datetime):
        moment: datetime.datetime | None = value
    elif isinstance(value, str):
        moment = utc_datetime(value.strip())
        if moment is None:
            raise InvalidOption(option, f"is not an ISO 8601 time: {value!r}")
    else:
        raise TypeError(f"{option} must be a datetime or ISO 8601 text, not "
                        f"{type(value).__name__}")
    assert moment is not None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Span:
    """The first and last record time of an archive (aware UTC datetimes)."""

    first: datetime.datetime
    last: datetime.datetime

    def token(self) -> str:
        """The span as it goes into a name: whole seconds, the first rounded
        down and the last rounded up, so that it encloses every record."""
        last = self.last.replace(microsecond=0)
        if last != self.last:
            last += datetime.timedelta(seconds=1)
        return f"{self.first.strftime(_SPAN_FORMAT)}-{last.strftime(_SPAN_FORMAT)}"

    @property
    def days(self) -> list[datetime.date]:
        """Every UTC day from the first record's to the last's."""
        first, last = self.first.date(), self.last.date()
        return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]


class SpanCollector:
    """Finds the span of records fed one by one (:meth:`add`, their
    metadata); :attr:`span` is ``None`` while no record had a readable
    timestamp."""

    def __init__(self) -> None:
        self.first: datetime.datetime | None = None
        self.last: datetime.datetime | None = None
        #: Records added without a readable timestamp.
        self.untimed = 0

    def add(self, metadata: dict[str, str]) -> None:
        stamp = metadata.get(TIMESTAMP_KEY)
        moment = None if stamp is None else utc_datetime(stamp)
        if moment is None:
            self.untimed += 1
            return
        if self.first is None or moment < self.first:
            self.first = moment
        if self.last is None or moment > self.last:
            self.last = moment

    @property
    def span(self) -> Span | None:
        if self.first is None or self.last is None:
            return None
        return Span(self.first, self.last)


def span_token(span: Span | None) -> str:
    """What the ``{span}`` placeholder renders: :meth:`Span.token`, or
    :data:`UNTIMED`."""
    return UNTIMED if span is None else span.token()


#: :func:`span_of_name`'s answer for an archive named as holding no timed record.
NO_SPAN = Span(datetime.datetime.max.replace(tzinfo=UTC), datetime.datetime.min.replace(tzinfo=UTC))


def span_of_name(name: str) -> Span | None:
    """The span an archive's file name (or key, or URL) carries, as
    ``{span}`` renders it: a :class:`Span`, :data:`NO_SPAN` for an
    ``untimed_`` name, ``None`` when the name carries none."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    match = _SPAN_NAME.match(base)
    if match is None:
        return None
    if match.group(1) is None:
        return NO_SPAN
    try:
        first, last = (datetime.datetime.strptime(text, _SPAN_FORMAT).replace(tzinfo=UTC)
                       for text in match.groups())
    except ValueError:  # digits that are no date: not our name
        return None
    return Span(first, last) if first <= last else None


def day_of_name(name: str) -> datetime.date | None:
    """The day of the deepest ``dt=YYYY-MM-DD`` directory in ``name``, if any."""
    found = None
    for segment in name.split("/")[:-1]:
        key, equals, value = segment.partition("=")
        if equals and key == "dt":
            try:
                found = datetime.date.fromisoformat(unquote(value))
            except ValueError:
                found = None
    return found


@dataclass(frozen=True)
class TimeWindow:
    """``since <= timestamp < until`` (aware UTC datetimes; ``None`` is
    open). Build it with :meth:`of`, which checks it."""

    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    @classmethod
    def of(cls, since: Moment | None = None,
           until: Moment | None = None) -> TimeWindow | None:
        """The window from ``since`` to ``until`` (``datetime`` or ISO 8601
        text), or ``None`` when both are ``None`` (no window). Raises
        :class:`~shoebox.errors.InvalidOption` for unreadable text and when
        ``since`` is not before ``until``."""
        if since is None and until is None:
            return None
        start = None if since is None else parse_moment(since, "since")
        end = None if until is None else parse_moment(until, "until")
        if start is not None and end is not None and start >= end:
            raise InvalidOption("since", f"must be before until, not {start.isoformat()} "
                                         f">= {end.isoformat()}")
        return cls(start, end)

    def admits(self, stamp: str | None) -> bool:
        """Whether a record whose timestamp metadata is ``stamp`` is inside."""
        moment = None if stamp is None else utc_datetime(stamp)
        return moment is not None and self.contains(moment)

    def contains(self, moment: datetime.datetime) -> bool:
        """Whether the aware ``moment`` is inside."""
        return ((self.since is None or self.since <= moment)
                and (self.until is None or moment < self.until))

    def overlaps(self, span: Span) -> bool:
        """Whether an archive of ``span`` can hold records inside."""
        return ((self.since is None or span.last >= self.since)
                and (self.until is None or span.first < self.until))

    @property
    def listed_days(self) -> tuple[datetime.date | None, datetime.date | None]:
        """The first and last ``dt=`` day whose archives can hold records
        inside (``None``: open): a day either side of the window's, as
        archives are filed under their first record's day."""
        low = None if self.since is None else (self.since - DAY).date()
        high = None if self.until is None else (self.until - _TICK + DAY).date()
        return low, high

    def lists_day(self, day: datetime.date) -> bool:
        """Whether archives under ``dt=day`` can hold records inside."""
        low, high = self.listed_days
        return (low is None or low <= day) and (high is None or day <= high)

    def touches_day(self, day: datetime.date) -> bool:
        """Whether some of UTC ``day`` is inside."""
        start = datetime.datetime.combine(day, datetime.time(), UTC)
        return ((self.until is None or start < self.until)
                and (self.since is None or start + DAY > self.since))

    def whole_days(self) -> TimeWindow:
        """The window widened to whole UTC days: from the midnight before
        ``since`` to the one after ``until``."""
        since = until = None
        if self.since is not None:
            since = datetime.datetime.combine(self.since.date(), datetime.time(), UTC)
        if self.until is not None:
            until = datetime.datetime.combine((self.until - _TICK).date(), datetime.time(),
                                              UTC) + DAY
        return TimeWindow(since, until)

    def may_hold(self, name: str) -> bool:
        """Whether the archive ``name`` (a path, key or URL) can hold records
        inside, judged by its name alone: its ``dt=`` folder and its span."""
        day = day_of_name(name)
        if day is not None and not self.lists_day(day):
            return False
        span = span_of_name(name)
        return span is None or (span is not NO_SPAN and self.overlaps(span))

    def describe(self) -> str:
        """The window as the command line writes it."""
        parts = []
        if self.since is not None:
            parts.append(f"--since {self.since.isoformat()}")
        if self.until is not None:
            parts.append(f"--until {self.until.isoformat()}")
        return " ".join(parts)


@dataclass
class WindowTally:
    """What a windowed read left out, record by record."""

    #: Records with a readable timestamp outside the window.
    outside: int = 0
    #: Records without a readable timestamp (outside every window).
    untimed: int = 0

    def admits(self, window: TimeWindow, stamp: str | None) -> bool:
        """``window.admits(stamp)``, counting what it leaves out."""
        moment = None if stamp is None else utc_datetime(stamp)
        if moment is None:
            self.untimed += 1
            return False
        if window.contains(moment):
            return True
        self.outside += 1
        return False


__all__ = [
    "NO_SPAN",
    "TIMESTAMP_KEY",
    "UNTIMED",
    "Span",
    "SpanCollector",
    "TimeWindow",
    "WindowTally",
    "day_of_name",
    "parse_moment",
    "span_of_name",
    "span_token",
]
