"""The sidecar against a hostile object store: the real sidecar process talks
to moto through the fault-injecting proxy (``s3_faults``), which throttles,
fails, resets, delays and stalls requests by rule. Whatever the faults, every
archive ends up in the bucket exactly once with the right bytes, and none is
deleted before its copy is confirmed."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sidecar_support import (
    Record,
    SidecarProcess,
    archives_in,
    bucket_objects,
    read_compressed,
    write_archives,
    write_noise_archive,
)
from conftest import S3Server
from s3_faults import FaultProxy, Rule

_MB = 1024 * 1024


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """The fault proxy in front of the session's moto server, no rules yet."""
    with FaultProxy(s3_server.endpoint_url) as running:
        yield running


def _sidecar(watch: Path, proxy: FaultProxy, bucket: str, *more: str) -> SidecarProcess:
    """The sidecar shipping ``watch`` to ``bucket`` through ``proxy``, with
    short backoffs, and timeouts short enough for stalls to end soon but
    long enough for a loaded machine's 5 MiB part (``more`` may override:
    the last flag wins)."""
    return SidecarProcess(
        str(watch), "--dest", f"s3://{bucket}/logs", "--endpoint-url", proxy.endpoint_url,
        "--key-template", "{prefix}/{name}{suffix}", "--tmp-dir", str(watch.parent / "staging"),
        "--initial-backoff", "0.05", "--max-backoff", "0.3", "--connect-timeout", "2",
        "--read-timeout", "5", "--scan-interval", "3600", *more)


def _check_bucket(s3_server: S3Server, bucket: str, written: dict[str, list[Record]],
                  suffix: str = ".gz") -> None:
    """The bucket holds each archive exactly once, under its key, with the
    right records, and nothing else; no multipart upload is left open."""
    client = s3_server.client()
    objects = bucket_objects(client, bucket)
    assert sorted(objects) == [f"logs/{name}{suffix}" for name in sorted(written)]
    for name, records in written.items():
        assert read_compressed(objects[f"logs/{name}{suffix}"]) == records
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# (operation, fault, extra rule fields): each alone, three times in a row:
# the sidecar's first attempt (a request and botocore's own quick retry)
# fails, and so does the first request of its second attempt.
_SINGLE_PART_FAULTS = [
    ("PutObject", "slowdown", {}),
    ("PutObject", "error", {}),
    ("PutObject", "reset_request", {}),
    ("PutObject", "reset_response", {}),
    ("PutObject", "stall", {"seconds": 0}),  # never answered: only timeouts end it
    ("PutObject", "delay", {"seconds": 0.5}),
    ("HeadObject", "slowdown", {}),  # a bare 503: a HEAD's answer has no body
    ("HeadObject", "error", {}),
    ("HeadObject", "reset_response", {}),
    ("HeadObject", "stall", {"seconds": 0}),
]
_MULTIPART_FAULTS = [
    ("CreateMultipartUpload", "slowdown", {}),
    # The server created the upload, its id never arrived: an orphan, which
    # the sidecar aborts once the archive's copy is confirmed.
    ("CreateMultipartUpload", "reset_response", {}),
    ("UploadPart", "error", {}),
    ("UploadPart", "reset_request", {}),
    ("UploadPart", "stall", {"seconds": 0}),
    ("CompleteMultipartUpload", "error", {}),
    # The first request completes the upload upstream; botocore's retry of it
    # fails too; the sidecar then finds the object whole (HEAD) and confirms
    # it: the third fault is never reached.
    ("CompleteMultipartUpload", "reset_response", {"expected": 2}),
]


@pytest.mark.parametrize(("operation", "fault", "fields"), _SINGLE_PART_FAULTS,
                         ids=[f"{op}-{fault}" for op, fault, _ in _SINGLE_PART_FAULTS])
def test_once_ships_everything_exactly_once_through_each_fault(
        tmp_path: Path, s3_server: S3Server, bucket: str, proxy: FaultProxy,
        operation: str, fault: str, fields: dict[str, Any]) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    written = write_archives(watch, 3)
    proxy.add_rule(Rule(operation, fault, times=3, **fields))
    # Stalls end at the read timeout: a short one keeps the test short.
    sidecar = _sidecar(watch, proxy, bucket, "--once",
                       *(["--read-timeout", "1"] if fault == "stall" else []))
    try:
        assert sidecar.wait(60) == 0
    finally:
        sidecar.close()
    assert proxy.count(operation, fault) == 3, "the fault was injected"
    assert archives_in(watch) == []
    _check_bucket(s3_server, bucket, written)


@pytest.mark.parametrize(("operation", "fault", "fields"), _MULTIPART_FAULTS,
                         ids=[f"{op}-{fault}" for op, fault, _ in _MULTIPART_FAULTS])
def test_multipart_uploads_survive_each_fault(
        tmp_path: Path, s3_server: S3Server, bucket: str, proxy: FaultProxy,
        operation: str, fault: str, fields: dict[str, Any]) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    written = {"big.events": write_noise_archive(watch, "big.events", 11 * _MB)}
    rule = dict(fields)
    expected = rule.pop("expected", 3)
    proxy.add_rule(Rule(operation, fault, times=3, **rule))
    sidecar = _sidecar(watch, proxy, bucket, "--once", "--compress", "none",
                       "--multipart-threshold-mb", "5", "--multipart-chunk-mb", "5",
                       *(["--read-timeout", "2"] if fault == "stall" else []))
    try:
        assert sidecar.wait(90) == 0
    finally:
        sidecar.close()
    assert proxy.count(operation, fault) == expected
    assert proxy.count("UploadPart", None) >= 3, "it went up in 5 MiB parts"
    assert archives_in(watch) == []
    _check_bucket(s3_server, bucket, written, suffix="")


_MIXED = [
    Rule("PutObject", "slowdown", probability=0.15, retry_after=0.2),
    Rule("PutObject", "error", probability=0.1),
    Rule("PutObject", "reset_request", probability=0.1),
    Rule("PutObject", "reset_response", probability=0.1),
    Rule("PutObject", "stall", probability=0.05, seconds=0),
    Rule("HeadObject", "error", probability=0.1),
    Rule("HeadObject", "reset_response", probability=0.05),
    Rule("HeadObject", "delay", probability=0.1, seconds=0.3),
]


def test_once_ships_everything_exactly_once_through_mixed_faults(
        tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    written = write_archives(watch, 12)
    with FaultProxy(s3_server.endpoint_url, _MIXED, seed=12) as proxy:
        sidecar = _sidecar(watch, proxy, bucket, "--once", "--workers", "3",
                           "--read-timeout", "2")
        try:
            assert sidecar.wait(120) == 0
        finally:
            sidecar.close()
        faults = {seen.fault for seen in proxy.seen if seen.fault is not None}
    assert len(faults) >= 3, f"several kinds of faults were injected: {faults}"
    assert archives_in(watch) == []
    _check_bucket(s3_server, bucket, written)


def test_watch_mode_ships_everything_exactly_once_through_mixed_faults(
        tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    with FaultProxy(s3_server.endpoint_url, _MIXED, seed=7) as proxy:
        sidecar = _sidecar(watch, proxy, bucket, "--read-timeout", "2")
        try:
            sidecar.wait_events("started", 1)
            written = write_archives(watch, 6, prefix="first")
            sidecar.wait_events("shipped", 6, timeout=60)
            written.update(write_archives(watch, 6, prefix="second"))
            sidecar.wait_events("shipped", 6, timeout=60)
            assert sidecar.signal(signal.SIGTERM) == 0
        finally:
            sidecar.close()
        injected = sum(1 for seen in proxy.seen if seen.fault is not None)
    assert injected >= 4
    assert any(line.get("event") == "retrying" for line in sidecar.lines)
    assert archives_in(watch) == []
    _check_bucket(s3_server, bucket, written)


def test_an_archive_stays_until_its_copy_is_confirmed(
        tmp_path: Path, s3_server: S3Server, bucket: str, proxy: FaultProxy) -> None:
    """The upload goes through but every confirming HEAD fails: the archive
    must stay on disk for as long as that lasts."""
    watch = tmp_path / "watch"
    watch.mkdir()
    sidecar = _sidecar(watch, proxy, bucket)
    try:
        sidecar.wait_events("started", 1)
        # The HEAD before the upload passes; every later one fails.
        proxy.add_rule(Rule("HeadObject", "delay", times=1))
        proxy.add_rule(Rule("HeadObject", "error"))
        written = write_archives(watch, 1)
        sidecar.wait_events("retrying", 3)
        assert proxy.count("PutObject", None) >= 1, "the object went up"
        assert archives_in(watch) == sorted(written), "not deleted: never confirmed"
        proxy.clear_rules()
        sidecar.wait_events("shipped", 1)
        assert sidecar.signal(signal.SIGTERM) == 0
    finally:
        sidecar.close()
    assert archives_in(watch) == []
    _check_bucket(s3_server, bucket, written)


@pytest.mark.parametrize("operation", ["PutObject", "HeadObject"])
def test_throttled_attempts_do_not_count_against_max_attempts(
        tmp_path: Path, s3_server: S3Server, bucket: str, proxy: FaultProxy,
        operation: str) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    written = write_archives(watch, 2)
    proxy.add_rule(Rule(operation, "slowdown", times=8))
    sidecar = _sidecar(watch, proxy, bucket, "--once", "--max-attempts", "2")
    try:
        assert sidecar.wait(60) == 0
    finally:
        sidecar.close()
    assert proxy.count(operation, "slowdown") == 8
    retries = [line for line in sidecar.lines if line.get("event") == "retrying"]
    assert retries and all(line["throttled"] for line in retries)
    _check_bucket(s3_server, bucket, written)


def test_throttling_pauses_every_worker_for_retry_after(
        tmp_path: Path, s3_server: S3Server, bucket: str, proxy: FaultProxy) -> None:
    """One archive's uploads are throttled with ``Retry-After: 3``: another
    archive, closed meanwhile and taken up by the idle worker, waits for the
    pause too, instead of adding requests to a server that asked for fewer."""
    watch = tmp_path / "watch"
    watch.mkdir()
    proxy.add_rule(Rule("PutObject", "slowdown", times=2, key_contains="first-",
                        retry_after=3))
    sidecar = _sidecar(watch, proxy, bucket, "--max-backoff", "5", "--workers", "2")
    try:
        sidecar.wait_events("started", 1)
        written = write_archives(watch, 1, prefix="first")
        retrying = sidecar.wait_events("retrying", 1)[0]
        assert retrying["throttled"] and retrying["delay"] >= 2.9
        written.update(write_archives(watch, 1, prefix="second"))
        sidecar.wait_events("shipped", 2)
        assert sidecar.signal(signal.SIGTERM) == 0
    finally:
        sidecar.close()
    throttled = [seen.time for seen in proxy.seen if seen.fault == "slowdown"]
    second = [seen.time for seen in proxy.seen if "second-" in seen.key]
    assert len(throttled) == 2 and second
    assert min(second) >= throttled[-1] + 2.5, (
        "the other worker's first request waited for the pause")
    _check_bucket(s3_server, bucket, written)


def test_a_stalled_request_times_out_after_read_timeout(
        tmp_path: Path, s3_server: S3Server, bucket: str, proxy: FaultProxy) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    written = write_archives(watch, 1)
    proxy.add_rule(Rule("PutObject", "stall", times=2, seconds=0))
    started = time.monotonic()
    sidecar = _sidecar(watch, proxy, bucket, "--once", "--read-timeout", "2")
    try:
        assert sidecar.wait(60) == 0
    finally:
        sidecar.close()
    elapsed = time.monotonic() - started
    # Two stalled requests of 2 s each: the first and botocore's own retry of it.
    assert 4.0 <= elapsed < 30
    stalls = [seen.time for seen in proxy.seen if seen.fault == "stall"]
    assert len(stalls) == 2 and stalls[1] - stalls[0] >= 1.9
    _check_bucket(s3_server, bucket, written)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint whose connections never complete: a listening socket with
    a full accept queue (the kernel then drops new connection requests)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    host, port = listener.getsockname()
    filler = socket.create_connection((host, port))  # fills the queue
    try:
        yield f"http://{host}:{port}"
    finally:
        filler.close()
        listener.close()


def test_a_connection_that_never_completes_times_out_after_connect_timeout(
        tmp_path: Path, black_hole: str) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    written = write_archives(watch, 1)
    started = time.monotonic()
    sidecar = SidecarProcess(
        str(watch), "--dest", "s3://nowhere/logs", "--endpoint-url", black_hole, "--once",
        "--connect-timeout", "0.5", "--max-attempts", "1", "--tmp-dir", str(tmp_path / "t"))
    try:
        assert sidecar.wait(60) == 1
    finally:
        sidecar.close()
    # The start-up check and one attempt, each of two requests of 0.5 s
    # (the default, 10 s, would take 40 s).
    assert time.monotonic() - started < 15
    failed = next(line for line in sidecar.lines if line.get("event") == "failed")
    assert "connect timeout" in failed["error"].lower() and failed["transient"]
    assert archives_in(watch) == sorted(written)
