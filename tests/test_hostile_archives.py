"""Archives made to hurt readers (issue 17): recovery stays linear in the
file's size, records whose metadata lengths disagree with their strings
are refused though their checksum holds, and one long record is read
without copies of its size."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import pytest
from archive_files import compress, items, run, subprocess_env
from hypothesis import given
from hypothesis import strategies as st

import shoebox.codec
from shoebox import (
    ArchiveReader,
    BadMetadata,
    CorruptRecord,
    DamagedRange,
    decode_record,
    encode_record,
)
from shoebox.codec import DEFAULT_MAX_RECORD_SIZE, MARKER
from shoebox.follow import Follower

MIB = 1 << 20


def crafted(size: int) -> bytes:
    """Fake version 2 headers every 32 bytes, each with fields a record could
    have (no flags, no extension area, an empty metadata block) and claiming
    a record half the file long."""
    head = struct.pack("<IhHIIII", MARKER, 2, 0, 0, 4, size // 2 - 28, 0)
    return (head + bytes(32 - len(head))) * (size // 32)


def v2_record(strings: list[str], lengths: list[int], payload: bytes = b"{}") -> bytes:
    """A version 2 record of ``strings`` (keys and values, each NUL-terminated)
    with ``lengths`` declared for them and a correct checksum, built from
    docs/format.md rather than by the codec under test."""
    area = b"".join(text.encode() + b"\0" for text in strings)
    meta = struct.pack(f"<I{len(lengths)}I", len(strings) // 2, *lengths) + area
    body = struct.pack("<HIII", 0, 0, len(meta), len(payload)) + meta + payload
    return struct.pack("<Ih", MARKER, 2) + body + struct.pack("<I", zlib.crc32(body))


class CrcBytes:
    """Counts the bytes the codec runs CRC-32 over (the work of checking)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, data: bytes | memoryview, value: int = 0) -> int:
        self.count += len(data)
        return zlib.crc32(data, value)


def read_recovering(path) -> ArchiveReader:
    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == []
    return reader


@pytest.mark.parametrize("how", ["reader", "verify"])
def test_recovering_a_crafted_archive_checks_a_few_times_its_size(tmp_path, capsys,
                                                                     monkeypatch, how):
    """Before the bound, 1 MiB of fake headers cost 16 GiB of CRC-32 (one
    half-file checksum per 32 bytes); now the bytes checked stay within a
    small multiple of the file's size, the same at 1, 2 and 4 MiB."""
    for size in (1 * MIB, 2 * MIB, 4 * MIB):
        path = tmp_path / f"{size}.events"
        path.write_bytes(crafted(size))
        counter = CrcBytes()
        monkeypatch.setattr(shoebox.codec, "_crc32", counter)
        if how == "reader":
            [damaged] = read_recovering(path).damaged
            assert (damaged.offset, damaged.length) == (0, size)
            assert damaged.reason.startswith("checksum mismatch")
        else:
            status, out, _err = run(capsys, "verify", path)
            assert status == 1
            assert out.startswith(f"{path}: DAMAGED, 0 records, {size} bytes\n"
                                  f"  offset 0, length {size}: checksum mismatch")
        assert counter.count <= 4 * size, (size, counter.count)


@pytest.mark.parametrize("how", ["reader", "verify"])
def test_recovering_a_crafted_archive_takes_time_linear_in_its_size(tmp_path, capsys, how):
    """CPU time at 4 MiB stays under 8 times that at 1 MiB (quadratic was 16)."""
    seconds = {}
    for size in (1 * MIB, 2 * MIB, 4 * MIB):
        path = tmp_path / f"{size}.events"
        path.write_bytes(crafted(size))
        started = time.process_time()
        if how == "reader":
            read_recovering(path)
        else:
            assert run(capsys, "verify", path)[0] == 1
        seconds[size] = time.process_time() - started
    assert seconds[4 * MIB] < 8 * seconds[1 * MIB], seconds


def test_records_after_a_crafted_stretch_are_read(tmp_path):
    """The bound costs at most about one genuine record next to crafted bytes."""
    honest = items(2000)
    path = tmp_path / "a.events"
    path.write_bytes(crafted(256 * 1024) + b"".join(encode_record(m, p) for m, p in honest))
    with ArchiveReader(path, recover=True) as reader:
        read = list(reader)
    assert read == honest[len(honest) - len(read):]
    assert len(read) >= len(honest) - 1


def test_a_length_damaged_to_claim_a_long_record_costs_only_that_record(tmp_path):
    """Honest damage never meets the bound: the one record whose payload
    length now claims 100 KiB more (a checksum over the records after it)
    is skipped, and every record after it is read."""
    records = items(3000)
    encoded = [encode_record(m, p) for m, p in records]
    damaged = bytearray(encoded[5])
    (payload_length,) = struct.unpack_from("<I", damaged, 16)
    struct.pack_into("<I", damaged, 16, payload_length + 100 * 1024)
    encoded[5] = bytes(damaged)
    path = tmp_path / "a.events"
    path.write_bytes(b"".join(encoded))
    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == records[:5] + records[6:]
    assert [(d.offset, d.length) for d in reader.damaged] == [
        (sum(map(len, encoded[:5])), len(encoded[5]))]


INCONSISTENT = [
    # {"a": "bc"} with lengths that do not add up, and with lengths that add
    # up but put the first terminator on "b": both decoded as {"a": "bc"}.
    pytest.param(["a", "bc"], [5, 5], "do not add up: 2 strings of 10 bytes", id="5,5"),
    pytest.param(["a", "bc"], [2, 1], r"string 0 \(2 bytes\) is not followed by its NUL",
                 id="2,1"),
    pytest.param(["a", "b", "a", "c"], [1, 1, 1, 1], "repeats key 'a'", id="repeated-key"),
]


@pytest.mark.parametrize(("strings", "lengths", "words"), INCONSISTENT)
def test_a_checksummed_record_whose_metadata_lengths_disagree_is_refused(
        tmp_path, strings, lengths, words):
    bad = v2_record(strings, lengths)
    with pytest.raises(BadMetadata, match=words):
        decode_record(bad)

    good = encode_record({"k": "v"}, "{}")
    path = tmp_path / "a.events"
    path.write_bytes(good + bad + good)
    with ArchiveReader(path) as reader, pytest.raises(BadMetadata) as info:
        list(reader)
    assert (info.value.filename, info.value.offset) == (str(path), len(good))
    assert f"{path}, offset {len(good)}: metadata" in str(info.value)

    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == [({"k": "v"}, "{}")] * 2
    assert reader.damaged == [DamagedRange(str(path), len(good), len(bad), info.value.reason)]


def by_lengths(strings: list[str], lengths: list[int]) -> dict[str, str] | type[Exception]:
    """What docs/format.md says a metadata block of ``strings`` (each
    NUL-terminated) with ``lengths`` declared holds: the dict the lengths
    give, or the error that refuses the record."""
    area = b"".join(text.encode() + b"\0" for text in strings)
    if sum(lengths) + len(lengths) != len(area):
        return BadMetadata
    taken, pos = [], 0
    for length in lengths:
        if area[pos + length] != 0:
            return BadMetadata
        taken.append(area[pos:pos + length])
        pos += length + 1
    try:
        texts = [piece.decode() for piece in taken]
    except UnicodeDecodeError:
        return CorruptRecord
    if len(set(texts[::2])) != len(texts) // 2:
        return BadMetadata
    return dict(zip(texts[::2], texts[1::2], strict=True))


@given(metadata=st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
       declared=st.lists(st.integers(0, 12), min_size=0, max_size=6), data=st.data())
def test_a_record_holds_what_its_lengths_say_or_is_refused(metadata, declared, data):
    """Random length vectors: a record reads back as the strings its lengths
    delimit (lengths of strings holding NULs may delimit other strings that
    are as valid), whichever way a reader takes them; otherwise the strict
    and recovering readers alike refuse it with the error docs/format.md
    names (BadMetadata for lengths, terminators and repeated keys)."""
    strings = [text for pair in metadata.items() for text in pair]
    true_lengths = [len(text.encode()) for text in strings]
    lengths = data.draw(st.sampled_from([true_lengths, (declared + true_lengths)[
        :len(strings)]]))
    expected = by_lengths(strings, lengths)
    record = v2_record(strings, lengths, b'{"x": 1}')
    good = encode_record({"k": "v"}, "{}")
    archive = good + record + good
    if isinstance(expected, dict):
        assert decode_record(record)[:2] == (expected, '{"x": 1}')
        assert list(ArchiveReader(io.BytesIO(archive))) == [
            ({"k": "v"}, "{}"), (expected, '{"x": 1}'), ({"k": "v"}, "{}")]
        return
    with pytest.raises(CorruptRecord) as info:
        decode_record(record)
    assert type(info.value) is expected
    with pytest.raises(CorruptRecord) as info:
        list(ArchiveReader(io.BytesIO(archive)))
    assert (type(info.value), info.value.offset) == (expected, len(good))
    with ArchiveReader(io.BytesIO(archive), recover=True) as reader:
        assert list(reader) == [({"k": "v"}, "{}")] * 2
    assert [(d.offset, d.length) for d in reader.damaged] == [(len(good), len(record))]


READ_ONE = textwrap.dedent("""
    import resource, sys
    from shoebox import ArchiveReader
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with ArchiveReader(sys.argv[1]) as reader:
        [(metadata, payload)] = reader
    assert metadata == {"k": "v"} and len(payload) == int(sys.argv[2])
    del metadata, payload
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(grown * 1024)
""")


@pytest.mark.parametrize("method", ["none", "gzip"])
def test_reading_a_record_of_the_maximum_size_holds_it_about_twice(tmp_path, method):
    """Its bytes once, its decoded payload once: no copies of its size (the
    reader joined pieces and sliced for the checksum and the payload, three
    times the record)."""
    payload_size = DEFAULT_MAX_RECORD_SIZE - 24 - 4 - 8 - len("k\0v\0")
    record = encode_record({"k": "v"}, "x" * payload_size)
    assert len(record) == DEFAULT_MAX_RECORD_SIZE
    path = tmp_path / "big.events"
    path.write_bytes(compress(record, method))
    del record
    done = subprocess.run([sys.executable, "-c", READ_ONE, str(path), str(payload_size)],
                          env=subprocess_env(), capture_output=True, text=True, check=True)
    assert int(done.stdout) <= 2.5 * DEFAULT_MAX_RECORD_SIZE, done.stdout


def test_following_a_crafted_live_archive_checks_a_few_times_its_size(tmp_path, monkeypatch):
    """``cat --follow --recover`` scans a live archive as ArchiveReader does,
    within the same bound."""
    size = 2 * MIB
    (tmp_path / "a.events.open").write_bytes(crafted(size))
    counter = CrcBytes()
    monkeypatch.setattr(shoebox.codec, "_crc32", counter)
    with Follower([tmp_path], recover=True) as follower:
        assert list(follower.poll()) == []
    assert 0 < counter.count <= 4 * size, counter.count
