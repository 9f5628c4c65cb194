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
# every 16 KiB. On SIGTERM it goes on writing for LINGER seconds (requests
# in flight), then closes its last archive and prints how many records it
# wrote.
_WRITER = """
import sys, threading
from shoebox import SizeRollChecker, WritingRollManager

directory, linger = sys.argv[1], float(sys.argv[2])
stop = threading.Event()
import signal
signal.signal(signal.SIGTERM, lambda *_: stop.set())
manager = WritingRollManager("app_%Y%m%d_%H%M%S_%f.events",
                             SizeRollChecker(roll_size_mb=1 / 64), directory=directory)
count = 0
pause, never = threading.Event(), threading.Event()
def write():
    global count
    manager.write({"id": str(count), "level": "INFO"}, '{"message": "%s"}' % ("x" * 60))
    count += 1
while not stop.is_set():
    write()
    never.wait(0.001)
lingering = threading.Timer(linger, pause.set)
lingering.start()
while not pause.is_set():
    write()
    never.wait(0.001)
manager.close()
print(count, flush=True)
"""


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
    sidecar.wait_events("shipped", 2)  # running: archives close and ship
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
    writer, sidecar = start_both(tmp_path, linger=0.5, shutdown_timeout="20")
    try:
        written, writer_code, sidecar_code = stop_both(writer, sidecar)
    finally:
        writer.kill()
        sidecar.close()
    assert (writer_code, sidecar_code) == (0, 0)
    assert os.listdir(tmp_path / "watch") == []
    assert sorted(shipped_records(tmp_path / "dest"), key=int) == [
        str(index) for index in range(written)]
    finished = sidecar.lines[-1]
    assert (finished["event"], finished["not_shipped"], finished["still_open"]) == (
        "finished", [], [])
    assert finished["shipped"] == len(os.listdir(tmp_path / "dest"))


def test_an_archive_the_application_closes_too_late_is_named_as_left(tmp_path: Any) -> None:
    writer, sidecar = start_both(tmp_path, linger=3, shutdown_timeout="0.5")
    try:
        written, writer_code, sidecar_code = stop_both(writer, sidecar)
    finally:
        writer.kill()
        sidecar.close()
    assert (writer_code, sidecar_code) == (0, 1)
    finished = sidecar.lines[-1]
    assert finished["event"] == "finished"
    # When the sidecar stopped, the writer still had its archive open.
    assert len(finished["still_open"]) == 1
    assert finished["still_open"][0].endswith(".events.open")
    assert f"; 1 still being written (.open): {finished['still_open'][0]}" in (
        finished["message"])
    assert finished["not_shipped"] == []
    # What stays is that archive, closed since under its final name, and
    # those the writer wrote after: every record is shipped or here, once.
    left = sorted(os.listdir(tmp_path / "watch"))
    assert os.path.basename(finished["still_open"][0])[:-len(".open")] == left[0]
    here = []
    for name in left:
        with ArchiveReader(tmp_path / "watch" / name) as reader:
            here += [metadata["id"] for metadata, _payload in reader]
    assert sorted(shipped_records(tmp_path / "dest") + here, key=int) == [
        str(index) for index in range(written)]
