"""``shoebox cat --format otlp``: archived records, whatever wrote them, as
OTLP JSON log records that the protobuf JSON mapping of
ExportLogsServiceRequest accepts, one request per line."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from _logging_support import restore_logging  # noqa: F401
from archive_files import items, run, write
from google.protobuf import json_format
from opentelemetry._logs import SeverityNumber
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from shoebox_logging import ShoeboxHandler
from shoebox_logging.otel import ShoeboxLogRecordProcessor


def parse(line: str) -> ExportLogsServiceRequest:
    """One line as the protobuf message. OTLP/JSON writes trace and span ids
    as hex where protobuf's own mapping has base64: convert them first."""
    document = json.loads(line)
    for resource_logs in document["resourceLogs"]:
        for scope_logs in resource_logs["scopeLogs"]:
            for record in scope_logs["logRecords"]:
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    # ignore_unknown_fields=False: a misspelt field fails the test.
    return json_format.ParseDict(document, ExportLogsServiceRequest())


def otlp(capsys: pytest.CaptureFixture[str], *argv: Any) -> list[ExportLogsServiceRequest]:
    status, out, err = run(capsys, "cat", "--format", "otlp", *argv)
    assert status == 0, err
    return [parse(line) for line in out.splitlines()]


def test_records_of_the_otel_processor_come_back_as_they_were_emitted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    processor = ShoeboxLogRecordProcessor(directory=tmp_path)
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout"}),
                              shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    with TracerProvider().get_tracer("t").start_as_current_span("pay") as span:
        provider.get_logger("shop.payments").emit(
            body={"amount": 12.5, "items": ["a", None], "ok": True},
            severity_number=SeverityNumber.ERROR, severity_text="ERROR",
            event_name="payment.failed", attributes={"order.id": 42, "retry": False},
            timestamp=1_796_800_000_123_000_000)
        context = span.get_span_context()
    provider.shutdown()

    (request,) = otlp(capsys, tmp_path)
    (resource_logs,) = request.resource_logs
    resource = {kv.key: kv.value for kv in resource_logs.resource.attributes}
    assert resource["service.name"].string_value == "checkout"
    assert resource["process.pid"].int_value > 0
    (scope_logs,) = resource_logs.scope_logs
    assert scope_logs.scope.name == "shop.payments"
    (record,) = scope_logs.log_records
    assert record.time_unix_nano == 1_796_800_000_123_000_000
    assert (record.severity_number, record.severity_text) == (17, "ERROR")
    assert record.event_name == "payment.failed"
    assert record.trace_id == context.trace_id.to_bytes(16, "big")
    assert record.span_id == context.span_id.to_bytes(8, "big")
    assert record.flags == int(context.trace_flags)
    assert json_format.MessageToDict(record.body) == {"kvlistValue": {"values": [
        {"key": "amount", "value": {"doubleValue": 12.5}},
        {"key": "items", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {}]}}},
        {"key": "ok", "value": {"boolValue": True}}]}}
    assert {kv.key: json_format.MessageToDict(kv.value) for kv in record.attributes} == {
        "order.id": {"intValue": "42"}, "retry": {"boolValue": False}}


@pytest.mark.usefixtures("restore_logging")
def test_handler_records_map_message_to_body_and_fields_to_attributes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = ShoeboxHandler(directory=tmp_path, metadata_fields=["tenant"])
    logger = logging.getLogger("shop.orders")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("order %s late", 7, extra={"tenant": "acme", "order": 7})
    handler.close()
    (request,) = otlp(capsys, tmp_path)
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    assert request.resource_logs[0].scope_logs[0].scope.name == "shop.orders"
    assert record.body.string_value == "order 7 late"
    assert (record.severity_number, record.severity_text) == (13, "WARNING")
    attributes = {kv.key: json_format.MessageToDict(kv.value) for kv in record.attributes}
    assert attributes["order"] == {"intValue": "7"}
    assert attributes["tenant"] == {"stringValue": "acme"}
    assert not record.trace_id


def test_each_line_is_one_request_of_at_most_1024_records_grouped_by_resource(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "a.events", items(1000, host="web-1") + items(30, host="web-2"))
    requests = otlp(capsys, tmp_path)
    assert [sum(len(scope.log_records) for resource in request.resource_logs
                for scope in resource.scope_logs) for request in requests] == [1024, 6]
    hosts = [[kv.value.string_value for kv in resource.resource.attributes
              if kv.key == "host.name"] for resource in requests[0].resource_logs]
    assert hosts == [["web-1"], ["web-2"]]
    # Not JSON objects of ours, yet valid: the payload's message is the body.
    first = requests[0].resource_logs[0].scope_logs[0].log_records[0]
    assert first.body.string_value == "event 0"
    assert {kv.key for kv in first.attributes} == {"n", "index"}


def test_where_and_limit_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "a.events", items(40))
    (request,) = otlp(capsys, "--where", "level=ERROR", "--limit", "3", tmp_path)
    records = request.resource_logs[0].scope_logs[0].log_records
    assert [record.severity_text for record in records] == ["ERROR"] * 3


def test_otlp_refuses_half_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "a.events", items(1))
    status, out, err = run(capsys, "cat", "--format", "otlp", "--payload-only", tmp_path)
    assert (status, out) == (2, "")
    assert "--format otlp" in err
