"""``shoebox cat --follow``: records of live archives as they are written,
across rolls, whole records only; ``cat`` telling about the ``.open``
archives it skips."""

from __future__ import annotations

import gzip
import json
import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from archive_files import SHOEBOX, items, run, subprocess_env, write

from shoebox import SizeRollChecker, WritingRollManager, encode_record
from shoebox.errors import TruncatedRecord
from shoebox.follow import Follower

TIMEOUT = 60  # seconds to wait for a line: the machine may be loaded


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as target:
        target.write(data)


def indexes(records) -> list[int]:
    return [int(metadata["index"]) for metadata, _ in records]


# --- Follower ------------------------------------------------------------

def test_a_half_written_record_is_read_only_once_whole(tmp_path):
    first, second = (encode_record(m, p) for m, p in items(2))
    live = tmp_path / "a.events.open"
    live.write_bytes(first + second[:len(second) // 2])
    with Follower([tmp_path]) as follower:
        assert indexes(follower.poll()) == [0]
        assert indexes(follower.poll()) == []
        append(live, second[len(second) // 2:])
        assert indexes(follower.poll()) == [1]
        assert follower.damaged == []


def test_a_roll_is_followed_into_the_next_archive(tmp_path):
    records = [encode_record(m, p) for m, p in items(6)]
    write(tmp_path / "0.events", items(2))  # finished before: read first
    live = tmp_path / "1.events.open"
    live.write_bytes(b"".join(records[2:4]))
    with Follower([tmp_path]) as follower:
        assert indexes(follower.poll()) == [0, 1, 2, 3]
        append(live, records[4])
        os.rename(live, tmp_path / "1.events")  # the roll: finished, renamed
        (tmp_path / "2.events.open").write_bytes(records[5])
        assert indexes(follower.poll()) == [4, 5]
        assert indexes(follower.poll()) == []


def test_a_compressed_copy_of_a_followed_archive_is_not_read_again(tmp_path):
    record = encode_record(*items(1)[0])
    live = tmp_path / "a.events.open"
    live.write_bytes(record)
    with Follower([tmp_path]) as follower:
        assert indexes(follower.poll()) == [0]
        os.rename(live, tmp_path / "a.events")
        (tmp_path / "a.events.gz").write_bytes(gzip.compress(record))  # a CompressCallback
        os.unlink(tmp_path / "a.events")
        assert indexes(follower.poll()) == []


def test_an_archive_opened_and_finished_between_two_polls_is_read(tmp_path):
    with Follower([tmp_path]) as follower:
        assert indexes(follower.poll()) == []
        write(tmp_path / "quick.events", items(3))
        assert indexes(follower.poll()) == [0, 1, 2]
        assert indexes(follower.poll()) == []


@pytest.mark.parametrize("recover", [False, True])
def test_an_archive_finished_with_a_torn_record_is_damage(tmp_path, recover):
    first, second = (encode_record(m, p) for m, p in items(2))
    live = tmp_path / "a.events.open"
    live.write_bytes(first + second[:10])
    with Follower([tmp_path], recover=recover) as follower:
        assert indexes(follower.poll()) == [0]
        os.rename(live, tmp_path / "a.events")
        if not recover:
            with pytest.raises(TruncatedRecord, match=r"a\.events, offset 1\d\d"):
                list(follower.poll())
            return
        assert indexes(follower.poll()) == []
        ((damaged),) = follower.damaged
        assert (damaged.filename, damaged.offset, damaged.length) == (
            str(tmp_path / "a.events"), len(first), 10)


def test_damage_in_a_live_archive_is_skipped_with_recover(tmp_path):
    records = [encode_record(m, p) for m, p in items(3)]
    bad = records[1][:-6] + bytes([records[1][-6] ^ 1]) + records[1][-5:]
    live = tmp_path / "a.events.open"
    live.write_bytes(records[0] + bad)
    with Follower([tmp_path], recover=True) as follower:
        assert indexes(follower.poll()) == [0]
        append(live, records[2])
        assert indexes(follower.poll()) == [2]
        assert [(d.offset, d.length) for d in follower.damaged] == [
            (len(records[0]), len(bad))]


# --- the command ---------------------------------------------------------

def test_cat_says_how_many_open_archives_it_skipped(tmp_path, capsys):
    write(tmp_path / "done.events", items(1))
    write(tmp_path / "a.events.open", items(2))
    write(tmp_path / "b.events.open", items(2))

    status, out, err = run(capsys, "cat", "--metadata-only", tmp_path)

    assert (status, len(out.splitlines())) == (0, 1)
    assert err == ("shoebox: skipped 2 .open archives (being written, or left by a crashed "
                   "writer): --include-open reads them, --follow follows them as they are "
                   "written\n")


def test_include_open_reads_live_archives_up_to_their_last_whole_record(tmp_path, capsys):
    live = write(tmp_path / "a.events.open", items(2))
    append(live, encode_record(*items(3)[2])[:-5])  # being written

    status, out, err = run(capsys, "cat", "--metadata-only", "--include-open", tmp_path)

    assert (status, err) == (0, "")
    assert [json.loads(line)["index"] for line in out.splitlines()] == ["0", "1"]


@pytest.mark.parametrize("path", ["-", "s3://bucket/x"])
def test_follow_is_for_local_paths(capsys, path):
    status, out, err = run(capsys, "cat", "--follow", path)
    assert (status, out) == (2, "")
    assert "--follow follows local archives" in err


@pytest.mark.parametrize("limit", [0, 3])
def test_follow_with_a_limit_stops_by_itself(tmp_path, capsys, limit):
    write(tmp_path / "a.events.open", items(5))
    status, out, _ = run(capsys, "cat", "--follow", "--limit", limit, tmp_path)
    assert (status, len(out.splitlines())) == (0, limit)


def test_cat_follow_prints_a_live_writers_records_across_rolls_until_ctrl_c(tmp_path):
    write(tmp_path / "old.events", items(2, host="before"))
    # A shell starts background jobs with SIGINT ignored, and Python keeps
    # an inherited SIG_IGN: give the child Ctrl-C's default, as a terminal would.
    follow = subprocess.Popen([*SHOEBOX, "cat", "--follow", "--metadata-only", str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=subprocess_env(),
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue[str] = queue.Queue()
    assert follow.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follow.stdout])
    reader.start()

    def next_lines(count: int) -> list[dict[str, str]]:
        return [json.loads(lines.get(timeout=TIMEOUT)) for _ in range(count)]

    try:
        assert [m["host"] for m in next_lines(2)] == ["before", "before"]
        # About four records an archive: each batch below spans a roll.
        writer = WritingRollManager("live_%Y%m%d_%H%M%S_%f.events",
                                    SizeRollChecker(roll_size_mb=500 / 2**20), tmp_path)
        with writer:
            for batch in range(3):
                records = items(6 * (batch + 1))[6 * batch:]
                for metadata, payload in records:
                    writer.write(metadata, payload)
                assert next_lines(6) == [m for m, _ in records]
        assert len(list(tmp_path.glob("live_*.events"))) >= 4
        assert lines.empty()
        follow.send_signal(signal.SIGINT)  # Ctrl-C
        assert follow.wait(timeout=TIMEOUT) == 130
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
        reader.join(timeout=TIMEOUT)
        assert follow.stderr is not None
        err = follow.stderr.read()
        follow.stdout.close()
        follow.stderr.close()
    assert err == ""
