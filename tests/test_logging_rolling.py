"""When ShoeboxHandler's archives are finished: by size, by time even when
idle, and at close or interpreter exit (callbacks run, no ``.open`` left)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _logging_support import (  # noqa: F401
    attach,
    open_files,
    read_records,
    restore_logging,
    wait_until,
)

from shoebox_logging import ShoeboxHandler

pytestmark = pytest.mark.usefixtures("restore_logging")

ROOT = Path(__file__).resolve().parent.parent


def test_an_idle_archive_is_finished_when_its_time_is_up(tmp_path: Path) -> None:
    handler = ShoeboxHandler(directory=tmp_path, roll_minutes=0.005)  # 0.3 seconds
    logger = attach(handler)
    logger.info("first")
    assert len(open_files(tmp_path)) == 1

    wait_until(lambda: not open_files(tmp_path) and any(tmp_path.iterdir()),
               what="the idle archive to be finished")
    (first,) = tmp_path.iterdir()
    assert [p["message"] for _, p in read_records(tmp_path)] == ["first"]

    logger.info("second")  # opens the next archive
    handler.close()
    assert [p["message"] for _, p in read_records(tmp_path)] == ["first", "second"]
    assert len(list(tmp_path.iterdir())) == 2 and first.exists()


def test_archives_roll_at_the_size_limit(tmp_path: Path) -> None:
    handler = ShoeboxHandler(directory=tmp_path, roll_size_mb=0.01)  # 10 KiB
    logger = attach(handler)
    for index in range(100):
        logger.info("record %d %s", index, "x" * 400)
    handler.close()

    sizes = [path.stat().st_size for path in tmp_path.iterdir()]
    assert len(sizes) > 3
    assert all(size < 10 * 1024 + 1024 for size in sizes)  # at most one record past the limit
    assert [p["message"][:10] for _, p in read_records(tmp_path)] == [
        f"record {index} x"[:10] for index in range(100)]


def test_close_finishes_the_archive_and_runs_callbacks(tmp_path: Path) -> None:
    done = tmp_path / "done"
    handler = ShoeboxHandler(
        directory=tmp_path / "active",
        callbacks=[{"()": "shoebox.MoveFileCallback", "destination_folder": str(done)}])
    attach(handler).info("moved when finished")
    handler.close()
    handler.close()  # twice is harmless

    assert not any((tmp_path / "active").iterdir())
    assert [p["message"] for _, p in read_records(done)] == ["moved when finished"]


@pytest.mark.parametrize("queue_size", [0, 100], ids=["blocking", "non-blocking"])
def test_logging_shutdown_at_interpreter_exit_leaves_no_open_file(tmp_path: Path,
                                                                   queue_size: int) -> None:
    script = textwrap.dedent(f"""
        import logging, logging.config
        logging.config.dictConfig({{
            "version": 1,
            "handlers": {{"archive": {{
                "class": "shoebox_logging.ShoeboxHandler",
                "directory": {str(tmp_path)!r},
                "queue_size": {queue_size},
                "callbacks": ["shoebox.ChangeExtensionCallback"],
            }}}},
            "root": {{"level": "INFO", "handlers": ["archive"]}},
        }})
        for index in range(500):
            logging.getLogger("exiting").info("record %d", index)
        # no close, no shutdown: the interpreter's exit runs logging.shutdown()
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)

    assert not open_files(tmp_path)
    (path,) = tmp_path.iterdir()
    assert path.name.endswith(".events.done")
    assert [p["message"] for _, p in read_records(tmp_path, "*.done")] == [
        f"record {index}" for index in range(500)]
