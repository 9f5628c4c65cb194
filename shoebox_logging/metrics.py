"""The handler's counters as Prometheus metrics (``shoebox-archive[metrics]``).

:func:`register` adds a collector that reads :meth:`ShoeboxHandler.stats`
at each scrape, so nothing is counted twice and the write path does no
extra work::

    from prometheus_client import start_http_server
    from shoebox_logging.metrics import register

    register(handler)          # into prometheus_client's default registry
    start_http_server(9100)

Every series has a ``directory`` label, so several handlers can be
registered in one registry.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from shoebox.errors import MissingExtra

from .handler import ShoeboxHandler

try:
    import prometheus_client
    from prometheus_client.core import CounterMetricFamily
except ImportError as exc:
    raise MissingExtra.needs("shoebox_logging.metrics needs prometheus_client",
                             "metrics") from exc

# name, help, and the stats() key (or keys, by the label's value).
_COUNTERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("shoebox_handler_records_written", "Records written to archives",
     {"": "records_written"}),
    ("shoebox_handler_bytes_written", "Encoded bytes written to archives",
     {"": "bytes_written"}),
    ("shoebox_handler_records_dropped", "Records dropped: past the disk budget "
     "(max_local_mb), from a full queue (when_full=drop), not written in time by "
     "close(), logged re-entrantly too late",
     {"budget": "records_dropped_budget", "queue": "records_dropped_queue",
      "closing": "records_dropped_closing", "reentrant": "records_dropped_reentrant"}),
    ("shoebox_handler_errors", "Records lost to errors (failed writes, formatter "
     "errors, records too large)", {"": "errors"}),
    ("shoebox_handler_archives_closed", "Archives finished (renamed from .open)",
     {"": "archives_closed"}),
    ("shoebox_handler_finish_errors", "Rolled archives whose finish (fsync, rename, "
     "directory fsync) failed; their records are in the file", {"": "finish_errors"}),
    ("shoebox_handler_rolls_postponed", "Writes that found a roll due while the finisher "
     "was behind (a stalled disk), so the active archive grew on", {"": "rolls_postponed"}),
    ("shoebox_handler_skipped_not_regular", "Names in the directory the disk budget left "
     "out, not being regular files (symbolic links, FIFOs), each path once",
     {"": "skipped_not_regular"}),
)

_collectors: weakref.WeakKeyDictionary[Any, _HandlerCollector] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class _HandlerCollector:
    """The counters of every handler registered in one registry."""

    def __init__(self) -> None:
        self._handlers: weakref.WeakSet[ShoeboxHandler] = weakref.WeakSet()

    def add(self, handler: ShoeboxHandler) -> None:
        self._handlers.add(handler)

    def describe(self) -> Iterator[Any]:
        yield from self._families([])

    def collect(self) -> Iterator[Any]:
        yield from self._families([(handler.directory, handler.stats())
                                   for handler in list(self._handlers)])

    def _families(self, stats: list[tuple[str, dict[str, int]]]) -> Iterator[Any]:
        for name, help, keys in _COUNTERS:
            reason = [] if "" in keys else ["reason"]
            family = CounterMetricFamily(name, help, labels=["directory", *reason])
            for directory, values in stats:
                for label, key in keys.items():
                    family.add_metric([directory, label] if reason else [directory],
                                      values[key])
            yield family


def register(handler: ShoeboxHandler, registry: Any = None) -> Any:
    """Expose ``handler``'s :meth:`~ShoeboxHandler.stats` in ``registry``
    (default: prometheus_client's ``REGISTRY``) as
    ``shoebox_handler_records_written_total``,
    ``shoebox_handler_bytes_written_total``,
    ``shoebox_handler_records_dropped_total{reason="budget"|"queue"|"closing"|"reentrant"}``,
    ``shoebox_handler_errors_total`` and
    ``shoebox_handler_archives_closed_total``, labelled by ``directory``.
    Registering a handler twice is harmless; a handler that is garbage
    collected disappears from the metrics. Returns the registry's collector.
    """
    if registry is None:
        registry = prometheus_client.REGISTRY
    with _lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = _HandlerCollector()
            registry.register(collector)
        collector.add(handler)
    return collector


__all__ = ["register"]
