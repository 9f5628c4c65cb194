"""The core's hooks for an archive deleted while being written:
``ArchiveWriter.unlinked`` and ``WritingRollManager.abandon_active``."""

from __future__ import annotations

import shutil
from pathlib import Path

from shoebox import ArchiveReader, ArchiveVanished, ArchiveWriter, NeverRollChecker
from shoebox.roll_manager import WritingRollManager


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


def test_abandon_active_drops_only_the_named_archive(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    manager = WritingRollManager("a_%f.events", NeverRollChecker(), directory)
    manager.write({"n": "1"}, "{}")
    first = manager.active_filename
    assert first is not None
    assert not manager.abandon_active(first + ".other")
    assert manager.active_filename == first

    shutil.rmtree(directory)
    assert manager.abandon_active(first)
    assert manager.active_filename is None
    manager.write({"n": "2"}, "{}")  # a new archive, in the directory made again
    manager.close()

    (path,) = directory.iterdir()
    with ArchiveReader(path) as reader:
        assert [metadata for metadata, _ in reader] == [{"n": "2"}]


def test_archive_vanished_is_a_file_not_found_error_naming_the_file() -> None:
    error = ArchiveVanished("gone", filename="/x/a.events.open")
    assert isinstance(error, FileNotFoundError) and error.filename == "/x/a.events.open"
