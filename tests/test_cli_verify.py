"""``shoebox verify``: per-archive records, bytes and damaged ranges; exit
status 0 clean, 1 damaged, 2 usage or I/O error."""

from __future__ import annotations

import socket

import pytest
from archive_files import METHODS, archive_bytes, compress, items, run, write

from shoebox import encode_record


@pytest.mark.parametrize("method", METHODS)
def test_a_clean_archive_verifies_with_status_0(tmp_path, capsys, method):
    records = items(100)
    path = write(tmp_path / "a.events", records, method)
    status, out, err = run(capsys, "verify", path)
    size = len(archive_bytes(records))
    assert (status, err) == (0, "")
    stored = "" if method == "none" else f" ({method}, {path.stat().st_size} stored)"
    assert out == f"{path}: ok, 100 records, {size} bytes{stored}\n"


@pytest.mark.parametrize("method", METHODS)
def test_damage_gives_status_1_and_lists_each_range(tmp_path, capsys, method):
    records = items(10)
    lengths = [len(encode_record(m, p)) for m, p in records]
    data = bytearray(archive_bytes(records))
    second, fifth = lengths[0], sum(lengths[:4])
    data[second + 30] ^= 0xFF  # a payload byte: the checksum no longer matches
    data[fifth:fifth + 4] = b"JUNK"  # the marker
    path = tmp_path / "bad.events"
    path.write_bytes(compress(bytes(data), method))

    status, out, err = run(capsys, "verify", path)
    assert (status, err) == (1, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}: DAMAGED, 8 records, {len(data)} bytes")
    assert lines[1].startswith(f"  offset {second}, length {lengths[1]}: checksum mismatch: ")
    assert lines[2] == f"  offset {fifth}, length {lengths[4]}: bad begin-of-record marker " \
                       "0x4b4e554a"
    assert len(lines) == 3


def test_a_truncated_gzip_archive_is_damaged(tmp_path, capsys):
    whole = archive_bytes(items(5000), "gzip")
    path = tmp_path / "cut.events.gz"
    path.write_bytes(whole[:len(whole) * 2 // 3])
    status, out, _ = run(capsys, "verify", path)
    assert status == 1
    assert "DAMAGED" in out and "gzip data is damaged or ends early" in out


def test_verify_summarises_many_archives_and_status_1_wins_over_0(tmp_path, capsys):
    write(tmp_path / "1.events", items(5))
    (tmp_path / "2.events").write_bytes(archive_bytes(items(5))[:-3])
    write(tmp_path / "3.events", items(5), "zstd")
    status, out, _ = run(capsys, "verify", tmp_path)
    assert status == 1
    assert out.splitlines()[-1] == "3 archives: 2 ok, 1 damaged, 0 unreadable"


def test_an_unreadable_archive_gives_status_2_and_the_rest_are_still_checked(tmp_path, capsys):
    write(tmp_path / "1.events", items(5))
    with socket.socket(socket.AF_UNIX) as unreadable:  # open() fails on a socket, even for root
        unreadable.bind(str(tmp_path / "2.events"))
        (tmp_path / "3.events").write_bytes(archive_bytes(items(5))[:-3])
        status, out, err = run(capsys, "verify", tmp_path)
    assert status == 2
    assert "2.events" in err
    assert out.splitlines()[-1] == "3 archives: 1 ok, 1 damaged, 1 unreadable"


def test_an_empty_directory_verifies_with_status_0(tmp_path, capsys):
    assert run(capsys, "verify", tmp_path) == (
        0, "0 archives: 0 ok, 0 damaged, 0 unreadable\n", "")


def test_verify_with_no_path_is_a_usage_error(capsys):
    status, _, err = run(capsys, "verify")
    assert status == 2
    assert "usage:" in err


def test_verify_checks_objects_in_s3(s3_server, bucket, capsys):
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="a/1.events.gz", Body=archive_bytes(items(5), "gzip"))
    client.put_object(Bucket=bucket, Key="a/2.events", Body=archive_bytes(items(5))[:-1])
    status, out, _ = run(capsys, "verify", f"s3://{bucket}/a/",
                         "--endpoint-url", s3_server.endpoint_url)
    assert status == 1
    assert f"s3://{bucket}/a/1.events.gz: ok, 5 records" in out
    assert f"s3://{bucket}/a/2.events: DAMAGED, 4 records" in out
