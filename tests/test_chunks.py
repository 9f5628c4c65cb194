"""Walking length-prefixed units fed in chunks of any size: records (the
shipper's counter) and zstd frames (the truncation check)."""

from __future__ import annotations

import itertools

import zstandard
from hypothesis import given
from hypothesis import strategies as st

from shoebox import encode_record
from shoebox.compression import _ZstdFrames
from shoebox.shipping import _RecordCounter

ARCHIVE = b"".join(encode_record({"i": str(i)}, "x" * (i * 37 % 300)) for i in range(40))
ZSTD = zstandard.ZstdCompressor(write_checksum=True).compress(ARCHIVE[:5000]) + \
    zstandard.ZstdCompressor(write_checksum=False).compress(ARCHIVE[5000:])


def _fed(walker, data, cuts):
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    for start, end in itertools.pairwise(points):
        walker.feed(data[start:end])
    return walker


@given(st.lists(st.integers(min_value=0), max_size=30))
def test_records_are_counted_whatever_the_chunks(cuts):
    counter = _fed(_RecordCounter(1 << 20), ARCHIVE, cuts)
    assert counter.finish() == 40
    assert counter.first_version == 2


@given(st.lists(st.integers(min_value=0), max_size=10), st.integers(1, len(ARCHIVE) - 1))
def test_an_archive_cut_inside_a_record_counts_as_damaged(cuts, end):
    counter = _fed(_RecordCounter(1 << 20), ARCHIVE[:end], cuts)
    boundaries = {0}
    position = 0
    for i in range(40):
        position += len(encode_record({"i": str(i)}, "x" * (i * 37 % 300)))
        boundaries.add(position)
    assert (counter.finish() is None) == (end not in boundaries)


@given(st.lists(st.integers(min_value=0), max_size=30))
def test_zstd_frames_are_complete_only_at_the_end_of_a_frame(cuts):
    assert _fed(_ZstdFrames(), ZSTD, cuts).complete
    assert not _fed(_ZstdFrames(), ZSTD[:-1], cuts).complete


def test_bytes_that_are_not_a_zstd_frame_are_damage():
    frames = _fed(_ZstdFrames(), ZSTD + b"garbage!", [])
    assert frames.error == "bytes after a frame are not a zstd frame"
