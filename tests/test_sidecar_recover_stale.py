"""``--recover-stale`` in watch mode: the archive of a writer SIGKILLed while
the sidecar runs is finalized by a periodic scan and shipped, with no
restart; a quiet writer that is alive (it holds its lock) is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from _sidecar_support import SidecarProcess, bucket_objects, read_compressed
from archive_files import subprocess_env

from shoebox import encode_record

# Writes RECORDS records into NAME.events.open, says so, then stays alive,
# quiet, holding the archive's lock, until its stdin closes.
_WRITER = textwrap.dedent("""
    import json, sys
    from shoebox import NeverRollChecker, WritingRollManager
    directory, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    writer = WritingRollManager(name + ".events", NeverRollChecker(), directory=directory)
    for index in range(count):
        writer.write({"id": f"{name}-{index}"}, json.dumps({"n": index}))
    print("written", flush=True)
    sys.stdin.read()
    writer.close()
""")
RECORDS = 300


class Writer:
    """A writing process; its ``.open`` archive is made to look an hour old
    (unmodified for longer than any grace period)."""

    def __init__(self, directory: Any, name: str) -> None:
        self.name = name
        self.open_path = directory / f"{name}.events.open"
        self.final_path = directory / f"{name}.events"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(directory), name, str(RECORDS)],
            env=subprocess_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "written\n"
        an_hour_ago = time.time() - 3600
        os.utime(self.open_path, (an_hour_ago, an_hour_ago))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(30) == -signal.SIGKILL

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        for stream in (self.proc.stdin, self.proc.stdout):
            assert stream is not None
            stream.close()


def test_a_writer_killed_while_the_sidecar_watches_is_shipped_and_a_quiet_live_one_left(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    # Name order matters: one recover() pass tries "a-killed" then "b-quiet",
    # so the pass that finalizes the first has looked at the second too.
    writers = [Writer(tmp_path, "a-killed"), Writer(tmp_path, "b-quiet")]
    killed, quiet = writers
    sidecar = SidecarProcess(str(tmp_path), "--dest", f"s3://{bucket}", "--endpoint-url",
                             s3_server.endpoint_url, "--key-template", "{name}{suffix}",
                             "--recover-stale", "--stale-after", "60", "--scan-interval", "0.2")
    try:
        sidecar.wait_events("started", 1)  # the start-up pass found both writers alive
        killed.kill()
        recovered = sidecar.wait_events("recovered", 1)[0]
        assert recovered["archive"] == str(killed.final_path)
        shipped = sidecar.wait_events("shipped", 1)[0]
        assert shipped["archive"] == str(killed.final_path)
        assert [line["archive"] for line in sidecar.lines
                if line.get("event") == "recovered"] == [str(killed.final_path)]
        assert quiet.open_path.exists() and quiet.proc.poll() is None

        quiet.kill()  # now its writer is gone too: the next scans ship it
        assert sidecar.wait_events("recovered", 1)[0]["archive"] == str(quiet.final_path)
        assert sidecar.wait_events("shipped", 1)[0]["archive"] == str(quiet.final_path)
        assert sidecar.signal(signal.SIGTERM) == 0
    finally:
        sidecar.close()
        for writer in writers:
            writer.close()
    objects = bucket_objects(s3_server.client(), bucket)
    assert sorted(objects) == ["a-killed.events.gz", "b-quiet.events.gz"]
    for writer in writers:
        records = read_compressed(objects[f"{writer.name}.events.gz"])
        assert [metadata["id"] for metadata, _ in records] == [
            f"{writer.name}-{index}" for index in range(RECORDS)]
    assert os.listdir(tmp_path) == []


@pytest.mark.unprivileged
def test_a_torn_tail_the_sidecar_may_not_cut_is_not_shipped_exit_1_saying_what_to_change(
        tmp_path: Any) -> None:
    """Issue 18: archives are 0640 and the sidecar only in the group; a
    crashed writer's torn tail could not be cut, and --once said "0 not
    shipped", exit 0."""
    watch = tmp_path / "watch"
    watch.mkdir()
    records = [encode_record({"id": str(index)}, "{}") for index in range(3)]
    stale = watch / "crashed.events.open"
    stale.write_bytes(b"".join(records) + records[0][:9])  # a torn last record
    stale.chmod(0o440)  # readable, not writable: as the writer's group sees it
    sidecar = SidecarProcess(str(watch), "--dest", str(tmp_path / "dest"), "--once",
                             "--recover-stale", "--stale-after", "0")
    try:
        assert sidecar.wait(60) == 1
    finally:
        sidecar.close()
    failed = [line for line in sidecar.lines if line.get("event") == "recover_failed"]
    assert [line["archive"] for line in failed] == [str(stale)]
    assert "cannot truncate a torn tail of 9 bytes" in failed[0]["message"]
    assert ("make archives writable by the sidecar (the handler's file_mode=0o660"
            in failed[0]["message"])
    assert "or run the sidecar as the writer's user" in failed[0]["message"]
    finished = sidecar.lines[-1]
    assert (finished["event"], finished["not_shipped"]) == ("finished", [str(stale)])
    assert "; 1 not shipped: " in finished["message"]
    assert os.listdir(watch) == ["crashed.events.open"]
