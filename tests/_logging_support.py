"""Helpers shared by the ``test_logging_*`` files: a fixture that undoes
logging configuration, reading archives back, waiting with a deadline,
and a roll checker that holds a write."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoebox import ReadingRollManager, RollChecker
from shoebox.roll_checker import SizedArchive


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Close every handler a test adds to any logger and put the root logger
    back as it was, so no archive stays open and no thread keeps running."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    loggers = [root, *(logger for logger in logging.Logger.manager.loggerDict.values()
                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            if logger is root and handler in handlers:
                continue
            logger.removeHandler(handler)
            handler.close()
        logger.disabled = False  # dictConfig disables loggers it was not told about
    root.setLevel(level)


def attach(handler: logging.Handler, name: str = "test.app") -> logging.Logger:
    """A logger that sends INFO and above to ``handler`` only."""
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def read_records(directory: Path | str, pattern: str = "*") -> list[tuple[dict[str, str], Any]]:
    """Every finished archive's records as ``(metadata, decoded payload)``,
    reading strictly (damage raises) and parsing payloads as strict JSON."""
    def refuse(name: str) -> None:
        raise ValueError(f"payload holds {name}, which is not JSON")

    return [(metadata, json.loads(payload, parse_constant=refuse))
            for metadata, payload in ReadingRollManager(pattern, directory)]


def open_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.open"))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0,
               what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.01)


class GateRollChecker(RollChecker):
    """Never rolls; holds the thread writing inside its first write until
    opened (as a stalled disk would), so a test can fill the queue or
    queue threads behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def check(self, archive: SizedArchive) -> bool:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return False
