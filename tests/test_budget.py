"""The local disk budget (``max_local_mb``): with no sidecar shipping, the
archives never pass the budget (plus one record), records past it are
dropped and counted exactly, the application never blocks nor sees an
exception, and writing resumes by itself once archives are removed."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import pytest
from _logging_support import attach, restore_logging  # noqa: F401

import shoebox.budget
from shoebox import (
    NeverRollChecker,
    ReadingRollManager,
    SizeRollChecker,
    WritingRollManager,
    encode_record,
)
from shoebox.budget import DEFAULT_RESCAN_INTERVAL
from shoebox.naming import is_open
from shoebox_logging import ShoeboxHandler

MB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("restore_logging")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def directory_bytes(directory: Any) -> int:
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))


def closed_archives(directory: Any) -> list[str]:
    return sorted(name for name in os.listdir(directory) if not is_open(name))


def read_ids(directory: Any) -> list[int]:
    return [int(json.loads(payload)["n"]) for _, payload in
            ReadingRollManager("*.events", directory=directory)]


@pytest.mark.parametrize("queue_size", [0, 1000], ids=["blocking", "non-blocking"])
def test_twenty_megabytes_logged_into_a_one_megabyte_budget_with_no_sidecar(
        tmp_path: Any, queue_size: int) -> None:
    clock = FakeClock()
    handler = ShoeboxHandler(directory=tmp_path, max_local_mb=1, roll_size_mb=0.25,
                             queue_size=queue_size, when_full="block", clock=clock)
    reports: list[BaseException | None] = []
    handler.handleError = lambda record: reports.append(  # type: ignore[method-assign]
        sys.exc_info()[1])
    logger = attach(handler)
    text = "x" * 1000
    record_size = len(handler.format(logging.makeLogRecord(
        {"msg": "record", "n": 0, "text": text}))) + 200  # payload plus metadata
    sent = 0
    while sent * record_size < 20 * MB:
        for _ in range(100):
            logger.info("record", extra={"n": sent, "text": text})
            sent += 1
        handler.flush()
        assert directory_bytes(tmp_path) <= MB + record_size
    stats = handler.stats()
    assert stats["records_dropped_budget"] > sent / 2  # most of 20 MB did not fit
    assert [name for name in os.listdir(tmp_path) if is_open(name)] == []  # rolled, not left
    # One report for the one episode, naming the directory and the budget.
    assert len(reports) == 1
    assert f"{tmp_path}: archives waiting there hold" in str(reports[0])
    assert "disk budget (max_local_mb) is 1048576" in str(reports[0])

    # The "sidecar" ships and deletes what is there: logging resumes by itself.
    for name in closed_archives(tmp_path):
        os.unlink(tmp_path / name)
    clock.now += DEFAULT_RESCAN_INTERVAL  # when the handler looks at the directory again
    for number in range(sent, sent + 50):
        logger.info("record", extra={"n": number, "text": text})
    handler.close()
    read = read_ids(tmp_path)
    assert read == list(range(sent, sent + 50))
    stats = handler.stats()
    assert stats["records_dropped"] == stats["records_dropped_budget"] + stats[
        "records_dropped_queue"]
    assert stats["records_dropped_queue"] == 0
    assert stats["errors"] == 0
    assert stats["records_written"] + stats["records_dropped"] == sent + 50


def test_records_dropped_are_exactly_those_missing_when_read_back(
        tmp_path: Any) -> None:
    handler = ShoeboxHandler(directory=tmp_path, max_local_mb=0.5, roll_size_mb=0.1)
    logger = attach(handler)
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    for number in range(3000):
        logger.info("record", extra={"n": number, "text": "y" * 500})
    handler.close()
    read = read_ids(tmp_path)
    stats = handler.stats()
    assert read == list(range(len(read)))  # the first ones, in order; the rest dropped
    assert stats["records_written"] == len(read)
    assert stats["records_dropped_budget"] == 3000 - len(read) > 0
    assert stats["bytes_written"] == directory_bytes(tmp_path) <= 0.5 * MB
    assert stats["archives_closed"] == len(closed_archives(tmp_path))


def test_the_core_writer_keeps_the_budget_warns_once_per_episode_and_resumes(
        tmp_path: Any, caplog: Any) -> None:
    clock = FakeClock()
    manager = WritingRollManager("app_{pid}.events", SizeRollChecker(roll_size_mb=0.05),
                                 directory=tmp_path, max_local_mb=0.2, clock=clock)
    payload = json.dumps({"text": "z" * 900})
    caplog.set_level(logging.INFO, logger="shoebox.roll_manager")
    results = [manager.write({"i": str(i)}, payload) for i in range(400)]
    assert results.count(True) == manager.stats()["records_written"] < 400
    # Rolled archives finished (issue 19), as the sidecar needs; and none is
    # renamed while the directory is measured.
    assert manager.flush(timeout=10)
    assert directory_bytes(tmp_path) <= 0.2 * MB
    assert manager.active_filename is None  # finished at the budget, never torn
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "max_local_mb" in warnings[0].getMessage()

    # Space freed, but the writer looks again only after the rescan interval.
    removed = 0
    for name in closed_archives(tmp_path)[:2]:
        removed += sum(1 for _ in ReadingRollManager(name, directory=tmp_path))
        os.unlink(tmp_path / name)
    assert manager.write({"i": "later"}, payload) is False
    clock.now += DEFAULT_RESCAN_INTERVAL
    assert manager.write({"i": "resumed"}, payload) is True
    assert any("writing again" in r.getMessage() for r in caplog.records)
    # A second episode warns again, once.
    for i in range(400):
        manager.write({"i": str(i)}, payload)
    manager.close()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    stats = manager.stats()
    assert stats["records_written"] == removed + sum(1 for _ in ReadingRollManager(
        "*.events", directory=tmp_path))


def test_write_returns_whether_the_record_was_kept(tmp_path: Any) -> None:
    clock = FakeClock()
    manager = WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path,
                                 max_local_mb=0.001, clock=clock,
                                 on_budget_exceeded=lambda error: None)
    small = encode_record({"k": "v"}, '"x"')
    assert manager.write_encoded(small) is True
    assert manager.write_encoded(encode_record({"k": "v"}, '"' + "x" * 2000 + '"'),
                                 records=1) is False
    assert manager.write_encoded(small * 3, records=3) is True
    manager.close()
    assert manager.stats() == {"records_written": 4, "bytes_written": 4 * len(small),
                               "records_dropped": 1, "errors": 0,
                               "archives_closed": 2,  # rolled at the budget, then closed
                               "records_deferred": 0, "records_dropped_reentrant": 0,
                               "skipped_not_regular": 0, "finish_errors": 0,
                               "archives_finishing": 0, "rolls_postponed": 0}


def test_the_budget_counts_other_processes_archives_open_or_finished(tmp_path: Any) -> None:
    (tmp_path / "app_111.events").write_bytes(b"x" * 600_000)
    (tmp_path / "app_222.events.open").write_bytes(b"x" * 400_000)
    (tmp_path / "unrelated.log").write_bytes(b"x" * 5 * MB)  # not an archive name
    manager = WritingRollManager("app_{pid}.events", NeverRollChecker(), directory=tmp_path,
                                 max_local_mb=1, on_budget_exceeded=lambda error: None)
    fits = manager.write({"k": "v"}, '"' + "x" * 40_000 + '"')
    too_much = manager.write({"k": "v"}, '"' + "x" * 20_000 + '"')
    manager.close()
    assert fits is True and too_much is False


def test_checking_the_budget_does_not_look_at_the_directory_per_record(
        tmp_path: Any, monkeypatch: Any) -> None:
    looks = []
    real_scandir = os.scandir

    def counting_scandir(path: Any) -> Any:
        looks.append(path)
        return real_scandir(path)

    monkeypatch.setattr(shoebox.budget.os, "scandir", counting_scandir)
    clock = FakeClock()
    manager = WritingRollManager("app.events", SizeRollChecker(roll_size_mb=1),
                                 directory=tmp_path, max_local_mb=100, clock=clock)
    for i in range(20_000):
        manager.write({"i": str(i)}, '"' + "x" * 100 + '"')
    # Far from the budget: one look at the first write, one per archive opened.
    assert len(looks) == 1 + manager.stats()["archives_closed"] + 1
    manager.close()
    looks.clear()
    full = WritingRollManager("b.events", NeverRollChecker(), directory=tmp_path / "b",
                              max_local_mb=0.01, clock=clock,
                              on_budget_exceeded=lambda error: None)
    for i in range(5000):  # over budget with the clock standing still
        full.write({"i": str(i)}, '"' + "x" * 100 + '"')
    assert len(looks) <= 3
    clock.now += DEFAULT_RESCAN_INTERVAL
    full.write({"i": "again"}, "{}")
    assert len(looks) <= 4
    full.close()


@pytest.mark.parametrize("value", [1, 1.5, "2", " 0.5 "])
def test_max_local_mb_takes_numbers_and_numeric_strings(tmp_path: Any, value: Any) -> None:
    WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path,
                       max_local_mb=value).close()
    ShoeboxHandler(directory=tmp_path, max_local_mb=value).close()


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-1, ValueError), ("lots", ValueError), (True, TypeError),
    ([1], TypeError), (float("inf"), ValueError)])
def test_a_bad_max_local_mb_fails_at_construction_naming_it(
        tmp_path: Any, value: Any, error: type) -> None:
    with pytest.raises(error, match="max_local_mb"):
        WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path,
                           max_local_mb=value)
    with pytest.raises(error, match="max_local_mb"):
        ShoeboxHandler(directory=tmp_path, max_local_mb=value)
