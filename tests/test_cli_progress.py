"""The progress bar: drawn when a file starts, then at most every interval."""

from __future__ import annotations

import io

from shoebox._progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ticks_redraw_only_once_the_interval_has_passed():
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(stream, files=2, enabled=True, clock=clock, interval=0.5)
    progress.start_file("a.events", 1000)
    assert stream.getvalue().count("\r") == 1
    assert "[" + "." * 20 + "] 0/2 files, 0 records, 0.0 MB  a.events" in stream.getvalue()

    progress.tick(10, 500)
    assert stream.getvalue().count("\r") == 1
    clock.now += 0.5
    progress.tick(20, 500)
    assert "[#####" + "." * 15 + "] 0/2 files, 20 records" in stream.getvalue()

    progress.finish_file(30, 1000)
    progress.start_file("b.events.gz", None)
    assert "[##########" + "." * 10 + "] 1/2 files, 30 records" in stream.getvalue()
    progress.clear()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_a_disabled_bar_writes_nothing():
    stream = io.StringIO()
    progress = Progress(stream, files=1, enabled=False, clock=FakeClock())
    progress.start_file("a.events", 10)
    progress.tick(5, 5)
    progress.finish_file(5, 10)
    progress.clear()
    assert stream.getvalue() == ""
