"""Re-entrant log calls and shutdown (issue 17), in real processes with a
timeout, so that a hang fails the test instead of hanging the suite: a
``__del__`` that logs, run by the garbage collector inside the handler's
own write or roll; a signal handler that logs; a daemon thread logging
while the interpreter exits. No record is lost silently, no ``.open`` is
left, no process hangs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from _logging_support import (  # noqa: F401
    GateRollChecker,
    attach,
    open_files,
    read_records,
    restore_logging,
)
from archive_files import subprocess_env

from shoebox_logging import ShoeboxHandler
from shoebox_logging._options import DEFAULT_CLOSE_TIMEOUT

MODES = pytest.mark.parametrize("queue_size", [0, 1000], ids=["blocking", "non-blocking"])

# Logs RECORDS records into small archives while something logs
# re-entrantly: objects in reference cycles whose __del__ logs, under a low
# GC threshold ("gc"), or a SIGALRM handler every 0.5 ms ("signal"); then
# closes the handler and prints how many records it logged and stats().
_REENTRANT_CHILD = textwrap.dedent("""
    import gc, json, logging, os, signal, sys
    from shoebox_logging import ShoeboxHandler

    directory, queue_size, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    RECORDS = 20_000
    handler = ShoeboxHandler(directory=directory, queue_size=queue_size, roll_size_mb=0.02)
    log = logging.getLogger("app")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    reentrant = []  # list.append is atomic: a signal cannot lose a count

    def log_reentrant(kind):
        reentrant.append(kind)
        log.warning("re-entrant %s", kind, extra={"kind": kind})

    class Finalized:
        def __init__(self):
            self.cycle = self  # only the garbage collector frees it

        def __del__(self):
            log_reentrant("finalizer")

    if source == "gc":
        gc.set_threshold(10)
    else:
        signal.signal(signal.SIGALRM, lambda signum, frame: log_reentrant("signal"))
        signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    for n in range(RECORDS):
        if source == "gc":
            Finalized()
        log.info("record %d", n)
    if source == "signal":
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
    handler.close()  # garbage collections in here run finalizers too
    gc.disable()
    print(json.dumps({"logged": RECORDS + len(reentrant), "reentrant": len(reentrant),
                      "stats": handler.stats()}), flush=True)
    os._exit(0)  # no finalizers at interpreter exit, after the count
""")


def run_child(script: str, *args: Any, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter; a hang fails at ``timeout``."""
    try:
        return subprocess.run([sys.executable, "-c", script, *map(str, args)],
                              env=subprocess_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process hung: still running after {timeout} s\n"
                             f"{exc.stderr!r}") from None


# A small queue: the logging thread often waits for room, where a signal
# handler that logs used to deadlock on the queue's lock.
@pytest.mark.parametrize("queue_size", [0, 100], ids=["blocking", "non-blocking"])
@pytest.mark.parametrize("source", ["gc", "signal"], ids=["finalizer", "signal-handler"])
def test_reentrant_log_calls_are_written_or_counted_and_leave_no_open_archive(
        tmp_path: Path, queue_size: int, source: str) -> None:
    result = run_child(_REENTRANT_CHILD, tmp_path, queue_size, source, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    stats = report["stats"]

    assert not open_files(tmp_path)
    records = read_records(tmp_path)
    assert len(records) == stats["records_written"]
    assert stats["records_written"] + stats["records_dropped"] + stats["errors"] == report[
        "logged"]
    assert stats["errors"] == 0
    assert stats["archives_closed"] > 20  # many rolls, with re-entrant calls among them
    # Re-entrant calls happened, some of them inside the handler, and what
    # was written of them reads back.
    assert report["reentrant"] > 0 and stats["records_deferred"] > 0
    written_reentrant = sum(1 for _, payload in records if "kind" in payload)
    assert written_reentrant + stats["records_dropped"] == report["reentrant"], stats
    assert [payload["message"] for _, payload in records if "kind" not in payload] == [
        f"record {n}" for n in range(20_000)]


# A service: the handler from dictConfig on the root logger, a daemon thread
# logging a heartbeat in a loop, and a main thread that just returns once
# the heartbeat has logged for a while; logging.shutdown() runs at exit.
_HEARTBEAT_CHILD = textwrap.dedent("""
    import logging, logging.config, sys, threading

    directory, queue_size = sys.argv[1], int(sys.argv[2])
    logging.config.dictConfig({
        "version": 1,
        "handlers": {"archive": {"class": "shoebox_logging.ShoeboxHandler",
                                 "directory": directory, "queue_size": queue_size}},
        "root": {"handlers": ["archive"], "level": "INFO"},
    })
    log = logging.getLogger("service")
    beating = threading.Event()

    def heartbeat():
        n = 0
        while True:
            log.info("heartbeat %d", n)
            n += 1
            if n == 1000:
                beating.set()

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    beating.wait(30)
""")

#: logging.shutdown() calls flush() then close(), each bounded by
#: close_timeout; the margin is for starting Python on a busy machine.
EXIT_BOUND = 2 * DEFAULT_CLOSE_TIMEOUT + 10
RUNS = 50


@MODES
def test_a_process_whose_daemon_thread_logs_at_exit_exits_in_bounded_time(
        tmp_path: Path, queue_size: int) -> None:
    def one_run(run: int) -> tuple[int, subprocess.CompletedProcess[str]]:
        directory = tmp_path / str(run)
        return run, run_child(_HEARTBEAT_CHILD, directory, queue_size, timeout=EXIT_BOUND)

    # A few at a time: 2 cores, and each run is mostly starting Python.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one_run, range(RUNS)))
    for run, result in results:
        directory = tmp_path / str(run)
        assert result.returncode == 0, (run, result.stderr)
        assert not open_files(directory), run
        numbers = [int(payload["message"].split()[1]) for _, payload in read_records(directory)]
        # What the heartbeat logged before the handler closed, in order, no
        # repeats; all of the first 1000. While closing, a full queue drops
        # (counted) instead of blocking; after, records are refused
        # (counted and reported, never raised).
        assert numbers[:1000] == list(range(1000)), run
        assert numbers == sorted(set(numbers)), run
    assert os.listdir(tmp_path)


@pytest.mark.parametrize("value", [0, -1, "soon", True, float("inf")])
def test_a_bad_close_timeout_is_refused_when_the_handler_is_built(
        tmp_path: Path, value: object) -> None:
    with pytest.raises((ValueError, TypeError), match="close_timeout"):
        ShoeboxHandler(directory=tmp_path, close_timeout=value)


@pytest.mark.parametrize("value", [0.5, "0.5", 2])
def test_close_timeout_takes_numbers_and_numeric_strings(tmp_path: Path, value: object) -> None:
    handler = ShoeboxHandler(directory=tmp_path, close_timeout=value)
    assert handler.close_timeout == float(value)  # type: ignore[arg-type]
    handler.close()


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("queue_size", [0, 10], ids=["blocking", "non-blocking"])
def test_close_returns_while_another_thread_is_stuck_in_a_write_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], queue_size: int) -> None:
    stalled = GateRollChecker()  # a write held, as a stalled disk holds it
    handler = ShoeboxHandler(directory=tmp_path, queue_size=queue_size, roll_checker=stalled,
                             close_timeout=0.2)
    logger = attach(handler)
    stuck = threading.Thread(target=logger.info, args=("stuck in the write",))
    stuck.start()
    assert stalled.entered.wait(10)
    for n in range(30):  # queued behind it, or waiting for the lock
        threading.Thread(target=logger.info, args=(f"behind {n}",), daemon=True).start()
    closer = threading.Thread(target=handler.close)
    closer.start()
    closer.join(30)
    returned = not closer.is_alive()
    stalled.gate.set()  # let the stuck thread go, whatever happened
    stuck.join(10)
    assert returned, "close() waited for the stalled write"
    err = capsys.readouterr().err
    assert "close() gave up after close_timeout=0.2s" in err
    assert open_files(tmp_path)  # left .open, for shoebox.recover
