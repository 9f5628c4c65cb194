"""A sidecar killed in the middle of a multipart upload leaves an incomplete
upload in the bucket (billed, forever); the next run aborts it — its own
only, told apart by the key layout — and ships the archive again."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from _sidecar_support import (
    SidecarProcess,
    archives_in,
    bucket_objects,
    read_compressed,
    write_archives,
    write_noise_archive,
)
from conftest import S3Server
from s3_faults import FaultProxy, Rule

from shoebox.destinations import S3Destination
from shoebox.shipping import Shipper

_MB = 1024 * 1024


def _uploads(s3_server: S3Server, bucket: str) -> list[tuple[str, str]]:
    listed = s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sorted((upload["Key"], upload["UploadId"]) for upload in listed)


def test_a_restart_aborts_its_own_incomplete_upload_and_ships_again(
        tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    records = write_noise_archive(watch, "big.events", 11 * _MB)
    client = s3_server.client()
    # Someone else's incomplete uploads: under the same prefix, another key;
    # under another prefix, the very name of ours.
    foreign = [client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
               for key in ("logs/other-host/big.events", "elsewhere/big.events")]
    options = ("--dest", f"s3://{bucket}/logs", "--key-template", "{prefix}/{name}{suffix}",
               "--compress", "none", "--multipart-threshold-mb", "5",
               "--multipart-chunk-mb", "5", "--tmp-dir", str(tmp_path / "staging"),
               "--initial-backoff", "0.05", "--max-backoff", "0.2", "--read-timeout", "30")
    # The first part goes through; the others hang: the sidecar is killed
    # between parts.
    rules = [Rule("UploadPart", "delay", times=1), Rule("UploadPart", "stall")]
    with FaultProxy(s3_server.endpoint_url, rules) as proxy:
        sidecar = SidecarProcess(str(watch), *options, "--endpoint-url", proxy.endpoint_url)
        try:
            # Killed once the first part is stored (its answer is on its way:
            # the proxy records the status before sending it) and another
            # one hangs.
            deadline = time.monotonic() + 30
            while not ([seen.status for seen in proxy.seen if seen.fault == "delay"] == [200]
                       and proxy.count("UploadPart", "stall") >= 1):
                assert time.monotonic() < deadline, proxy.seen
                time.sleep(0.05)
            sidecar.proc.kill()
        finally:
            sidecar.close()
    ours = [(key, upload) for key, upload in _uploads(s3_server, bucket)
            if upload not in foreign]
    assert [key for key, _ in ours] == ["logs/big.events"], "the kill left an upload open"
    parts = client.list_parts(Bucket=bucket, Key="logs/big.events", UploadId=ours[0][1])
    assert len(parts.get("Parts", [])) == 1, "killed between parts"
    assert archives_in(watch) == ["big.events"], "the archive stays"

    restarted = SidecarProcess(str(watch), *options, "--endpoint-url", s3_server.endpoint_url,
                               "--once")
    try:
        assert restarted.wait(60) == 0
    finally:
        restarted.close()
    aborted = [line for line in restarted.lines if line.get("event") == "aborted_upload"]
    assert len(aborted) == 1 and ours[0][1] in aborted[0]["upload"]
    events = [line.get("event") for line in restarted.lines]
    assert events.index("aborted_upload") < events.index("shipped")
    assert sorted(upload for _, upload in _uploads(s3_server, bucket)) == sorted(foreign), (
        "only its own upload was aborted; the others' are untouched")
    assert archives_in(watch) == []
    objects = bucket_objects(client, bucket)
    assert sorted(objects) == ["logs/big.events"]
    assert read_compressed(objects["logs/big.events"]) == records


def test_watch_mode_aborts_at_start_too_and_a_sigterm_mid_upload_keeps_the_archive(
        tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    """In watch mode: a stalled multipart upload outlasting --shutdown-timeout
    is abandoned on SIGTERM (the archive stays, the upload is left open);
    the next sidecar, watching, aborts it at start and ships the archive."""
    watch = tmp_path / "watch"
    watch.mkdir()
    records = write_noise_archive(watch, "big.events", 11 * _MB)
    options = ("--dest", f"s3://{bucket}/logs", "--key-template", "{prefix}/{name}{suffix}",
               "--compress", "none", "--multipart-threshold-mb", "5",
               "--multipart-chunk-mb", "5", "--tmp-dir", str(tmp_path / "staging"),
               "--scan-interval", "3600", "--shutdown-timeout", "0.5", "--read-timeout", "30")
    with FaultProxy(s3_server.endpoint_url, [Rule("UploadPart", "stall")]) as proxy:
        sidecar = SidecarProcess(str(watch), *options, "--endpoint-url", proxy.endpoint_url)
        try:
            deadline = time.monotonic() + 30
            while proxy.count("UploadPart", "stall") < 1:
                assert time.monotonic() < deadline, proxy.seen
                time.sleep(0.05)
            assert sidecar.signal(signal.SIGTERM) == 1  # the archive is left, and said
        finally:
            sidecar.close()
    assert sidecar.lines[-1]["not_shipped"] == [str(watch / "big.events")]
    assert [key for key, _ in _uploads(s3_server, bucket)] == ["logs/big.events"]
    assert archives_in(watch) == ["big.events"]
    restarted = SidecarProcess(str(watch), *options, "--endpoint-url", s3_server.endpoint_url)
    try:
        restarted.wait_events("aborted_upload", 1)
        restarted.wait_events("shipped", 1)
        assert restarted.signal(signal.SIGTERM) == 0
    finally:
        restarted.close()
    assert _uploads(s3_server, bucket) == []
    assert archives_in(watch) == []
    objects = bucket_objects(s3_server.client(), bucket)
    assert read_compressed(objects["logs/big.events"]) == records


def test_an_archive_another_process_is_shipping_keeps_its_upload(
        tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    """While a live shipper (here, this test, inside ``prepare``) holds an
    archive, a starting sidecar's abort leaves that archive's upload alone;
    once it lets go, the upload is aborted."""
    watch = tmp_path / "watch"
    watch.mkdir()
    write_archives(watch, 1)
    path = str(watch / "app-000.events")
    destination = S3Destination(bucket, "logs", options={"endpoint_url": s3_server.endpoint_url})
    shipper = Shipper(destination,
                      key_template="{prefix}/{name}{suffix}", tmp_dir=tmp_path / "staging")
    client = s3_server.client()
    key = shipper.find_key(path)
    assert key == "logs/app-000.events.gz"
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    with shipper.prepare(path):
        assert shipper.abort_incomplete([path]) == []
        assert _uploads(s3_server, bucket) == [(key, upload)]
    aborted = shipper.abort_incomplete([path, str(watch / "gone.events")])
    assert len(aborted) == 1 and upload in aborted[0]
    assert _uploads(s3_server, bucket) == []
