"""Helpers for the storage and sidecar tests: archives written with the core
writer, objects read back, and the sidecar run as a real process whose JSON
log lines can be waited for."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from archive_files import subprocess_env

from shoebox import ArchiveReader, NeverRollChecker, WritingRollManager
from shoebox.codec import MARKER_BYTES
from shoebox.compression import open_decompressed

Record = tuple[dict[str, str], str]


def write_archives(directory: str | os.PathLike[str], count: int, records: int = 50,
                   prefix: str = "app", payload_size: int = 40,
                   timestamp: str | None = None) -> dict[str, list[Record]]:
    """Write ``count`` closed archives with the core writer; return the records
    of each, by file name. Records carry a unique ``id`` (and ``timestamp``
    metadata, when given)."""
    written: dict[str, list[Record]] = {}
    for number in range(count):
        name = f"{prefix}-{number:03d}.events"
        manager = WritingRollManager(name, NeverRollChecker(), directory=os.fspath(directory))
        batch = []
        for index in range(records):
            metadata = {"id": f"{prefix}-{number}-{index}", "level": "INFO"}
            if timestamp is not None:
                metadata["timestamp"] = timestamp
            record = (metadata, json.dumps({"n": index, "text": "x" * payload_size}))
            manager.write(*record)
            batch.append(record)
        manager.close()
        written[name] = batch
    return written


def write_noise_archive(directory: str | os.PathLike[str], name: str,
                        size: int) -> list[Record]:
    """One closed archive ``name`` of about ``size`` bytes of random payloads
    (its compressed copy is as large: a multipart upload from 5 MiB on, a
    full staging directory soon); returns its records."""
    manager = WritingRollManager(name, NeverRollChecker(), directory=os.fspath(directory))
    records = []
    for index in range(size // 20_000 + 1):
        record = ({"id": f"{name}-{index}"}, json.dumps({"noise": os.urandom(10_000).hex()}))
        manager.write(*record)
        records.append(record)
    manager.close()
    return records


def read_compressed(data: bytes) -> list[Record]:
    """The records of a (possibly compressed) archive's bytes, strictly checked."""
    raw = io.BytesIO(data)
    with open_decompressed(raw) as stream:
        return list(ArchiveReader(stream))


def bucket_objects(client: Any, bucket: str) -> dict[str, bytes]:
    """Every object in ``bucket``, by key."""
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            objects[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return objects


def archives_in(directory: str | os.PathLike[str]) -> list[str]:
    """Closed archive names left in ``directory``."""
    return sorted(name for name in os.listdir(directory) if name.endswith(".events"))


class SidecarProcess:
    """``python -m shoebox_sidecar ARGS`` as a real process; its JSON log lines
    are collected by a thread and can be waited for."""

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 preexec_fn: Callable[[], None] | None = None) -> None:
        environment = subprocess_env()
        environment.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoebox_sidecar", *args], env=environment,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, preexec_fn=preexec_fn)
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="sidecar-log-reader")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"raw": line}
            self._queue.put(entry)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = 60.0) -> dict[str, Any]:
        """The next log line for which ``predicate`` holds; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise AssertionError(f"no matching log line in {timeout} s; got:\n"
                                     + "\n".join(map(str, self.lines))) from None
            self.lines.append(entry)
            if predicate(entry):
                return entry

    def wait_events(self, event: str, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait for ``count`` more lines whose ``event`` is ``event``."""
        return [self.wait_for(lambda entry: entry.get("event") == event, timeout)
                for _ in range(count)]

    def signal(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``signum`` and return the exit code."""
        self.proc.send_signal(signum)
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join()
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return code

    def close(self) -> None:
        """Kill the process if it still runs, and collect the reader thread."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def damage(path: str | os.PathLike[str]) -> None:
    """Change one payload byte of record 5 in place: its checksum no longer
    matches, though its structure is intact."""
    with open(path, "rb") as archive:
        data = archive.read()
    assert b'"n": 5,' in data
    with open(path, "wb") as archive:
        archive.write(data.replace(b'"n": 5,', b'"n": 6,', 1))


def break_marker(path: str | os.PathLike[str], record: int = 5) -> None:
    """Overwrite the begin-of-record marker of record number ``record``."""
    with open(path, "r+b") as archive:
        data = archive.read()
        position = -1
        for _ in range(record + 1):
            position = data.index(MARKER_BYTES, position + 1)
        archive.seek(position)
        archive.write(b"XXXX")


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
