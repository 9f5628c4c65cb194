"""shoebox.recover: finalizing the .open archives of writers that crashed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from shoebox import ArchiveReader, ArchiveWriter, encode_record, recover

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

    assert recover(tmp_path, "*.events") == [str(tmp_path / "crash.events")]
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
    assert recover(tmp_path) == []
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

    assert recover(tmp_path) == [str(tmp_path / "torn.events")]
    final = tmp_path / "torn.events"
    assert final.stat().st_size == sum(map(len, records))
    with ArchiveReader(final, recover=True) as reader:
        assert [m["i"] for m, _ in reader] == ["0", "1", "3"]
        assert [d.offset for d in reader.damaged] == [len(records[0]) + len(records[1])]


def test_recovery_never_replaces_an_archive_with_the_same_name(tmp_path):
    (tmp_path / "a.events").write_bytes(encode_record({"who": "first"}, "{}"))
    with ArchiveWriter(tmp_path / "a.events.open") as writer:
        writer.write({"who": "second"}, "{}")
    assert recover(tmp_path, "*.events") == [str(tmp_path / "a_1.events")]
    with ArchiveReader(tmp_path / "a.events") as reader:
        assert list(reader) == [({"who": "first"}, "{}")]
