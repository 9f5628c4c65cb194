"""loguru into archives: ShoeboxSink takes loguru's record dict (not the
formatted text) into the common schema, with or without enqueue=True,
shoebox doing the rolling that loguru's ``rotation`` would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _logging_support import read_records
from loguru import logger

from shoebox_logging.loguru import ShoeboxSink


@pytest.fixture(autouse=True)
def no_loguru_sinks() -> Iterator[None]:
    logger.remove()
    yield
    logger.remove()


def test_the_record_dict_becomes_metadata_and_payload(tmp_path: Path) -> None:
    sink = ShoeboxSink(directory=tmp_path, metadata_fields=["user"])
    logger.add(sink, format="{time} {level} {message}", level="TRACE")
    logger.bind(user="ann", line="bound line").success("signed in as {}", "ann")
    logger.trace("detail")
    logger.remove()
    (signed_in, signed_in_payload), (detail, _) = read_records(tmp_path)
    assert signed_in["level"] == "SUCCESS" and detail["level"] == "TRACE"
    assert signed_in["logger"] == __name__
    assert signed_in["user"] == "ann"
    # The message as logged, not loguru's formatted line; an extra whose name
    # a record field has is kept beside it, as the handler's formatter does.
    assert signed_in_payload == {
        "message": "signed in as ann", "module": "test_integration_loguru",
        "function": "test_the_record_dict_becomes_metadata_and_payload",
        "line": signed_in_payload["line"], "user": "ann", "extra.line": "bound line"}
    assert isinstance(signed_in_payload["line"], int)


def test_enqueue_writes_on_loguru_s_thread_and_keeps_the_traceback(tmp_path: Path) -> None:
    sink = ShoeboxSink(directory=tmp_path)
    logger.add(sink, format="{message}", enqueue=True, diagnose=False)
    for n in range(100):
        logger.info("queued {}", n)
    try:
        raise ValueError("bad input")
    except ValueError:
        logger.exception("failed")
    logger.complete()  # loguru's queue is drained: every record is in the archive
    sink.complete()
    assert sink.stats()["records_written"] == 101
    logger.remove()
    records = read_records(tmp_path)
    assert [payload["message"] for _m, payload in records[:100]] == [
        f"queued {n}" for n in range(100)]
    exception = records[100][1]["exception"]
    assert exception.startswith("Traceback (most recent call last")
    assert exception.endswith("ValueError: bad input")


def test_complete_waits_for_shoebox_s_writer_thread(tmp_path: Path) -> None:
    sink = ShoeboxSink(directory=tmp_path, queue_size=1000)
    logger.add(sink, format="{message}")
    for n in range(500):
        logger.info("event {}", n)
    sink.complete()
    assert sink.stats()["records_written"] == 500
    logger.remove()


def test_shoebox_rolls_instead_of_loguru_s_rotation(tmp_path: Path) -> None:
    sink = ShoeboxSink(directory=tmp_path, roll_size_mb=0.01)  # about 10 KiB
    logger.add(sink, format="{message}")
    for n in range(300):
        logger.info("event {} {}", n, "x" * 100)
    logger.remove()
    archives = sorted(tmp_path.glob("*.events"))
    assert len(archives) > 2
    assert [payload["message"].split()[1] for _m, payload in read_records(tmp_path)] == [
        str(n) for n in range(300)]


def test_stopping_twice_is_harmless(tmp_path: Path) -> None:
    sink = ShoeboxSink(directory=tmp_path)
    handler_id = logger.add(sink, format="{message}")
    logger.info("one")
    logger.remove(handler_id)
    sink.stop()
    assert not list(tmp_path.glob("*.open"))
    assert len(read_records(tmp_path)) == 1
