"""OpenTelemetry into archives: ShoeboxLogRecordProcessor on the SDK's
LoggerProvider, fed by the Logs API and by the logging bridge; severity,
trace context, resource and event name as metadata; force_flush's timeout
and shutdown."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from _logging_support import read_records, restore_logging  # noqa: F401
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from shoebox.callbacks import ArchiveCallback
from shoebox_logging.otel import ShoeboxLogRecordProcessor

RESOURCE = Resource.create({"service.name": "checkout", "deployment.environment": "prod"})


def provider_with(processor: ShoeboxLogRecordProcessor) -> LoggerProvider:
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    return provider


def test_severity_trace_context_resource_and_event_name_become_metadata(
        tmp_path: Path) -> None:
    processor = ShoeboxLogRecordProcessor(
        directory=tmp_path, metadata_fields=["order.id", "deployment.environment"])
    provider = provider_with(processor)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("checkout") as span:
        provider.get_logger("shop.payments", "1.2").emit(
            body={"amount": 12.5, "currency": "EUR"}, severity_number=SeverityNumber.WARN2,
            severity_text="Warning", event_name="payment.slow",
            attributes={"order.id": 42, "retries": [1, 2]})
        context = span.get_span_context()
    provider.get_logger("shop.payments").emit(body="no span", timestamp=1_796_800_000_500_000_000)
    provider.shutdown()
    (metadata, payload), (plain, plain_payload) = read_records(tmp_path)
    assert metadata == {
        "level": "WARNING", "logger": "shop.payments", "timestamp": metadata["timestamp"],
        "host": metadata["host"], "pid": metadata["pid"], "order.id": "42",
        "deployment.environment": "prod", "severity_number": "14",
        "severity_text": "Warning", "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}", "trace_flags": f"{int(context.trace_flags):02x}",
        "event_name": "payment.slow", "service.name": "checkout"}
    assert payload == {"body": {"amount": 12.5, "currency": "EUR"},
                       "attributes": {"order.id": 42, "retries": [1, 2]}}
    # No trace, no severity: neither is made up; the record's own time is kept.
    assert plain == {"level": "INFO", "logger": "shop.payments",
                     "timestamp": "2026-12-09T07:06:40.500Z", "host": plain["host"],
                     "pid": plain["pid"], "deployment.environment": "prod",
                     "service.name": "checkout"}
    assert plain_payload == {"body": "no span"}


@pytest.mark.usefixtures("restore_logging")
def test_the_logging_bridge_s_records_are_archived(tmp_path: Path) -> None:
    processor = ShoeboxLogRecordProcessor(directory=tmp_path)
    provider = provider_with(processor)
    logger = logging.getLogger("shop.orders")
    logger.addHandler(LoggingHandler(logger_provider=provider))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.info("order %s placed", 7, extra={"order_id": 7})
    try:
        raise RuntimeError("card declined")
    except RuntimeError:
        logger.exception("payment failed")
    provider.shutdown()
    (placed, placed_payload), (failed, failed_payload) = read_records(tmp_path)
    assert (placed["level"], placed["logger"], placed["severity_text"]) == (
        "INFO", "shop.orders", "INFO")
    assert placed_payload == {"body": "order 7 placed", "attributes": {"order_id": 7}}
    assert (failed["level"], failed["severity_number"]) == ("ERROR", "17")
    attributes = failed_payload["attributes"]
    assert attributes["exception.type"] == "RuntimeError"
    assert attributes["exception.stacktrace"].startswith("Traceback (most recent call last")


class Stall(ArchiveCallback):
    """Holds the writer inside a roll until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def on_close(self, filename: str) -> str | None:
        self.entered.set()
        self.release.wait(30)
        return filename


def test_force_flush_returns_false_on_timeout_and_true_once_written(tmp_path: Path) -> None:
    stall = Stall()
    processor = ShoeboxLogRecordProcessor(directory=tmp_path, queue_size=100,
                                          roll_size_mb=0.001, callbacks=[stall])
    provider = provider_with(processor)
    logger = provider.get_logger("test")
    try:
        for n in range(20):  # the first roll stalls the writer thread
            logger.emit(body=f"event {n} " + "x" * 100, severity_number=SeverityNumber.INFO)
        assert stall.entered.wait(10)
        assert processor.force_flush(timeout_millis=50) is False
    finally:
        stall.release.set()
    assert processor.force_flush(timeout_millis=10_000) is True
    assert processor.stats()["records_written"] == 20
    provider.shutdown()


def test_shutdown_twice_is_harmless_and_later_records_are_ignored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    processor = ShoeboxLogRecordProcessor(directory=tmp_path)
    provider = provider_with(processor)
    logger = provider.get_logger("test")
    logger.emit(body="kept")
    provider.shutdown()  # calls processor.shutdown()
    processor.shutdown()
    logger.emit(body="after shutdown")  # the provider no longer passes it on...
    processor.on_emit(_any_record())  # ...nor does the processor
    assert processor.force_flush() is True
    assert [payload["body"] for _m, payload in read_records(tmp_path)] == ["kept"]
    assert not list(tmp_path.glob("*.open"))
    assert capsys.readouterr().err == ""


def _any_record() -> ReadWriteLogRecord:
    """A record as the SDK hands it to a processor."""
    return ReadWriteLogRecord(LogRecord(body="late"), resource=RESOURCE)


def test_an_attribute_named_like_a_record_field_never_replaces_the_event_or_its_time():
    """An OTel attribute "msg" or "created" chosen as metadata must not turn
    the payload into a string or move the record's time."""
    from shoebox_logging._events import make_record

    record = make_record({"event": "payment"}, logger="app", level="INFO", created=1.5,
                         attributes={"msg": "not the event", "created": 99.0, "user": "7"})
    assert record.msg == {"event": "payment"} and record.created == 1.5
    assert record.user == "7"
