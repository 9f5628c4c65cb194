"""What ShoeboxHandler archives for a record: metadata, the JSON payload,
tracebacks and stacks, values JSON cannot encode, and custom formatters."""

from __future__ import annotations

import datetime
import json
import logging
import logging.config
import os
import re
import socket
from pathlib import Path

import pytest
from _logging_support import attach, read_records, restore_logging  # noqa: F401

from shoebox_logging import ShoeboxHandler

pytestmark = pytest.mark.usefixtures("restore_logging")

ISO_MILLIS_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _log_one(tmp_path: Path, *args: object, metadata_fields: tuple[str, ...] = (),
             **kwargs: object) -> tuple[dict[str, str], dict[str, object]]:
    handler = ShoeboxHandler(directory=tmp_path, metadata_fields=metadata_fields)
    try:
        attach(handler).info(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        handler.close()
    ((metadata, payload),) = read_records(tmp_path)
    return metadata, payload


def test_metadata_holds_the_standard_fields_and_chosen_extras_as_text(tmp_path: Path) -> None:
    metadata, _ = _log_one(tmp_path, "hi", metadata_fields=("request_id", "count", "absent"),
                           extra={"request_id": "r-1", "count": 7, "other": "x"})
    assert set(metadata) == {"level", "logger", "timestamp", "host", "pid",
                             "request_id", "count"}
    assert metadata["level"] == "INFO"
    assert metadata["logger"] == "test.app"
    assert re.fullmatch(ISO_MILLIS_UTC, metadata["timestamp"])
    assert metadata["host"] == socket.gethostname()
    assert metadata["pid"] == str(os.getpid())
    assert (metadata["request_id"], metadata["count"]) == ("r-1", "7")


def test_metadata_fields_can_name_record_attributes(tmp_path: Path) -> None:
    metadata, _ = _log_one(tmp_path, "hi", metadata_fields=("funcName", "lineno"))
    assert metadata["funcName"] == "_log_one" and metadata["lineno"].isdigit()


def test_metadata_fields_are_taken_from_a_dict_message_first(tmp_path: Path) -> None:
    """structlog's ProcessorFormatter path logs the event dict as the message."""
    metadata, _ = _log_one(tmp_path, {"event": "paid", "order": 42, "tenant": "t-dict"},
                           metadata_fields=("order", "tenant"), extra={"tenant": "t-extra"})
    assert (metadata["order"], metadata["tenant"]) == ("42", "t-dict")


def test_timestamp_is_the_records_creation_time_in_utc(tmp_path: Path) -> None:
    before = datetime.datetime.now(datetime.timezone.utc)
    metadata, payload = _log_one(tmp_path, "hi")
    after = datetime.datetime.now(datetime.timezone.utc)
    stamp = datetime.datetime.strptime(metadata["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    assert before - datetime.timedelta(milliseconds=1) <= stamp <= after
    assert payload["timestamp"] == metadata["timestamp"]


def test_payload_holds_the_message_record_fields_and_every_extra(tmp_path: Path) -> None:
    _, payload = _log_one(tmp_path, "order %s: %d items", "A-1", 3,
                          extra={"request_id": "r-1", "amount": 4.5, "tags": ["a", "b"],
                                 "level": "custom"})
    assert payload == {
        "message": "order A-1: 3 items",
        "timestamp": payload["timestamp"],
        "level": "INFO",
        "logger": "test.app",
        "module": "test_logging_records",
        "function": "_log_one",
        "line": payload["line"],
        "thread_name": "MainThread",
        "process_name": "MainProcess",
        "amount": 4.5,
        "extra.level": "custom",
        "request_id": "r-1",
        "tags": ["a", "b"],
    }
    assert isinstance(payload["line"], int)


def test_exception_traceback_and_stack_land_in_the_payload(tmp_path: Path) -> None:
    handler = ShoeboxHandler(directory=tmp_path)
    logger = attach(handler)
    try:
        {}["missing"]
    except KeyError:
        logger.exception("lookup failed", stack_info=True)
    logger.error("no exception here")
    handler.close()

    (metadata, failed), (_, plain) = read_records(tmp_path)
    assert metadata["level"] == "ERROR"
    assert failed["exc_info"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in failed["exc_info"]
    assert failed["stack_info"].startswith("Stack (most recent call last):")
    assert "test_exception_traceback_and_stack_land_in_the_payload" in failed["stack_info"]
    assert "exc_info" not in plain and "stack_info" not in plain


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_values_json_cannot_encode_are_written_as_strings(tmp_path: Path) -> None:
    cycle: dict[str, object] = {}
    cycle["self"] = cycle
    when = datetime.datetime(2026, 11, 27, 8, 15, 2, tzinfo=datetime.timezone.utc)
    metadata, payload = _log_one(
        tmp_path, "odd values", metadata_fields=("when", "unprintable"),
        extra={"when": when, "raw": b"\xff\x00", "tags": {"only"}, "obj": object(),
               "nan": float("nan"), "cycle": cycle, "tuple_keys": {(1, 2): 3},
               "unprintable": _Unprintable(), "fine": 1})
    assert payload["when"] == "2026-11-27T08:15:02+00:00"
    assert payload["raw"] == "_wA="  # python-json-logger: URL-safe base64
    assert payload["tags"] == "{'only'}"
    assert payload["obj"].startswith("<object object at ")
    assert payload["nan"] == "nan"
    assert payload["cycle"] == "{'self': {...}}"
    assert payload["tuple_keys"] == "{(1, 2): 3}"
    assert payload["fine"] == 1
    assert metadata["when"] == "2026-11-27 08:15:02+00:00"
    assert metadata["unprintable"] == "<unprintable _Unprintable>"
    assert payload["unprintable"] == "__could_not_encode__"  # python-json-logger's word


def test_text_utf8_cannot_encode_is_escaped_not_the_record_lost(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A lone surrogate (a file name decoded with surrogateescape) in an extra."""
    name = os.fsdecode(b"caf\xe9.txt")
    metadata, payload = _log_one(tmp_path, "opened %s", name, metadata_fields=("path",),
                                 extra={"path": name})
    assert metadata["path"] == "caf\\udce9.txt"
    assert payload["path"] == payload["message"][len("opened "):] == name
    assert "Logging error" not in capsys.readouterr().err


def test_a_json_formatter_writing_raw_surrogates_loses_no_record(tmp_path: Path) -> None:
    handler = ShoeboxHandler(directory=tmp_path)
    handler.setFormatter(logging.Formatter('{"message": "%(message)s"}'))
    attach(handler).info(os.fsdecode(b"\xff"))
    handler.close()
    assert [payload for _, payload in read_records(tmp_path)] == [{"message": "\udcff"}]


def test_a_dict_message_is_merged_into_the_payload(tmp_path: Path) -> None:
    _, payload = _log_one(tmp_path, {"event": "login", "user": "ann"})
    assert (payload["event"], payload["user"], payload["message"]) == ("login", "ann", "")


def _close_archive_handlers() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ShoeboxHandler):
            handler.close()


def _configure_formatter(tmp_path: Path, formatter: dict[str, object]) -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"custom": formatter},
        "handlers": {"archive": {"class": "shoebox_logging.ShoeboxHandler",
                                 "directory": str(tmp_path), "formatter": "custom"}},
        "root": {"level": "INFO", "handlers": ["archive"]},
    })


def test_a_json_formatter_set_through_dictconfig_replaces_the_default(tmp_path: Path) -> None:
    _configure_formatter(tmp_path, {"()": "pythonjsonlogger.json.JsonFormatter",
                                    "fmt": "%(levelname)s %(message)s",
                                    "rename_fields": {"levelname": "severity"}})
    logging.getLogger("svc").warning("custom %s", "fields", extra={"k": "v"})
    _close_archive_handlers()

    ((metadata, payload),) = read_records(tmp_path)
    assert payload == {"severity": "WARNING", "message": "custom fields", "k": "v"}
    assert metadata["level"] == "WARNING"


class _HandMadeJson(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"msg": record.getMessage(), "n": record.lineno})


def test_a_formatter_of_any_class_that_emits_json_objects_is_kept_as_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = ShoeboxHandler(directory=tmp_path)
    handler.setFormatter(_HandMadeJson())
    attach(handler).info("hand %s", "made")
    handler.close()

    ((_, payload),) = read_records(tmp_path)
    assert payload["msg"] == "hand made" and isinstance(payload["n"], int)
    assert "Logging error" not in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["%(levelname)s %(message)s", "%(message)s"])
def test_a_plain_text_formatter_is_wrapped_as_json_and_reported_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        fmt: str) -> None:
    _configure_formatter(tmp_path, {"format": fmt})
    log = logging.getLogger("svc")
    log.info("plain %d", 1)
    log.info("42")  # JSON, but not an object: still wrapped
    log.info("plain %d", 3)
    _close_archive_handlers()

    prefix = "INFO " if "levelname" in fmt else ""
    assert [payload for _, payload in read_records(tmp_path)] == [
        {"message": f"{prefix}plain 1"}, {"message": f"{prefix}42"},
        {"message": f"{prefix}plain 3"}]
    err = capsys.readouterr().err
    assert err.count("--- Logging error ---") == 1
    assert "is not a JSON object" in err
