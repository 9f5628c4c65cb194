"""Record values as text: the ISO 8601 timestamps that metadata and the
default payload share, and a ``str()`` that cannot fail."""

from __future__ import annotations

import time

# (whole second, its text): records arrive many to a second, and strftime
# costs more than the rest of the conversion. A tuple is replaced whole, so
# threads never see half an update.
_last_second: tuple[int, str] = (-1, "")


def utc_timestamp(created: float) -> str:
    """``2026-11-27T08:15:02.123Z`` for ``created`` seconds since the epoch
    (``LogRecord.created``); milliseconds are truncated, as logging's
    ``msecs`` are."""
    global _last_second
    whole, fraction = divmod(created, 1.0)
    second = int(whole)
    cached, text = _last_second
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, text)
    return f"{text}.{int(fraction * 1000):03d}Z"


def as_text(value: object) -> str:
    """``str(value)``, or its ``repr``, or a placeholder naming its type: a
    log call must not fail because an object cannot print itself."""
    for convert in (str, repr):
        try:
            return convert(value)
        except Exception:
            pass
    return f"<unprintable {type(value).__name__}>"
