"""The handler's options, each parsed once, where the handler takes it:
dictConfig and fileConfig give JSON-friendly values (numbers may be
strings), so each is turned here into what the handler works with, or
refused with an error naming the option."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shoebox import plugins
from shoebox.callbacks import ArchiveCallback, CallbackList
from shoebox.codec import DEFAULT_MAX_RECORD_SIZE
from shoebox.options import positive_number, whole_number
from shoebox.roll_checker import RollChecker, size_or_time

#: Roll at this size or ...
DEFAULT_ROLL_SIZE_MB = 64
#: ... after this long, whichever comes first, unless told otherwise.
DEFAULT_ROLL_MINUTES = 15
#: Seconds ``close()`` (and ``flush()``) may take, unless told otherwise.
DEFAULT_CLOSE_TIMEOUT = 5.0
#: Metadata every record carries; ``metadata_fields`` cannot reuse these names.
STANDARD_METADATA = ("level", "logger", "timestamp", "host", "pid")


def roll_checker(spec: Any, roll_size_mb: float | str | None,
                 roll_minutes: float | str | None, clock: Callable[[], float]) -> RollChecker:
    """The checker from ``roll_checker``, or from the size and time options
    (timed by ``clock``)."""
    if spec is None:
        return size_or_time(
            roll_size_mb=DEFAULT_ROLL_SIZE_MB if roll_size_mb is None else roll_size_mb,
            roll_minutes=DEFAULT_ROLL_MINUTES if roll_minutes is None else roll_minutes,
            clock=clock)
    if roll_size_mb is not None or roll_minutes is not None:
        raise ValueError("give roll_checker, or roll_size_mb and roll_minutes, not both")
    checker: RollChecker = plugins.create_as(RollChecker, "roll_checker", spec)
    return checker


def callbacks(specs: Any) -> ArchiveCallback | None:
    """The callbacks from a list of specs (instances, dotted names or
    ``{"()": …}`` mappings): one way to write them, which can always pass
    options."""
    if specs is None:
        return None
    if isinstance(specs, (str, Mapping, ArchiveCallback)) or not isinstance(specs, Iterable):
        raise TypeError(f"callbacks must be a list of callbacks (instances, dotted names or "
                        f"{{'()': name, ...}} mappings), not {specs!r}")
    return CallbackList(callbacks=specs)


def field_names(fields: str | Iterable[str]) -> tuple[str, ...]:
    """``metadata_fields`` as names: a list, or one comma-separated string."""
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    result = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"metadata_fields must be non-empty names, not {name!r}")
        name = name.strip()
        if name in STANDARD_METADATA:
            raise ValueError(f"metadata field {name!r} is always set by the handler; "
                             f"choose another name")
        result.append(name)
    return tuple(result)


def record_size(max_record_mb: float | str | None) -> int:
    """``max_record_mb`` in bytes."""
    if max_record_mb is None:
        return DEFAULT_MAX_RECORD_SIZE
    return int(positive_number("max_record_mb", max_record_mb) * 1024 * 1024)


def queue_size(size: int | str | None) -> int:
    """``queue_size``: 0 (blocking mode) or more."""
    return 0 if size is None else whole_number("queue_size", size)


def close_timeout(seconds: float | str | None) -> float:
    """``close_timeout``: how long ``close()`` and ``flush()`` may wait, in seconds."""
    return DEFAULT_CLOSE_TIMEOUT if seconds is None else positive_number("close_timeout", seconds)
