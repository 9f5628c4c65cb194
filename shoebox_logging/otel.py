"""OpenTelemetry logs into shoebox archives (``pip install
'shoebox-archive[otel]'``): a ``LogRecordProcessor`` for the SDK's
``LoggerProvider``, so that every log, whether emitted through the Logs
API or through the logging bridge (``LoggingHandler``), is also kept on
cheap storage; ``shoebox cat --format otlp`` hands archived records back as
OTLP JSON (:mod:`shoebox.otlp`).

The record schema (docs/format.md): metadata ``level`` (logging's name for
the severity number: ``TRACE``, ``DEBUG``, ``INFO``, ``WARNING``,
``ERROR``, ``CRITICAL``), ``logger`` (the instrumentation scope's name),
``timestamp`` (the record's time, else its observed time, in the
handler's UTC form), ``host``, ``pid``, then, when set,
``severity_number``, ``severity_text``, ``trace_id`` and ``span_id``
(lowercase hex, 32 and 16 digits), ``trace_flags`` (two hex digits, as in
``traceparent``), ``event_name``, ``service.name``, and the names in
``metadata_fields`` (looked up in the record's attributes, then in the
resource's); payload ``{"body": …, "attributes": {…}}`` (``attributes``
when there are any; an exception is in them, as the SDK puts it:
``exception.type``, ``exception.message``, ``exception.stacktrace``).
"""

from __future__ import annotations

import logging
from typing import Any

from shoebox.errors import MissingExtra

try:
    import opentelemetry.sdk._logs as sdk_logs
except ImportError as exc:
    raise MissingExtra.needs("shoebox_logging.otel needs opentelemetry-sdk", "otel") from exc

from ._events import archive, build_handler, make_record

__all__ = ["ShoeboxLogRecordProcessor"]

#: Metadata keys the processor sets when the record has them.
OTEL_METADATA = ("severity_number", "severity_text", "trace_id", "span_id", "trace_flags",
                 "event_name", "service.name")
# The upper bounds of OTel's severity number ranges (TRACE 1-4, DEBUG 5-8,
# INFO 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24), as logging's names, so
# that `--where level=ERROR` finds errors whatever wrote them.
_LEVELS = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARNING"), (20, "ERROR"),
           (24, "CRITICAL"))


def _level(number: int | None, text: str | None) -> str:
    if number:
        for upper, name in _LEVELS:
            if number <= upper:
                return name
    return text or "INFO"


class ShoeboxLogRecordProcessor(sdk_logs.LogRecordProcessor):
    """An OpenTelemetry SDK ``LogRecordProcessor`` that archives every record
    it is given: ``provider.add_log_record_processor(
    ShoeboxLogRecordProcessor(directory=…))``.

    Takes :class:`~shoebox_logging.ShoeboxHandler`'s options as keyword
    arguments (``directory`` required; rolling, ``callbacks``,
    ``metadata_fields``, ``queue_size``, ``max_local_mb``, …; not
    ``level``). A bad or unknown option raises here, naming itself.

    :meth:`on_emit` writes on the emitting thread, or hands the encoded
    record to shoebox's writer thread with ``queue_size``: no batching
    thread of its own is needed, as the archive buffers already (put it
    beside, not behind, a ``BatchLogRecordProcessor``). It never raises
    into the application: errors go to the handler's ``handleError``.
    :meth:`force_flush` waits at most its timeout; :meth:`shutdown` closes
    the archive (the provider calls it at interpreter exit), and calling it
    twice is harmless; records emitted after it are ignored, as the
    specification asks.
    """

    def __init__(self, **options: Any) -> None:
        #: The handler writing the archives.
        self.handler = build_handler(type(self).__name__, options, OTEL_METADATA)
        self._user_fields = tuple(name for name in self.handler.metadata_fields
                                  if name not in OTEL_METADATA)
        self._shut_down = False

    @property
    def directory(self) -> str:
        """Where archives are written."""
        return self.handler.directory

    def on_emit(self, log_record: sdk_logs.ReadWriteLogRecord) -> None:
        """Archive ``log_record``."""
        if self._shut_down:
            return
        archive(self.handler, __name__, self._record, log_record)

    def _record(self, log_record: sdk_logs.ReadWriteLogRecord) -> logging.LogRecord:
        record = log_record.log_record
        resource = log_record.resource
        resource_attributes = resource.attributes if resource is not None else {}
        attributes = dict(record.attributes) if record.attributes else {}
        payload: dict[str, Any] = {"body": record.body}
        if attributes:
            payload["attributes"] = attributes
        number = record.severity_number.value if record.severity_number is not None else None
        fields: dict[str, Any] = {}
        if number:
            fields["severity_number"] = str(number)
        if record.severity_text:
            fields["severity_text"] = record.severity_text
        if record.trace_id:  # 0 is the invalid id of "no trace"
            fields["trace_id"] = f"{record.trace_id:032x}"
            if record.span_id:
                fields["span_id"] = f"{record.span_id:016x}"
            if record.trace_flags is not None:
                fields["trace_flags"] = f"{int(record.trace_flags):02x}"
        if record.event_name:
            fields["event_name"] = record.event_name
        service = resource_attributes.get("service.name")
        if service is not None:
            fields["service.name"] = service
        for name in self._user_fields:
            if name in attributes:
                fields[name] = attributes[name]
            elif name in resource_attributes:
                fields[name] = resource_attributes[name]
        nanoseconds = record.timestamp or record.observed_timestamp
        scope = log_record.instrumentation_scope
        return make_record(payload, logger=scope.name if scope is not None else "root",
                           level=_level(number, record.severity_text),
                           created=nanoseconds / 1e9 if nanoseconds else None,
                           attributes=fields)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every record emitted so far is written; ``False`` if
        that took longer than ``timeout_millis`` (the records are still
        written, later)."""
        if self._shut_down:
            return True
        return self.handler.wait_written(max(0, timeout_millis) / 1000)

    def shutdown(self) -> None:
        """Write what is queued, finish the active archive; twice is harmless."""
        self._shut_down = True
        self.handler.close()

    def stats(self) -> dict[str, int]:
        """The handler's counters (:meth:`ShoeboxHandler.stats`)."""
        return self.handler.stats()

    def __repr__(self) -> str:
        return f"<ShoeboxLogRecordProcessor {self.directory}>"
