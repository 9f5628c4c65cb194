"""Record values as text: the ISO 8601 timestamps that metadata and the
default payload share, and a ``str()`` that cannot fail."""

from __future__ import annotations

import time

# (whole second, its text): records arrive many to a second, and strftime
# costs more than the rest of the conversion. A tuple is replaced whole, so
# threads never see half an update.
_last_second: tuple[int, str] = (-1, "")
# (created, its text): metadata and payload ask for the same record's time.
_last_time: tuple[float, str] = (-1.0, "")


def utc_timestamp(created: float) -> str:
    """``2026-11-27T08:15:02.123Z`` for ``created`` seconds since the epoch
    (``LogRecord.created``); milliseconds are truncated, as logging's
    ``msecs`` are."""
    global _last_second, _last_time
    cached_time, stamp = _last_time
    if cached_time == created:
        return stamp
    second = int(created // 1)
    cached_second, text = _last_second
    if cached_second != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, text)
    stamp = f"{text}.{int(created % 1.0 * 1000):03d}Z"
    _last_time = (created, stamp)
    return stamp


def as_text(value: object) -> str:
    """``str(value)``, or its ``repr``, or a placeholder naming its type: a
    log call must not fail because an object cannot print itself."""
    for convert in (str, repr):
        try:
            return convert(value)
        except Exception:
            pass
    return f"<unprintable {type(value).__name__}>"


def utf8_safe(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates, as text decoded
    with ``surrogateescape`` holds: file names, ``sys.argv``, the environment)
    written as ``\\udcff`` escapes; inside a JSON string such an escape
    stands for the same character, so JSON text stays valid."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
