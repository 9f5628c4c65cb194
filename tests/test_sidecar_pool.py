"""shoebox_sidecar.pool: each archive is worked on once at a time, whatever
the number of submissions; stopping drops queued work and waits for the rest."""

from __future__ import annotations

import threading

import pytest

from shoebox_sidecar import WorkerPool


class BlockingJob:
    """Work that notes each path, says it started, and blocks until released."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.runs: list[str] = []

    def __call__(self, path: str) -> None:
        self.runs.append(path)
        self.started.set()
        assert self.release.wait(10)


def test_a_path_submitted_while_queued_or_running_runs_once() -> None:
    job = BlockingJob()
    pool = WorkerPool(job, workers=2)
    try:
        assert pool.submit("a")
        assert job.started.wait(10)
        assert not pool.submit("a"), "running: not queued again"
        assert pool.submit("b")
        assert not pool.submit("b")
        job.release.set()
        assert pool.wait_idle(threading.Event(), timeout=10)
        assert sorted(job.runs) == ["a", "b"]
        assert pool.submit("a"), "finished paths can be submitted again"
        assert pool.wait_idle(threading.Event(), timeout=10)
        assert sorted(job.runs) == ["a", "a", "b"]
    finally:
        job.release.set()
        assert pool.stop(10)


def test_stop_drops_queued_work_and_waits_for_running_work() -> None:
    job = BlockingJob()
    pool = WorkerPool(job, workers=1)
    pool.submit("running")
    assert job.started.wait(10)
    pool.submit("queued")
    assert not pool.stop(0), "the running job is still running"
    assert not pool.submit("late")
    job.release.set()
    assert pool.stop(10)
    assert job.runs == ["running"]


def test_a_failing_job_does_not_stop_its_worker() -> None:
    done = threading.Event()

    def work(path: str) -> None:
        if path == "bad":
            raise RuntimeError("boom")
        done.set()

    pool = WorkerPool(work, workers=1)
    try:
        pool.submit("bad")
        pool.submit("good")
        assert done.wait(10)
    finally:
        assert pool.stop(10)


def test_wait_idle_returns_early_when_its_event_is_set() -> None:
    release = threading.Event()
    pool = WorkerPool(lambda path: release.wait(10), workers=1)
    stop = threading.Event()
    try:
        pool.submit("slow")
        stop.set()
        pool.wake()
        assert pool.wait_idle(stop) is False
    finally:
        release.set()
        assert pool.stop(10)


def test_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerPool(lambda path: None, workers=0)
