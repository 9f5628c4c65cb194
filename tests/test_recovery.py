"""shoebox.recover: finalizing the .open archives of writers that crashed."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import shoebox._files
import shoebox.archive
import shoebox.recovery
from shoebox import (
    ArchiveReader,
    ArchiveWriter,
    NeverRollChecker,
    ReadingRollManager,
    WritingRollManager,
    encode_record,
    recover,
)

WRITER = textwrap.dedent("""
    import sys
    from shoebox import NeverRollChecker, WritingRollManager
    writer = WritingRollManager("crash.events", NeverRollChecker(), directory=sys.argv[1])
    i = 0
    while True:
        writer.write({"i": str(i)}, '{"pad": "' + "x" * 100 + '"}')
        if i % 500 == 0:
            print(i, flush=True)
            if sys.argv[2] == "wait":
                sys.stdin.readline()
                writer.close()
                break
        i += 1
""")


def start_writer(directory, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(directory), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_killed_writers_records_all_come_back(tmp_path):
    proc = start_writer(tmp_path, "run")
    assert proc.stdout is not None
    last = -1
    while last < 3000:
        last = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stdin.close()  # type: ignore[union-attr]
    assert os.listdir(tmp_path) == ["crash.events.open"]

    assert recover(tmp_path, "*.events").finalized == [str(tmp_path / "crash.events")]
    assert os.listdir(tmp_path) == ["crash.events"]
    with ArchiveReader(tmp_path / "crash.events") as reader:
        indexes = [int(metadata["i"]) for metadata, _ in reader]
    assert indexes == list(range(len(indexes)))
    assert len(indexes) > last


def test_a_live_writers_file_is_never_touched(tmp_path):
    proc = start_writer(tmp_path, "wait")
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    before = (tmp_path / "crash.events.open").read_bytes()
    assert recover(tmp_path).finalized == []
    assert (tmp_path / "crash.events.open").read_bytes() == before
    proc.stdin.write("\n")
    proc.stdin.close()
    assert proc.wait() == 0
    proc.stdout.close()
    assert os.listdir(tmp_path) == ["crash.events"]


def test_a_torn_tail_is_truncated_and_damage_in_the_middle_kept(tmp_path):
    path = tmp_path / "torn.events.open"
    records = [encode_record({"i": str(i)}, "{}") for i in range(4)]
    with ArchiveWriter(path) as writer:
        for record in records[:2]:
            writer.write_encoded(record)
    damaged = bytearray(records[2])
    damaged[-1] ^= 1
    with open(path, "ab") as f:
        f.write(bytes(damaged) + records[3] + records[3][:20])  # a crash mid-record

    assert recover(tmp_path).finalized == [str(tmp_path / "torn.events")]
    final = tmp_path / "torn.events"
    assert final.stat().st_size == sum(map(len, records))
    with ArchiveReader(final, recover=True) as reader:
        assert [m["i"] for m, _ in reader] == ["0", "1", "3"]
        assert [d.offset for d in reader.damaged] == [len(records[0]) + len(records[1])]


def test_recovery_never_replaces_an_archive_with_the_same_name(tmp_path):
    (tmp_path / "a.events").write_bytes(encode_record({"who": "first"}, "{}"))
    with ArchiveWriter(tmp_path / "a.events.open") as writer:
        writer.write({"who": "second"}, "{}")
    assert recover(tmp_path, "*.events").finalized == [str(tmp_path / "a_1.events")]
    with ArchiveReader(tmp_path / "a.events") as reader:
        assert list(reader) == [({"who": "first"}, "{}")]


class _RecoverBeforeLocking:
    """Stands in for the ``fcntl`` module in ``shoebox.archive``: runs
    ``shoebox.recover`` on a new archive between its creation and its
    locking, the moment a sidecar's start-up recovery can hit."""

    def __init__(self, directory, **options) -> None:
        self.directory = directory
        self.options = options
        self.recovered: list[str] | None = None

    def __getattr__(self, name):
        return getattr(fcntl, name)

    def flock(self, fd, operation):
        if self.recovered is None:
            self.recovered = recover(self.directory, **self.options).finalized
        return fcntl.flock(fd, operation)


def test_a_writer_never_writes_into_a_file_recovery_finalized_under_it(tmp_path, monkeypatch):
    race = _RecoverBeforeLocking(tmp_path)
    monkeypatch.setattr(shoebox.archive, "fcntl", race)
    with WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path) as writer:
        writer.write({"i": "0"}, "{}")
        writer.write({"i": "1"}, "{}")
    assert race.recovered == [str(tmp_path / "a.events")]
    assert (tmp_path / "a.events").stat().st_size == 0  # recovered while still empty
    assert list(ReadingRollManager("*.events", directory=tmp_path)) == [
        ({"i": "0"}, "{}"), ({"i": "1"}, "{}")]


def test_with_min_idle_a_file_between_creation_and_locking_is_left_to_its_writer(
        tmp_path, monkeypatch):
    race = _RecoverBeforeLocking(tmp_path, min_idle=60)
    monkeypatch.setattr(shoebox.archive, "fcntl", race)
    with WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path) as writer:
        writer.write({"i": "0"}, "{}")
        assert os.listdir(tmp_path) == ["a.events.open"]
    assert race.recovered == []
    assert os.listdir(tmp_path) == ["a.events"]
    assert list(ReadingRollManager("*.events", directory=tmp_path)) == [({"i": "0"}, "{}")]


def test_a_stale_file_is_finalized_only_once_unmodified_for_min_idle_seconds(tmp_path):
    path = tmp_path / "crash.events.open"
    with ArchiveWriter(path) as writer:  # closed without the rename: its writer is gone
        writer.write({"i": "0"}, "{}")
    modified = path.stat().st_mtime
    now = [modified + 59.5]
    result = recover(tmp_path, min_idle=60, clock=lambda: now[0])
    assert (result.finalized, result.left) == ([], {})
    assert os.listdir(tmp_path) == ["crash.events.open"]
    now[0] = modified + 60
    assert recover(tmp_path, min_idle=60, clock=lambda: now[0]).finalized == [
        str(tmp_path / "crash.events")]


def test_a_live_writers_idle_file_is_left_alone_however_old(tmp_path):
    with ArchiveWriter(tmp_path / "quiet.events.open") as writer:
        writer.write({"i": "0"}, "{}")
        assert recover(tmp_path, min_idle=60, clock=lambda: time.time() + 86400).finalized == []
        assert os.listdir(tmp_path) == ["quiet.events.open"]


@pytest.mark.parametrize("min_idle", [-1, float("nan")])
def test_min_idle_must_be_a_number_of_seconds(tmp_path, min_idle):
    with pytest.raises(ValueError, match="min_idle must be at least 0"):
        recover(tmp_path, min_idle=min_idle)


class _LockedByRecovery(_RecoverBeforeLocking):
    """As above, but recovery still holds the new file's lock when the writer
    tries to take it."""

    def flock(self, fd, operation):
        if self.recovered is None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            self.held = os.open(path, os.O_RDONLY)
            fcntl.flock(self.held, fcntl.LOCK_EX)
            self.recovered = [path]
        return fcntl.flock(fd, operation)


def test_a_writer_moves_on_from_a_new_file_recovery_has_locked(tmp_path, monkeypatch):
    race = _LockedByRecovery(tmp_path)
    monkeypatch.setattr(shoebox.archive, "fcntl", race)
    try:
        with WritingRollManager("a.events", NeverRollChecker(), directory=tmp_path) as writer:
            writer.write({"i": "0"}, "{}")
    finally:
        os.close(race.held)
    assert sorted(os.listdir(tmp_path)) == ["a.events.open", "a_1.events"]
    assert list(ReadingRollManager("*.events", directory=tmp_path)) == [({"i": "0"}, "{}")]


class _ReplacedBeforeLocking:
    """Stands in for the ``fcntl`` module in ``shoebox.recovery``: between
    recovery opening a stale-looking file and locking it, its writer
    finalizes it and a new writer starts a live archive under the same name."""

    def __init__(self, open_path) -> None:
        self.open_path = str(open_path)
        self.new_writer: ArchiveWriter | None = None

    def __getattr__(self, name):
        return getattr(fcntl, name)

    def flock(self, fd, operation):
        if self.new_writer is None:
            os.rename(self.open_path, self.open_path[:-len(".open")])
            self.new_writer = ArchiveWriter(self.open_path)
            self.new_writer.write({"who": "new"}, "{}")
        return fcntl.flock(fd, operation)


def test_recovery_leaves_alone_a_file_replaced_before_it_locked(tmp_path, monkeypatch):
    old = [({"who": "old", "i": str(i)}, "{}") for i in range(3)]
    with ArchiveWriter(tmp_path / "a.events.open") as writer:
        for metadata, payload in old:
            writer.write(metadata, payload)
    race = _ReplacedBeforeLocking(tmp_path / "a.events.open")
    monkeypatch.setattr(shoebox._files, "fcntl", race)
    assert recover(tmp_path).finalized == []
    assert race.new_writer is not None
    race.new_writer.close()
    with ArchiveReader(tmp_path / "a.events") as reader:
        assert list(reader) == old
    with ArchiveReader(tmp_path / "a.events.open") as reader:
        assert list(reader) == [({"who": "new"}, "{}")]


def _stale(path, records: list[bytes], tail: bytes = b"") -> None:
    with ArchiveWriter(path, max_record_size=1 << 30) as writer:
        for record in records:
            writer.write_encoded(record)
    with open(path, "ab") as f:
        f.write(tail)


def test_a_whole_record_over_recoverys_size_limit_is_not_cut_off(tmp_path):
    """A writer configured with a bigger max_record_size crashed: its last,
    complete record is bigger than recover()'s limit but no torn tail."""
    small = encode_record({"i": "0"}, "{}")
    big = encode_record({"i": "1"}, '"' + "x" * 5000 + '"', max_record_size=1 << 20)
    _stale(tmp_path / "a.events.open", [small, big])
    assert recover(tmp_path, max_record_size=1000).finalized == [str(tmp_path / "a.events")]
    with ArchiveReader(tmp_path / "a.events", max_record_size=1 << 20) as reader:
        assert [m["i"] for m, _ in reader] == ["0", "1"]


def test_records_of_a_version_this_reader_does_not_know_are_not_cut_off(tmp_path):
    good = encode_record({"i": "0"}, "{}")
    newer = bytearray(encode_record({"i": "1"}, "{}"))
    newer[4:6] = (99).to_bytes(2, "little")  # written by a later shoebox
    _stale(tmp_path / "a.events.open", [good], bytes(newer))
    assert recover(tmp_path).finalized == [str(tmp_path / "a.events")]
    assert (tmp_path / "a.events").read_bytes() == good + bytes(newer)


@pytest.mark.parametrize("cut", [1, 3, 5, 6, 12, 23, 30])
def test_a_record_cut_anywhere_is_a_torn_tail(tmp_path, cut):
    records = [encode_record({"i": str(i)}, '{"pad": "xxxxxxxxxx"}') for i in range(2)]
    _stale(tmp_path / "a.events.open", records[:1], records[1][:cut])
    assert recover(tmp_path).finalized == [str(tmp_path / "a.events")]
    assert (tmp_path / "a.events").read_bytes() == records[0]


@pytest.mark.unprivileged
def test_a_live_writers_file_recovery_may_only_read_is_left_alone(tmp_path):
    """A sidecar running as another user can read the writers' files but not
    write them: recovery must still tell live files from stale ones."""
    with ArchiveWriter(tmp_path / "live.events.open", file_mode=0o444) as writer:
        writer.write({"i": "0"}, "{}")
        assert recover(tmp_path).finalized == []
    assert os.listdir(tmp_path) == ["live.events.open"]


def test_a_directory_named_like_a_stale_archive_is_skipped_and_the_others_still_are(
        tmp_path, caplog):
    """Issue 17: what is not a regular file is listed in ``skipped`` (for the
    caller to report), never acted on; it used to be an error in ``left``."""
    (tmp_path / "a.events.open").mkdir()
    with ArchiveWriter(tmp_path / "b.events.open") as writer:
        writer.write({"i": "0"}, "{}")
    with caplog.at_level(logging.ERROR, logger="shoebox.recovery"):
        result = recover(tmp_path)
    assert result.finalized == [str(tmp_path / "b.events")]
    assert result.skipped == {str(tmp_path / "a.events.open"): "directory"}
    assert result.left == {}
    assert (tmp_path / "a.events.open").is_dir()
    assert caplog.records == []
