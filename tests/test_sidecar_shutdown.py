"""Stopping the sidecar: what is waiting or closed since the last scan is
shipped, uploads in progress are finished (all within the shutdown
timeout), and what stays is told by name, with exit status 1 (issue 18)."""

from __future__ import annotations

import http.server
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _sidecar_support import SidecarProcess, archives_in, write_archives
from archive_files import subprocess_env

from shoebox.destinations import DirectoryDestination, Prepared
from shoebox.shipping import Shipper
from shoebox_sidecar import Sidecar


class GatedDestination(DirectoryDestination):
    """A directory destination whose deliveries wait for ``gate`` (the test
    decides when an upload in progress may end)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.delivered: list[str] = []

    def deliver(self, prepared: Prepared) -> bool:
        self.entered.set()
        assert self.gate.wait(10)
        self.delivered.append(prepared.key)
        return super().deliver(prepared)


def start(sidecar: Sidecar) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(sidecar.run()), name="sidecar-run")
    thread.start()
    return thread, codes


def stopped_mid_upload(tmp_path: Any, stops: int) -> tuple[Sidecar, GatedDestination, int]:
    """Three archives waiting, one worker; ``stop()`` called ``stops`` times
    while the first upload is in progress. Returns the exit code too."""
    write_archives(tmp_path / "watch", 3)
    destination = GatedDestination(str(tmp_path / "dest"))
    sidecar = Sidecar(str(tmp_path / "watch"),
                      Shipper(destination, key_template="{name}{suffix}"), workers=1,
                      scan_interval=3600)
    thread, codes = start(sidecar)
    assert destination.entered.wait(10)
    for _ in range(stops):
        sidecar.stop()
    destination.gate.set()
    thread.join(20)
    return sidecar, destination, codes[0]


def test_stop_finishes_the_upload_in_progress_then_ships_the_archives_waiting(
        tmp_path: Any) -> None:
    # Before issue 18 stop() started no other upload: the two waiting stayed.
    _sidecar, destination, code = stopped_mid_upload(tmp_path, stops=1)
    assert code == 0
    assert destination.delivered == ["app-000.events.gz", "app-001.events.gz",
                                     "app-002.events.gz"]
    assert archives_in(tmp_path / "watch") == []


def test_a_second_stop_abandons_the_archives_waiting_and_says_which(tmp_path: Any) -> None:
    sidecar, destination, code = stopped_mid_upload(tmp_path, stops=2)
    assert code == 1
    assert destination.delivered == ["app-000.events.gz"]
    assert archives_in(tmp_path / "watch") == ["app-001.events", "app-002.events"]
    assert sidecar.summary().not_shipped == [str(tmp_path / "watch" / "app-001.events"),
                                             str(tmp_path / "watch" / "app-002.events")]


def test_an_upload_outlasting_the_shutdown_timeout_leaves_its_archive(tmp_path: Any) -> None:
    write_archives(tmp_path / "watch", 1)
    destination = GatedDestination(str(tmp_path / "dest"))
    sidecar = Sidecar(str(tmp_path / "watch"), Shipper(destination), workers=1,
                      scan_interval=3600, shutdown_timeout=0.1)
    thread, codes = start(sidecar)
    try:
        assert destination.entered.wait(10)
        sidecar.stop()
        thread.join(20)
        assert codes == [1]  # left: said, in the exit status too
        assert archives_in(tmp_path / "watch") == ["app-000.events"]
        assert sidecar.summary().not_shipped == [str(tmp_path / "watch" / "app-000.events")]
    finally:
        destination.gate.set()  # let the abandoned worker end


def test_an_archive_taken_up_after_stopping_is_left_alone(tmp_path: Any) -> None:
    """A worker may take a queued archive between the end of the last round
    of shipping and the pool's stop."""
    (tmp_path / "watch").mkdir()
    destination = GatedDestination(str(tmp_path / "dest"))
    destination.gate.set()
    sidecar = Sidecar(str(tmp_path / "watch"), Shipper(destination), workers=1,
                      shutdown_timeout=0)
    thread, codes = start(sidecar)
    sidecar.stop()
    thread.join(20)
    assert codes == [0]
    write_archives(tmp_path / "watch", 1)
    assert sidecar.process(str(tmp_path / "watch" / "app-000.events")) is None
    assert destination.delivered == [] and not destination.entered.is_set()
    assert archives_in(tmp_path / "watch") == ["app-000.events"]


# The main thread holds the pool's lock (as submit() does for each archive a
# scan finds) when SIGTERM arrives; the handler runs on that thread, there.
_SIGNAL_WHILE_LOCKED = """
import os, signal, sys
from shoebox.destinations import DirectoryDestination
from shoebox.shipping import Shipper
from shoebox_sidecar import Sidecar, WorkerPool
from shoebox_sidecar.cli import _on_signals

sidecar = Sidecar(sys.argv[1], Shipper(DirectoryDestination(sys.argv[2])), workers=1)
pool = sidecar._pool = WorkerPool(sidecar.process, 1)
_on_signals(sidecar)
with pool._changed:
    os.kill(os.getpid(), signal.SIGTERM)
    print("handler returned", flush=True)
assert sidecar._stop_requested.wait(10)
assert pool.stop(10)
print("stopped", flush=True)
"""


def test_a_signal_arriving_while_the_main_thread_holds_a_lock_does_not_deadlock(
        tmp_path: Any) -> None:
    (tmp_path / "watch").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_WHILE_LOCKED, str(tmp_path / "watch"),
         str(tmp_path / "dest")], env=subprocess_env(), capture_output=True, text=True,
        timeout=20)
    assert (done.returncode, done.stdout) == (0, "handler returned\nstopped\n"), done.stderr


class _StuckS3(http.server.BaseHTTPRequestHandler):
    """Enough S3 for the sidecar to start (HEAD: the bucket is there, the key
    is not); an upload (PUT) then hangs until the test ends."""

    protocol_version = "HTTP/1.1"
    put_arrived: threading.Event
    release: threading.Event

    def do_HEAD(self) -> None:
        in_bucket = "/" in self.path.split("?")[0].strip("/")
        self.send_response(404 if in_bucket else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self) -> None:
        self.put_arrived.set()
        self.release.wait(120)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stuck_s3() -> Iterator[tuple[str, threading.Event]]:
    """An endpoint URL whose uploads never finish, and the event set when
    one has started."""
    handler = type("Handler", (_StuckS3,), {"put_arrived": threading.Event(),
                                            "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="stuck-s3 serve_forever")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.put_arrived
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_an_upload_stuck_in_the_network_does_not_outlive_the_shutdown_timeout(
        tmp_path: Any, stuck_s3: tuple[str, threading.Event]) -> None:
    """boto3's transfer threads are joined at interpreter exit: the command
    must not wait for them past --shutdown-timeout."""
    endpoint_url, put_arrived = stuck_s3
    write_archives(tmp_path, 1)
    sidecar = SidecarProcess(str(tmp_path), "--dest", "s3://stuck-bucket/p", "--endpoint-url",
                             endpoint_url, "--shutdown-timeout", "0.5")
    try:
        assert put_arrived.wait(30)
        signalled = time.monotonic()
        assert sidecar.signal(signal.SIGTERM, timeout=20) == 1  # the archive is left
        assert time.monotonic() - signalled < 15
    finally:
        sidecar.close()
    assert [line.get("event") for line in sidecar.lines][-2:] == ["shutdown_timeout", "finished"]
    assert sidecar.lines[-1]["not_shipped"] == [str(tmp_path / "app-000.events")]
    assert archives_in(tmp_path) == ["app-000.events"]
