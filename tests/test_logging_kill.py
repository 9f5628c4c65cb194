"""What a killed non-blocking handler loses: a real process logs as fast as
it can and is SIGKILLed; what it handed to logging, minus what reads back
(after recover), is at most ``queue_size`` plus one batch, and what reads
back is every record up to some point, in order, with no hole."""

from __future__ import annotations

import json
import mmap
import os
import signal
import struct
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from archive_files import subprocess_env

import shoebox
from shoebox import ReadingRollManager
from shoebox_logging.writer_thread import BATCH_RECORDS

# Logs numbered records forever; after each log call returns, stores how
# many returned in a shared counter file (so that the count survives the
# kill), and says "ready" once the queue has had time to fill.
_LOGGING_CHILD = textwrap.dedent("""
    import logging, mmap, struct, sys
    from shoebox_logging import ShoeboxHandler
    directory, counter_path, queue_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    handler = ShoeboxHandler(directory=directory, queue_size=queue_size)
    log = logging.getLogger("killed")
    log.addHandler(handler)
    log.propagate = False
    with open(counter_path, "r+b") as file:
        counter = mmap.mmap(file.fileno(), 8)
    number = 0
    while True:
        log.warning("record", extra={"n": number})
        number += 1
        struct.pack_into("<q", counter, 0, number)
        if number == 20_000:
            print("ready", flush=True)
""")


def kill_while_logging(tmp_path: Any, queue_size: int) -> tuple[int, list[int]]:
    """How many log calls returned before the kill, and the numbers read back."""
    counter = tmp_path / "counter"
    counter.write_bytes(bytes(8))
    archive = tmp_path / "archive"
    proc = subprocess.Popen([sys.executable, "-c", _LOGGING_CHILD, str(archive), str(counter),
                             str(queue_size)], env=subprocess_env(), stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
        assert proc.stdout is not None
        proc.stdout.close()
    with open(counter, "rb") as file, mmap.mmap(file.fileno(), 8,
                                                access=mmap.ACCESS_READ) as shared:
        handed = struct.unpack_from("<q", shared, 0)[0]
    shoebox.recover(archive)
    numbers = [json.loads(payload)["n"] for _, payload in
               ReadingRollManager("*.events", directory=archive)]
    return handed, numbers


@pytest.mark.parametrize("queue_size", [100, 2000])
def test_a_killed_non_blocking_handler_loses_at_most_its_queue_and_one_batch(
        tmp_path: Any, queue_size: int) -> None:
    handed, numbers = kill_while_logging(tmp_path, queue_size)
    assert handed >= 20_000
    assert numbers == list(range(len(numbers)))  # in order, no hole, no repeat
    lost = handed - len(numbers)
    assert 0 <= lost <= queue_size + BATCH_RECORDS, (lost, queue_size)
    assert not [name for name in os.listdir(tmp_path / "archive") if name.endswith(".open")]
