"""The sidecar SIGKILLed while uploading, then restarted: every archive ends up
in the bucket exactly once, under its one deterministic key, and every
record exactly once."""

from __future__ import annotations

import collections
import signal
from typing import Any

from _sidecar_support import (
    SidecarProcess,
    archives_in,
    bucket_objects,
    read_compressed,
    write_archives,
)


def test_sigkill_during_uploads_then_restart_ships_every_record_exactly_once(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    written = write_archives(tmp_path / "watch", 12, records=400, payload_size=400)
    args = (str(tmp_path / "watch"), "--dest", f"s3://{bucket}/crash", "--endpoint-url",
            s3_server.endpoint_url, "--once", "--compress", "none", "--tmp-dir",
            str(tmp_path / "tmp"))
    first = SidecarProcess(*args)
    try:
        first.wait_events("shipped", 1)  # others are being compressed or uploaded now
        first.proc.send_signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
    finally:
        first.close()
    left = archives_in(tmp_path / "watch")
    assert left, "the kill came before everything was shipped"
    second = SidecarProcess(*args)
    try:
        assert second.wait() == 0
    finally:
        second.close()
    assert archives_in(tmp_path / "watch") == []
    objects = bucket_objects(s3_server.client(), bucket)
    keys_by_name = collections.Counter(key.rsplit("/", 1)[1] for key in objects)
    assert keys_by_name == dict.fromkeys(written, 1), "one object per archive"
    seen = collections.Counter(
        metadata["id"] for data in objects.values() for metadata, _ in read_compressed(data))
    expected = [metadata["id"] for records in written.values() for metadata, _ in records]
    assert seen == dict.fromkeys(expected, 1), "every record exactly once"
    for key, data in objects.items():
        assert read_compressed(data) == written[key.rsplit("/", 1)[1]]
