"""ShoeboxHandler across ``os.fork()``: each child writes its own archives
(its own writer thread in non-blocking mode); the parent's stays its own."""

from __future__ import annotations

import logging
import multiprocessing
import os
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from _logging_support import attach, open_files, read_records, restore_logging  # noqa: F401

from shoebox import ArchiveReader
from shoebox_logging import ShoeboxHandler

pytestmark = [pytest.mark.usefixtures("restore_logging"),
              pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")]

CHILDREN = 3
PER_CHILD = 400


def _child(logger: logging.Logger, handler: ShoeboxHandler, child: int) -> None:
    """Log, close as logging.shutdown() would, and leave without pytest's teardown."""
    code = 1
    try:
        for seq in range(PER_CHILD):
            logger.info("child %d record %d", child, seq, extra={"child": child, "seq": seq})
        handler.flush()
        handler.close()
        code = 0
    finally:
        os._exit(code)


@pytest.mark.parametrize("queue_size", [0, 64], ids=["blocking", "non-blocking"])
def test_forked_children_write_their_own_archives_and_nothing_is_lost(
        tmp_path: Path, queue_size: int) -> None:
    handler = ShoeboxHandler(directory=tmp_path, queue_size=queue_size)
    logger = attach(handler)
    logger.info("parent before fork")  # the parent's archive and writer thread exist now
    pids = []
    for child in range(CHILDREN):
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a process with threads may deadlock;
            # surviving exactly that is what this test is for.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            _child(logger, handler, child)
        pids.append(pid)
    for seq in range(PER_CHILD):
        logger.info("parent record %d", seq)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    handler.close()

    assert not open_files(tmp_path)
    # Each archive holds the records of one process only.
    pids_by_file = {}
    for path in tmp_path.iterdir():
        with ArchiveReader(path) as reader:
            pids_by_file[path.name] = {metadata["pid"] for metadata, _ in reader}
    assert all(len(file_pids) == 1 for file_pids in pids_by_file.values()), pids_by_file
    by_pid: dict[str, list[dict[str, object]]] = defaultdict(list)
    for metadata, payload in read_records(tmp_path):
        by_pid[metadata["pid"]].append(payload)
    assert Counter({pid: len(payloads) for pid, payloads in by_pid.items()}) == Counter(
        {str(os.getpid()): PER_CHILD + 1, **{str(pid): PER_CHILD for pid in pids}})
    parent = by_pid.pop(str(os.getpid()))
    assert [p["message"] for p in parent] == [
        "parent before fork", *(f"parent record {seq}" for seq in range(PER_CHILD))]
    for payloads in by_pid.values():
        child = payloads[0]["child"]
        assert [(p["child"], p["seq"]) for p in payloads] == [
            (child, seq) for seq in range(PER_CHILD)]


def _log_and_return(logger: logging.Logger) -> None:
    for seq in range(PER_CHILD):
        logger.info("worker record %d", seq, extra={"seq": seq})
    # No close: multiprocessing's child leaves through os._exit, without
    # logging.shutdown(); the handler closes itself from multiprocessing's
    # exit finalizers.


def test_multiprocessing_children_finish_their_archives_without_closing(tmp_path: Path) -> None:
    handler = ShoeboxHandler(directory=tmp_path, queue_size=1_000)
    logger = attach(handler)
    logger.info("parent")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_log_and_return, args=(logger,)) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads, on purpose
        for worker in workers:
            worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    handler.close()

    assert not open_files(tmp_path)
    by_pid: dict[str, list[int]] = defaultdict(list)
    for metadata, payload in read_records(tmp_path):
        by_pid[metadata["pid"]].append(payload.get("seq", -1))
    assert by_pid == {str(os.getpid()): [-1],
                      **{str(worker.pid): list(range(PER_CHILD)) for worker in workers}}
