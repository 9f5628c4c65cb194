"""The sidecar with a full staging directory: compressed copies cannot be
written (a file-size limit, ``RLIMIT_FSIZE``, set on the real sidecar
process: its writes fail with EFBIG, as they would with ENOSPC on a full
disk). Archives stay, the error is logged once per episode, and shipping
resumes when the limit is lifted (``prlimit`` on the running process)."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest
from _sidecar_support import (
    Record,
    SidecarProcess,
    archives_in,
    bucket_objects,
    read_compressed,
    write_noise_archive,
)
from conftest import S3Server

# Staged copies of the archives below are ~50 KiB (random payloads barely
# compress); a 16 KiB limit stops every one.
_LIMIT = 16 * 1024


def _limited() -> None:
    """In the child before exec: a soft file-size limit it may raise again."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (_LIMIT, resource.RLIM_INFINITY))


def _incompressible(directory: Path, count: int) -> dict[str, list[Record]]:
    """``count`` archives whose compressed copies are ~50 KiB; records by name."""
    names = [f"noise-{number:03d}.events" for number in range(count)]
    return {name: write_noise_archive(directory, name, 50 * 1024) for name in names}


def _sidecar(watch: Path, staging: Path, s3_server: S3Server, bucket: str,
             *more: str) -> SidecarProcess:
    return SidecarProcess(
        str(watch), "--dest", f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url,
        "--key-template", "{name}{suffix}", "--tmp-dir", str(staging),
        "--initial-backoff", "0.05", "--max-backoff", "0.2", "--scan-interval", "3600", *more,
        preexec_fn=_limited)


def test_a_full_staging_directory_keeps_the_archives_logs_once_and_resumes(
        tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    watch, staging = tmp_path / "watch", tmp_path / "staging"
    watch.mkdir()
    written = _incompressible(watch, 3)
    sidecar = _sidecar(watch, staging, s3_server, bucket)
    try:
        full = sidecar.wait_events("staging_full", 1)[0]
        assert full["tmp_dir"] == str(staging) and "File too large" in full["error"]
        # Let it retry for a while: dozens of attempts at 0.05-0.2 s.
        try:
            line = sidecar.wait_for(lambda line: line.get("event") in ("shipped", "failed"),
                                    2.0)
        except AssertionError:  # none came: right
            pass
        else:
            pytest.fail(f"{line} while staging is full; the log so far: {sidecar.lines}")
        assert archives_in(watch) == sorted(written), "archives stay while staging is full"
        assert bucket_objects(s3_server.client(), bucket) == {}
        resource.prlimit(sidecar.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        resumed = sidecar.wait_events("staging_resumed", 1)[0]
        assert resumed["seconds"] >= 2.0
        sidecar.wait_events("shipped", 3)
        assert sidecar.signal(signal.SIGTERM) == 0
    finally:
        sidecar.close()
    events = [line.get("event") for line in sidecar.lines]
    assert events.count("staging_full") == 1, "logged once for the whole episode"
    assert events.count("staging_resumed") == 1
    assert "failed" not in events
    assert archives_in(watch) == []
    assert os.listdir(staging) == [], "no partial copy is left behind"
    objects = bucket_objects(s3_server.client(), bucket)
    assert sorted(objects) == [f"{name}.gz" for name in sorted(written)]
    for name, records in written.items():
        assert read_compressed(objects[f"{name}.gz"]) == records


def test_once_with_a_full_staging_directory_gives_up_after_max_attempts_keeping_everything(
        tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    watch, staging = tmp_path / "watch", tmp_path / "staging"
    watch.mkdir()
    written = _incompressible(watch, 2)
    sidecar = _sidecar(watch, staging, s3_server, bucket, "--once", "--max-attempts", "4")
    try:
        assert sidecar.wait(60) == 1
    finally:
        sidecar.close()
    events = [line.get("event") for line in sidecar.lines]
    assert events.count("staging_full") == 1
    assert events.count("failed") == 2, "each archive fails once, after its 4 attempts"
    finished = next(line for line in sidecar.lines if line.get("event") == "finished")
    assert finished["not_shipped"] == [str(watch / name) for name in sorted(written)]
    assert archives_in(watch) == sorted(written)
    assert os.listdir(staging) == []
    assert bucket_objects(s3_server.client(), bucket) == {}
