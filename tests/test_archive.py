"""One archive file: exclusive creation, whole records only, strict and
recovering reads."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from shoebox import (
    ArchiveClosed,
    ArchiveReader,
    ArchiveWriter,
    ChecksumMismatch,
    DamagedRange,
    EndOfFile,
    RecordTooLarge,
    RecordTypeError,
    TruncatedRecord,
    encode_record,
)


def records(n: int) -> list[tuple[dict[str, str], str]]:
    return [({"index": str(i), "kind": "test"}, f'{{"n": {i}, "pad": "{"x" * (i % 50)}"}}')
            for i in range(n)]


def write_archive(path, items, **options) -> list[int]:
    """Write items; return the offset at which each record starts."""
    offsets = []
    with ArchiveWriter(path, **options) as writer:
        for metadata, payload in items:
            offsets.append(writer.size)
            writer.write(metadata, payload)
    return offsets


def test_records_read_back_in_order(tmp_path):
    path = tmp_path / "a.events"
    items = records(100)
    write_archive(path, items)
    with ArchiveReader(path) as reader:
        assert list(reader) == items
        with pytest.raises(EndOfFile):
            reader.read()


def test_reading_across_small_chunks_gives_the_same_records(tmp_path):
    path = tmp_path / "a.events"
    items = records(50)
    write_archive(path, items)
    with ArchiveReader(path, chunk_size=7) as reader:
        assert list(reader) == items


def test_an_existing_file_is_never_truncated_or_overwritten(tmp_path):
    path = tmp_path / "a.events"
    write_archive(path, records(3))
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        ArchiveWriter(path)
    assert path.read_bytes() == before


def test_new_archives_get_mode_0640(tmp_path):
    old = os.umask(0o022)
    try:
        write_archive(tmp_path / "a.events", records(1))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.events").stat().st_mode) == 0o640


def test_a_refused_record_leaves_the_archive_valid(tmp_path):
    path = tmp_path / "a.events"
    with ArchiveWriter(path, max_record_size=1000) as writer:
        writer.write({"a": "1"}, "{}")
        with pytest.raises(RecordTypeError, match="'bad'"):
            writer.write({"bad": 3}, "{}")  # type: ignore[dict-item]
        with pytest.raises(RecordTooLarge):
            writer.write({}, "x" * 2000)
        writer.write({"a": "2"}, "{}")
    with ArchiveReader(path) as reader:
        assert list(reader) == [({"a": "1"}, "{}"), ({"a": "2"}, "{}")]


def test_size_counts_the_bytes_on_disk(tmp_path):
    path = tmp_path / "a.events"
    with ArchiveWriter(path) as writer:
        writer.write({"k": "v"}, "{}")
        writer.write_encoded(encode_record({}, "[]"))
        assert writer.size == path.stat().st_size


@pytest.mark.parametrize("durability", ["close", "record", "never"])
def test_every_durability_setting_writes_readable_archives(tmp_path, durability):
    path = tmp_path / "a.events"
    write_archive(path, records(5), durability=durability)
    with ArchiveReader(path) as reader:
        assert list(reader) == records(5)


def test_an_unknown_durability_is_refused(tmp_path):
    with pytest.raises(ValueError, match="durability must be one of"):
        ArchiveWriter(tmp_path / "a.events", durability="sometimes")  # type: ignore[arg-type]


def test_writing_after_close_raises(tmp_path):
    writer = ArchiveWriter(tmp_path / "a.events")
    writer.close()
    writer.close()
    with pytest.raises(ArchiveClosed):
        writer.write({}, "{}")


def test_a_flipped_byte_raises_in_strict_mode_and_is_skipped_in_recover_mode(tmp_path):
    path = tmp_path / "a.events"
    items = records(20)
    offsets = write_archive(path, items)
    data = bytearray(path.read_bytes())
    data[offsets[10] + 30] ^= 0xFF
    path.write_bytes(data)

    reader = ArchiveReader(path)
    for expected in items[:10]:
        assert reader.read() == expected
    with pytest.raises(ChecksumMismatch) as info:
        reader.read()
    assert info.value.offset == offsets[10]
    assert str(path) in str(info.value) and f"offset {offsets[10]}" in str(info.value)
    reader.close()

    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == items[:10] + items[11:]
        assert reader.damaged == [DamagedRange(str(path), offsets[10],
                                               offsets[11] - offsets[10],
                                               "checksum mismatch: " + info.value.reason
                                               .split(": ", 1)[1])]


def test_garbage_between_records_is_skipped_in_recover_mode(tmp_path):
    path = tmp_path / "a.events"
    good = b"".join(encode_record(m, p) for m, p in records(3))
    # Garbage that even holds a stray marker must not become data.
    garbage = b"junk\x84\x78\x86\x69\x02\x00\xff\xff" + bytes(100)
    path.write_bytes(good + garbage + good)
    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == records(3) * 2
        assert [(d.offset, d.length) for d in reader.damaged] == [(len(good), len(garbage))]


def test_a_truncated_tail_raises_in_strict_mode_and_is_reported_in_recover_mode(tmp_path):
    path = tmp_path / "a.events"
    items = records(5)
    offsets = write_archive(path, items)
    size = path.stat().st_size
    os.truncate(path, size - 3)

    with ArchiveReader(path) as reader, pytest.raises(
            TruncatedRecord, match=f"offset {offsets[4]}"):
        list(reader)
    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == items[:4]
        assert [(d.offset, d.length) for d in reader.damaged] == [
            (offsets[4], size - 3 - offsets[4])]


def test_a_binary_file_object_can_be_read(tmp_path):
    data = b"".join(encode_record(m, p) for m, p in records(4))
    assert list(ArchiveReader(io.BytesIO(data))) == records(4)


def test_a_failed_write_leaves_no_partial_record(tmp_path):
    """A write cut short by the file-size limit (as by a full disk) is rolled
    back to the last whole record."""
    path = tmp_path / "a.events"
    script = textwrap.dedent(f"""
        import resource, signal
        from shoebox import ArchiveWriter
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
        writer = ArchiveWriter({str(path)!r})
        written = 0
        try:
            while True:
                writer.write({{"i": str(written)}}, '{{"pad": "' + "x" * 70 + '"}}')
                written += 1
        except OSError as exc:
            print(written, exc.errno)
        # The disk has room again: the next record follows the last whole one.
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        writer.write({{"i": "after"}}, "{{}}")
        writer.close()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=os.getcwd()).stdout.split()
    written = int(out[0])
    with ArchiveReader(path) as reader:
        got = [metadata["i"] for metadata, _ in reader]
    assert got == [str(i) for i in range(written)] + ["after"]
    assert written > 0


def test_buffered_records_reach_the_file_on_flush_and_close(tmp_path):
    path = tmp_path / "a.events"
    first, second = (encode_record({"i": str(i)}, "{}") for i in range(2))
    writer = ArchiveWriter(path, buffer_size=len(first) * 2)
    writer.write_encoded(first)
    assert path.stat().st_size == 0 and writer.size == len(first)
    writer.flush()
    assert path.stat().st_size == len(first)
    writer.write_encoded(second)
    writer.write_encoded(first)  # reaches buffer_size: written together
    assert path.stat().st_size == len(first) * 2 + len(second)
    writer.write_encoded(second)
    writer.close()
    with ArchiveReader(path) as reader:
        assert [m["i"] for m, _ in reader] == ["0", "1", "0", "1"]


def test_abandoning_drops_pending_records(tmp_path):
    path = tmp_path / "a.events"
    writer = ArchiveWriter(path, buffer_size=1 << 20)
    writer.write({"i": "0"}, "{}")
    writer.abandon()
    assert path.stat().st_size == 0


def test_version_is_none_before_the_first_record_then_the_records_version(tmp_path):
    path = tmp_path / "a.events"
    write_archive(path, records(1))
    with ArchiveReader(path) as reader:
        assert reader.version is None
        reader.read()
        assert reader.version == 2


def test_a_file_mixing_record_versions_reads_in_order(tmp_path):
    from test_codec import v1_record

    path = tmp_path / "mixed.events"
    path.write_bytes(v1_record({"v": "1"}, "{}") + encode_record({"v": "2"}, "{}")
                     + v1_record({}, "") + v1_record({"v": "1b"}, "[]"))
    with ArchiveReader(path) as reader:
        got = [(metadata, payload, reader.version) for metadata, payload in reader]
    assert got == [({"v": "1"}, "{}", 1), ({"v": "2"}, "{}", 2), ({}, "", 1),
                   ({"v": "1b"}, "[]", 1)]


@pytest.mark.parametrize("chunk_size", [1, 97, 1 << 20])
def test_record_offset_is_where_each_record_starts_across_refills_and_versions(
        tmp_path, chunk_size):
    from test_codec import v1_record

    parts = [v1_record({"v": "1"}, "{}")] + [encode_record(m, p) for m, p in records(40)]
    parts.append(v1_record({"v": "1b"}, '["x"]'))
    path = tmp_path / "a.events"
    path.write_bytes(b"".join(parts))
    starts = [sum(map(len, parts[:index])) for index in range(len(parts))]
    with ArchiveReader(path, chunk_size=chunk_size) as reader:
        assert reader.record_offset is None
        seen = [reader.record_offset for _record in reader]
        # After the end, it still names the last record read.
        assert reader.record_offset == starts[-1]
    assert seen == starts


def test_record_offset_skips_damage_with_the_recovering_reader(tmp_path):
    parts = [encode_record(m, p) for m, p in records(5)]
    data = bytearray(b"".join(parts))
    data[len(parts[0]) + 30] ^= 0xFF  # inside the second record
    path = tmp_path / "a.events"
    path.write_bytes(bytes(data))
    starts = [sum(map(len, parts[:index])) for index in range(len(parts))]
    with ArchiveReader(path, recover=True, chunk_size=64) as reader:
        seen = [(metadata["index"], reader.record_offset) for metadata, _payload in reader]
    assert seen == [(str(i), starts[i]) for i in (0, 2, 3, 4)]


def _with_optional_flag(record: bytes) -> bytes:
    """The record with a flag a reader may ignore (high byte), checksum fixed."""
    import struct
    import zlib

    data = bytearray(record)
    data[6:8] = struct.pack("<H", 0x0100)
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[6:-4])))
    return bytes(data)


def test_iterating_gives_what_reading_record_by_record_gives(tmp_path):
    """Iteration decodes runs of plain records on a fast path; the others
    (another version, a flag, a NUL inside a metadata string) and chunk
    ends take read()'s path, and nothing differs: records, versions, offsets."""
    from test_codec import v1_record

    parts = [encode_record({"n": "0"}, "{}"), encode_record({"a\0b": "c"}, '{"x": 1}'),
             _with_optional_flag(encode_record({"n": "2"}, "[]")), v1_record({"v": "1"}, "{}"),
             encode_record({"é": "ü"}, '"ö"'), encode_record({}, ""),
             *[encode_record({"n": str(i)}, "x" * i) for i in range(40)]]
    path = tmp_path / "mixed.events"
    path.write_bytes(b"".join(parts))
    with ArchiveReader(path, chunk_size=64) as reader:
        iterated = [(metadata, payload, reader.version, reader.offset)
                    for metadata, payload in reader]
    read = []
    with ArchiveReader(path, chunk_size=64) as reader:
        while True:
            try:
                metadata, payload = reader.read()
            except EndOfFile:
                break
            read.append((metadata, payload, reader.version, reader.offset))
    assert iterated == read
    assert len(read) == len(parts)
    assert [version for _, _, version, _ in read][:6] == [2, 2, 2, 1, 2, 2]


def test_a_read_between_iterated_records_neither_skips_nor_repeats(tmp_path):
    path = tmp_path / "a.events"
    write_archive(path, records(6))
    with ArchiveReader(path) as reader:
        iterator = iter(reader)
        first = next(iterator)
        second = reader.read()
        rest = list(iterator)
    assert [first, second, *rest] == records(6)
