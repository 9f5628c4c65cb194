"""The application and the sidecar stopped at the same moment (a pod, a
compose project, ``systemctl stop app sidecar``): the sidecar ships the
archives the application closes as it stops, or names what it left, with
exit status 1 (issue 18: 5 archives, 497 records, stayed local and the
``finished`` line said "0 not shipped")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from _sidecar_support import SidecarProcess, read_compressed
from archive_files import subprocess_env

from shoebox import ArchiveReader

# A writer process: records as fast as a busy service logs them, an archive
# every 150 records. On SIGTERM it goes on writing into the archive it has
# open for LINGER seconds (requests in flight), then closes it and prints
# how many records it wrote.
_WRITER = """
import signal, sys, threading
from shoebox import NeverRollChecker, WritingRollManager

directory, linger = sys.argv[1], float(sys.argv[2])
stop, done, never = threading.Event(), threading.Event(), threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
count = 0

def archive():
    return WritingRollManager("app_%Y%m%d_%H%M%S_%f.events", NeverRollChecker(),
                              directory=directory)

def write(manager):
    global count
    manager.write({"id": str(count), "level": "INFO"}, '{"message": "%s"}' % ("x" * 60))
    count += 1
    never.wait(0.001)

# Rolled here, not by size: once stopping, the archive open stays open.
manager = archive()
while not stop.is_set():
    write(manager)
    if count % 150 == 0:
        manager.close()
        manager = archive()
threading.Timer(linger, done.set).start()
while not done.is_set():
    write(manager)
manager.close()
print(count, flush=True)
"""


def stop_together(tmp_path: Path, linger: float, shutdown_timeout: str
                  ) -> tuple[int, int, int, SidecarProcess]:
    """Run the writer and the sidecar, then SIGTERM both at once; return the
    writer's record count, both exit codes, and the sidecar (its log lines)."""
    writer, sidecar = start_both(tmp_path, linger, shutdown_timeout)
    try:
        written, writer_code, sidecar_code = stop_both(writer, sidecar)
    finally:
        writer.kill()
        sidecar.close()
    return written, writer_code, sidecar_code, sidecar


def start_both(tmp_path: Path, linger: float, shutdown_timeout: str
               ) -> tuple[subprocess.Popen[str], SidecarProcess]:
    watch, dest = tmp_path / "watch", tmp_path / "dest"
    watch.mkdir()
    sidecar = SidecarProcess(str(watch), "--dest", str(dest), "--key-template",
                             "{name}{suffix}", "--shutdown-timeout", shutdown_timeout,
                             "--scan-interval", "3600")
    assert sidecar.wait_for(lambda line: "event" in line)["event"] == "started"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(watch), str(linger)],
                              env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    try:
        sidecar.wait_events("shipped", 2)  # running: archives close and ship
    except BaseException:
        writer.kill()
        writer.communicate(timeout=60)
        sidecar.close()
        raise
    return writer, sidecar


def stop_both(writer: subprocess.Popen[str], sidecar: SidecarProcess) -> tuple[int, int, int]:
    """SIGTERM to both at once; return the writer's record count and both exit codes."""
    writer.send_signal(signal.SIGTERM)
    sidecar.proc.send_signal(signal.SIGTERM)
    out, _err = writer.communicate(timeout=60)
    return int(out), writer.returncode, sidecar.wait(60)


def shipped_records(dest: Path) -> list[str]:
    ids = []
    for name in sorted(os.listdir(dest)):
        ids += [metadata["id"] for metadata, _payload in read_compressed(
            (dest / name).read_bytes())]
    return ids


def test_archives_closed_as_the_application_stops_are_shipped_every_record_once(
        tmp_path: Any) -> None:
    written, writer_code, sidecar_code, sidecar = stop_together(tmp_path, linger=0.5,
                                                                shutdown_timeout="20")
    assert (writer_code, sidecar_code) == (0, 0)
    assert os.listdir(tmp_path / "watch") == []
    assert sorted(shipped_records(tmp_path / "dest"), key=int) == [
        str(index) for index in range(written)]
    finished = sidecar.lines[-1]
    assert (finished["event"], finished["not_shipped"], finished["still_open"]) == (
        "finished", [], [])
    assert finished["shipped"] == len(os.listdir(tmp_path / "dest"))


def test_an_archive_the_application_closes_too_late_is_named_as_left(tmp_path: Any) -> None:
    written, writer_code, sidecar_code, sidecar = stop_together(tmp_path, linger=3,
                                                                shutdown_timeout="0.5")
    assert (writer_code, sidecar_code) == (0, 1)
    finished = sidecar.lines[-1]
    assert finished["event"] == "finished"
    # When the sidecar stopped, the writer still had its archive open.
    assert len(finished["still_open"]) == 1
    assert finished["still_open"][0].endswith(".events.open")
    assert f"; 1 still being written (.open): {finished['still_open'][0]}" in (
        finished["message"])
    # Any archive closed and not shipped in those 0.5 s would be named too,
    # with the count.
    assert f"; {len(finished['not_shipped'])} not shipped" in finished["message"]
    # What stays: those, the archive that was open (closed since under its
    # final name), and those the writer wrote after the sidecar had gone;
    # every record is shipped or here, once.
    left = sorted(os.listdir(tmp_path / "watch"))
    assert {os.path.basename(path) for path in finished["not_shipped"]} <= set(left)
    assert os.path.basename(finished["still_open"][0])[:-len(".open")] in left
    here = []
    for name in left:
        with ArchiveReader(tmp_path / "watch" / name) as reader:
            here += [metadata["id"] for metadata, _payload in reader]
    assert sorted(shipped_records(tmp_path / "dest") + here, key=int) == [
        str(index) for index in range(written)]
