"""Roll managers: naming, rolling, the .open -> final rename, threads, fork,
and reading back across files."""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from shoebox import (
    ArchiveCallback,
    ArchiveClosed,
    ArchiveReader,
    ArchiveWriter,
    NeverRollChecker,
    NoMoreFiles,
    ReadingRollManager,
    SizeRollChecker,
    TimeRollChecker,
    WritingRollManager,
    recover,
    roll_manager,
)


class Recording(ArchiveCallback):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.closed_event = threading.Event()

    def on_open(self, filename):
        self.opened.append(filename)

    def on_close(self, filename):
        self.closed.append(filename)
        self.closed_event.set()
        return filename


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def read_all(directory, pattern="*.events"):
    return list(ReadingRollManager(pattern, directory=directory))


def test_the_active_archive_is_dot_open_until_closed(tmp_path):
    callback = Recording()
    with WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path,
                            archive_callback=callback) as writer:
        writer.write({"k": "v"}, "{}")
        assert sorted(os.listdir(tmp_path)) == ["a.events.open"]
        assert writer.active_filename == str(tmp_path / "a.events.open")
    assert sorted(os.listdir(tmp_path)) == ["a.events"]
    assert callback.opened == [str(tmp_path / "a.events.open")]
    assert callback.closed == [str(tmp_path / "a.events")]
    assert read_all(tmp_path) == [({"k": "v"}, "{}")]


def test_rolling_by_size_spreads_records_over_files_read_back_in_order(tmp_path):
    callback = Recording()
    items = [({"i": str(i)}, '{"pad": "' + "x" * 200 + '"}') for i in range(100)]
    with WritingRollManager("r_%Y%m%d_%H%M%S_%f.events", SizeRollChecker(roll_size_mb=0.002),
                            directory=tmp_path, archive_callback=callback) as writer:
        for metadata, payload in items:
            writer.write(metadata, payload)
    files = sorted(os.listdir(tmp_path))
    assert len(files) == len(callback.closed) >= 10
    assert not [f for f in files if f.endswith(".open")]
    for path in callback.closed[:-1]:
        assert os.path.getsize(path) >= 0.002 * 1024 * 1024
    assert read_all(tmp_path) == items


def test_rolling_by_time_follows_the_checker_clock(tmp_path):
    clock = FakeClock()
    callback = Recording()
    with WritingRollManager("t_%H%M%S_%f.events", TimeRollChecker(roll_minutes=1, clock=clock),
                            directory=tmp_path, archive_callback=callback) as writer:
        writer.write({"i": "0"}, "{}")
        clock.now += 59.9
        writer.write({"i": "1"}, "{}")
        clock.now += 0.1
        # Time is up: the idle timer or the next write (after appending it)
        # closes the archive, whichever looks first.
        writer.write({"i": "2"}, "{}")
        writer.write({"i": "3"}, "{}")
    assert len(callback.closed) == 2
    with ArchiveReader(callback.closed[0]) as first:
        assert [m["i"] for m, _ in first] in (["0", "1"], ["0", "1", "2"])
    assert [m["i"] for m, _ in read_all(tmp_path)] == ["0", "1", "2", "3"]


def test_an_idle_archive_is_closed_when_its_time_is_up(tmp_path):
    callback = Recording()
    writer = WritingRollManager("idle.events", TimeRollChecker(roll_minutes=0.002),
                                directory=tmp_path, archive_callback=callback)
    try:
        writer.write({"k": "v"}, "{}")
        assert callback.closed_event.wait(10), "idle archive was not closed"
        assert callback.closed == [str(tmp_path / "idle.events")]
        assert os.listdir(tmp_path) == ["idle.events"]
        callback.closed_event.clear()
        writer.write({"k": "w"}, "{}")  # opens the next archive
        assert callback.closed_event.wait(10)
    finally:
        writer.close()
    assert [m["k"] for m, _ in read_all(tmp_path)] == ["v", "w"]


def test_names_carry_host_and_pid(tmp_path):
    with WritingRollManager("x_{host}_{pid}.events", NeverRollChecker(),
                            directory=tmp_path) as writer:
        writer.write({}, "{}")
    host = socket.gethostname().replace(" ", "_").replace("/", "_").replace(":", "_")
    assert os.listdir(tmp_path) == [f"x_{host}_{os.getpid()}.events"]


def test_strftime_names_replace_spaces_slashes_and_colons():
    import datetime

    now = datetime.datetime(2026, 11, 27, 8, 5, 9, 123456, tzinfo=datetime.timezone.utc)
    assert roll_manager.render_filename("a %H:%M/%f.events", now) == "a_08_05_123456.events"


def test_a_second_writer_on_a_taken_name_gets_a_unique_variant(tmp_path):
    first = WritingRollManager("same.events", NeverRollChecker(), directory=tmp_path)
    second = WritingRollManager("same.events", NeverRollChecker(), directory=tmp_path)
    first.write({"w": "1"}, "{}")
    second.write({"w": "2"}, "{}")
    first.close()
    second.close()
    third = WritingRollManager("same.events", NeverRollChecker(), directory=tmp_path)
    third.write({"w": "3"}, "{}")
    third.close()
    assert sorted(os.listdir(tmp_path)) == ["same.events", "same_1.events", "same_2.events"]
    for name, writer_id in [("same.events", "1"), ("same_1.events", "2"),
                            ("same_2.events", "3")]:
        with ArchiveReader(tmp_path / name) as reader:
            assert list(reader) == [({"w": writer_id}, "{}")]


def test_eight_threads_writing_at_once_lose_and_mix_nothing(tmp_path):
    callback = Recording()
    per_thread = 500
    with WritingRollManager("mt_%H%M%S_%f.events", SizeRollChecker(roll_size_mb=0.01),
                            directory=tmp_path, archive_callback=callback) as writer:
        start = threading.Barrier(8)

        def work(thread: int) -> None:
            start.wait()
            for i in range(per_thread):
                writer.write({"t": str(thread), "i": str(i)}, f'{{"t": {thread}, "i": {i}}}')

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    got = read_all(tmp_path)
    assert len(got) == 8 * per_thread
    assert sorted((int(m["t"]), int(m["i"])) for m, _ in got) == [
        (t, i) for t in range(8) for i in range(per_thread)]
    for metadata, payload in got:
        assert payload == f'{{"t": {metadata["t"]}, "i": {metadata["i"]}}}'
    # Per thread, records keep their order.
    for t in range(8):
        assert [int(m["i"]) for m, _ in got if m["t"] == str(t)] == list(range(per_thread))
    assert len(set(callback.closed)) == len(callback.closed) == len(os.listdir(tmp_path)) > 1


def test_writing_after_close_raises(tmp_path):
    writer = WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path)
    writer.close()
    writer.close()
    with pytest.raises(ArchiveClosed):
        writer.write({}, "{}")


def test_roll_checker_and_callback_may_be_dotted_names(tmp_path):
    with WritingRollManager("a.events", "shoebox.roll_checker:NeverRollChecker",
                            directory=tmp_path,
                            archive_callback="shoebox.callbacks:ChangeExtensionCallback"
                            ) as writer:
        writer.write({}, "{}")
    assert os.listdir(tmp_path) == ["a.events.done"]


def test_a_forked_child_writes_its_own_archive_and_leaves_the_parents_alone(tmp_path):
    script = textwrap.dedent(f"""
        import os
        from shoebox import NeverRollChecker, WritingRollManager
        writer = WritingRollManager("f_{{pid}}.events", NeverRollChecker(),
                                    directory={str(tmp_path)!r})
        writer.write({{"who": "parent", "i": "0"}}, "{{}}")
        pid = os.fork()
        if pid == 0:
            for i in range(100):
                writer.write({{"who": "child", "i": str(i)}}, "{{}}")
            writer.close()
            os._exit(0)
        for i in range(1, 100):
            writer.write({{"who": "parent", "i": str(i)}}, "{{}}")
        _, status = os.waitpid(pid, 0)
        writer.close()
        print(pid, status)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    child, status = out
    assert status == "0"
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 2 and f"f_{child}.events" in files
    for name in files:
        with ArchiveReader(tmp_path / name) as reader:
            got = list(reader)
        who = "child" if name == f"f_{child}.events" else "parent"
        assert got == [({"who": who, "i": str(i)}, "{}") for i in range(100)]


def test_reading_skips_open_files_and_calls_back_per_file(tmp_path):
    for name in ["b.events", "a.events", "c.events"]:
        with WritingRollManager(name, NeverRollChecker(), directory=tmp_path) as writer:
            writer.write({"file": name}, "{}")
    live = WritingRollManager("d.events", NeverRollChecker(), directory=tmp_path)
    live.write({"file": "d"}, "{}")
    callback = Recording()
    reader = ReadingRollManager("*.events", directory=tmp_path, archive_callback=callback)
    try:
        assert [m["file"] for m, _ in reader] == ["a.events", "b.events", "c.events"]
        with pytest.raises(NoMoreFiles):
            reader.read()
    finally:
        live.close()
    assert callback.opened == callback.closed == [
        str(tmp_path / n) for n in ["a.events", "b.events", "c.events"]]


def test_reading_in_recover_mode_lists_damage_from_every_file(tmp_path):
    for name in ["a.events", "b.events"]:
        with WritingRollManager(name, NeverRollChecker(), directory=tmp_path) as writer:
            for i in range(3):
                writer.write({"f": name, "i": str(i)}, "{}")
    path = tmp_path / "b.events"
    data = bytearray(path.read_bytes())
    data[-2] ^= 1
    path.write_bytes(data)
    reader = ReadingRollManager("*.events", directory=tmp_path, recover=True)
    assert len(list(reader)) == 5
    assert [(d.filename, d.reason.split(":")[0]) for d in reader.damaged] == [
        (str(path), "checksum mismatch")]


def test_a_reading_manager_left_early_closes_its_file_on_exit(tmp_path):
    with WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path) as writer:
        writer.write({"i": "0"}, "{}")
        writer.write({"i": "1"}, "{}")
    callback = Recording()
    with ReadingRollManager("*.events", directory=tmp_path,
                            archive_callback=callback) as reader:
        assert reader.read() == ({"i": "0"}, "{}")
        assert callback.closed == []
    assert callback.closed == [str(tmp_path / "a.events")]
    assert reader.files_to_read == [] and reader.damaged == []


RECOVERED: list[list[str]] = []


class RecoveringWhileSyncing(ArchiveWriter):
    """An archive whose final sync happens while shoebox.recover runs: the
    worst moment for a recoverer to look at a closing archive."""

    def sync(self):
        super().sync()
        RECOVERED.append(recover(os.path.dirname(self.filename)).finalized)


def test_recover_never_takes_an_archive_being_rolled(tmp_path):
    callback = Recording()
    with WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path,
                            archive_class=RecoveringWhileSyncing,
                            archive_callback=callback) as writer:
        writer.write({"k": "v"}, "{}")
    assert RECOVERED == [[]]
    assert callback.closed == [str(tmp_path / "a.events")]
    assert read_all(tmp_path) == [({"k": "v"}, "{}")]


class FailingSync(ArchiveWriter):
    def sync(self):
        self.flush()
        raise OSError(errno.EIO, "fsync failed")


def test_an_archive_whose_fsync_fails_is_still_finalized_and_the_error_reported(tmp_path):
    """The finisher finalizes it, reports the error to on_finish_error (on
    its thread, not the closing one: issue 19) and counts it."""
    callback = Recording()
    reported: list[tuple[str, Exception]] = []
    writer = WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path,
                                archive_class=FailingSync, archive_callback=callback,
                                on_finish_error=lambda name, error: reported.append((name, error)))
    writer.write({"k": "v"}, "{}")
    assert writer.close() is True
    assert [(name, str(error)) for name, error in reported] == [
        (str(tmp_path / "a.events.open"), "[Errno 5] fsync failed")]
    assert writer.stats()["finish_errors"] == 1 == writer.stats()["errors"]
    assert os.listdir(tmp_path) == ["a.events"]
    assert callback.closed == [str(tmp_path / "a.events")]
    assert read_all(tmp_path) == [({"k": "v"}, "{}")]


def test_a_failed_roll_after_a_write_is_logged_not_raised(tmp_path, caplog):
    callback = Recording()
    writer = WritingRollManager("r.events", SizeRollChecker(roll_size_mb=0.0001),
                                directory=tmp_path, archive_class=FailingSync,
                                archive_callback=callback)
    with caplog.at_level(logging.ERROR, logger="shoebox.roll_manager"):
        writer.write({"i": "0"}, "x" * 200)  # rolls, and the roll's fsync fails
        writer.write({"i": "1"}, "x" * 200)
    writer.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"rolling archive {tmp_path / 'r.events.open'} failed",
        f"rolling archive {tmp_path / 'r_1.events.open'} failed"]
    assert sorted(os.listdir(tmp_path)) == ["r.events", "r_1.events"]
    assert [m["i"] for m, _ in read_all(tmp_path)] == ["0", "1"]



class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_manager_notices_its_archive_deleted_reports_it_and_writes_on_in_a_new_one(
        tmp_path):
    """The writer owns its file's health: a deleted active archive is
    dropped, reported to on_archive_vanished, and the record that noticed it
    is written into a new archive, counted once."""
    from shoebox import ArchiveVanished
    from shoebox.roll_manager import VANISHED_CHECK_SECONDS

    directory, clock, reports = tmp_path / "archive", _Clock(), []
    manager = WritingRollManager("a_%f.events", NeverRollChecker(), directory,
                                 on_archive_vanished=reports.append, clock=clock)
    manager.write({"n": "0"}, "{}")
    os.unlink(manager.active_filename)
    manager.write({"n": "lost"}, "{}")  # before the next look: into the deleted file
    clock.now += VANISHED_CHECK_SECONDS
    manager.write({"n": "1"}, "{}")
    assert len(reports) == 1 and isinstance(reports[0], ArchiveVanished)
    assert "was deleted while being written" in str(reports[0])
    manager.write({"n": "2"}, "{}")
    manager.close()
    names = sorted(os.listdir(directory))
    assert len(names) == 1 and not names[0].endswith(".open")
    records = list(ReadingRollManager("*.events", directory))
    assert [metadata["n"] for metadata, _ in records] == ["1", "2"]
    assert manager.stats()["records_written"] == 4  # "1" counted once


def test_an_archive_deleted_before_close_is_left_and_reported(tmp_path):
    reports = []
    manager = WritingRollManager("a.events", NeverRollChecker(), tmp_path,
                                 on_archive_vanished=reports.append)
    manager.write({"n": "0"}, "{}")
    os.unlink(manager.active_filename)
    assert manager.close()
    assert os.listdir(tmp_path) == [] and len(reports) == 1


def test_a_directory_that_cannot_be_used_fails_when_the_manager_is_built(tmp_path):
    from shoebox import UnusableDirectory

    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UnusableDirectory, match="is a file, not a directory"):
        WritingRollManager("a.events", NeverRollChecker(), tmp_path / "file" / "archive")
