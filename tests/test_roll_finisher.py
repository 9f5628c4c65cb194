"""Rolls off the caller's path (issue 19): a background finisher syncs,
renames and runs callbacks for rolled archives, in order, while the
writing thread goes on; flush() and close() wait for it; crashes, forks and
failures keep every promise."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from _logging_support import attach, restore_logging  # noqa: F401
from archive_files import in_forked_child, subprocess_env

from shoebox import ReadingRollManager, SizeRollChecker, recover
from shoebox.roll_manager import MAX_UNFINISHED, WritingRollManager
from shoebox_logging import ShoeboxHandler

TEMPLATE = "r_%Y%m%d_%H%M%S_%f_{pid}.events"
PAYLOAD = '{"pad": "' + "x" * 300 + '"}'
ROLL_MB = 0.002  # about six records per archive


class GatedFsync:
    """An ``fsync`` that blocks, as a stalled disk does, until released (at
    most ``limit`` seconds, so that old code, which syncs on the caller,
    fails the test instead of hanging it); it notes the threads it ran on.
    Only in the process that made it: a forked child's fsync passes."""

    def __init__(self, limit: float = 10.0) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.threads: list[str] = []
        self.limit = limit
        self._pid = os.getpid()

    def __call__(self, fd: int) -> None:
        if os.getpid() != self._pid:
            return
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.released.wait(self.limit)

    def release(self) -> None:
        self.released.set()


def manager_with(tmp_path: Path, fsync: GatedFsync, **options: Any) -> WritingRollManager:
    return WritingRollManager(TEMPLATE, SizeRollChecker(roll_size_mb=ROLL_MB),
                              directory=tmp_path, fsync=fsync, **options)


def written(directory: Path) -> list[str]:
    """The ``n`` of every record in the finished archives, in archive order."""
    return [metadata["n"] for metadata, _ in ReadingRollManager("*.events", directory)]


def open_names(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".open"))


def in_thread(call: Any) -> threading.Event:
    """Run ``call`` on a thread of its own; the event is set once it returned."""
    done = threading.Event()

    def run() -> None:
        call()
        done.set()

    threading.Thread(target=run, name="test-caller", daemon=True).start()
    return done


def test_a_roll_never_runs_the_fsync_on_the_calling_thread(tmp_path: Path) -> None:
    """The write that rolls returns while the fsync blocks; the next ones
    return too; flush() waits for the fsync."""
    fsync = GatedFsync()
    manager = manager_with(tmp_path, fsync)
    n = 0
    while not fsync.threads and n < 50:
        assert manager.write({"n": str(n)}, PAYLOAD) is True
        n += 1
    assert fsync.entered.wait(10) and not fsync.released.is_set()
    assert "MainThread" not in fsync.threads
    assert manager.write({"n": str(n)}, PAYLOAD) is True  # while the fsync blocks
    flushed = in_thread(manager.flush)
    assert not flushed.wait(0.2)  # flush() waits for the finisher
    fsync.release()
    assert flushed.wait(10)
    assert manager.close() is True
    assert "MainThread" not in fsync.threads
    assert set(fsync.threads) == {"shoebox-finisher"}
    assert written(tmp_path) == [str(i) for i in range(n + 1)]


def test_records_written_during_a_slow_finish_are_all_there_after_close_in_order(
        tmp_path: Path) -> None:
    fsync = GatedFsync()
    manager = manager_with(tmp_path, fsync)
    records = 40  # several rolls, fewer than MAX_UNFINISHED
    for n in range(records):
        assert manager.write({"n": str(n)}, PAYLOAD) is True
    assert fsync.entered.wait(10)
    assert manager.stats()["archives_finishing"] > 1 and open_names(tmp_path)
    threading.Timer(0.1, fsync.release).start()
    assert manager.close() is True  # waits for the slow finishes
    assert not open_names(tmp_path)
    assert written(tmp_path) == [str(n) for n in range(records)]
    stats = manager.stats()
    assert stats["archives_closed"] == len(os.listdir(tmp_path)) > 5
    assert stats["archives_finishing"] == 0 and stats["finish_errors"] == 0


def test_a_finisher_that_falls_behind_puts_rolls_off_and_counts_them(tmp_path: Path) -> None:
    """A stalled disk holds at most MAX_UNFINISHED rolled archives; the
    caller never waits: the active archive grows instead, and is counted."""
    fsync = GatedFsync()
    manager = manager_with(tmp_path, fsync)
    records = 6 * (MAX_UNFINISHED + 5)
    for n in range(records):
        assert manager.write({"n": str(n)}, PAYLOAD) is True
    stats = manager.stats()
    assert stats["archives_finishing"] == MAX_UNFINISHED
    assert stats["rolls_postponed"] > 0
    assert len(open_names(tmp_path)) == MAX_UNFINISHED + 1  # and the active one
    fsync.release()
    assert manager.close() is True
    assert written(tmp_path) == [str(n) for n in range(records)]
    assert not open_names(tmp_path)


def test_close_gives_up_after_its_timeout_while_the_finisher_is_stalled(
        tmp_path: Path) -> None:
    fsync = GatedFsync()
    manager = manager_with(tmp_path, fsync)
    for n in range(10):
        manager.write({"n": str(n)}, PAYLOAD)
    assert fsync.entered.wait(10)
    assert manager.close(timeout=0.2) is False
    assert open_names(tmp_path)  # left .open: the finisher goes on by itself
    fsync.release()
    assert manager.flush(timeout=10) is True
    assert not open_names(tmp_path)
    assert written(tmp_path) == [str(n) for n in range(10)]


KILLED_WRITER = textwrap.dedent("""
    import sys, threading
    from shoebox import SizeRollChecker
    from shoebox.roll_manager import WritingRollManager

    stalled = threading.Event()  # never set: every fsync stalls
    manager = WritingRollManager("r_%Y%m%d_%H%M%S_%f.events",
                                 SizeRollChecker(roll_size_mb=0.002), directory=sys.argv[1],
                                 fsync=lambda fd: stalled.wait())
    for n in range(int(sys.argv[2])):
        manager.write({"n": str(n)}, '{"pad": "' + "x" * 300 + '"}')
        print(n, flush=True)  # acknowledged
    print("finishing", manager.stats()["archives_finishing"], flush=True)
    stalled.wait()
""")


def test_sigkill_while_the_finisher_holds_unfinished_archives_then_recover(
        tmp_path: Path) -> None:
    """Every acknowledged record is present once after recover()."""
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path), "40"],
                               stdout=subprocess.PIPE, text=True, env=subprocess_env())
    assert process.stdout is not None
    acknowledged = []
    # A writer that stalls before it acknowledges everything (old code: the
    # fsync on the writing thread) is killed all the same, and fails below.
    give_up = threading.Timer(30, process.kill)
    give_up.start()
    finishing = 0
    for line in process.stdout:
        if line.startswith("finishing"):
            finishing = int(line.split()[1])
            break
        acknowledged.append(line.strip())
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    give_up.cancel()
    give_up.join()
    process.stdout.close()
    assert finishing > 1  # rolled archives held by the stalled finisher
    assert len(open_names(tmp_path)) > 2 and not [
        name for name in os.listdir(tmp_path) if name.endswith(".events")]
    recover(tmp_path)
    assert not open_names(tmp_path)
    assert written(tmp_path) == acknowledged == [str(n) for n in range(40)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_with_a_finish_in_flight(tmp_path: Path) -> None:
    """The child leaves the parent's rolled archive to the parent, writes and
    finishes its own; the parent finishes its own once its disk moves."""
    fsync = GatedFsync()
    manager = manager_with(tmp_path, fsync)
    for n in range(10):
        manager.write({"n": f"parent {n}"}, PAYLOAD)
    assert fsync.entered.wait(10)  # the finisher is inside the first finish

    def child() -> bool:
        for n in range(20):
            manager.write({"n": f"child {n}"}, PAYLOAD)
        closed = manager.close(timeout=10)
        return closed and manager.stats()["archives_closed"] > 1

    assert in_forked_child(child) == 0
    assert open_names(tmp_path)  # the parent's, still being finished
    assert "MainThread" not in fsync.threads
    fsync.release()
    assert manager.close() is True
    assert not open_names(tmp_path)
    records = written(tmp_path)
    assert [r for r in records if r.startswith("parent")] == [f"parent {n}" for n in range(10)]
    assert [r for r in records if r.startswith("child")] == [f"child {n}" for n in range(20)]


class ReportingHandler(ShoeboxHandler):
    """Keeps what handleError was given instead of printing it."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reported: list[BaseException | None] = []
        self.reported_on: list[str] = []

    def handleError(self, record: logging.LogRecord) -> None:
        self.reported.append(sys.exc_info()[1])
        self.reported_on.append(threading.current_thread().name)


@pytest.mark.usefixtures("restore_logging")
def test_enospc_at_the_rename_reaches_handle_error_and_stats_never_the_app(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = os.link

    def full_disk(source: Any, target: Any, **options: Any) -> None:
        if str(source).endswith(".open"):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        link(source, target, **options)

    monkeypatch.setattr(os, "link", full_disk)
    handler = ReportingHandler(directory=tmp_path, roll_size_mb=ROLL_MB,
                               filename_template=TEMPLATE)
    logger = attach(handler)
    for n in range(20):
        logger.info("record %d %s", n, "x" * 300)  # never raises
    handler.flush()
    stats = handler.stats()
    assert stats["finish_errors"] == len(handler.reported) >= 2
    assert all(isinstance(error, OSError) and error.errno == errno.ENOSPC
               for error in handler.reported)
    assert set(handler.reported_on) == {"shoebox-finisher"}
    assert stats["records_written"] == 20 and stats["errors"] == 0
    monkeypatch.undo()
    handler.close()
    recover(tmp_path)  # the archives left .open by the failed renames
    assert len(list(ReadingRollManager("*.events", tmp_path))) == 20


@pytest.mark.usefixtures("restore_logging")
def test_a_directory_vanished_during_the_finish_reaches_handle_error_and_stats(
        tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    fsync = GatedFsync()
    handler = ReportingHandler(directory=directory, roll_size_mb=ROLL_MB,
                               filename_template=TEMPLATE, fsync=fsync)
    logger = attach(handler)
    for n in range(8):
        logger.info("record %d %s", n, "x" * 300)
    assert fsync.entered.wait(10)
    shutil.rmtree(directory)
    fsync.release()
    handler.flush()
    assert handler.stats()["finish_errors"] >= 1
    assert any(isinstance(error, FileNotFoundError) for error in handler.reported)
    handler.close()
