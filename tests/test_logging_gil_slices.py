"""Non-blocking mode: the writer thread gives the GIL back while it formats
a backlog (issue 19), so that another thread wanting the GIL (a logging
thread, the event loop) gets it within a slice, not after the
interpreter's forced switch (``sys.getswitchinterval()``, 5 ms).

Measured as the gaps a ticker thread sees between its 100 µs sleeps; the
bound is generous (a busy machine's scheduler adds its own gaps), the
benchmark (benchmarks/bench_latency.py) holds the real goal."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import pytest
from _logging_support import GateRollChecker, attach, read_records, restore_logging  # noqa: F401

from shoebox_logging import ShoeboxHandler, ShoeboxJsonFormatter

pytestmark = pytest.mark.usefixtures("restore_logging")

RECORDS = 200  # under the writer's "behind" mark: all formatted on the writer thread
SPIN = 200e-6


class SlowFormatter(ShoeboxJsonFormatter):
    """The default formatter, taking SPIN seconds of pure Python per record
    (a formatter with much to do): bytecode, which keeps the GIL until the
    interpreter forces a switch or the thread gives it back."""

    deferrable = True  # formatted on the writer thread, as the default one is

    def format(self, record: logging.LogRecord) -> str:
        clock = time.perf_counter
        end = clock() + SPIN
        while clock() < end:
            pass
        return super().format(record)


def test_a_thread_waiting_for_the_gil_gets_it_while_the_writer_formats_a_backlog(
        tmp_path: Path) -> None:
    gate = GateRollChecker()
    handler = ShoeboxHandler(directory=tmp_path, queue_size=10_000, roll_checker=gate)
    handler.setFormatter(SlowFormatter())
    logger = attach(handler)
    logger.info("first")  # the writer thread takes it, and waits at the gate
    assert gate.entered.wait(10)
    for number in range(RECORDS):
        logger.info("record %d", number)

    gaps: list[float] = []
    done = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.0001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick, name="test-ticker")
    ticker.start()
    started = time.perf_counter()
    gate.gate.set()  # the writer formats the backlog now
    handler.flush()
    busy = time.perf_counter() - started
    done.set()
    ticker.join()
    handler.close()

    switch = sys.getswitchinterval()
    assert busy > 5 * switch  # enough work for several forced switches
    # Without slices the ticker waits a whole switch interval each time it
    # wants the GIL while the writer formats: one such gap per 5 ms of work.
    # A busy machine's scheduler makes a few of its own.
    long_gaps = sum(gap > switch / 2 for gap in gaps)
    assert long_gaps <= 2, sorted(gaps)[-10:]
    assert len(read_records(tmp_path)) == RECORDS + 1
    logging.getLogger("test.app").removeHandler(handler)
