"""The sidecar in watch mode, as a real process: archives closed while it runs
are shipped (watchdog events), SIGTERM/SIGINT stop it with exit code 0."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import pytest
from _sidecar_support import (
    SidecarProcess,
    archives_in,
    bucket_objects,
    read_compressed,
    write_archives,
)

from shoebox import NeverRollChecker, WritingRollManager
from shoebox.destinations import DirectoryDestination
from shoebox.shipping import Shipper
from shoebox_sidecar import Sidecar
from shoebox_sidecar.cli import EXIT_USAGE, main


def test_watch_mode_ships_archives_closed_while_it_runs(
        s3_server: Any, bucket: str, tmp_path: Any, processes: list[SidecarProcess]) -> None:
    written = write_archives(tmp_path, 2, prefix="early")
    sidecar = SidecarProcess(str(tmp_path), "--dest", f"s3://{bucket}", "--endpoint-url",
                             s3_server.endpoint_url, "--key-template", "{name}{suffix}",
                             "--scan-interval", "3600", "--shutdown-timeout", "1")
    processes.append(sidecar)
    sidecar.wait_events("shipped", 2)  # the backlog, found by the startup scan
    active = WritingRollManager("live.events", NeverRollChecker(), directory=str(tmp_path))
    active.write({"i": "0"}, "{}")
    # Closed after startup: only file-system events can report these.
    written.update(write_archives(tmp_path, 3, prefix="late"))
    late = sidecar.wait_events("shipped", 3)
    assert sorted(line["key"] for line in late) == [f"late-00{i}.events.gz" for i in range(3)]
    # Stopped while a writer still writes: it waits (--shutdown-timeout)
    # for that archive to close, then says it is left, exit status 1.
    assert sidecar.signal(signal.SIGTERM) == 1
    assert sidecar.lines[-1]["still_open"] == [str(tmp_path / "live.events.open")]
    assert "; 1 still being written (.open): " in sidecar.lines[-1]["message"]
    objects = bucket_objects(s3_server.client(), bucket)
    assert sorted(objects) == [f"{name}.gz" for name in sorted(written)]
    for name, records in written.items():
        assert read_compressed(objects[f"{name}.gz"]) == records
    assert archives_in(tmp_path) == []
    assert (tmp_path / "live.events.open").exists(), "an archive being written is not touched"
    active.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_watching_sidecar_with_exit_code_0(
        tmp_path: Any, processes: list[SidecarProcess], signum: int) -> None:
    (tmp_path / "watch").mkdir()
    sidecar = SidecarProcess(str(tmp_path / "watch"), "--dest", str(tmp_path / "dest"))
    processes.append(sidecar)
    assert sidecar.wait_for(lambda line: "event" in line)["event"] == "started"
    assert sidecar.signal(signum, timeout=20) == 0
    assert [line["event"] for line in sidecar.lines if "event" in line][-2:] == [
        "stopping", "finished"]


def test_a_failing_periodic_scan_is_logged_and_watching_goes_on(tmp_path: Any) -> None:
    (tmp_path / "watch").mkdir()
    now = [0.0]
    sidecar = Sidecar(str(tmp_path / "watch"),
                      Shipper(DirectoryDestination(str(tmp_path / "dest"))),
                      scan_interval=60, clock=lambda: now[0])
    started, failed = threading.Event(), threading.Event()

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = getattr(record, "event", None)
            if event == "started":
                started.set()
            elif event == "scan_failed":
                failed.set()

    catch = Catch()
    logger = logging.getLogger("shoebox_sidecar")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(catch)
    runner = threading.Thread(target=sidecar.run, name="sidecar-run")
    runner.start()
    try:
        assert started.wait(20)
        os.rename(tmp_path / "watch", tmp_path / "gone")
        assert not failed.wait(0.5), "scanned before the scan interval was up"
        now[0] += 60
        assert failed.wait(20)
        assert runner.is_alive()
    finally:
        sidecar.stop()
        runner.join(20)
        logger.removeHandler(catch)
        logger.setLevel(level)


def test_a_sidecar_started_before_its_directory_exists_creates_it_and_ships(
        tmp_path: Any, processes: list[SidecarProcess]) -> None:
    watch = tmp_path / "app" / "archive"
    sidecar = SidecarProcess(str(watch), "--dest", str(tmp_path / "dest"),
                             "--key-template", "{name}{suffix}")
    processes.append(sidecar)
    created = sidecar.wait_events("created_watch_dir", 1)[0]
    sidecar.wait_events("started", 1)
    umask = os.umask(0)
    os.umask(umask)
    assert watch.stat().st_mode & 0o777 == 0o750 & ~umask
    assert (created["path"], created["mode"], created["uid"]) == (
        str(watch), f"{0o750 & ~umask:04o}", os.getuid())
    written = write_archives(watch, 2)  # the application, starting later
    sidecar.wait_events("shipped", 2)
    assert sidecar.signal(signal.SIGTERM) == 0
    assert sorted(os.listdir(tmp_path / "dest")) == [f"{name}.gz" for name in sorted(written)]
    for name, records in written.items():
        assert read_compressed((tmp_path / "dest" / f"{name}.gz").read_bytes()) == records


@pytest.mark.parametrize("watch, message", [
    ("file", "is not a directory"),
    ("file/archive", "does not exist and cannot be created: Not a directory"),
])
def test_a_watch_dir_that_cannot_be_a_directory_is_a_usage_error(
        tmp_path: Any, capsys: Any, watch: str, message: str) -> None:
    (tmp_path / "file").write_text("")
    code = main([str(tmp_path / watch), "--dest", str(tmp_path / "dest"), "--once"])
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err
