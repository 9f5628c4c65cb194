"""The core's hooks for an archive deleted while being written:
``ArchiveWriter.unlinked`` and ``ArchiveVanished`` (the roll manager's own
handling is in test_roll_manager.py)."""

from __future__ import annotations

from pathlib import Path

from shoebox import ArchiveVanished, ArchiveWriter


def test_unlinked_tells_whether_the_file_was_deleted(tmp_path: Path) -> None:
    path = tmp_path / "a.events.open"
    writer = ArchiveWriter(path)
    writer.write({"k": "v"}, "{}")
    assert not writer.unlinked
    path.unlink()
    writer.write({"k": "v"}, "{}")  # still succeeds, into a file without a name
    assert writer.unlinked
    writer.close()
    assert not writer.unlinked


def test_archive_vanished_is_a_file_not_found_error_naming_the_file() -> None:
    error = ArchiveVanished("gone", filename="/x/a.events.open")
    assert isinstance(error, FileNotFoundError) and error.filename == "/x/a.events.open"
