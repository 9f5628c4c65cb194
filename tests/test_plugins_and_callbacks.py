"""Plugins by dotted name, and the archive callbacks."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from archive_files import subprocess_env

from shoebox import (
    AnyOfRollChecker,
    ArchiveCallback,
    CallbackList,
    ChangeExtensionCallback,
    DeleteFileCallback,
    MoveFileCallback,
    PluginNotFound,
    ReadingRollManager,
    SizeRollChecker,
    WritingRollManager,
    plugins,
)


@pytest.mark.parametrize("spec", ["shoebox.roll_checker:SizeRollChecker",
                                  "shoebox.roll_checker.SizeRollChecker",
                                  "shoebox:SizeRollChecker"])
def test_load_accepts_both_spellings(spec):
    assert plugins.load(spec) is SizeRollChecker


@pytest.mark.parametrize(("spec", "words"), [
    ("no_such_module_xyz:Thing", "cannot import module 'no_such_module_xyz'"),
    ("shoebox.roll_checker:Nope", "'shoebox.roll_checker' has no attribute 'Nope'"),
    ("shoebox.roll_checker.Nope", "'shoebox.roll_checker' has no attribute 'Nope'"),
    ("nosuchpkg.mod.Thing", "no module 'nosuchpkg'"),
    ("shoebox.roll_checker:", "names a module"),
    ("", "non-empty"),
])
def test_load_says_what_was_not_found(spec, words):
    with pytest.raises(PluginNotFound, match=words):
        plugins.load(spec)


def test_plugin_not_found_is_an_import_error():
    with pytest.raises(ImportError):
        plugins.load("no_such_module_xyz:Thing")


def test_create_builds_from_keyword_arguments_or_passes_instances_through():
    checker = plugins.create("shoebox.roll_checker:SizeRollChecker", roll_size_mb="3")
    assert checker.roll_size_mb == 3
    assert plugins.create(checker) is checker


def test_create_builds_a_mapping_with_its_options_and_refuses_one_without_a_factory():
    checker = plugins.create({"()": "shoebox.SizeRollChecker", "roll_size_mb": "3"})
    assert isinstance(checker, SizeRollChecker) and checker.roll_size_mb == 3
    with pytest.raises(ValueError, match="roll_checker: a plugin given as a mapping needs"):
        plugins.create_as(SizeRollChecker, "roll_checker", {"roll_size_mb": 3})
    with pytest.raises(TypeError, match="roll_size_mbb"):
        plugins.create({"()": "shoebox.SizeRollChecker", "roll_size_mbb": 3})


def test_writing_and_reading_roll_managers_take_plugins_as_mappings(tmp_path):
    done = tmp_path / "done"
    writer = WritingRollManager(
        "a_%f.events", {"()": "shoebox.SizeRollChecker", "roll_size_mb": 0.0001},
        str(tmp_path), archive_callback={"()": "shoebox.MoveFileCallback",
                                         "destination_folder": str(done)})
    with writer:
        for number in range(50):
            writer.write({"n": str(number)}, "{}")
    assert len(os.listdir(done)) > 1
    reader = ReadingRollManager("*.events", done, archive_callback={
        "()": "shoebox.ChangeExtensionCallback", "new_extension": ".read"})
    assert [int(metadata["n"]) for metadata, _ in reader] == list(range(50))
    assert all(name.endswith(".events.read") for name in os.listdir(done))


def test_callback_lists_and_any_of_checkers_take_plugins_as_mappings(tmp_path):
    callbacks = CallbackList(callbacks=[
        {"()": "shoebox.ChangeExtensionCallback", "new_extension": ".one"},
        {"()": "shoebox.MoveFileCallback", "destination_folder": str(tmp_path / "moved")}])
    assert callbacks.on_close(make_archive(tmp_path)) == str(tmp_path / "moved/a.events.one")
    assert (tmp_path / "moved/a.events.one").read_bytes() == b"data"
    checker = AnyOfRollChecker(checkers=[{"()": "shoebox.SizeRollChecker", "roll_size_mb": 1}])
    assert isinstance(checker.checkers[0], SizeRollChecker)


def make_archive(tmp_path, name="a.events"):
    path = tmp_path / name
    path.write_bytes(b"data")
    return str(path)


def test_change_extension_appends_and_never_replaces(tmp_path):
    path = make_archive(tmp_path)
    callback = ChangeExtensionCallback(new_extension=".done")
    assert callback.on_close(path) == path + ".done"
    assert (tmp_path / "a.events.done").read_bytes() == b"data"
    other = make_archive(tmp_path)
    with pytest.raises(FileExistsError):
        callback.on_close(other)
    assert (tmp_path / "a.events").exists()


def test_move_file_creates_the_folder_and_keeps_the_name(tmp_path):
    path = make_archive(tmp_path)
    target = tmp_path / "shipped" / "day"
    assert MoveFileCallback(destination_folder=target).on_close(path) == str(target / "a.events")
    assert (target / "a.events").read_bytes() == b"data"
    assert not (tmp_path / "a.events").exists()


def test_delete_file_removes_the_archive(tmp_path):
    path = make_archive(tmp_path)
    assert DeleteFileCallback().on_close(path) is None
    assert not (tmp_path / "a.events").exists()


class Recording(ArchiveCallback):
    def __init__(self, *, tag: str = ""):
        self.tag = tag
        self.seen = []

    def on_open(self, filename):
        self.seen.append(("open", filename))

    def on_close(self, filename):
        self.seen.append(("close", filename))
        return filename


class Failing(ArchiveCallback):
    def on_open(self, filename):
        raise RuntimeError("open failed")

    def on_close(self, filename):
        raise RuntimeError("close failed")


def test_a_callback_list_gives_each_callback_the_shared_options_it_takes(tmp_path):
    callbacks = CallbackList(
        callback_list=(f"{__name__}:Recording, shoebox.callbacks:ChangeExtensionCallback,"
                       f"{__name__}.Recording"),
        new_extension=".shipped", tag="seen")
    first, change, last = callbacks.callbacks
    assert (first.tag, change.new_extension, last.tag) == ("seen", ".shipped", "seen")
    path = make_archive(tmp_path)
    assert callbacks.on_close(path) == path + ".shipped"
    assert first.seen == [("close", path)]
    assert last.seen == [("close", path + ".shipped")]


def test_a_failing_callback_is_logged_and_does_not_stop_the_next(tmp_path, caplog):
    after = Recording()
    callbacks = CallbackList(callbacks=[Failing(), after])
    path = make_archive(tmp_path)
    with caplog.at_level(logging.ERROR, logger="shoebox.callbacks"):
        callbacks.on_open(path)
        assert callbacks.on_close(path) == path
    assert after.seen == [("open", path), ("close", path)]
    assert (tmp_path / "a.events").exists()
    assert [r.exc_info[1].args[0] for r in caplog.records] == ["open failed", "close failed"]


def test_callbacks_after_a_delete_are_skipped(tmp_path):
    after = Recording()
    path = make_archive(tmp_path)
    assert CallbackList(callbacks=[DeleteFileCallback(), after]).on_close(path) is None
    assert after.seen == []


def test_a_plugin_modules_own_failing_import_is_not_hidden(tmp_path, monkeypatch):
    """``pkg.barbaz`` importing a missing ``pkg.bar`` must surface that error,
    not claim that ``pkg`` has no attribute ``barbaz``."""
    package = tmp_path / "plugpkg_xyz"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "barbaz.py").write_text("import plugpkg_xyz.bar\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match=r"plugpkg_xyz\.bar'"):
        plugins.load("plugpkg_xyz.barbaz.Thing")


@pytest.fixture
def other_file_system(tmp_path):
    """A directory on another file system than ``tmp_path`` (tmpfs /dev/shm)."""
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to move across")
    directory = Path(tempfile.mkdtemp(dir=shm))
    yield directory
    shutil.rmtree(directory)


def test_move_file_across_file_systems_copies_then_removes(tmp_path, other_file_system):
    path = make_archive(tmp_path)
    target = other_file_system / "shipped"
    assert MoveFileCallback(destination_folder=target).on_close(path) == str(target / "a.events")
    assert os.listdir(target) == ["a.events"]  # no temporary copy left
    assert (target / "a.events").read_bytes() == b"data"
    assert not os.path.exists(path)


def test_move_file_across_file_systems_never_replaces(tmp_path, other_file_system):
    path = make_archive(tmp_path)
    (other_file_system / "a.events").write_bytes(b"other")
    with pytest.raises(FileExistsError):
        MoveFileCallback(destination_folder=other_file_system).on_close(path)
    assert os.listdir(other_file_system) == ["a.events"]
    assert (other_file_system / "a.events").read_bytes() == b"other"
    assert (tmp_path / "a.events").read_bytes() == b"data"


def test_a_move_across_file_systems_that_fails_part_way_leaves_no_partial_copy(
        tmp_path, other_file_system):
    """A copy cut short (here by the file-size limit, as by a full disk)
    removes its temporary file and keeps the source."""
    source = tmp_path / "a.events"
    source.write_bytes(b"x" * 100_000)
    script = textwrap.dedent(f"""
        import resource, signal
        from shoebox.callbacks import MoveFileCallback
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (10_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            MoveFileCallback(destination_folder={str(other_file_system)!r}).on_close(
                {str(source)!r})
        except OSError as exc:
            print(exc.errno)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=subprocess_env(), check=True)
    assert result.stdout.strip() == str(errno.EFBIG)
    assert os.listdir(other_file_system) == []
    assert source.read_bytes() == b"x" * 100_000


@pytest.mark.parametrize("spec", ["shoebox.callbacks:S3UploadCallback",
                                  "shoebox.callbacks.S3UploadCallback"])
def test_the_old_names_of_the_shipping_callbacks_load_saying_where_they_moved(spec):
    from shoebox.shipping import S3UploadCallback

    with pytest.warns(DeprecationWarning, match="moved to shoebox.shipping; "
                                                "write shoebox.shipping:S3UploadCallback"):
        assert plugins.load(spec) is S3UploadCallback


def test_a_shared_option_no_callback_takes_is_refused_naming_it():
    with pytest.raises(TypeError, match=r"no callback takes the option\(s\) new_extensoin"):
        CallbackList(callback_list="shoebox.callbacks:ChangeExtensionCallback",
                     new_extensoin=".x")


@pytest.mark.parametrize(("build", "name"), [
    (lambda: ChangeExtensionCallback(new_extention=".x"), "new_extention"),
    (lambda: MoveFileCallback(destination_folder="d", destination="e"), "destination"),
    (lambda: DeleteFileCallback(after_upload="keep"), "after_upload"),
    (lambda: plugins.create("shoebox.callbacks:DeleteFileCallback", force=True), "force"),
])
def test_every_callback_refuses_an_option_it_does_not_take_naming_it(build, name):
    with pytest.raises(TypeError, match=name):
        build()
