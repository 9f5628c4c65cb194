"""structlog into archives: the logger factory (no standard library) and
ProcessorFormatter on a ShoeboxHandler give the same record; the event dict
is the payload as structlog's processors left it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from _logging_support import read_records, restore_logging  # noqa: F401

from shoebox_logging import ShoeboxHandler
from shoebox_logging.structlog import ShoeboxLoggerFactory, ShoeboxRenderer

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture(autouse=True)
def reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def fixed_time(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A processor stamping a known time, so that two runs compare equal."""
    event_dict["timestamp"] = "2026-11-27T08:15:02.123456Z"
    return event_dict


PROCESSORS = [structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
              fixed_time, structlog.processors.StackInfoRenderer()]


def log_events(log: Any) -> None:
    log.info("paid", order=42, tenant="acme", amounts=[1, 2.5], nested={"a": None})
    log.warning("slow", millis=812)
    try:
        raise KeyError("sku")
    except KeyError:
        log.exception("lookup failed", order=43)


def through_factory(directory: Path) -> list[tuple[dict[str, str], Any]]:
    factory = ShoeboxLoggerFactory(directory=directory, metadata_fields=["order", "tenant"])
    structlog.configure(processors=PROCESSORS, logger_factory=factory,
                        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
                        cache_logger_on_first_use=False)
    log_events(structlog.get_logger("shop"))
    structlog.get_logger("shop").debug("filtered out by level")
    factory.close()
    return read_records(directory)


def through_processor_formatter(directory: Path) -> list[tuple[dict[str, str], Any]]:
    handler = ShoeboxHandler(directory=directory, metadata_fields=["order", "tenant"])
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processors=[ShoeboxRenderer()]))
    logger = logging.getLogger("shop")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    structlog.configure(processors=[*PROCESSORS,
                                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
                        logger_factory=structlog.stdlib.LoggerFactory(),
                        wrapper_class=structlog.stdlib.BoundLogger,
                        cache_logger_on_first_use=False)
    log_events(structlog.get_logger("shop"))
    handler.close()
    return read_records(directory)


def without_time(records: list[tuple[dict[str, str], Any]]) -> list[tuple[dict[str, str], Any]]:
    return [({k: v for k, v in metadata.items() if k != "timestamp"}, payload)
            for metadata, payload in records]


def test_the_factory_writes_the_event_dict_as_the_payload(tmp_path: Path) -> None:
    paid, slow, failed = through_factory(tmp_path)
    assert paid[1] == {"order": 42, "tenant": "acme", "amounts": [1, 2.5], "nested": {"a": None},
                       "event": "paid", "level": "info",
                       "timestamp": "2026-11-27T08:15:02.123456Z"}
    assert {key: paid[0][key] for key in ("level", "logger", "order", "tenant")} == {
        "level": "INFO", "logger": "shop", "order": "42", "tenant": "acme"}
    # The metadata timestamp is the handler's form, whatever TimeStamper wrote.
    assert paid[0]["timestamp"].endswith("Z") and len(paid[0]["timestamp"]) == 24
    assert slow[0]["level"] == "WARNING"
    assert failed[0]["level"] == "ERROR"
    assert "exc_info" not in failed[1]
    assert failed[1]["exception"].startswith("Traceback (most recent call last):")
    assert failed[1]["exception"].endswith("KeyError: 'sku'")


def test_the_factory_and_processor_formatter_give_the_same_records(tmp_path: Path) -> None:
    direct = through_factory(tmp_path / "factory")
    stdlib = through_processor_formatter(tmp_path / "stdlib")
    assert len(direct) == 3
    assert without_time(direct) == without_time(stdlib)


def test_context_variables_are_part_of_the_event_dict(tmp_path: Path) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-7")
    try:
        factory = ShoeboxLoggerFactory(directory=tmp_path, metadata_fields="request_id")
        structlog.configure(processors=PROCESSORS, logger_factory=factory)
        structlog.get_logger().info("hello")
        factory.close()
    finally:
        structlog.contextvars.clear_contextvars()
    ((metadata, payload),) = read_records(tmp_path)
    assert metadata["request_id"] == "req-7" and payload["request_id"] == "req-7"
    assert metadata["logger"] == "root"  # get_logger() without a name


def test_a_renderer_left_at_the_end_of_the_chain_still_gives_a_record(tmp_path: Path) -> None:
    factory = ShoeboxLoggerFactory(directory=tmp_path, metadata_fields=["order"])
    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        logger_factory=factory)
    structlog.get_logger("shop").info("json", order=1)
    structlog.configure(processors=[structlog.processors.KeyValueRenderer()],
                        logger_factory=factory)
    structlog.get_logger("shop").info("text", order=2)
    factory.close()
    (json_metadata, json_payload), (_, text_payload) = read_records(tmp_path)
    assert json_payload == {"order": 1, "event": "json"} and json_metadata["order"] == "1"
    assert text_payload == {"event": "order=2 event='text'"}
