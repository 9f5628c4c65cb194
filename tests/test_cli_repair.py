"""``shoebox repair``: a new archive of the records that validate under the
archive's name, the original kept as ``.damaged``, never in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from archive_files import METHODS, compress, items, run
from test_codec import v1_record

from shoebox import ArchiveReader, compression, encode_record, repair

RECORDS = items(10)


def encoded(records: list[tuple[dict[str, str], str]] = RECORDS) -> list[bytes]:
    return [encode_record(metadata, payload) for metadata, payload in records]


def flipped(record: bytes) -> bytes:
    """``record`` with one payload byte changed: its checksum no longer matches."""
    return record[:-6] + bytes([record[-6] ^ 0x01]) + record[-5:]


def read_back(path: Path) -> list[tuple[dict[str, str], str]]:
    with ArchiveReader(path) as reader:  # strict: any damage left raises
        return list(reader)


def test_a_flipped_byte_drops_that_record_only_and_keeps_the_original(tmp_path, capsys):
    parts = encoded()
    damaged = b"".join(parts[:4]) + flipped(parts[4]) + b"".join(parts[5:])
    path = tmp_path / "app.events"
    path.write_bytes(damaged)

    status, out, err = run(capsys, "repair", path)

    offset = sum(map(len, parts[:4]))
    kept = sum(map(len, parts)) - len(parts[4])
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == (
        f"{path}: 9 records kept ({kept} bytes) in {path}, {len(parts[4])} bytes dropped; "
        f"the original is now {path}.damaged")
    assert out.splitlines()[1].startswith(
        f"  dropped offset {offset}, length {len(parts[4])}: checksum mismatch: stored ")
    assert len(out.splitlines()) == 2
    assert path.read_bytes() == b"".join(parts[:4] + parts[5:])
    assert (tmp_path / "app.events.damaged").read_bytes() == damaged
    assert run(capsys, "verify", path)[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["app.events", "app.events.damaged"]


def test_a_torn_tail_is_dropped_with_its_offset_and_length(tmp_path):
    parts = encoded()
    torn = parts[-1][:-9]
    path = tmp_path / "app.events"
    path.write_bytes(b"".join(parts[:-1]) + torn)

    result = repair(path)

    assert (result.records, result.path, result.original) == (
        9, str(path), f"{path}.damaged")
    ((dropped),) = result.dropped
    assert (dropped.offset, dropped.length) == (sum(map(len, parts[:-1])), len(torn))
    assert "file ends" in dropped.reason
    assert read_back(path) == RECORDS[:-1]


def test_version_1_records_are_copied_as_they_are(tmp_path):
    v1 = [v1_record(metadata, payload) for metadata, payload in RECORDS[:3]]
    v2 = encoded(RECORDS[3:5])
    path = tmp_path / "stacktach.events"
    path.write_bytes(v1[0] + b"\x00garbage\xff" + v1[1] + v2[0] + v1[2] + v2[1][:-3])

    result = repair(path)

    assert path.read_bytes() == v1[0] + v1[1] + v2[0] + v1[2]
    assert [(d.offset, d.length) for d in result.dropped] == [
        (len(v1[0]), 9), (len(v1[0]) + 9 + len(v1[1]) + len(v2[0]) + len(v1[2]),
                          len(v2[1]) - 3)]
    with ArchiveReader(path) as reader:
        versions = [reader.version for _record in reader]
    assert versions == [1, 1, 2, 1]


@pytest.mark.parametrize("method", [m for m in METHODS if m != "none"])
def test_a_compressed_archive_is_repaired_into_the_same_compression(tmp_path, method):
    parts = encoded()
    path = tmp_path / f"app.events{compression.SUFFIXES[method]}"
    path.write_bytes(compress(b"".join(parts[:2]) + flipped(parts[2]) + b"".join(parts[3:]),
                              method))

    result = repair(path)

    assert result.compression == method and result.records == 9
    assert [(d.offset, d.length) for d in result.dropped] == [
        (sum(map(len, parts[:2])), len(parts[2]))]
    assert compression.detect(path.read_bytes()[:4]) == method
    assert read_back(path) == RECORDS[:2] + RECORDS[3:]


def test_a_truncated_gzip_archive_keeps_the_records_before_the_cut(tmp_path):
    data = compress(b"".join(encoded(items(2000))), "gzip")
    path = tmp_path / "app.events.gz"
    path.write_bytes(data[:len(data) // 2])

    result = repair(path)

    assert 0 < result.records < 2000 and len(result.dropped) == 1
    assert read_back(path) == items(2000)[:result.records]
    assert (tmp_path / "app.events.gz.damaged").read_bytes() == data[:len(data) // 2]


def test_a_clean_archive_is_left_as_it_is(tmp_path, capsys):
    path = tmp_path / "app.events"
    path.write_bytes(b"".join(encoded()))
    before = os.stat(path)

    assert run(capsys, "repair", path) == (0, f"{path}: ok, 10 records, nothing to repair\n",
                                           "")
    assert os.stat(path).st_ino == before.st_ino
    assert os.listdir(tmp_path) == ["app.events"]


def test_nothing_is_replaced_when_a_damaged_name_is_taken(tmp_path):
    parts = encoded()
    path = tmp_path / "app.events"
    path.write_bytes(flipped(parts[0]) + b"".join(parts[1:]))
    (tmp_path / "app.events.damaged").write_bytes(b"an earlier repair's original")

    result = repair(path)

    assert result.original == str(tmp_path / "app.events_1.damaged")
    assert (tmp_path / "app.events.damaged").read_bytes() == b"an earlier repair's original"
    assert read_back(path) == RECORDS[1:]


def test_repaired_archives_keep_the_originals_permissions(tmp_path):
    parts = encoded()
    path = tmp_path / "app.events"
    path.write_bytes(flipped(parts[0]) + b"".join(parts[1:]))
    path.chmod(0o640)

    repair(path)

    assert oct(os.stat(path).st_mode & 0o777) == oct(0o640)


def test_open_and_missing_files_are_refused_and_the_others_repaired(tmp_path, capsys):
    parts = encoded()
    live = tmp_path / "live.events.open"
    live.write_bytes(flipped(parts[0]))
    damaged = tmp_path / "old.events"
    damaged.write_bytes(flipped(parts[0]) + parts[1])

    status, out, err = run(capsys, "repair", live, tmp_path / "missing.events", damaged)

    assert status == 2
    lines = err.splitlines()
    assert lines[0].startswith(f"shoebox: {live}: an archive still being written")
    assert "missing.events" in lines[1] and "No such file" in lines[1]
    assert out.startswith(f"{damaged}: 1 records kept")
    assert live.read_bytes() == flipped(parts[0])
    assert read_back(damaged) == RECORDS[1:2]
