"""Issue 17, "stay in your directory": what the sidecar, recovery, repair,
``cat --follow`` and the disk budget find in a directory is acted on only if
it is a regular file really there. Symbolic links (to an archive outside,
to a directory, dangling) and FIFOs are reported, never followed, shipped,
truncated, renamed or deleted."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _sidecar_support import SidecarProcess, damage, read_compressed, write_archives
from archive_files import SHOEBOX, archive_bytes, items, run, subprocess_env, write

import shoebox._files
from shoebox import (
    ArchiveWriter,
    CorruptRecord,
    NeverRollChecker,
    NotRegularFile,
    ShoeboxError,
    WritingRollManager,
    encode_record,
    recover,
    repair,
)
from shoebox._files import open_regular
from shoebox.budget import DiskBudget
from shoebox.destinations import DirectoryDestination
from shoebox.follow import Follower
from shoebox.shipping import Shipper
from shoebox_sidecar import Event, Sidecar, SidecarObserver
from shoebox_sidecar.cli import main as sidecar_main

KINDS = ["link_to_archive", "link_to_directory", "dangling_link", "fifo"]
#: What the sidecar and the errors call each planted thing.
KIND_NAMES = {"link_to_archive": "symlink", "link_to_directory": "symlink",
              "dangling_link": "symlink", "fifo": "fifo"}


class Outside:
    """A directory the application may not reach, holding a valid archive
    (a torn record at its end, as recovery would cut) and a directory; what
    they were, to prove nothing changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.archive = root / "secret.events"
        self.records = items(5)
        # A whole archive, then a torn record: what recover() would cut.
        self.archive.write_bytes(archive_bytes(self.records) + encode_record({}, "{}")[:9])
        self.directory = root / "secret-dir"
        self.directory.mkdir()
        (self.directory / "inside.events").write_bytes(archive_bytes(items(2)))
        self.before = self._state()

    def _state(self) -> list[tuple[str, bytes, int]]:
        return [(str(path), path.read_bytes(), path.stat().st_mtime_ns)
                for path in sorted(self.root.rglob("*")) if path.is_file()]

    def assert_untouched(self) -> None:
        assert self._state() == self.before, "a file outside the directory changed"

    def plant(self, path: Path, kind: str) -> Path:
        """Create ``kind`` at ``path``."""
        if kind == "link_to_archive":
            path.symlink_to(self.archive)
        elif kind == "link_to_directory":
            path.symlink_to(self.directory, target_is_directory=True)
        elif kind == "dangling_link":
            path.symlink_to(self.root / "no-such-file")
        else:
            os.mkfifo(path)
        return path


def refused(path: Path, what: str = "a symbolic link") -> str:
    """The line the ``shoebox`` command writes on stderr for ``path``."""
    return f"shoebox: {path}: not a regular file but {what}: refused, never followed\n"


def still_there(path: Path, kind: str) -> bool:
    """Whether ``path`` is still the ``kind`` planted (not removed, not renamed)."""
    return path.is_fifo() if kind == "fifo" else path.is_symlink()


@pytest.fixture
def outside(tmp_path: Path) -> Outside:
    return Outside(tmp_path / "outside")


@pytest.fixture
def swap_hook() -> Iterator[Callable[[Callable[[str], None]], None]]:
    """Set :data:`shoebox._files.before_open` for one test (restored after)."""
    def set_hook(hook: Callable[[str], None]) -> None:
        shoebox._files.before_open = hook

    yield set_hook
    shoebox._files.before_open = None


def swapper(path: Path, target: Path, *, at_call: int = 1,
            caller: str | None = None) -> Callable[[str], None]:
    """A hook that, at its ``at_call``-th open of ``path`` (counting only
    opens by the function named ``caller``, when given), moves the file away
    (to ``path`` + ``.moved``) and puts a link to ``target`` in its place."""
    calls = [0]

    def hook(opened: str) -> None:
        # Frame 0 is this hook, 1 open_regular, 2 whoever opens.
        if opened != str(path) or (caller and sys._getframe(2).f_code.co_name != caller):
            return
        calls[0] += 1
        if calls[0] == at_call:
            os.rename(path, str(path) + ".moved")
            os.symlink(target, path)

    return hook


# --- the one open ----------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_open_regular_refuses_links_and_fifos_naming_the_path(
        tmp_path: Path, outside: Outside, kind: str) -> None:
    path = outside.plant(tmp_path / "a.events", kind)
    with pytest.raises(NotRegularFile) as caught:
        open_regular(str(path))
    error = caught.value
    assert (error.filename, error.kind) == (str(path), KIND_NAMES[kind])
    assert isinstance(error, OSError) and isinstance(error, ShoeboxError)
    assert str(error).startswith(f"{path}: not a regular file but a ")
    outside.assert_untouched()


def test_open_regular_refuses_a_directory_also_for_writing(tmp_path: Path) -> None:
    (tmp_path / "d.events").mkdir()
    for flags in (os.O_RDONLY, os.O_WRONLY):
        with pytest.raises(NotRegularFile) as caught:
            open_regular(str(tmp_path / "d.events"), flags)
        assert caught.value.kind == "directory"


def test_open_regular_opens_a_regular_file_blocking(tmp_path: Path) -> None:
    (tmp_path / "a.events").write_bytes(b"abc")
    fd = open_regular(str(tmp_path / "a.events"))
    try:
        assert os.get_blocking(fd) and os.read(fd, 10) == b"abc"
    finally:
        os.close(fd)


def test_not_regular_file_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(NotRegularFile("fifo", filename="/d/a.events")))
    assert (type(error), error.kind, error.filename) == (NotRegularFile, "fifo", "/d/a.events")
    assert str(error) == "/d/a.events: not a regular file but a FIFO: refused, never followed"


# --- the sidecar -----------------------------------------------------------

def sidecar_lines(capsys: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def copies(dest: Path) -> dict[str, Path]:
    return {path.name: path for path in dest.rglob("*") if path.is_file()}


@pytest.mark.parametrize("how", ["in_place", "renamed_in"])
@pytest.mark.parametrize("kind", KINDS)
def test_once_ships_nothing_through_a_planted_name_and_reports_it(
        tmp_path: Path, outside: Outside, capsys: Any, kind: str, how: str) -> None:
    watch, dest = tmp_path / "watch", tmp_path / "dest"
    written = write_archives(watch, 1)
    stage = tmp_path / "stage"
    stage.mkdir()
    planted = watch / "leak.events"
    if how == "in_place":
        outside.plant(planted, kind)
    else:
        os.rename(outside.plant(stage / "leak.events", kind), planted)
    assert sidecar_main([str(watch), "--dest", str(dest), "--once", "--verify"]) == 0
    assert sorted(copies(dest)) == [f"{name}.gz" for name in written]
    assert still_there(planted, kind)
    outside.assert_untouched()
    lines = sidecar_lines(capsys)
    skipped = [line for line in lines if line.get("event") == "skipped_not_regular"]
    assert [(line["archive"], line["kind"]) for line in skipped] == [
        (str(planted), KIND_NAMES[kind])]
    assert skipped[0]["level"] == "WARNING"
    assert not [line for line in lines if line.get("event") in ("failed", "quarantined")]


def test_once_with_recover_stale_leaves_a_planted_open_link_alone(
        tmp_path: Path, outside: Outside, capsys: Any) -> None:
    """The report's case: ``evil.events.open -> a file ending in a torn
    record`` was truncated and renamed ``evil.events``, then shipped."""
    watch, dest = tmp_path / "watch", tmp_path / "dest"
    watch.mkdir()
    planted = outside.plant(watch / "evil.events.open", "link_to_archive")
    assert sidecar_main([str(watch), "--dest", str(dest), "--once", "--recover-stale",
                         "--stale-after", "0"]) == 0
    assert copies(dest) == {}
    assert os.listdir(watch) == ["evil.events.open"] and planted.is_symlink()
    outside.assert_untouched()
    skipped = [line for line in sidecar_lines(capsys)
               if line.get("event") == "skipped_not_regular"]
    assert [(line["archive"], line["kind"]) for line in skipped] == [(str(planted), "symlink")]


class Told(SidecarObserver):
    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def notify(self, event: Event) -> None:
        if event.name == "skipped_not_regular":
            self.skipped.append((event.fields["archive"], event.fields["kind"]))


def test_a_name_swapped_for_a_link_after_the_scan_is_caught_at_the_open(
        tmp_path: Path, outside: Outside, swap_hook: Any) -> None:
    watch, dest = tmp_path / "watch", tmp_path / "dest"
    write_archives(watch, 1, prefix="real")
    swapped = watch / "real-000.events"
    # At the open that reads it to ship it, after the scan found it regular.
    swap_hook(swapper(swapped, outside.archive, caller="prepare"))
    told = Told()
    sidecar = Sidecar(str(watch), Shipper(DirectoryDestination(str(dest))), observer=told)
    assert sidecar.run_once() == 0
    assert copies(dest) == {}, "the link's target was shipped"
    assert swapped.is_symlink() and (watch / "real-000.events.moved").is_file()
    outside.assert_untouched()
    assert told.skipped == [(str(swapped), "symlink")]
    assert sidecar.summary().not_shipped == []


def test_a_name_swapped_for_a_link_after_shipping_is_not_deleted(
        tmp_path: Path, outside: Outside) -> None:
    """The shipped archive renamed away, a link put in its name before the
    delete: the link is reported, never removed."""
    watch, dest = tmp_path / "watch", tmp_path / "dest"
    write_archives(watch, 1, prefix="real")
    name = watch / "real-000.events"
    told = Told()

    class SwapAfterCopy(Shipper):
        def deliver(self, prepared: Any, started: float | None = None) -> Any:
            result = super().deliver(prepared, started)
            os.rename(name, str(name) + ".moved")
            os.symlink(outside.archive, name)
            return result

    sidecar = Sidecar(str(watch), SwapAfterCopy(DirectoryDestination(str(dest))),
                      observer=told)
    assert sidecar.run_once() == 0
    assert sorted(copies(dest)) == ["real-000.events.gz"]
    assert name.is_symlink()
    outside.assert_untouched()
    assert told.skipped == [(str(name), "symlink")]


def test_a_damaged_archive_swapped_for_a_link_is_not_quarantined(
        tmp_path: Path, outside: Outside) -> None:
    """``--verify`` found damage; a link put in the name before the move to
    the quarantine directory stays where it is."""
    watch, dest = tmp_path / "watch", tmp_path / "dest"
    write_archives(watch, 1, prefix="real")
    name = watch / "real-000.events"
    damage(name)
    told = Told()

    class SwapOnDamage(Shipper):
        @contextlib.contextmanager
        def prepare(self, path: str) -> Iterator[Any]:
            try:
                with super().prepare(path) as prepared:
                    yield prepared
            except CorruptRecord:
                os.rename(name, str(name) + ".moved")
                os.symlink(outside.archive, name)
                raise

    sidecar = Sidecar(str(watch), SwapOnDamage(DirectoryDestination(str(dest)), verify=True),
                      observer=told)
    assert sidecar.run_once() == 0
    assert copies(dest) == {} and name.is_symlink()
    assert not (watch / "quarantine").exists()
    assert told.skipped == [(str(name), "symlink")]
    outside.assert_untouched()


def test_the_metric_counts_each_planted_path_once(
        tmp_path: Path, outside: Outside) -> None:
    from shoebox_sidecar.metrics import SidecarMetrics

    watch = tmp_path / "watch"
    watch.mkdir()
    outside.plant(watch / "a.events", "link_to_archive")
    outside.plant(watch / "b.events", "fifo")
    metrics = SidecarMetrics()
    sidecar = Sidecar(str(watch), Shipper(DirectoryDestination(str(tmp_path / "dest"))),
                      observer=metrics)
    sidecar.watcher.scan()  # no pool yet: only what it reports
    sidecar.watcher.scan()  # again, as every scan_interval: not counted twice

    def value(kind: str) -> float | None:
        return metrics.registry.get_sample_value(
            "shoebox_sidecar_skipped_not_regular_total", {"kind": kind})

    assert (value("symlink"), value("fifo")) == (1.0, 1.0)
    outside.assert_untouched()


def test_watch_mode_ships_nothing_through_names_created_or_renamed_in(
        tmp_path: Path, outside: Outside, processes: list[SidecarProcess]) -> None:
    watch, dest, stage = tmp_path / "watch", tmp_path / "dest", tmp_path / "stage"
    watch.mkdir()
    stage.mkdir()
    sidecar = SidecarProcess(str(watch), "--dest", str(dest), "--scan-interval", "3600")
    processes.append(sidecar)
    assert sidecar.wait_for(lambda line: "event" in line)["event"] == "started"
    # After the startup scan: only file-system events can report these.
    planted = {}
    for kind in KINDS:
        planted[outside.plant(watch / f"made-{kind}.events", kind)] = kind
        moved = watch / f"moved-{kind}.events"
        os.rename(outside.plant(stage / f"moved-{kind}.events", kind), moved)
        planted[moved] = kind
    skipped = sidecar.wait_events("skipped_not_regular", len(planted))
    assert sorted((line["archive"], line["kind"]) for line in skipped) == sorted(
        (str(path), KIND_NAMES[kind]) for path, kind in planted.items())
    # Still working: a real archive closed now is shipped.
    written = write_archives(watch, 1, prefix="real")
    sidecar.wait_events("shipped", 1)
    assert sidecar.signal(signal.SIGTERM) == 0
    found = copies(dest)
    assert sorted(found) == ["real-000.events.gz"]
    assert read_compressed(found["real-000.events.gz"].read_bytes()) == written[
        "real-000.events"]
    for path, kind in planted.items():
        assert still_there(path, kind), path
    outside.assert_untouched()
    events = [line.get("event") for line in sidecar.lines]
    assert events.count("skipped_not_regular") == len(planted), "reported once per path"
    assert "failed" not in events and "shipped" in events


# --- recover() -------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_recover_never_truncates_or_renames_a_planted_open_name(
        tmp_path: Path, outside: Outside, kind: str) -> None:
    directory = tmp_path / "archives"
    directory.mkdir()
    planted = outside.plant(directory / "evil.events.open", kind)
    result = recover(directory)
    assert result.finalized == [] and result.left == {}
    assert result.skipped == {str(planted): KIND_NAMES[kind]}
    assert os.listdir(directory) == ["evil.events.open"] and still_there(planted, kind)
    outside.assert_untouched()


def swapped_at_first_open(path: Path, outside: Outside, swap_hook: Any) -> Path:
    """Write an archive at ``path``, to be swapped for a link to the archive
    outside at its first open; return ``path``."""
    write(path, items(2))
    swap_hook(swapper(path, outside.archive))
    return path


def test_recover_catches_a_link_swapped_in_before_the_open(
        tmp_path: Path, outside: Outside, swap_hook: Any) -> None:
    directory = tmp_path / "archives"
    stale = swapped_at_first_open(directory / "a.events.open", outside, swap_hook)
    result = recover(directory)
    assert (result.finalized, result.skipped) == ([], {str(stale): "symlink"})
    assert stale.is_symlink()
    outside.assert_untouched()


def test_recover_truncates_through_no_link_swapped_in_after_the_lock(
        tmp_path: Path, outside: Outside, swap_hook: Any) -> None:
    """The second open (the writable one a torn tail is cut through) meets
    the link: nothing is cut, nothing renamed."""
    directory = tmp_path / "archives"
    stale = directory / "a.events.open"
    stale.parent.mkdir()
    stale.write_bytes(archive_bytes(items(2)) + encode_record({}, "{}")[:9])
    torn = stale.read_bytes()
    swap_hook(swapper(stale, outside.archive, at_call=2))
    result = recover(directory)
    assert (result.finalized, result.skipped) == ([], {str(stale): "symlink"})
    assert stale.is_symlink()
    assert (directory / "a.events.open.moved").read_bytes() == torn
    outside.assert_untouched()


def test_recover_still_finalizes_the_real_stale_archives_beside_a_link(
        tmp_path: Path, outside: Outside) -> None:
    directory = tmp_path / "archives"
    directory.mkdir()
    with ArchiveWriter(directory / "real.events.open") as writer:
        writer.write({"i": "0"}, "{}")
    outside.plant(directory / "evil.events.open", "link_to_archive")
    result = recover(directory)
    assert result.finalized == [str(directory / "real.events")]
    assert list(result.skipped) == [str(directory / "evil.events.open")]
    outside.assert_untouched()


def test_shoebox_recover_names_a_skipped_link_on_stderr(
        tmp_path: Path, outside: Outside, capsys: Any) -> None:
    (tmp_path / "archives").mkdir()
    planted = outside.plant(tmp_path / "archives" / "evil.events.open", "link_to_archive")
    assert run(capsys, "recover", tmp_path / "archives")[::2] == (0, refused(planted))
    assert planted.is_symlink()
    outside.assert_untouched()


# --- repair ----------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_repair_refuses_a_planted_name(tmp_path: Path, outside: Outside, kind: str) -> None:
    directory = tmp_path / "archives"
    directory.mkdir()
    planted = outside.plant(directory / "a.events", kind)
    with pytest.raises(NotRegularFile) as caught:
        repair(planted)
    assert caught.value.filename == str(planted)
    assert os.listdir(directory) == ["a.events"] and still_there(planted, kind)
    outside.assert_untouched()


def test_shoebox_repair_reports_a_link_and_repairs_the_others(
        tmp_path: Path, outside: Outside, capsys: Any) -> None:
    directory = tmp_path / "archives"
    directory.mkdir()
    planted = outside.plant(directory / "a.events", "link_to_archive")
    damaged = directory / "b.events"
    damaged.write_bytes(archive_bytes(items(3)) + b"garbage")
    status, out, err = run(capsys, "repair", planted, damaged)
    assert (status, err) == (2, refused(planted))
    assert f"{damaged}: 3 records kept" in out
    assert planted.is_symlink() and (directory / "b.events.damaged").is_file()
    outside.assert_untouched()


def test_repair_sets_aside_no_link_swapped_in_after_reading(
        tmp_path: Path, outside: Outside, monkeypatch: Any) -> None:
    """The name checked against the file read before it is renamed aside."""
    import shoebox.repairing

    directory = tmp_path / "archives"
    directory.mkdir()
    damaged = directory / "b.events"
    damaged.write_bytes(archive_bytes(items(3)) + b"garbage")
    checked = shoebox.repairing.check_entry

    def swap_then_check(path: str, fd: int) -> None:
        os.rename(path, path + ".moved")
        os.symlink(outside.archive, path)
        checked(path, fd)

    monkeypatch.setattr(shoebox.repairing, "check_entry", swap_then_check)
    with pytest.raises(NotRegularFile):
        repair(damaged)
    assert damaged.is_symlink() and not (directory / "b.events.damaged").exists()
    assert [name for name in os.listdir(directory) if name.endswith(".repair")] == []
    outside.assert_untouched()


# --- cat --follow ----------------------------------------------------------

def test_follower_reads_no_planted_name_and_lists_each_once(
        tmp_path: Path, outside: Outside) -> None:
    directory = tmp_path / "archives"
    write(directory / "real.events", items(2))
    planted = {outside.plant(directory / f"{kind}.events", kind): kind for kind in KINDS}
    planted[outside.plant(directory / "live.events.open", "link_to_archive")] = "link"
    with Follower([directory]) as follower:
        records = list(follower.poll())
        assert [metadata["index"] for metadata, _ in records] == ["0", "1"]
        first = sorted((error.filename, error.kind) for error in follower.skipped)
        follower.skipped.clear()
        assert list(follower.poll()) == [] and follower.skipped == []
    # A directory's listing keeps neither a dangling link (it names nothing)
    # nor a link to a directory (a directory it does not walk into).
    assert first == sorted((str(path), KIND_NAMES.get(kind, "symlink"))
                           for path, kind in planted.items()
                           if kind not in ("dangling_link", "link_to_directory"))
    for path, kind in planted.items():
        assert still_there(path, "fifo" if kind == "fifo" else "link")
    outside.assert_untouched()


def test_follower_catches_a_link_swapped_in_before_the_open(
        tmp_path: Path, outside: Outside, swap_hook: Any) -> None:
    directory = tmp_path / "archives"
    live = swapped_at_first_open(directory / "a.events.open", outside, swap_hook)
    with Follower([directory]) as follower:
        assert list(follower.poll()) == []
        assert [(error.filename, error.kind) for error in follower.skipped] == [
            (str(live), "symlink")]
    outside.assert_untouched()


def test_cat_follow_reports_a_fifo_and_a_link_and_goes_on(
        tmp_path: Path, outside: Outside) -> None:
    """A FIFO used to block ``cat --follow`` in its open for ever."""
    directory = tmp_path / "archives"
    write(directory / "real.events", items(1))
    fifo = outside.plant(directory / "pipe.events", "fifo")
    link = outside.plant(directory / "link.events", "link_to_archive")
    with subprocess.Popen([*SHOEBOX, "cat", "--follow", "--metadata-only", str(directory)],
                          env=subprocess_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as follow:
        lines: queue.Queue[tuple[str, str]] = queue.Queue()

        def pump(name: str, stream: Any) -> None:
            for line in stream:
                lines.put((name, line))

        pumps = [threading.Thread(target=pump, args=(name, stream)) for name, stream in
                 (("out", follow.stdout), ("err", follow.stderr))]
        for thread in pumps:
            thread.start()
        try:
            got = [lines.get(timeout=60) for _ in range(3)]
            with ArchiveWriter(directory / "later.events.open") as writer:
                writer.write({"index": "later"}, "{}")
                writer.flush()
                got.append(lines.get(timeout=60))
        finally:
            follow.send_signal(signal.SIGINT)
            follow.wait(30)
            for thread in pumps:
                thread.join(30)
    stderr = sorted(line for name, line in got if name == "err")
    assert stderr == sorted([refused(fifo, "a FIFO"), refused(link)])
    stdout = [json.loads(line)["index"] for name, line in got if name == "out"]
    assert stdout == ["0", "later"]
    assert fifo.is_fifo() and link.is_symlink()
    outside.assert_untouched()


# --- the disk budget -------------------------------------------------------

def test_the_budget_counts_no_link_target_and_reports_each_path_once(
        tmp_path: Path, outside: Outside) -> None:
    directory = tmp_path / "archives"
    write(directory / "real.events", items(2))
    real = (directory / "real.events").stat().st_size
    for kind in KINDS:
        outside.plant(directory / f"{kind}.events", kind)
    outside.plant(directory / "live.events.open", "link_to_archive")
    budget = DiskBudget(10**6, str(directory), "*.events")
    budget.rescan()
    assert budget.used == real, "a link's target counted against the budget"
    assert budget.skipped_not_regular == len(KINDS) + 1
    budget.rescan()
    assert budget.skipped_not_regular == len(KINDS) + 1, "counted again"
    (directory / "fifo.events").unlink()
    budget.rescan()
    os.mkfifo(directory / "fifo.events")
    budget.rescan()
    assert budget.skipped_not_regular == len(KINDS) + 2  # gone, then back: once more
    outside.assert_untouched()


def test_a_writers_stats_count_what_its_budget_left_out(
        tmp_path: Path, outside: Outside) -> None:
    outside.plant(tmp_path / "app-planted.events", "link_to_archive")
    manager = WritingRollManager("app.events", NeverRollChecker(), max_local_mb=1,
                                 directory=str(tmp_path))
    manager.write({"i": "0"}, "{}")
    manager.close()
    assert manager.stats()["skipped_not_regular"] == 1
    assert (tmp_path / "app-planted.events").is_symlink()
    outside.assert_untouched()


def test_a_link_planted_at_the_destination_key_is_never_taken_for_the_copy(
        tmp_path: Path) -> None:
    """A copy "already there" through a symbolic link could change once the
    archive is deleted: the destination reads its copies back only as
    regular files, so the archive stays."""
    from shoebox import PermanentUploadError
    from shoebox.destinations import DirectoryDestination
    from shoebox.shipping import Shipper

    watch, elsewhere, dest = tmp_path / "watch", tmp_path / "elsewhere", tmp_path / "dest"
    write_archives(watch, 1)
    archive = str(watch / "app-000.events")
    shipper = Shipper(DirectoryDestination(str(elsewhere)), key_template="{name}{suffix}")
    shipper.ship(archive)  # the very bytes a copy would hold
    dest.mkdir()
    (dest / "app-000.events.gz").symlink_to(elsewhere / "app-000.events.gz")
    target = Shipper(DirectoryDestination(str(dest)), key_template="{name}{suffix}")
    with pytest.raises(PermanentUploadError, match="not a regular file but a symbolic link"):
        target.ship(archive)
    assert os.path.exists(archive) and (dest / "app-000.events.gz").is_symlink()


@pytest.mark.parametrize("callback", ["compress", "upload"])
def test_an_in_process_callback_leaves_a_link_put_in_the_archives_name_after_shipping(
        tmp_path: Path, outside: Outside, monkeypatch: pytest.MonkeyPatch,
        callback: str) -> None:
    """Between the confirmed copy and the delete, the archive's name became a
    link: the callback deletes nothing (the link stays, its target too)."""
    from shoebox import CompressCallback, NotRegularFile, S3UploadCallback
    from shoebox.shipping import Shipper

    write_archives(tmp_path / "watch", 1)
    archive = tmp_path / "watch" / "app-000.events"
    ship = Shipper.ship

    def ship_then_swap(self: Shipper, path: str) -> Any:
        result = ship(self, path)
        os.rename(path, str(path) + ".moved")
        os.symlink(outside.archive, path)
        return result

    monkeypatch.setattr(Shipper, "ship", ship_then_swap)
    made = (CompressCallback() if callback == "compress" else
            S3UploadCallback(destination=str(tmp_path / "dest")))
    with pytest.raises(NotRegularFile):
        made.on_close(str(archive))
    assert archive.is_symlink()
    outside.assert_untouched()
