"""structlog into shoebox archives (``pip install 'shoebox-archive[structlog]'``).

Two paths give the same record (docs/integrations.md, docs/format.md):

- :class:`ShoeboxLoggerFactory`, structlog's fast path: the processor chain
  ends without a renderer and the factory's logger writes the event dict
  straight into archives, skipping the standard library;
- :class:`ShoeboxRenderer` as the last processor of a
  ``structlog.stdlib.ProcessorFormatter`` set on a
  :class:`~shoebox_logging.ShoeboxHandler`.

The payload is the event dict as structlog's processors left it, with an
``exc_info`` turned into ``exception`` text (structlog's own
``format_exc_info``); the metadata holds ``level``, ``logger``,
``timestamp`` (when the log call reached shoebox, in the handler's UTC
form), ``host``, ``pid`` and the keys named by ``metadata_fields``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, cast

from shoebox.errors import MissingExtra

try:
    # The package itself, not only the submodule: a blocked or missing
    # structlog must fail here even when the submodule is cached.
    import structlog.processors
except ImportError as exc:
    raise MissingExtra.needs("shoebox_logging.structlog needs structlog", "structlog") from exc

from ._events import EventFormatter, archive, build_handler, make_record, parse_json_object

__all__ = ["ShoeboxLogger", "ShoeboxLoggerFactory", "ShoeboxRenderer"]

# structlog's method names (those its loggers call on the wrapped logger,
# and the aliases its PrintLogger accepts) as logging's level names.
_LEVELS = {"debug": "DEBUG", "info": "INFO", "msg": "INFO", "log": "INFO",
           "warning": "WARNING", "warn": "WARNING", "error": "ERROR", "err": "ERROR",
           "exception": "ERROR", "critical": "CRITICAL", "fatal": "CRITICAL",
           "failure": "CRITICAL"}
# What ProcessorFormatter adds to the event dict for its processors.
_FORMATTER_KEYS = ("_record", "_from_structlog")


def _prepared(event_dict: dict[str, Any]) -> dict[str, Any]:
    """The payload: ``exc_info`` as ``exception`` text, as structlog's
    ``format_exc_info`` writes it, every other value as it is."""
    if "exc_info" in event_dict:
        # It returns the dict it was given, changed.
        return cast("dict[str, Any]", structlog.processors.format_exc_info(None, "", event_dict))
    return event_dict


class ShoeboxLogger:
    """The logger :class:`ShoeboxLoggerFactory` makes: structlog calls its
    method named for the level (``info``, ``error``, …) with the processed
    event dict as keyword arguments.

    A chain that still ends with a renderer passes text instead: a JSON
    object is taken as the event dict, other text is archived as
    ``{"event": text}``. Nothing raises into the application: errors go to
    the handler's ``handleError``.
    """

    def __init__(self, factory: ShoeboxLoggerFactory, name: str) -> None:
        self._factory = factory
        #: The logger name (structlog's ``add_logger_name`` reads it).
        self.name = name

    def _log(self, level: str, args: tuple[Any, ...], event_dict: dict[str, Any]) -> None:
        archive(self._factory.handler, __name__, self._record, level, args, event_dict)

    def _record(self, level: str, args: tuple[Any, ...],
                event_dict: dict[str, Any]) -> logging.LogRecord:
        if args:
            text = args[0]
            rendered = parse_json_object(text) if isinstance(
                text, (str, bytes, bytearray)) else None
            event_dict = rendered if rendered is not None else {"event": text}
        logger = event_dict.get("logger")
        return make_record(_prepared(event_dict), level=level,
                           logger=logger if type(logger) is str else self.name)

    def __getattr__(self, method: str) -> Callable[..., None]:
        level = _LEVELS.get(method)
        if level is None:
            raise AttributeError(method)

        def log(*args: Any, **event_dict: Any) -> None:
            self._log(level, args, event_dict)

        log.__name__ = method
        # Cached on the instance: the next call finds it without __getattr__.
        setattr(self, method, log)
        return log

    def __repr__(self) -> str:
        return f"<ShoeboxLogger {self.name!r} {self._factory.handler.directory}>"


class ShoeboxLoggerFactory:
    """structlog's ``logger_factory``: loggers that write event dicts into
    shoebox archives, one archive per process shared by every logger it
    makes.

    Takes :class:`~shoebox_logging.ShoeboxHandler`'s options as keyword
    arguments (``directory`` required; rolling, ``callbacks``,
    ``metadata_fields`` — looked up in the event dict —, ``queue_size``,
    ``when_full``, ``max_local_mb``, …; not ``level``: filter with
    structlog's ``make_filtering_bound_logger``). A bad or unknown option
    raises here, naming itself. The archive is closed by :meth:`close`, or
    at interpreter exit by ``logging.shutdown``, as handlers are.

    ``structlog.get_logger("name")`` gives a logger named ``name``; without
    a name, ``"root"``, as the standard library's unnamed logger. An event
    dict's own ``logger`` key (``add_logger_name``) wins.
    """

    def __init__(self, **options: Any) -> None:
        #: The handler writing the archives.
        self.handler = build_handler(type(self).__name__, options)
        self._loggers: dict[str, ShoeboxLogger] = {}
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> ShoeboxLogger:
        name = args[0] if args and isinstance(args[0], str) else "root"
        logger = self._loggers.get(name)
        if logger is None:
            with self._lock:
                logger = self._loggers.setdefault(name, ShoeboxLogger(self, name))
        return logger

    @property
    def directory(self) -> str:
        """Where archives are written."""
        return self.handler.directory

    def stats(self) -> dict[str, int]:
        """The handler's counters (:meth:`ShoeboxHandler.stats`)."""
        return self.handler.stats()

    def flush(self) -> None:
        """Wait until every event logged so far is written."""
        self.handler.flush()

    def close(self) -> None:
        """Write what is queued and finish the active archive; closing twice
        is harmless."""
        self.handler.close()


class ShoeboxRenderer:
    """The last processor of a ``structlog.stdlib.ProcessorFormatter`` set on
    a :class:`~shoebox_logging.ShoeboxHandler`: renders the event dict as
    the payload :class:`ShoeboxLoggerFactory` writes (the same bytes), and
    drops the ``_record`` and ``_from_structlog`` keys the formatter adds."""

    def __init__(self) -> None:
        self._formatter = EventFormatter()

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        for key in _FORMATTER_KEYS:
            event_dict.pop(key, None)
        return self._formatter.render(_prepared(event_dict))
