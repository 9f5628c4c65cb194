"""The sidecar through an S3 outage: the server stops mid-run, archives closed
meanwhile stay on disk while uploads are retried, and everything is shipped
once the server is back."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from _sidecar_support import (
    SidecarProcess,
    archives_in,
    bucket_objects,
    read_compressed,
    write_archives,
)


class RestartableServer:
    """A moto S3 server of its own that can be stopped and started again on
    the same port; moto's in-process backend keeps the buckets meanwhile."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._factory = ThreadedMotoServer
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{self.port}"
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def start(self) -> None:
        self._server = self._factory(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.running = True


@pytest.fixture
def server() -> Iterator[RestartableServer]:
    restartable = RestartableServer()
    yield restartable
    restartable.stop()


def test_no_archive_is_deleted_during_an_outage_and_all_ship_afterwards(
        server: RestartableServer, tmp_path: Any) -> None:
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
