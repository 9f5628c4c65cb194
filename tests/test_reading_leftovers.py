"""Directory, glob and ``s3://`` readers read archives only: not repair's
``.damaged`` originals, not the sidecar's ``quarantine/``, not hidden or
temporary files; ``--all-files`` / ``include_all=True`` reads them too
(issue 18: after ``shoebox repair d/a.events``, ``verify d/`` still exited
1 and ``cat --recover d/`` returned every kept record twice)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from archive_files import archive_bytes, items, run, write

from shoebox import DamageSkipped, ReadingRollManager, encode_record, open_archive
from shoebox.arrow import to_table
from shoebox.naming import is_leftover
from shoebox.sources import expand

GOOD = items(40, host="good")
DAMAGED = items(60, host="repaired")


def flipped(record: bytes) -> bytes:
    """``record`` with one payload byte changed: its checksum no longer matches."""
    return record[:-6] + bytes([record[-6] ^ 0x01]) + record[-5:]


@pytest.fixture
def repaired(tmp_path: Path, capsys) -> tuple[Path, list[tuple[dict[str, str], str]]]:
    """A directory after ``shoebox repair d/a.events`` (one record of 60 was
    damaged), beside a clean archive, a quarantined one, and temporaries;
    returns it with the records a reader of its archives must return."""
    directory = tmp_path / "d"
    parts = [encode_record(metadata, payload) for metadata, payload in DAMAGED]
    directory.mkdir()
    (directory / "a.events").write_bytes(b"".join(parts[:7]) + flipped(parts[7])
                                         + b"".join(parts[8:]))
    status, _out, _err = run(capsys, "repair", directory / "a.events")
    assert status == 0
    assert (directory / "a.events.damaged").exists()
    write(directory / "b.events", GOOD)
    write(directory / "quarantine" / "c.events", items(5, host="quarantined"))
    (directory / ".a.events.x1.repair").write_bytes(archive_bytes(items(3, host="temp")))
    (directory / ".shoebox-1234.partial").write_bytes(b"\x1f\x8b half a gzip stream")
    return directory, DAMAGED[:7] + DAMAGED[8:] + GOOD


def test_cat_verify_and_stats_of_a_repaired_directory_read_its_archives_exactly(
        repaired, capsys):
    directory, expected = repaired
    status, out, err = run(capsys, "cat", directory)
    assert status == 0, err
    assert [json.loads(line)["metadata"]["index"] for line in out.splitlines()] == [
        metadata["index"] for metadata, _payload in expected]
    assert "skipped 4 files that are not archives" in err
    assert "--all-files reads them" in err

    status, out, err = run(capsys, "cat", "--recover", directory)
    assert (status, len(out.splitlines())) == (0, len(expected)), err

    status, out, _err = run(capsys, "verify", directory)
    assert status == 0, out
    assert out.splitlines()[-1] == "2 archives: 2 ok, 0 damaged, 0 unreadable"

    status, out, _err = run(capsys, "stats", "--json", directory)
    assert status == 0
    assert json.loads(out)["total"]["records"] == len(expected)


def test_all_files_reads_the_leftovers_too(repaired, capsys):
    directory, _expected = repaired
    status, out, _err = run(capsys, "verify", "--all-files", directory)
    assert status == 1
    names = {line.split(":")[0] for line in out.splitlines()[:-1] if not line.startswith(" ")}
    assert names == {str(directory / name) for name in (
        "a.events", "a.events.damaged", "b.events", "quarantine/c.events",
        ".a.events.x1.repair", ".shoebox-1234.partial")}


def test_to_table_on_damage_skip_returns_each_record_once(repaired):
    directory, expected = repaired
    table = to_table(directory, on_damage="skip")
    assert table.column("payload").to_pylist() == [payload for _metadata, payload in expected]
    with pytest.warns(DamageSkipped):  # the damaged original, the half gzip stream
        everything = to_table(directory, on_damage="skip", include_all=True)
    # The damaged original adds its 59 good records again, quarantine 5, the temporary 3.
    assert everything.num_rows == len(expected) + 59 + 5 + 3


def test_the_reading_roll_manager_and_open_archive_skip_the_damaged_original(repaired):
    directory, expected = repaired
    with ReadingRollManager("*", directory=directory) as reader:
        assert list(reader) == expected[:59] + GOOD
    with open_archive(directory) as stream:
        assert list(stream) == expected
    with ReadingRollManager("*.damaged", directory=directory, recover=True) as reader:
        assert len(list(reader)) == 59  # asked for by name


def test_a_glob_that_names_leftovers_reads_them_and_one_that_does_not_skips_them(repaired):
    directory, _expected = repaired
    assert [source.name for source in expand([f"{directory}/*.damaged"]).sources] == [
        f"{directory}/a.events.damaged"]
    found = expand([f"{directory}/**"])
    assert [source.name for source in found.sources] == [
        f"{directory}/a.events", f"{directory}/b.events"]
    assert found.skipped_leftovers == [f"{directory}/a.events.damaged",
                                       f"{directory}/quarantine/c.events"]
    # A quarantine named as the directory to read is read.
    assert [source.name for source in expand([directory / "quarantine"]).sources] == [
        f"{directory}/quarantine/c.events"]


@pytest.mark.parametrize(("path", "named", "leftover"), [
    ("d/a.events", "d", False),
    ("d/a.events.damaged", "d", True),
    ("d/a.events_1.damaged", "d/", True),
    ("d/quarantine/a.events", "d", True),
    ("d/quarantine/a.events", "d/quarantine", False),
    ("d/.a.events.k2.repair", "d", True),
    ("d/.hidden/a.events", "d", True),
    ("/home/.me/d/a.events", "/home/.me/d", False),
    ("d/x/a.events", "d/*/*.events", False),
    ("d/quarantine/a.events", "d/**", True),
    ("d/quarantine/a.events", "d/quarantine/*", False),
    ("d/a.damaged", "d/*.damaged", False),
    ("s3://b/logs/quarantine/a.events", "s3://b/logs", True),
    ("bucket/logs/a.events.damaged", "bucket/logs/", True),
])
def test_what_counts_as_a_leftover(path, named, leftover):
    assert is_leftover(path, named) is leftover


def test_an_s3_prefix_skips_damaged_originals_and_quarantine(s3_server, bucket):
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="logs/a.events", Body=archive_bytes(GOOD))
    client.put_object(Bucket=bucket, Key="logs/a.events.damaged", Body=archive_bytes(GOOD))
    client.put_object(Bucket=bucket, Key="logs/quarantine/b.events", Body=archive_bytes(GOOD))
    found = expand([f"s3://{bucket}/logs"], endpoint_url=s3_server.endpoint_url)
    assert [source.name for source in found.sources] == [f"s3://{bucket}/logs/a.events"]
    assert found.skipped_leftovers == [f"s3://{bucket}/logs/a.events.damaged",
                                       f"s3://{bucket}/logs/quarantine/b.events"]


def test_dask_lists_the_archives_of_a_repaired_directory_only(repaired):
    from shoebox.dask import list_archives

    directory, _expected = repaired
    assert [archive.name for archive in list_archives(str(directory))] == [
        f"{directory}/a.events", f"{directory}/b.events"]
    assert len(list_archives(str(directory), include_all=True)) == 6
