"""Reading the ISO 8601 ``timestamp`` metadata that records carry (the
logging handler writes ``2026-11-27T08:15:02.123Z``)."""

from __future__ import annotations

import datetime
import re
import sys

# What Python 3.10's fromisoformat cannot take: a "Z" for UTC, and
# fractions of other than 3 or 6 digits.
_FRACTION = re.compile(r"(\.\d+)")
# From 3.11 on, fromisoformat takes both (and gives the same moment as the
# rewriting below): tried first, it is over ten times faster, which counts
# where every record's time is read (windowed reads, spans, compaction).
_FAST = sys.version_info >= (3, 11)


def utc_datetime(text: str) -> datetime.datetime | None:
    """The moment ISO 8601 ``text`` names, in UTC (a time without a zone is
    taken to be UTC); ``None`` for text that is no ISO 8601 date or time."""
    if _FAST:
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            pass  # "z", or what the rewriting below cannot save either
        else:
            return _utc(moment)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda match: match.group(1)[:7].ljust(7, "0"), text, count=1)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return _utc(moment)


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)
