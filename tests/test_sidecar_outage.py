"""The sidecar through an S3 outage: the server stops mid-run, archives closed
meanwhile stay on disk while uploads are retried, and everything is shipped
once the server is back."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import boto3
from _sidecar_support import (
    RestartableServer,
    SidecarProcess,
    archives_in,
    bucket_objects,
    read_compressed,
    write_archives,
)


def test_no_archive_is_deleted_during_an_outage_and_all_ship_afterwards(
        restartable_server: RestartableServer, tmp_path: Any) -> None:
    server = restartable_server
    client = boto3.client("s3", endpoint_url=server.endpoint_url)
    bucket = f"outage-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    written = write_archives(tmp_path, 2, prefix="before")
    sidecar = SidecarProcess(str(tmp_path), "--dest", f"s3://{bucket}", "--endpoint-url",
                             server.endpoint_url, "--key-template", "{name}{suffix}",
                             "--initial-backoff", "0.05", "--max-backoff", "0.2",
                             "--scan-interval", "3600")
    try:
        sidecar.wait_events("shipped", 2)
        mark = len(sidecar.lines)
        server.stop()
        during = write_archives(tmp_path, 3, prefix="during")
        written.update(during)
        # Two workers: each is retrying one archive; the third waits its turn.
        retried: set[str] = set()
        while len(retried) < 2:  # (a loaded machine may start one worker late)
            retried.add(sidecar.wait_events("retrying", 1)[0]["archive"])
        assert archives_in(tmp_path) == sorted(during), "nothing deleted during the outage"
        assert all(line.get("event") != "shipped" for line in sidecar.lines[mark:])
        server.start()
        sidecar.wait_events("shipped", 3)
        assert sidecar.signal(signal.SIGTERM) == 0
    finally:
        sidecar.close()
    assert archives_in(tmp_path) == []
    objects = bucket_objects(client, bucket)
    assert sorted(objects) == [f"{name}.gz" for name in sorted(written)]
    for name, records in written.items():
        assert read_compressed(objects[f"{name}.gz"]) == records
