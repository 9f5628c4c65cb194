"""ArchiveStream (and ReadingRollManager, built on it): many archives read in
order, and what closing means."""

from __future__ import annotations

import pytest

from shoebox import ArchiveClosed, NeverRollChecker, NoMoreFiles, ReadingRollManager
from shoebox import WritingRollManager as Writer
from shoebox.reading import ArchiveStream
from shoebox.sources import Source


def _archives(directory, names=("a.events", "b.events")):
    for name in names:
        with Writer(name, NeverRollChecker(), directory=directory) as writer:
            for i in range(3):
                writer.write({"f": name, "i": str(i)}, "{}")
    return [str(directory / name) for name in names]


def test_a_stream_reads_paths_and_sources_in_order_calling_back_per_archive(tmp_path):
    first, second = _archives(tmp_path)
    opened, closed = [], []
    stream = ArchiveStream([first, Source(second)], on_open=opened.append,
                           on_close=closed.append)
    assert [(m["f"], m["i"]) for m, _ in stream] == [
        (name, str(i)) for name in ("a.events", "b.events") for i in range(3)]
    assert opened == closed == [first, second]
    with pytest.raises(NoMoreFiles):
        stream.read()


def test_read_and_iteration_take_from_the_same_sequence(tmp_path):
    stream = ArchiveStream(_archives(tmp_path))
    assert stream.read()[0] == {"f": "a.events", "i": "0"}
    assert [m["i"] for m, _ in stream][:2] == ["1", "2"]


@pytest.mark.parametrize("make", [
    lambda d, names: ArchiveStream([str(d / n) for n in names]),
    lambda d, names: ReadingRollManager("*.events", directory=d),
])
def test_closing_stops_reading_instead_of_moving_on_to_the_next_file(tmp_path, make):
    _archives(tmp_path)
    stream = make(tmp_path, ["a.events", "b.events"])
    assert stream.read() == ({"f": "a.events", "i": "0"}, "{}")
    stream.close()
    assert list(stream) == []
    with pytest.raises(ArchiveClosed, match="closed archive stream"):
        stream.read()
    stream.close()  # twice is harmless
