"""The handler's default payload formatter: python-json-logger's
``JsonFormatter`` with shoebox's field names, and no value that can make it
fail."""

from __future__ import annotations

import json.encoder
import logging
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

from ._text import as_text, utc_timestamp

# LogRecord attributes that are not extras (python-json-logger's list, which
# follows the Python version), plus what formatting itself adds.
_NOT_EXTRAS = frozenset([*RESERVED_ATTRS, "message", "asctime", "taskName"])


def _strict_encoder() -> Callable[[object], str]:
    """JSON text for a value, with python-json-logger's conversions, refusing
    NaN and infinities (``ValueError``), and raising ``RecursionError`` for
    a circular structure.

    Reuses one C encoder (``json.encoder.c_make_encoder``) where the
    interpreter has it: ``JSONEncoder.encode`` builds a new one per call,
    which costs a third of the encoding. It keeps no circular-reference
    markers, since one markers dict shared by threads would report false
    cycles; a cycle ends in ``RecursionError`` instead.
    """
    encoder = JsonEncoder(allow_nan=False, check_circular=False)
    make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
    try:
        make_chunks = make_encoder(None, encoder.default, json.encoder.encode_basestring_ascii,
                                   None, ": ", ", ", False, False, False)
    except TypeError:  # no C accelerator here, or one with another signature
        return encoder.encode
    return lambda value: "".join(make_chunks(value, 0))


class ShoeboxJsonFormatter(JsonFormatter):
    """Formats a record as one JSON object.

    Fields: ``message``, ``timestamp`` (ISO 8601, UTC, milliseconds),
    ``level``, ``logger``, ``module``, ``function``, ``line``,
    ``thread_name``, ``process_name``, then ``static_fields``, every
    ``extra`` field (one whose name a field above already has is kept as
    ``extra.<name>``), and ``exc_info`` / ``stack_info`` (formatted text)
    when the record has them. A dict logged as the message is merged in
    (its keys win), as python-json-logger does.

    Values JSON cannot encode are written as strings: python-json-logger's
    encoder turns datetimes into ISO 8601 and bytes into base64, anything
    else becomes ``str(value)``; so do NaN and infinities (not valid JSON),
    circular structures and dicts with keys JSON refuses. Formatting never
    fails because of a value.
    """

    def __init__(self, *, static_fields: dict[str, Any] | None = None) -> None:
        super().__init__(static_fields=static_fields)
        self._encode = _strict_encoder()

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON text (see the class documentation).

        Does what ``JsonFormatter.format`` does for these fixed fields in
        one pass, since it runs for every record on the application's
        thread: the fields are built as one dict instead of through
        ``add_fields`` (format-string parsing, renames, a ``datetime`` per
        record). ``process_log_record`` and ``jsonify_log_record`` are
        still called, so subclasses can change the data or the encoding.
        """
        message = record.msg
        if isinstance(message, dict):
            record.message = ""
        else:
            record.message = record.getMessage()
        log_data: dict[str, Any] = {
            "message": record.message,
            "timestamp": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "thread_name": record.threadName,
            "process_name": record.processName,
        }
        if self.static_fields:
            log_data.update(self.static_fields)
        attributes = record.__dict__
        for key in [key for key in attributes if key not in _NOT_EXTRAS]:
            if not key.startswith("_"):
                log_data["extra." + key if key in log_data else key] = attributes[key]
        if isinstance(message, dict):
            log_data.update(message)
        if "exc_info" not in log_data:
            if record.exc_info:
                log_data["exc_info"] = self.formatException(record.exc_info)
            elif record.exc_text:
                log_data["exc_info"] = record.exc_text
        if record.stack_info and "stack_info" not in log_data:
            log_data["stack_info"] = self.formatStack(record.stack_info)
        return self.serialize_log_record(self.process_log_record(log_data))

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            return self._encode(log_data)
        except (TypeError, ValueError, RecursionError):
            # A value the encoder refuses (NaN, a cycle, a tuple key, a
            # failing __str__ in a default): encode field by field, and
            # write the refused ones as text.
            return self._encode({key: self._encodable(value) for key, value in log_data.items()})

    def _encodable(self, value: object) -> object:
        try:
            self._encode(value)
        except (TypeError, ValueError, RecursionError):
            return as_text(value)
        return value
