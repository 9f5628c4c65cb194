"""The handler's default payload formatter: python-json-logger's
``JsonFormatter`` with shoebox's field names, and no value that can make it
fail; with orjson installed (``shoebox-archive[fast]``) it writes through orjson,
the same text."""

from __future__ import annotations

import json.encoder
import logging
from collections.abc import Callable
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

from shoebox.errors import MissingExtra
from shoebox.options import one_of

from ._text import as_text, utc_timestamp

# LogRecord attributes that are not extras (python-json-logger's list, which
# follows the Python version), plus what formatting itself adds.
_NOT_EXTRAS = frozenset([*RESERVED_ATTRS, "message", "asctime", "taskName"])
# Values that cannot change after the log call: a record holding only these
# (once its message, arguments and traceback are fixed) can be formatted
# later, elsewhere.
_UNCHANGING = frozenset([str, int, float, bool, type(None)])

Encoder = Literal["auto", "json", "orjson"]
#: The formatter's ``encoder`` choices: orjson where installed (``"auto"``),
#: always the standard library's ``json``, or orjson (required).
ENCODERS: tuple[Encoder, ...] = ("auto", "json", "orjson")
# What both encoders turn a value JSON cannot hold into: python-json-logger's
# conversions (the method uses nothing of its instance).
_DEFAULT = JsonEncoder().default


def _strict_encoder() -> Callable[[object], str]:
    """Compact JSON text for a value (no spaces, UTF-8 rather than ``\\u``
    escapes: orjson's style, so that both encoders write the same bytes),
    with python-json-logger's conversions, refusing NaN and infinities
    (``ValueError``), and raising ``RecursionError`` for a circular
    structure.

    Reuses one C encoder (``json.encoder.c_make_encoder``) where the
    interpreter has it: ``JSONEncoder.encode`` builds a new one per call,
    which costs a third of the encoding. It keeps no circular-reference
    markers, since one markers dict shared by threads would report false
    cycles; a cycle ends in ``RecursionError`` instead.
    """
    encoder = JsonEncoder(allow_nan=False, check_circular=False, ensure_ascii=False,
                          separators=(",", ":"))
    make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
    try:
        make_chunks = make_encoder(None, _DEFAULT, json.encoder.encode_basestring,
                                   None, ":", ",", False, False, False)
    except TypeError:  # no C accelerator here, or one with another signature
        return encoder.encode
    return lambda value: "".join(make_chunks(value, 0))


class ShoeboxJsonFormatter(JsonFormatter):
    """Formats a record as one JSON object, compact (no spaces) and in UTF-8.

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

    ``encoder``: ``"auto"`` (default) writes through orjson where it is
    installed (``pip install 'shoebox-archive[fast]'``) and the standard library's
    ``json`` elsewhere; ``"json"`` always uses ``json``; ``"orjson"``
    requires orjson (:class:`~shoebox.errors.MissingExtra` without it).
    Both write the same bytes for every record: orjson is used only for
    what it writes exactly as ``json`` does (see
    :mod:`shoebox_logging._orjson`), the rest takes the ``json`` path.
    """

    #: Whether the handler may format this class's records later, on its
    #: writer thread, from what :meth:`capture` took. Read from each class
    #: itself, never inherited: a subclass's hooks might look at the thread
    #: they run on.
    deferrable = True

    def __init__(self, *, static_fields: dict[str, Any] | None = None,
                 encoder: Encoder = "auto") -> None:
        super().__init__(static_fields=static_fields)
        self.encoder = one_of("encoder", encoder, ENCODERS)
        self._encode = _strict_encoder()
        self._fast: Callable[[dict[str, Any]], str | None] | None = None
        if encoder != "json":
            try:
                from . import _orjson
            except ImportError as exc:
                if encoder == "orjson":
                    raise MissingExtra.needs(
                        "ShoeboxJsonFormatter(encoder='orjson') needs orjson", "fast") from exc
            else:
                self._fast = _orjson.make_encoder(_DEFAULT)

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON text (see the class documentation).

        Does what ``JsonFormatter.format`` does for these fixed fields in
        one pass, since it runs for every record: the fields are built as
        one dict instead of through ``add_fields`` (format-string parsing,
        renames, a ``datetime`` per record). ``process_log_record`` and
        ``jsonify_log_record`` are still called, so subclasses can change
        the data or the encoding.
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

    def capture(self, record: logging.LogRecord) -> dict[str, Any] | None:
        """The attributes of ``record`` from which :meth:`format` gives, later
        and on another thread, the text it would give now (see
        :meth:`restore`); ``None`` when the record holds values that could
        change meanwhile (an extra that is a list, say), which must be
        formatted now.

        What depends on the moment is fixed in the copy: the message with
        its arguments merged, the traceback as text (the stack already is
        text), a dict logged as the message copied; every other attribute,
        logging's own and the extras, must be a string, a number, a boolean
        or ``None``, which cannot change. The record itself is left as it
        is, for other handlers.
        """
        attributes = record.__dict__.copy()
        message = record.msg
        if isinstance(message, dict):
            if not _UNCHANGING.issuperset(map(type, message.values())):
                return None
            attributes["msg"] = None  # put back, copied, once the rest is checked
        else:
            attributes["msg"] = record.getMessage()
        attributes["args"] = None
        if record.exc_info:
            attributes["exc_text"] = self.formatException(record.exc_info)
        attributes["exc_info"] = None
        # One pass in C over every attribute, logging's own (all of these
        # types but msg, args, exc_info, handled above) and the extras.
        if not _UNCHANGING.issuperset(map(type, attributes.values())):
            return None
        if isinstance(message, dict):
            attributes["msg"] = dict(message)
        return attributes

    @staticmethod
    def restore(attributes: dict[str, Any],
                record_class: type[logging.LogRecord] = logging.LogRecord) -> logging.LogRecord:
        """A record of ``record_class`` holding what :meth:`capture` took."""
        record = record_class.__new__(record_class)
        record.__dict__ = attributes
        return record

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        fast = self._fast
        if fast is not None:
            text = fast(log_data)
            if text is not None:
                return text
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

