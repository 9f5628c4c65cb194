"""loguru into shoebox archives (``pip install 'shoebox-archive[loguru]'``):
``logger.add(ShoeboxSink(directory=…), format="{message}")``.

loguru hands a sink object a message whose ``record`` dict holds what was
logged; :class:`ShoeboxSink` takes that dict, not the formatted text, into
the record schema of docs/format.md: metadata ``level`` (loguru's level
name: ``TRACE`` and ``SUCCESS`` stay themselves), ``logger`` (the module's
name), ``timestamp`` (the record's time in the handler's UTC form),
``host``, ``pid`` and the bound ``extra`` keys named by
``metadata_fields``; payload ``message``, ``module``, ``function``,
``line``, every ``extra`` field (one whose name those already have is
kept as ``extra.<name>``, as the handler's formatter does) and
``exception`` (the traceback as text).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from shoebox.errors import MissingExtra

try:
    import loguru  # noqa: F401  (the extra must be there, even though records are duck-typed)
except ImportError as exc:
    raise MissingExtra.needs("shoebox_logging.loguru needs loguru", "loguru") from exc

from ._events import archive, build_handler, make_record

__all__ = ["ShoeboxSink"]


def _exception_text(exception: Any, text: str) -> str:
    """The traceback as Python prints it; with ``enqueue=True`` loguru
    pickles the record without its traceback, so then the one loguru
    rendered into the message ``text`` (``diagnose=False`` keeps variable
    values out of it)."""
    if exception.traceback is None:
        start = text.find("Traceback (most recent call last")
        if start >= 0:
            return text[start:].rstrip("\n")
    return "".join(traceback.format_exception(
        exception.type, exception.value, exception.traceback)).rstrip("\n")


def _payload(record: dict[str, Any], text: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"message": record["message"], "module": record["module"],
                               "function": record["function"], "line": record["line"]}
    for key, value in record["extra"].items():
        payload["extra." + key if key in payload else key] = value
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        payload["exception"] = _exception_text(exception, text)
    return payload


def _record(message: Any) -> logging.LogRecord:
    record = message.record
    name = record["name"]
    return make_record(_payload(record, str(message)),
                       logger=name if name is not None else "root",
                       level=record["level"].name, created=record["time"].timestamp(),
                       filename=record["file"].path, line=record["line"])


class ShoeboxSink:
    """A loguru sink writing records into shoebox archives.

    Takes :class:`~shoebox_logging.ShoeboxHandler`'s options as keyword
    arguments (``directory`` required; rolling, ``callbacks``,
    ``metadata_fields`` — looked up in the bound ``extra`` —,
    ``queue_size``, ``max_local_mb``, …; not ``level``, which is
    ``logger.add``'s). A bad or unknown option raises here, naming itself.

    loguru calls :meth:`write` for every message (on its own worker thread
    with ``enqueue=True``, so the logging thread never waits on the disk)
    and :meth:`stop` when the sink is removed, at the latest at interpreter
    exit (``logger.remove()`` runs then); ``logging.shutdown`` closes the
    archive too if loguru has not. Nothing raises into the application:
    errors go to the handler's ``handleError``.

    The sink has no ``flush``: loguru would call it after every message,
    making the application wait for shoebox's writer thread in
    non-blocking mode (``queue_size``). :meth:`complete` waits for it
    instead, after ``logger.complete()`` has drained loguru's own queue.
    """

    def __init__(self, **options: Any) -> None:
        #: The handler writing the archives.
        self.handler = build_handler(type(self).__name__, options)

    @property
    def directory(self) -> str:
        """Where archives are written."""
        return self.handler.directory

    def write(self, message: Any) -> None:
        """Archive the record of loguru's ``message`` (its formatted text is
        not used: ``format="{message}"`` spares loguru the work)."""
        archive(self.handler, __name__, _record, message)

    def complete(self) -> None:
        """Wait until every message written so far is in its archive (in
        non-blocking mode, shoebox's writer thread has written it)."""
        self.handler.flush()

    def stop(self) -> None:
        """Write what is queued and finish the active archive (loguru calls it
        on ``logger.remove``); stopping twice is harmless."""
        self.handler.close()

    def stats(self) -> dict[str, int]:
        """The handler's counters (:meth:`ShoeboxHandler.stats`)."""
        return self.handler.stats()

    def __repr__(self) -> str:
        return f"<ShoeboxSink {self.directory}>"
