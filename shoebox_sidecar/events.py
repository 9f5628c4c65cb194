"""What the sidecar tells about its work: each :class:`Event` is built once,
with its name and fields, and handed to every observer. The JSON log is one
observer (:class:`LogObserver`); the Prometheus metrics are another
(:class:`~shoebox_sidecar.metrics.SidecarMetrics`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .logs import logger


@dataclass(frozen=True)
class Event:
    """One thing the sidecar did or saw.

    ``name`` is the log line's ``event`` field (``shipped``, ``retrying``,
    ``failed``, ``quarantined``…), ``message`` its sentence and ``fields``
    its other JSON fields. ``failed_attempt`` marks an attempt to ship an
    archive that failed; its ``transient`` field then says whether it is
    tried again.
    """

    name: str
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    level: int = logging.INFO
    failed_attempt: bool = False
    #: Whether the log line carries the traceback of the exception being handled.
    exc_info: bool = False


class SidecarObserver:
    """Told every :class:`Event` of a :class:`~shoebox_sidecar.sidecar.Sidecar`
    as it happens, from the sidecar's threads. :meth:`notify` does nothing
    here; a subclass overrides it, and must not raise or block."""

    def notify(self, event: Event) -> None:
        """``event`` happened."""


class LogObserver(SidecarObserver):
    """Writes each event as a log line of the ``shoebox_sidecar`` logger: the
    event's sentence, with its name as ``event`` and its fields as extras."""

    def notify(self, event: Event) -> None:
        logger.log(event.level, "%s", event.message, exc_info=event.exc_info,
                   extra={"event": event.name, **event.fields})


class Observers(SidecarObserver):
    """Tells each of ``observers`` in turn."""

    def __init__(self, observers: Iterable[SidecarObserver]) -> None:
        self.observers = tuple(observers)

    def notify(self, event: Event) -> None:
        for observer in self.observers:
            observer.notify(event)
