"""A measurement prototype, not part of shoebox: the non-blocking handler's
work done by a writer *process* fed through a pipe, for bench_logging.py.

In CPython a writer thread competes with the logging threads for the
interpreter lock, so in a logging loop the callers wait for the formatting
they handed over (issue 10). Here the logging thread only captures the
record (``ShoeboxJsonFormatter.capture``: message merged, traceback as
text) and queues it; a thread of the same process marshals what is queued
and writes it to a pipe (``os.write`` releases the GIL), and a child
process, on the other core, formats, encodes and writes the archive with a
blocking ``ShoeboxHandler``.

What a real one would still need: fork safety (a forked child inherits the
pipe and the feeding thread's state), restarting a dead writer process,
reporting its errors, the parent's pid in the metadata (here: the child's),
records whose capture refuses them (formatted in the caller, sent as
text). What a crash loses: the parent's queue and the pipe's contents if
the parent dies; if the child dies, what it read but did not write, and
every record after (the pipe breaks).

    python benchmarks/_writer_process.py DIRECTORY   # the child: frames on stdin
"""

from __future__ import annotations

import collections
import logging
import marshal
import os
import struct
import subprocess
import sys
import threading
from typing import Any

_FRAME = struct.Struct("<I")
BATCH = 512


class WriterProcessHandler(logging.Handler):
    """Captures on the logging thread; a child process writes the archive."""

    def __init__(self, directory: str) -> None:
        from shoebox_logging import ShoeboxJsonFormatter

        super().__init__()
        self._capture = ShoeboxJsonFormatter().capture
        self._child = subprocess.Popen([sys.executable, __file__, directory],
                                       stdin=subprocess.PIPE)
        assert self._child.stdin is not None
        self._pipe = self._child.stdin.fileno()
        self._items: collections.deque[dict[str, Any]] = collections.deque()
        self._wakeup = threading.Event()
        self._closing = False
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def handle(self, record: logging.LogRecord) -> bool:
        if self.filter(record):
            self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        captured = self._capture(record)
        assert captured is not None, "the prototype sends captured records only"
        self._items.append(captured)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _feed(self) -> None:
        items = self._items
        while True:
            self._wakeup.wait()
            self._wakeup.clear()
            while items:
                data = marshal.dumps([items.popleft() for _ in range(min(len(items), BATCH))])
                frame = memoryview(_FRAME.pack(len(data)) + data)
                while frame:
                    frame = frame[os.write(self._pipe, frame):]
            if self._closing and not items:
                return

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._wakeup.set()
            self._feeder.join()
            assert self._child.stdin is not None
            self._child.stdin.close()
            self._child.wait()
        super().close()


def _child(directory: str) -> None:
    from shoebox_logging import ShoeboxHandler, ShoeboxJsonFormatter

    handler = ShoeboxHandler(directory=directory, metadata_fields=["request_id", "tenant"])
    restore = ShoeboxJsonFormatter.restore
    stream = sys.stdin.buffer
    while len(head := stream.read(_FRAME.size)) == _FRAME.size:
        (size,) = _FRAME.unpack(head)
        for captured in marshal.loads(stream.read(size)):
            handler.emit(restore(captured))
    handler.close()


if __name__ == "__main__":
    _child(sys.argv[1])
