"""ShoeboxHandler never raises into the application: a deleted or unusable
directory, a full file system and oversized records are reported through
``handleError``, archives on disk stay valid, and logging resumes."""

from __future__ import annotations

import logging
import logging.config
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from _logging_support import attach, open_files, read_records, restore_logging  # noqa: F401

from shoebox import UnusableDirectory
from shoebox.roll_manager import VANISHED_CHECK_SECONDS
from shoebox_logging import ShoeboxHandler

pytestmark = pytest.mark.usefixtures("restore_logging")

ROOT = Path(__file__).resolve().parent.parent
LOGGING_ERROR = "--- Logging error ---"


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("queue_size", [0, 100], ids=["blocking", "non-blocking"])
def test_a_deleted_directory_is_reported_and_logging_resumes_in_a_new_archive(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], queue_size: int) -> None:
    directory = tmp_path / "archive"
    clock = FakeClock()
    handler = ShoeboxHandler(directory=directory, queue_size=queue_size, clock=clock)
    logger = attach(handler)
    logger.info("before")
    handler.flush()
    shutil.rmtree(directory)
    # The roll manager checks at most once a second whether its archive still has
    # a name; records until then go into the deleted file.
    logger.info("lost")
    handler.flush()
    assert not directory.exists()
    clock.now += VANISHED_CHECK_SECONDS
    logger.info("noticed")
    handler.flush()
    assert directory.exists()
    for n in range(50):
        logger.info("resumed %d", n)
    handler.close()

    messages = [p["message"] for _, p in read_records(directory)]
    # The record whose write noticed the deletion is written again.
    assert messages == ["noticed", *(f"resumed {n}" for n in range(50))]
    assert not open_files(directory)
    err = capsys.readouterr().err
    assert err.count(LOGGING_ERROR) == 1
    assert "ArchiveVanished" in err and "was deleted while being written" in err
    assert handler.failed == 0


def test_closing_after_the_directory_was_deleted_reports_instead_of_raising(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "archive"
    handler = ShoeboxHandler(directory=directory)
    attach(handler).info("into a file about to be deleted")
    shutil.rmtree(directory)
    handler.close()  # before the handler's own check noticed: no exception

    assert not directory.exists()
    err = capsys.readouterr().err
    assert err.count(LOGGING_ERROR) == 1 and "ArchiveVanished" in err


def test_an_unusable_directory_is_reported_once_and_records_land_once_it_is_usable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "archive"
    handler = ShoeboxHandler(directory=directory)
    directory.rmdir()  # after the handler checked it
    directory.write_text("a file where the directory should be")
    logger = attach(handler)
    for n in range(3):
        logger.info("lost %d", n)  # nothing raises here
    assert handler.failed == 3
    err = capsys.readouterr().err
    assert err.count(LOGGING_ERROR) == 1 and "UnusableDirectory" in err
    assert "archives cannot be written there: it is a file, not a directory" in err

    directory.unlink()
    logger.info("kept")
    handler.close()
    assert [p["message"] for _, p in read_records(directory)] == ["kept"]
    assert LOGGING_ERROR not in capsys.readouterr().err


@pytest.mark.unprivileged
def test_a_read_only_directory_is_reported_and_records_land_once_it_is_writable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "archive"
    handler = ShoeboxHandler(directory=directory)
    directory.chmod(0o500)  # after the handler checked it
    logger = attach(handler)
    logger.info("lost")
    assert handler.failed == 1
    assert "PermissionError" in capsys.readouterr().err

    directory.chmod(0o700)
    logger.info("kept")
    handler.close()
    assert [p["message"] for _, p in read_records(directory)] == ["kept"]


def _file_in_the_way(tmp_path: Path) -> Path:
    (tmp_path / "archive").write_text("a file where the directory should be")
    return tmp_path / "archive"


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "app").write_text("a file where a parent directory should be")
    return tmp_path / "app" / "archive"


def _under_a_read_only_parent(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir(mode=0o500)
    return tmp_path / "app" / "archive"


def _read_only(tmp_path: Path) -> Path:
    (tmp_path / "archive").mkdir(mode=0o500)
    return tmp_path / "archive"


@pytest.mark.parametrize(("unusable", "reason"), [
    # Issue 18: this said "cannot create it (File exists)".
    (_file_in_the_way, "archives cannot be written there: it is a file, not a directory"),
    (_under_a_file, "is a file, not a directory"),
    pytest.param(_under_a_read_only_parent, "cannot create it (Permission denied)",
                 marks=pytest.mark.unprivileged),
    pytest.param(_read_only, "may not create files in it (mode 500",
                 marks=pytest.mark.unprivileged),
], ids=["a file", "a file as its parent", "unwritable parent", "unwritable"])
def test_dictconfig_fails_on_a_directory_the_handler_cannot_use(
        tmp_path: Path, unusable: Callable[[Path], Path], reason: str) -> None:
    directory = unusable(tmp_path)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match="Unable to configure handler 'archive'") as raised:
        logging.config.dictConfig({
            "version": 1, "disable_existing_loggers": False,
            "handlers": {"archive": {"class": "shoebox_logging.ShoeboxHandler",
                                     "directory": str(directory)}},
            "root": {"handlers": ["archive"]}})

    error = raised.value.__cause__
    assert isinstance(error, UnusableDirectory) and isinstance(error, OSError)
    assert error.filename == str(directory)
    assert str(directory) in str(error) and reason in str(error)
    assert not any(isinstance(h, ShoeboxHandler) for h in logging.getLogger().handlers)
    assert set(tmp_path.rglob("*")) == before  # nothing written anywhere


def test_the_handler_creates_its_directory_but_no_archive_before_the_first_record(
        tmp_path: Path) -> None:
    directory = tmp_path / "new" / "archive"
    handler = ShoeboxHandler(directory=directory)
    # A forked worker must open its own archive, so the parent opens none yet.
    assert directory.is_dir() and not any(directory.iterdir())
    attach(handler).info("first")
    assert len(open_files(directory)) == 1
    handler.close()
    assert [p["message"] for _, p in read_records(directory)] == ["first"]


def test_an_oversized_record_is_reported_and_the_next_ones_are_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = ShoeboxHandler(directory=tmp_path, max_record_mb=0.01)
    logger = attach(handler)
    logger.info("small")
    logger.info("big %s", "x" * 20_000)
    logger.info("small again")
    handler.close()

    assert [p["message"] for _, p in read_records(tmp_path)] == ["small", "small again"]
    err = capsys.readouterr().err
    assert err.count(LOGGING_ERROR) == 1 and "RecordTooLarge" in err


def test_a_full_file_system_keeps_the_archive_valid_and_logging_resumes(tmp_path: Path) -> None:
    # A real process whose file size limit (RLIMIT_FSIZE, with SIGXFSZ
    # ignored) makes write() fail part way, as a full disk does; the limit
    # is then lifted, as freeing space would.
    script = textwrap.dedent(f"""
        import logging, resource, signal
        from shoebox_logging import ShoeboxHandler
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = ShoeboxHandler(directory={str(tmp_path)!r})
        logger = logging.getLogger("full")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
        for n in range(100):
            logger.info("before %d %s", n, "x" * 300)
        assert handler.failed > 0, "the limit was never reached"
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        for n in range(10):
            logger.info("after %d", n)
        handler.close()
        print(handler.failed)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    failed = int(result.stdout)
    assert result.stderr.count(LOGGING_ERROR) == 1 and "File too large" in result.stderr

    # Read strictly: a torn record would raise. Records that failed are
    # missing at the end of the "before" run, nowhere else.
    messages = [p["message"] for _, p in read_records(tmp_path)]
    kept = 100 - failed
    assert [m[:10] for m in messages] == [
        *(f"before {n} x"[:10] for n in range(kept)), *(f"after {n}" for n in range(10))]
