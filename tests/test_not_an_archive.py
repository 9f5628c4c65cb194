"""A file that is not an archive is said to be one, exit status 1, with
``--recover`` too (issue 18: ``shoebox cat /etc/passwd`` reported a "bad
begin-of-record marker", and ``--recover`` then printed nothing, exit 0;
a 3-byte file said "record needs 6 bytes but the file ends after 3")."""

from __future__ import annotations

import subprocess

import pytest
from archive_files import SHOEBOX, archive_bytes, compress, items, run, subprocess_env

from shoebox import ArchiveReader, CorruptRecord, NotAnArchive, encode_record

TEXT = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


@pytest.mark.parametrize("argv", [["cat"], ["cat", "--recover"], ["stats"]])
def test_cat_of_a_text_file_says_not_a_shoebox_archive_exit_1(tmp_path, argv):
    path = tmp_path / "passwd"
    path.write_bytes(TEXT)
    done = subprocess.run([*SHOEBOX, *argv, str(path)], capture_output=True, text=True,
                          env=subprocess_env(), timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"shoebox: {path}: not a shoebox archive: ")
    assert "--recover" not in done.stderr  # skipping cannot help
    if "--recover" in argv:
        assert done.stderr == (f"shoebox: {path}: not a shoebox archive: no record found "
                               f"in its {len(TEXT)} bytes\n")
    else:
        assert done.stderr == (f"shoebox: {path}: not a shoebox archive: it starts with "
                               f"b'root', not a record marker\n")


@pytest.mark.parametrize("recover", [[], ["--recover"]])
def test_cat_of_a_3_byte_file_says_it_is_too_short_to_be_an_archive(tmp_path, capsys,
                                                                      recover):
    path = tmp_path / "hostname"
    path.write_bytes(b"h1\n")
    status, out, err = run(capsys, "cat", *recover, path)
    assert (status, out) == (1, "")
    assert err == (f"shoebox: {path}: not a shoebox archive: 3 bytes is too short to be one "
                   f"(a record takes at least 6)\n")


def test_verify_counts_a_text_file_as_not_an_archive_exit_1(tmp_path, capsys):
    (tmp_path / "a.events").write_bytes(archive_bytes(items(3)))
    (tmp_path / "notes.txt").write_bytes(TEXT)
    status, out, _err = run(capsys, "verify", tmp_path)
    assert status == 1
    assert out.splitlines() == [
        f"{tmp_path}/a.events: ok, 3 records, {len(archive_bytes(items(3)))} bytes",
        f"{tmp_path}/notes.txt: not a shoebox archive: no record found in its "
        f"{len(TEXT)} bytes",
        "2 archives: 1 ok, 0 damaged, 0 unreadable, 1 not archives"]


def test_a_compressed_text_file_is_not_an_archive_either(tmp_path):
    path = tmp_path / "passwd.gz"
    path.write_bytes(compress(TEXT, "gzip"))
    with ArchiveReader(path) as reader, pytest.raises(NotAnArchive) as raised:
        reader.read()
    assert isinstance(raised.value, CorruptRecord)  # except CorruptRecord still catches it
    assert str(raised.value) == (f"{path}: not a shoebox archive: it starts with b'root', "
                                 f"not a record marker")


def test_damage_at_the_start_of_a_real_archive_is_still_damage_with_recover(tmp_path):
    records = items(5)
    path = tmp_path / "a.events"
    path.write_bytes(b"junk" + b"".join(encode_record(m, p) for m, p in records))
    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == records
        assert [(item.offset, item.length) for item in reader.damaged] == [(0, 4)]


def test_an_empty_file_and_a_live_archive_holding_part_of_a_record_are_not_refused(tmp_path):
    empty = tmp_path / "empty.events"
    empty.write_bytes(b"")
    with ArchiveReader(empty) as reader:
        assert list(reader) == []
    live = tmp_path / "live.events.open"
    live.write_bytes(encode_record({"a": "b"}, "{}")[:3])
    with ArchiveReader(live, live=True) as reader:
        assert list(reader) == []
