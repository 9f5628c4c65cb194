"""ShoeboxHandler's non-blocking mode (``queue_size``), and the stdlib
``QueueHandler`` + ``QueueListener`` route it is an alternative to."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
import threading
from pathlib import Path

import pytest
from _logging_support import (  # noqa: F401
    GateRollChecker,
    attach,
    open_files,
    read_records,
    restore_logging,
)

from shoebox import ArchiveReader, ReadingRollManager
from shoebox_logging import ShoeboxHandler, ShoeboxJsonFormatter

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_records_tracebacks_stacks_and_extras_arrive_intact(tmp_path: Path) -> None:
    handler = ShoeboxHandler(directory=tmp_path, queue_size=8, metadata_fields=["n"])
    logger = attach(handler)
    for n in range(300):
        try:
            raise ValueError(f"bad value {n}")
        except ValueError:
            logger.exception("failed %d", n, stack_info=True, extra={"n": n})
    handler.close()

    records = read_records(tmp_path)
    assert len(records) == 300
    for n, (metadata, payload) in enumerate(records):
        assert metadata["n"] == str(n) and payload["n"] == n
        assert payload["message"] == f"failed {n}"
        assert payload["exc_info"].endswith(f"ValueError: bad value {n}")
        assert "test_records_tracebacks_stacks_and_extras" in payload["stack_info"]


def test_records_are_built_when_logged_not_when_written(tmp_path: Path) -> None:
    checker = GateRollChecker()
    handler = ShoeboxHandler(directory=tmp_path, queue_size=10, roll_checker=checker,
                             metadata_fields=["cart"])
    logger = attach(handler)
    logger.info("held by the writer")
    assert checker.entered.wait(10)
    cart = ["apple"]
    logger.info("cart is %s", cart, extra={"cart": cart})
    cart.append("pear")  # after the call, before the writer gets to the record
    checker.gate.set()
    handler.close()

    (_, _), (metadata, payload) = read_records(tmp_path)
    assert metadata["cart"] == "['apple']"
    assert payload["message"] == "cart is ['apple']" and payload["cart"] == ["apple"]


def test_records_formatted_on_the_writer_thread_are_the_bytes_blocking_mode_writes(
        tmp_path: Path) -> None:
    """The default formatter runs on the writer thread, on copies taken at
    the call: what changes afterwards (the arguments, the record itself)
    does not reach the archive; the bytes are those blocking mode writes."""
    checker = GateRollChecker()
    queued = ShoeboxHandler(directory=tmp_path / "queued", queue_size=10,
                            roll_checker=checker, metadata_fields=["user", "n"])
    blocking = ShoeboxHandler(directory=tmp_path / "blocking", metadata_fields=["user", "n"])
    logger = logging.getLogger("test.deferred")
    logger.setLevel(logging.INFO)
    queued.handle(logger.makeRecord("test.deferred", logging.INFO, __file__, 1,
                                    "held by the writer", (), None))
    assert checker.entered.wait(10)
    cart = ["apple"]
    message = {"event": "checkout", "total": 9.5}
    try:
        raise KeyError("gone")
    except KeyError:
        failure = sys.exc_info()
    records = [
        logger.makeRecord("test.deferred", logging.INFO, __file__, 2, "cart is %s", (cart,),
                          None, extra={"user": "ann", "n": 1}),
        logger.makeRecord("test.deferred", logging.ERROR, __file__, 3, "failed", (), failure,
                          extra={"user": "bob", "n": 2}, sinfo="Stack (most recent call last):"),
        logger.makeRecord("test.deferred", logging.INFO, __file__, 4, message, (), None),
    ]
    for record in records:
        queued.handle(record)
        blocking.handle(record)
    # After the calls, before the writer thread formats them.
    cart.append("pear")
    message["total"] = 0
    records[0].msg = "changed"
    records[1].exc_info = None
    records[2].levelname = "CHANGED"
    checker.gate.set()
    queued.close()
    blocking.close()
    written = read_raw(tmp_path / "queued")[1:]
    assert written == read_raw(tmp_path / "blocking")  # metadata and payload bytes
    payloads = [json.loads(payload) for _, payload in written]
    assert payloads[0]["message"] == "cart is ['apple']"
    assert "KeyError: 'gone'" in payloads[1]["exc_info"]
    assert payloads[2]["total"] == 9.5 and written[2][0]["level"] == "INFO"


def read_raw(directory: Path) -> list[tuple[dict[str, str], str]]:
    with ReadingRollManager("*.events", directory=directory) as reader:
        return list(reader)


def test_capture_copies_what_can_change_and_refuses_what_it_cannot_copy() -> None:
    formatter = ShoeboxJsonFormatter()
    args = (["x"],)
    record = logging.makeLogRecord({"msg": "got %s", "args": args, "user": "ann", "n": 1.5})
    captured = formatter.capture(record)
    assert captured is not None
    assert (captured["msg"], captured["args"], captured["user"]) == ("got ['x']", None, "ann")
    assert (record.msg, record.args) == ("got %s", args)  # left for other handlers
    assert formatter.format(ShoeboxJsonFormatter.restore(captured)) == formatter.format(record)
    assert formatter.capture(logging.makeLogRecord({"msg": "m", "tags": ["a"]})) is None
    assert formatter.capture(logging.makeLogRecord({"msg": {"tags": ["a"]}})) is None


def test_a_full_queue_drops_and_counts_in_drop_mode(tmp_path: Path) -> None:
    checker = GateRollChecker()
    handler = ShoeboxHandler(directory=tmp_path, queue_size=5, when_full="drop",
                             roll_checker=checker)
    logger = attach(handler)
    logger.info("held by the writer")
    assert checker.entered.wait(10)
    for n in range(8):  # 5 fill the queue, 3 are dropped
        logger.info("queued %d", n)
    assert handler.dropped == 3
    checker.gate.set()
    handler.close()

    assert [p["message"] for _, p in read_records(tmp_path)] == [
        "held by the writer", *(f"queued {n}" for n in range(5))]


def test_a_full_queue_makes_the_caller_wait_in_block_mode(tmp_path: Path) -> None:
    checker = GateRollChecker()
    handler = ShoeboxHandler(directory=tmp_path, queue_size=2, roll_checker=checker)
    logger = attach(handler)
    logger.info("held by the writer")
    assert checker.entered.wait(10)
    finished = threading.Event()

    def produce() -> None:
        for n in range(6):
            logger.info("queued %d", n)
        finished.set()

    producer = threading.Thread(target=produce)
    producer.start()
    # With the writer held, two records fit in the queue and the third waits.
    assert not finished.wait(0.3)
    checker.gate.set()
    producer.join()
    handler.close()

    assert handler.dropped == 0
    assert [p["message"] for _, p in read_records(tmp_path)] == [
        "held by the writer", *(f"queued {n}" for n in range(6))]


def test_flush_returns_once_everything_queued_is_in_the_archive(tmp_path: Path) -> None:
    handler = ShoeboxHandler(directory=tmp_path, queue_size=10_000)
    logger = attach(handler)
    for n in range(2_000):
        logger.info("record %d", n)
    handler.flush()

    (active,) = open_files(tmp_path)
    with ArchiveReader(active) as reader:
        assert sum(1 for _ in reader) == 2_000
    handler.close()


def test_close_drains_the_queue_then_finishes_the_archive(tmp_path: Path) -> None:
    checker = GateRollChecker()
    handler = ShoeboxHandler(directory=tmp_path, queue_size=1_000, roll_checker=checker)
    logger = attach(handler)
    for n in range(500):
        logger.info("record %d", n)
    assert checker.entered.wait(10)
    checker.gate.set()
    handler.close()

    assert not open_files(tmp_path)
    assert [p["message"] for _, p in read_records(tmp_path)] == [
        f"record {n}" for n in range(500)]


def test_records_after_close_are_reported_not_raised(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = ShoeboxHandler(directory=tmp_path, queue_size=10)
    logger = attach(handler)
    logger.info("before")
    handler.close()
    logger.info("after 1")
    logger.info("after 2")

    assert handler.failed == 2
    err = capsys.readouterr().err
    assert err.count("--- Logging error ---") == 1 and "ArchiveClosed" in err
    assert [p["message"] for _, p in read_records(tmp_path)] == ["before"]


def test_stdlib_queuehandler_route_keeps_extras_but_flattens_tracebacks(tmp_path: Path) -> None:
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    handler = ShoeboxHandler(directory=tmp_path, metadata_fields=["request_id"])
    listener = logging.handlers.QueueListener(records, handler)
    listener.start()
    logger = attach(logging.handlers.QueueHandler(records))
    logger.info("plain %s", "record", extra={"request_id": "r-1"})
    try:
        int("not a number")
    except ValueError:
        logger.exception("failed", extra={"request_id": "r-2"})
    listener.stop()
    handler.close()

    (meta1, plain), (meta2, failed) = read_records(tmp_path)
    assert (meta1["request_id"], meta2["request_id"]) == ("r-1", "r-2")
    assert plain["message"] == "plain record" and plain["request_id"] == "r-1"
    # QueueHandler.prepare() formats the traceback into the message text:
    # there is no separate exc_info field for it any more.
    assert failed["message"].startswith("failed\nTraceback (most recent call last):")
    assert "ValueError: invalid literal" in failed["message"]
    assert "exc_info" not in failed


def test_a_record_put_while_the_writer_closes_is_still_written() -> None:
    """A record whose put() passed the closed check just before close()
    drained the queue is written by put() itself, not left queued."""
    from shoebox_logging.writer_thread import WriterThread

    written: list[bytes] = []
    entered, go = threading.Event(), threading.Event()

    class LateWriter(WriterThread):
        def _enqueue(self, item):  # type: ignore[no-untyped-def]
            if isinstance(item, tuple) and item[0] == b"late":
                entered.set()
                go.wait(10)
            super()._enqueue(item)

    writer = LateWriter(lambda data, record, count: written.append(data), queue_size=10)
    record = logging.makeLogRecord({"msg": "late"})
    late = threading.Thread(target=writer.put, args=(b"late", record))
    late.start()
    assert entered.wait(10)
    writer.close()  # drains and stops before the late record is queued
    go.set()
    late.join()
    assert written == [b"late"]
