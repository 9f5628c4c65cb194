"""``shoebox recover``: finalizing the archives of writers killed mid-write,
then reading them back with ``verify`` and ``cat``."""

from __future__ import annotations

import errno
import json
import os
import signal

from archive_files import run
from test_recovery import start_writer

import shoebox.recovery
from shoebox import encode_record


def kill_writer_after(directory, records: int) -> int:
    """Start a writer process, SIGKILL it once it has written ``records``;
    return the index it last reported."""
    proc = start_writer(directory, "run")
    assert proc.stdout is not None and proc.stdin is not None
    last = -1
    while last < records:
        last = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stdin.close()
    return last


def test_recover_finalizes_a_killed_writers_archive_and_truncates_its_torn_tail(
        tmp_path, capsys):
    last = kill_writer_after(tmp_path, 1500)
    open_path = tmp_path / "crash.events.open"
    with open(open_path, "ab") as torn:  # a record the crash cut in half
        torn.write(encode_record({"i": "torn"}, '{"x": 1}')[:-7])

    status, out, err = run(capsys, "recover", tmp_path, "--pattern", "*.events")
    assert status == 0
    assert out.splitlines() == [f"finalized {tmp_path / 'crash.events'}",
                                f"1 stale .open archive(s) finalized in {tmp_path}"]
    assert "truncating a torn tail" in err
    assert os.listdir(tmp_path) == ["crash.events"]

    status, out, _ = run(capsys, "verify", tmp_path / "crash.events")
    assert status == 0
    status, out, _ = run(capsys, "cat", "--metadata-only", tmp_path)
    indexes = [int(json.loads(line)["i"]) for line in out.splitlines()]
    assert indexes == list(range(len(indexes)))
    assert len(indexes) > last


def test_recover_leaves_a_live_writers_archive_alone(tmp_path, capsys):
    proc = start_writer(tmp_path, "wait")
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    try:
        status, out, _ = run(capsys, "recover", tmp_path)
        assert status == 0
        assert out == f"0 stale .open archive(s) finalized in {tmp_path}\n"
        assert os.listdir(tmp_path) == ["crash.events.open"]
    finally:
        proc.stdin.write("done\n")
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()
    assert os.listdir(tmp_path) == ["crash.events"]


def test_recover_on_a_missing_directory_exits_with_status_2(tmp_path, capsys):
    status, _, err = run(capsys, "recover", tmp_path / "nope")
    assert status == 2
    assert "not a directory" in err


def test_a_stale_archive_recover_must_leave_gives_status_2(tmp_path, capsys, monkeypatch):
    """A torn tail recover() may not truncate (a file it can read but not
    write; faked here, since root may write anything) is reported, the
    archive left as it is, and the status is 2."""
    open_path = tmp_path / "a.events.open"
    open_path.write_bytes(encode_record({}, "{}") + encode_record({}, "{}")[:9])

    opened = shoebox.recovery.open_regular

    def refuse(path, flags=os.O_RDONLY):
        if flags & os.O_WRONLY:  # the descriptor it would truncate through
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return opened(path, flags)

    monkeypatch.setattr(shoebox.recovery, "open_regular", refuse)
    status, out, err = run(capsys, "recover", tmp_path)
    assert status == 2
    assert out == f"0 stale .open archive(s) finalized in {tmp_path}\n"
    assert f"{open_path}: cannot truncate a torn tail" in err
    assert os.listdir(tmp_path) == ["a.events.open"]
