"""What the structlog, loguru and OpenTelemetry integrations share: each
writes through one :class:`~shoebox_logging.ShoeboxHandler` of its own,
built from the handler's options, and hands it records whose message is
the event as a dict (the payload) and whose attributes carry the metadata.

Going through the handler rather than beside it keeps its promises for
every integration at once: options refused at construction, errors to
``handleError`` and never to the application, the non-blocking writer
thread, the disk budget, ``stats()``, fork safety, and closing at
interpreter exit (``logging.shutdown`` closes every handler still alive).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from ._text import as_text
from .formatter import _UNCHANGING, ShoeboxJsonFormatter
from .handler import ShoeboxHandler

#: The handler's options an integration takes. ``level`` is not one: the
#: library filters by level before shoebox sees an event (structlog's
#: filtering logger, ``logger.add(level=…)``, OTel's logger provider), and a
#: handler's level is checked by ``Logger.callHandlers``, which the
#: integrations never go through, so it would be silently ignored.
HANDLER_OPTIONS = frozenset(inspect.signature(ShoeboxHandler.__init__).parameters) - {
    "self", "level"}

# logging's names for its numeric levels, and the numbers for the names
# records carry; levels a library adds (loguru's TRACE, SUCCESS) keep their
# own name.
# How deep _encodable takes a value apart (a cycle would recurse forever).
_MAX_DEPTH = 32
_LEVEL_NUMBERS = {"CRITICAL": 50, "ERROR": 40, "WARNING": 30, "INFO": 20, "DEBUG": 10}


class EventFormatter(ShoeboxJsonFormatter):
    """Formats a record whose message is an event dict as that dict alone,
    with the default formatter's encoder: compact UTF-8 JSON, orjson where
    installed, and values JSON cannot hold written as text, so that no value
    (bytes, datetimes, sets, an object whose ``repr`` fails) fails a record.

    It is a python-json-logger formatter without a prefix, so the handler
    trusts its output to be a JSON object and does not parse it again.
    """

    deferrable = True  # see ShoeboxJsonFormatter.deferrable and capture below

    def format(self, record: logging.LogRecord) -> str:
        return self.render(cast("dict[str, Any]", record.msg))

    def capture(self, record: logging.LogRecord) -> dict[str, Any] | None:
        """The record's attributes, for the handler's writer thread to format
        later (non-blocking mode), when neither the event's values nor the
        record's other attributes can change meanwhile (strings, numbers,
        booleans, ``None``); else ``None``: the record is formatted now.
        The event dict is the integration's own (built for this call), so
        it is not copied."""
        attributes = record.__dict__
        event = cast("dict[str, Any]", record.msg)
        if not (_UNCHANGING.issuperset(map(type, event.values()))
                and _UNCHANGING.issuperset(map(type, (value for key, value in attributes.items()
                                                     if key != "msg")))):
            return None
        return attributes.copy()

    def render(self, event: Mapping[str, Any]) -> str:
        """``event`` as JSON text; keys that are not strings become text."""
        try:
            return self.jsonify_log_record(event)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            # A key JSON refuses (a tuple, say): checked only now, as keys
            # are strings in all but a few events.
            return self.jsonify_log_record({key if type(key) is str else as_text(key): value
                                            for key, value in event.items()})

    def _encodable(self, value: object, depth: int = 0) -> object:
        """``value``, or what JSON can hold in its place: unlike the default
        formatter (whose values are mostly flat), an event's structured
        values (an OTel body, a nested dict) are taken apart, so that one
        bad value deep inside costs only itself. Past a depth that only a
        cycle reaches, the rest is text."""
        try:
            self._encode(value)
            return value
        except (TypeError, ValueError, RecursionError):
            pass
        if depth < _MAX_DEPTH:
            if isinstance(value, dict):
                return {key if type(key) is str else as_text(key):
                        self._encodable(item, depth + 1) for key, item in value.items()}
            if isinstance(value, (list, tuple)):
                return [self._encodable(item, depth + 1) for item in value]
        return as_text(value)


def build_handler(owner: str, options: Mapping[str, Any],
                  fixed_fields: Iterable[str] = ()) -> ShoeboxHandler:
    """A handler for the integration ``owner`` (its class name, for errors)
    from the handler's ``options``, writing records made by
    :func:`make_record`; ``fixed_fields`` are metadata keys the integration
    always sets (after the user's ``metadata_fields``).

    An option the handler does not take raises ``TypeError`` naming it and
    ``owner``, here, as a constructor refusing an unknown keyword would: the
    options are passed on as they are, not copied into a signature of each
    integration's own that would drift from the handler's.
    """
    unknown = sorted(set(options) - HANDLER_OPTIONS)
    if unknown:
        raise TypeError(f"{owner} got an unexpected option {unknown[0]!r}; it takes "
                        f"ShoeboxHandler's options: {', '.join(sorted(HANDLER_OPTIONS))}")
    handler = ShoeboxHandler(**options)
    handler.setFormatter(EventFormatter())
    fixed = tuple(name for name in fixed_fields if name not in handler.metadata_fields)
    handler.metadata_fields = handler.metadata_fields + fixed
    return handler


class EventRecord(logging.LogRecord):
    """A record made by :func:`make_record`: what logging's code may read of
    a record and the integrations leave unset is a class default, so each
    record is a dict of the few fields it has."""

    args: Any = ()
    levelno = 0
    exc_info = None
    exc_text = None
    stack_info = None
    filename = "?"
    lineno = 0


def make_record(event: dict[str, Any], *, logger: str, level: str,
                created: float | None = None, filename: str | None = None, line: int = 0,
                attributes: Mapping[str, Any] | None = None) -> logging.LogRecord:
    """A record for :func:`build_handler`'s handler: ``event`` is the payload
    (the message, so ``metadata_fields`` are looked up in it first),
    ``attributes`` further metadata values, ``created`` the event's time
    (seconds since the epoch; now if ``None``).

    Built without ``LogRecord.__init__``, which would look up the caller's
    frame, thread and process for fields shoebox does not write; ``filename``
    and ``line`` are what ``handleError`` prints.
    """
    record = EventRecord.__new__(EventRecord)
    # The attributes first: one named like a field set here (an OTel
    # attribute "msg" or "created" chosen in metadata_fields) must not
    # replace the event or its time.
    fields = dict(attributes) if attributes else {}
    fields.update(name=logger, msg=event, levelname=level,
                  levelno=_LEVEL_NUMBERS.get(level, 0),
                  created=time.time() if created is None else created)
    if filename is not None:
        fields["filename"] = filename
        fields["lineno"] = line
    record.__dict__ = fields
    return record


def archive(handler: ShoeboxHandler, source: str,
            build: Callable[..., logging.LogRecord], *event: Any) -> None:
    """Hand ``handler`` the record ``build(*event)`` makes of a library's
    event. An event that cannot be read is reported through the handler's
    ``handleError`` (as a record of logger ``source``), never raised into
    the application; ``RecursionError`` goes through, as in logging's
    handlers (bpo-36272)."""
    try:
        record = build(*event)
    except RecursionError:
        raise
    except Exception:
        handler.handleError(make_record({"event": "<unreadable event>"}, logger=source,
                                        level="ERROR"))
        return
    handler.handle(record)


def parse_json_object(text: str | bytes | bytearray) -> dict[str, Any] | None:
    """``text`` as a dict if it is a JSON object, else ``None`` (a renderer
    left at the end of a processor chain, say)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
