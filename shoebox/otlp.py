"""Records as OTLP JSON log records (``shoebox cat --format otlp``), so that
an incident's archived logs can be replayed into an OpenTelemetry pipeline
(the Collector's ``otlpjsonfile`` receiver, or an OTLP/HTTP endpoint).

One batch of records is one ``ExportLogsServiceRequest`` in the protobuf
JSON mapping as OTLP uses it: ``resourceLogs`` → ``scopeLogs`` →
``logRecords``; camelCase names, 64-bit integers as decimal strings,
enums as numbers, and, as OTLP/JSON requires instead of protobuf's base64,
``traceId`` and ``spanId`` as hex. The mapping from the record schema of
docs/format.md:

- resource: ``service.name`` (metadata), ``host.name`` (``host``),
  ``process.pid`` (``pid``); scope: ``logger``;
- ``timeUnixNano`` from ``timestamp`` (milliseconds: the precision
  archives keep); ``severityNumber`` from ``severity_number``, else from
  ``level``; ``severityText`` from ``severity_text``, else ``level``;
  ``traceId``, ``spanId``, ``flags`` (``trace_flags``) and ``eventName``
  (``event_name``) when the metadata has them;
- body and attributes: a payload written by the OpenTelemetry processor
  (``{"body": …, "attributes": {…}}``) gives them back as they were;
  another JSON object gives its ``message`` (the handler's, loguru's) or
  ``event`` (structlog's) as the body and its other keys as attributes;
  any other payload is the body, as a string; metadata keys the mapping
  does not use become attributes where the payload has no such key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from .codec import Metadata

# Metadata keys the mapping turns into fields of its own.
_MAPPED = frozenset(["level", "logger", "timestamp", "host", "pid", "service.name",
                     "severity_number", "severity_text", "trace_id", "span_id",
                     "trace_flags", "event_name"])
# logging's level names (and loguru's, and OTel's short ones) as OTel
# severity numbers: the first of each range.
SEVERITY_NUMBERS = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "SUCCESS": 11, "NOTICE": 10,
                    "WARNING": 13, "WARN": 13, "ERROR": 17, "CRITICAL": 21, "FATAL": 21}


def any_value(value: Any) -> dict[str, Any]:
    """A JSON value as an OTLP ``AnyValue``."""
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64: a string in the JSON mapping
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    return {}  # null: an empty AnyValue


def key_values(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    """A dict as a list of OTLP ``KeyValue``."""
    return [{"key": str(key), "value": any_value(value)} for key, value in mapping.items()]


def _time_unix_nano(timestamp: str | None) -> str | None:
    if not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return str((delta.days * 86_400 + delta.seconds) * 1_000_000_000
               + delta.microseconds * 1_000)


def _body_and_attributes(payload: str) -> tuple[Any, dict[str, Any]]:
    try:
        value = json.loads(payload)
    except ValueError:
        return payload, {}
    if not isinstance(value, dict):
        return value, {}
    if "body" in value and set(value) <= {"body", "attributes"}:
        attributes = value.get("attributes")
        return value["body"], attributes if isinstance(attributes, dict) else {}
    for key in ("message", "event"):
        if key in value:
            body = value.pop(key)
            return body, value
    return value, {}


def log_record(metadata: Metadata, payload: str) -> dict[str, Any]:
    """One record as an OTLP JSON ``LogRecord``."""
    body, attributes = _body_and_attributes(payload)
    for key, text in metadata.items():
        if key not in _MAPPED and key not in attributes:
            attributes[key] = text
    record: dict[str, Any] = {}
    nanoseconds = _time_unix_nano(metadata.get("timestamp"))
    if nanoseconds is not None:
        record["timeUnixNano"] = nanoseconds
    level = metadata.get("level", "")
    number = metadata.get("severity_number")
    severity = (int(number) if number is not None and number.isdigit()
                else SEVERITY_NUMBERS.get(level.upper(), 0))
    if severity:
        record["severityNumber"] = severity
    text = metadata.get("severity_text", level)
    if text:
        record["severityText"] = text
    record["body"] = any_value(body)
    if attributes:
        record["attributes"] = key_values(attributes)
    if "trace_id" in metadata:
        record["traceId"] = metadata["trace_id"]
    if "span_id" in metadata:
        record["spanId"] = metadata["span_id"]
    flags = metadata.get("trace_flags")
    if flags:
        try:
            record["flags"] = int(flags, 16)
        except ValueError:
            pass
    if "event_name" in metadata:
        record["eventName"] = metadata["event_name"]
    return record


def _resource(metadata: Metadata) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if "service.name" in metadata:
        attributes["service.name"] = metadata["service.name"]
    if "host" in metadata:
        attributes["host.name"] = metadata["host"]
    pid = metadata.get("pid", "")
    if pid.isdigit():
        attributes["process.pid"] = int(pid)
    return {"attributes": key_values(attributes)}


def export_request(records: Iterable[tuple[Metadata, str]]) -> dict[str, Any]:
    """Records as one ``ExportLogsServiceRequest``: grouped by resource
    (service, host, pid), then by scope (logger), in the order first seen."""
    resources: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    firsts: dict[tuple[str, str, str], Metadata] = {}
    for metadata, payload in records:
        key = (metadata.get("service.name", ""), metadata.get("host", ""),
               metadata.get("pid", ""))
        firsts.setdefault(key, metadata)
        scopes = resources.setdefault(key, {})
        scopes.setdefault(metadata.get("logger", ""), []).append(log_record(metadata, payload))
    return {"resourceLogs": [
        {"resource": _resource(firsts[key]),
         "scopeLogs": [{"scope": {"name": name}, "logRecords": log_records}
                       for name, log_records in scopes.items()]}
        for key, scopes in resources.items()]}


def render_request(records: Iterable[tuple[Metadata, str]]) -> str:
    """:func:`export_request` as one line of JSON, newline included: the
    OTLP JSON file format (one request per line)."""
    # ASCII: a raw U+2028 inside a string is valid JSON but breaks the line
    # for readers that split as str.splitlines does.
    return json.dumps(export_request(records), separators=(",", ":")) + "\n"


__all__ = ["any_value", "export_request", "key_values", "log_record", "render_request"]
