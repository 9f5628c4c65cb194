"""docs/integrations.md's FastAPI/uvicorn configuration under load: the
event loop's lag (a ticker task's) does not grow with logging on, even
while every archive roll stalls on a slow disk; a blocking handler, the
negative control, shows the stalls in the lag."""

from __future__ import annotations

import http.client
import json
import signal
import statistics
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from _logging_support import read_records
from archive_files import ROOT, subprocess_env

APP = ROOT / "tests" / "_uvicorn_app.py"
THREADS = 2
REQUESTS = 250  # per thread
STALL = 0.5  # seconds each roll takes on the "slow disk"


def get(connection: http.client.HTTPConnection, path: str) -> Any:
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body
    return json.loads(body)


def run_app(mode: str, directory: Path) -> list[float]:
    """Serve in ``mode`` under load; the loop's lags while loaded."""
    with subprocess.Popen([sys.executable, str(APP), mode, str(directory), str(STALL)],
                          stdout=subprocess.PIPE, text=True, env=subprocess_env()) as process:
        return _load(process)


def _load(process: subprocess.Popen[str]) -> list[float]:
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())  # printed once serving
        control = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        get(control, "/lag/start")

        def load(thread: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for n in range(REQUESTS):
                assert get(connection, f"/orders/{thread * REQUESTS + n}") == {
                    "order_id": thread * REQUESTS + n}
            connection.close()

        threads = [threading.Thread(target=load, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        lags: list[float] = get(control, "/lag/stop")["lags"]
        control.close()
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn's graceful stop, then the documented handler's exit.
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    return lags


def p90(lags: list[float]) -> float:
    return statistics.quantiles(lags, n=10)[-1]


def test_logging_on_the_event_loop_never_waits_on_the_disk(tmp_path: Path) -> None:
    off = run_app("off", tmp_path / "off")
    queued = run_app("queued", tmp_path / "queued")
    blocking = run_app("blocking", tmp_path / "blocking")
    assert len(off) > 20 and len(queued) > 20

    # Negative control: logging on the loop, each roll stalls it.
    assert max(blocking) >= STALL * 0.9
    # The documented set-up: the loop never sat out a roll, and its lag is
    # what it is without logging (a ratio: the machine may be busy).
    assert max(queued) < STALL * 0.9
    assert p90(queued) <= 2 * p90(off)

    # And nothing was lost on the way: every request's access and
    # application records are in the archives.
    records = read_records(tmp_path / "queued")
    loggers = Counter(metadata["logger"] for metadata, _payload in records)
    total = THREADS * REQUESTS
    assert loggers["shop"] == total
    assert loggers["uvicorn.access"] == total + 2  # and the two /lag calls
    orders = sorted(int(metadata["order_id"]) for metadata, _payload in records
                    if metadata["logger"] == "shop")
    assert orders == list(range(total))
    assert len(list((tmp_path / "queued").glob("*.events"))) > 2  # it did roll
    assert not list((tmp_path / "queued").glob("*.open"))
