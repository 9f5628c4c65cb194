"""shoebox.shipping and shoebox.destinations: compressing archives and
copying them to S3 (moto's server on 127.0.0.1) or a directory, confirming
the copy; and the in-process callbacks that share that code."""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

import pytest
from _sidecar_support import (
    break_marker,
    bucket_objects,
    damage,
    read_compressed,
    write_archives,
)
from archive_files import in_forked_child, subprocess_env

from shoebox import (
    CallbackList,
    ChecksumMismatch,
    CompressCallback,
    InvalidOption,
    NeverRollChecker,
    PermanentUploadError,
    S3Options,
    S3UploadCallback,
    TransientUploadError,
    WritingRollManager,
    encode_record,
)
from shoebox.callbacks import after_upload_callback
from shoebox.destinations import DirectoryDestination, S3Destination, open_destination
from shoebox.shipping import KeyTemplate, Shipper
from shoebox.windows import Span, span_of_name

NOV_27 = datetime.datetime(2026, 11, 27, 13, 5, tzinfo=datetime.timezone.utc).timestamp()


def test_default_key_is_date_partitioned_by_archive_start_then_host_and_name() -> None:
    key = KeyTemplate().render(name="app-1.events", started=NOV_27, host="web-3",
                               prefix="logs/prod", suffix=".gz")
    assert key == "logs/prod/2026/11/27/web-3/app-1.events.gz"


def test_empty_prefix_leaves_no_empty_key_segment() -> None:
    key = KeyTemplate().render(name="a.events", started=NOV_27, host="h")
    assert key == "2026/11/27/h/a.events"


def test_the_hive_preset_partitions_by_day_and_host_and_names_the_span() -> None:
    span = Span(datetime.datetime(2026, 11, 27, 23, 59, 0, 500_000, datetime.timezone.utc),
                datetime.datetime(2026, 11, 28, 0, 14, 59, 1, datetime.timezone.utc))
    key = KeyTemplate("hive").render(name="app-1.events", started=NOV_27, host="web-3",
                                     prefix="logs", suffix=".gz", span=span)
    # The span encloses the records: first rounded down, last up.
    assert key == "logs/dt=2026-11-27/host=web-3/20261127T235900Z-20261128T001500Z_app-1.events.gz"
    assert span_of_name(key) == Span(span.first.replace(microsecond=0),
                                     span.last.replace(second=0, minute=15, microsecond=0))
    untimed = KeyTemplate("hive").render(name="a.events", started=NOV_27, host="h")
    assert untimed == "dt=2026-11-27/host=h/untimed_a.events"


@pytest.mark.parametrize("template, message", [
    ("{prefix}/{date}/{name}", "unknown placeholders"),
    ("{prefix}/%Y/{host}.gz", "must contain {name}"),
    ("../{name}", "'..'"),
])
def test_bad_key_templates_are_refused_at_construction(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeyTemplate(template)


def write_spanning_midnight(path: Any, first_size: int = 10) -> None:
    """An archive whose records run from 23:59 on Nov 27 into Nov 28 (UTC),
    last modified on Nov 29."""
    records = [({"timestamp": "2026-11-28T00:59:59.500+01:00"}, "x" * first_size),
               ({"timestamp": "2026-11-28T00:00:01.000Z"}, "{}")]
    path.write_bytes(b"".join(encode_record(*record) for record in records))
    later = NOV_27 + 2 * 86400
    os.utime(path, (later, later))


@pytest.mark.parametrize("first_size", [10, 3_000_000])
def test_the_key_date_is_the_first_records_day_not_the_last(tmp_path: Any,
                                                             first_size: int) -> None:
    write_spanning_midnight(tmp_path / "a.events", first_size)
    shipper = Shipper(DirectoryDestination(tmp_path / "out"), host="h",
                      key_template="hive")
    with shipper.prepare(str(tmp_path / "a.events")) as prepared:
        # The span: the first record's time rounded down, the last's up.
        assert prepared.key == ("dt=2026-11-27/host=h/20261127T235959Z-20261128T000001Z_"
                                "a.events.gz")
        assert prepared.records == 2
        assert shipper.find_key(str(tmp_path / "a.events")) == prepared.key


def birth_day(path: Any) -> str | None:
    """The UTC day the file at ``path`` was created, if the system says."""
    from shoebox.keys import _statx_birth_time

    with open(path, "rb") as file:
        born = _statx_birth_time(file.fileno())
    if born is None:
        return None
    return datetime.datetime.fromtimestamp(born, datetime.timezone.utc).strftime("%Y-%m-%d")


@pytest.mark.parametrize("first", [{"level": "INFO"}, {"timestamp": "not a time"}, None])
def test_without_a_first_timestamp_the_key_date_is_when_the_file_was_created(
        tmp_path: Any, first: dict[str, str] | None) -> None:
    path = tmp_path / "a.events"
    if first is None:  # a damaged first record
        data = bytearray(encode_record({"timestamp": "2026-11-27T10:00:00Z"}, "{}"))
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data) + encode_record({}, "{}"))
    else:
        path.write_bytes(encode_record(first, "{}"))
    os.utime(path, (NOV_27, NOV_27))
    created = birth_day(path)
    if created is None:
        pytest.skip("this file system keeps no creation time (the modification time is used)")
    shipper = Shipper(DirectoryDestination(tmp_path / "out"), host="h", key_template="hive",
                      compression="none")
    with shipper.prepare(str(path)) as prepared:
        # No record with a readable timestamp: the span says so.
        assert prepared.key == f"dt={created}/host=h/untimed_a.events"
    assert created != "2026-11-27"


def test_records_are_counted_across_chunk_boundaries_whatever_their_size(
        tmp_path: Any) -> None:
    sizes = [10, 3_000_000, 1, 1_048_000, 70, 1_048_576, 2_500_000] + [500] * 3000
    manager = WritingRollManager("big.events", NeverRollChecker(), directory=str(tmp_path))
    for index, size in enumerate(sizes):
        manager.write({"i": str(index)}, "y" * size)
    manager.close()
    shipper = Shipper(DirectoryDestination(tmp_path / "out"), compression="none")
    with shipper.prepare(str(tmp_path / "big.events")) as prepared:
        assert prepared.records == len(sizes) and prepared.damaged == []


def test_same_archive_maps_to_same_key_every_time(tmp_path: Any) -> None:
    write_archives(tmp_path, 1, timestamp="2026-11-27T13:05:00.000Z")
    path = str(tmp_path / "app-000.events")
    shipper = Shipper(DirectoryDestination(tmp_path / "out"), host="h")
    with shipper.prepare(path) as first, shipper.prepare(path) as second:
        assert first.key == second.key == "2026/11/27/h/app-000.events.gz"
        assert first.compressed_sha256 == second.compressed_sha256


@pytest.mark.parametrize("compression, suffix", [("gzip", ".gz"), ("zstd", ".zst"),
                                                 ("none", "")])
def test_directory_destination_holds_a_readable_confirmed_copy(
        tmp_path: Any, compression: str, suffix: str) -> None:
    written = write_archives(tmp_path / "in", 1, records=200)
    path = str(tmp_path / "in" / "app-000.events")
    shipper = Shipper(open_destination(f"file://{tmp_path}/out"), compression=compression,
                      key_template="{name}{suffix}")
    result = shipper.ship(path)
    assert result.location == str(tmp_path / "out" / f"app-000.events{suffix}")
    assert result.records == 200 and result.bytes_in == os.path.getsize(path)
    with open(result.location, "rb") as copy:
        data = copy.read()
    assert len(data) == result.bytes_out
    assert read_compressed(data) == written["app-000.events"]
    assert os.path.exists(path), "shipping alone never removes the archive"
    assert os.stat(result.location).st_mode & 0o777 == os.stat(path).st_mode & 0o777
    assert not [name for name in os.listdir(tmp_path / "out") if name.endswith(".partial")]


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the files and directories fsynced during the test."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    paths: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return paths


def test_directory_destination_syncs_each_directory_it_creates(
        tmp_path: Any, synced: list[str]) -> None:
    """The archive is deleted once delivery returns: the new date directories
    must be as durable as the copy in them."""
    write_archives(tmp_path / "in", 1)
    shipper = Shipper(DirectoryDestination(tmp_path / "out"), host="h")
    result = shipper.ship(str(tmp_path / "in" / "app-000.events"))
    directory = os.path.dirname(result.location)  # out/YYYY/MM/DD/h, the copy's own
    assert directory in synced
    parents = []
    while directory != str(tmp_path / "out"):
        directory = os.path.dirname(directory)
        parents.append(directory)
    # out/YYYY/MM/DD, out/YYYY/MM, out/YYYY and out each got a new directory.
    assert len(parents) == 4 and set(parents) <= set(synced), (parents, synced)


def test_a_copy_found_in_place_is_synced_before_it_counts(
        tmp_path: Any, synced: list[str]) -> None:
    """An earlier attempt killed between its rename and its directory sync."""
    write_archives(tmp_path / "in", 1)
    path = str(tmp_path / "in" / "app-000.events")
    shipper = Shipper(DirectoryDestination(tmp_path / "out"), key_template="{name}{suffix}")
    first = shipper.ship(path)
    synced.clear()
    assert shipper.ship(path).already_present
    assert first.location in synced and str(tmp_path / "out") in synced


_OTHER_FS = "/dev/shm"


@pytest.mark.skipif(not os.path.isdir(_OTHER_FS), reason=f"needs {_OTHER_FS}")
def test_staging_on_another_file_system_copies_into_place(tmp_path: Any) -> None:
    """A leftover partial copy (a sidecar killed mid-copy, restarted with
    the same pid, as pid 1 in a container is) does not block delivery."""
    if os.stat(_OTHER_FS).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip(f"{_OTHER_FS} is on the same file system as {tmp_path}")
    written = write_archives(tmp_path / "in", 1)
    path = str(tmp_path / "in" / "app-000.events")
    os.chmod(path, 0o604)
    target = tmp_path / "out" / "app-000.events.gz"
    target.parent.mkdir()
    leftover = tmp_path / "out" / f"app-000.events.gz.{os.getpid()}.partial"
    leftover.write_bytes(b"half a copy")
    with tempfile.TemporaryDirectory(dir=_OTHER_FS) as staging:
        shipper = Shipper(DirectoryDestination(tmp_path / "out"), tmp_dir=staging,
                          key_template="{name}{suffix}")
        result = shipper.ship(path)
        assert os.listdir(staging) == []
    assert result.location == str(target)
    assert read_compressed(target.read_bytes()) == written["app-000.events"]
    assert os.stat(target).st_mode & 0o777 == 0o604
    assert sorted(os.listdir(tmp_path / "out")) == [target.name, leftover.name]


def test_gzip_copy_is_standard_gzip(tmp_path: Any) -> None:
    write_archives(tmp_path, 1)
    path = str(tmp_path / "app-000.events")
    result = Shipper(DirectoryDestination(tmp_path / "out")).ship(path)
    with open(path, "rb") as original, gzip.open(result.location) as copy:
        assert copy.read() == original.read()


def test_directory_destination_never_replaces_a_different_file(tmp_path: Any) -> None:
    write_archives(tmp_path, 1)
    target = tmp_path / "out" / "app-000.events.gz"
    target.parent.mkdir()
    target.write_bytes(b"somebody else's data")
    shipper = Shipper(DirectoryDestination(tmp_path / "out"), key_template="{name}{suffix}")
    with pytest.raises(PermanentUploadError, match=re.escape("app-000.events.gz already exists")):
        shipper.ship(str(tmp_path / "app-000.events"))
    assert target.read_bytes() == b"somebody else's data"


def test_directory_destination_refuses_to_map_an_archive_onto_itself(tmp_path: Any) -> None:
    written = write_archives(tmp_path, 1)
    shipper = Shipper(DirectoryDestination(tmp_path), key_template="{name}{suffix}",
                      compression="none")
    with pytest.raises(PermanentUploadError, match="is the archive itself"):
        shipper.ship(str(tmp_path / "app-000.events"))
    with open(tmp_path / "app-000.events", "rb") as archive:
        assert read_compressed(archive.read()) == written["app-000.events"]


def test_unwritable_directory_destination_fails_the_check(tmp_path: Any) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(PermanentUploadError, match="cannot write into the destination"):
        DirectoryDestination(tmp_path / "file" / "sub").check()


def test_verify_raises_on_a_damaged_record_naming_file_and_offset(tmp_path: Any) -> None:
    write_archives(tmp_path, 1, records=10)
    path = tmp_path / "app-000.events"
    damage(path)
    shipper = Shipper(DirectoryDestination(tmp_path / "out"), verify=True)
    with pytest.raises(ChecksumMismatch, match=r"app-000.events, offset \d+"):
        shipper.ship(str(path))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.gz"))


def test_without_verify_a_damaged_archive_ships_whole_with_its_damage_counted(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    write_archives(tmp_path, 1, records=10)
    path = tmp_path / "app-000.events"
    break_marker(path, record=5)
    shipper = Shipper(open_destination(f"s3://{bucket}", {"endpoint_url": s3_server.endpoint_url}))
    result = shipper.ship(str(path))
    head = s3_server.client().head_object(Bucket=bucket, Key=result.key)
    assert result.records == 9
    assert int(head["Metadata"]["damaged-bytes"]) > 0
    body = s3_server.client().get_object(Bucket=bucket, Key=result.key)["Body"].read()
    assert gzip.decompress(body) == path.read_bytes()


def test_s3_object_carries_metadata_and_reads_back_record_for_record(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    written = write_archives(tmp_path, 1, records=300, timestamp="2026-11-27T13:05:00.000Z")
    path = str(tmp_path / "app-000.events")
    shipper = Shipper(open_destination(f"s3://{bucket}/logs",
                                       {"endpoint_url": s3_server.endpoint_url}), host="web-3")
    result = shipper.ship(path)
    assert result.key == "logs/2026/11/27/web-3/app-000.events.gz"
    assert result.location == f"s3://{bucket}/{result.key}"
    head = s3_server.client().head_object(Bucket=bucket, Key=result.key)
    with open(path, "rb") as archive:
        original = archive.read()
    assert head["Metadata"] == {
        "original-name": "app-000.events", "original-size": str(len(original)),
        "sha256": hashlib.sha256(original).hexdigest(), "records": "300",
        "shoebox-format-version": "2", "compression": "gzip", "damaged-bytes": "0"}
    assert head["ContentLength"] == result.bytes_out
    assert head["ContentType"] == "application/gzip"
    objects = bucket_objects(s3_server.client(), bucket)
    assert list(objects) == [result.key]
    assert read_compressed(objects[result.key]) == written["app-000.events"]


def test_single_part_upload_sends_the_whole_file_sha256_for_the_server_to_check(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    write_archives(tmp_path, 1)
    shipper = Shipper(open_destination(f"s3://{bucket}", {"endpoint_url": s3_server.endpoint_url}))
    sent: list[dict[str, Any]] = []
    client = shipper.destination.client  # type: ignore[attr-defined]
    client.meta.events.register("before-call.s3.PutObject",
                                lambda params, **_: sent.append(params["headers"]))
    result = shipper.ship(str(tmp_path / "app-000.events"))
    body = s3_server.client().get_object(Bucket=bucket, Key=result.key)["Body"].read()
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert [headers.get("x-amz-checksum-sha256") for headers in sent] == [expected]


def test_server_side_encryption_and_storage_class_are_passed_through(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    write_archives(tmp_path, 1)
    destination = open_destination(f"s3://{bucket}", S3Options(
        endpoint_url=s3_server.endpoint_url, sse="AES256", storage_class="STANDARD_IA"))
    result = Shipper(destination).ship(str(tmp_path / "app-000.events"))
    head = s3_server.client().head_object(Bucket=bucket, Key=result.key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"


def test_large_copies_are_uploaded_in_parts_and_confirmed(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    written = write_archives(tmp_path, 1, records=1200, payload_size=9000)
    destination = S3Destination(bucket, options=S3Options(
        endpoint_url=s3_server.endpoint_url, multipart_threshold_mb=5, multipart_chunk_mb=5))
    parts: list[Any] = []
    destination.client.meta.events.register("before-call.s3.UploadPart",
                                            lambda params, **_: parts.append(params))
    result = Shipper(destination, compression="none").ship(str(tmp_path / "app-000.events"))
    assert result.bytes_out > 10 * 1024 * 1024 and len(parts) == 3
    assert result.records == 1200
    objects = bucket_objects(s3_server.client(), bucket)
    assert read_compressed(objects[result.key]) == written["app-000.events"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uploads_with_an_s3_client_of_its_own(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    """boto3 clients are not fork-safe: the parent's pooled connections must
    not be shared with a child (a --preload server's worker)."""
    write_archives(tmp_path, 1)
    shipper = Shipper(open_destination(f"s3://{bucket}", {"endpoint_url": s3_server.endpoint_url}),
                      key_template="{name}{suffix}")
    destination = shipper.destination
    parent_client = destination.client  # type: ignore[attr-defined]
    destination.check()  # the parent's client now holds a connection

    def child() -> bool:
        own = destination.client is not parent_client  # type: ignore[attr-defined]
        shipper.ship(str(tmp_path / "app-000.events"))
        return own

    assert in_forked_child(child) == 0
    assert destination.client is parent_client  # type: ignore[attr-defined]
    assert list(bucket_objects(s3_server.client(), bucket)) == ["app-000.events.gz"]


def test_shipping_again_finds_the_object_present_and_uploads_nothing(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    write_archives(tmp_path, 1)
    path = str(tmp_path / "app-000.events")
    shipper = Shipper(open_destination(f"s3://{bucket}", {"endpoint_url": s3_server.endpoint_url}))
    first = shipper.ship(path)
    puts: list[Any] = []
    shipper.destination.client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.s3.PutObject", lambda **kwargs: puts.append(kwargs))
    second = shipper.ship(path)
    assert (first.already_present, second.already_present) == (False, True)
    assert second.key == first.key and puts == []


def test_an_existing_different_object_is_never_overwritten(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    write_archives(tmp_path, 1)
    shipper = Shipper(open_destination(f"s3://{bucket}", {"endpoint_url": s3_server.endpoint_url}),
                      key_template="{name}{suffix}")
    s3_server.client().put_object(Bucket=bucket, Key="app-000.events.gz", Body=b"other")
    with pytest.raises(PermanentUploadError,
                       match=re.escape(f"s3://{bucket}/app-000.events.gz already holds")):
        shipper.ship(str(tmp_path / "app-000.events"))
    assert bucket_objects(s3_server.client(), bucket) == {"app-000.events.gz": b"other"}


def test_missing_bucket_is_a_permanent_error_naming_the_bucket(s3_server: Any) -> None:
    destination = open_destination("s3://no-such-bucket-here/x",
                                   {"endpoint_url": s3_server.endpoint_url})
    with pytest.raises(PermanentUploadError,
                       match="bucket 'no-such-bucket-here' does not exist") as error:
        destination.check()
    assert error.value.destination == "s3://no-such-bucket-here/x"


def test_upload_into_a_missing_bucket_names_bucket_and_key(s3_server: Any, tmp_path: Any) -> None:
    write_archives(tmp_path, 1)
    shipper = Shipper(open_destination("s3://no-such-bucket-here",
                                       {"endpoint_url": s3_server.endpoint_url}),
                      key_template="{name}{suffix}")
    with pytest.raises(PermanentUploadError,
                       match=re.escape("s3://no-such-bucket-here/app-000.events.gz")) as error:
        shipper.ship(str(tmp_path / "app-000.events"))
    assert error.value.key == "app-000.events.gz"


@pytest.mark.parametrize("code, status, kind, message", [
    ("AccessDenied", 403, PermanentUploadError, "access denied to bucket 'locked'"),
    ("SlowDown", 503, TransientUploadError, "SlowDown"),
    ("InternalError", 500, TransientUploadError, "InternalError"),
    # Wrong credentials, not the bucket's policy (issue 18).
    ("InvalidAccessKeyId", 403, PermanentUploadError,
     "the credentials were refused (InvalidAccessKeyId), not just access to bucket 'locked'"),
])
def test_server_answers_are_classified_transient_or_permanent(
        tmp_path: Any, code: str, status: int, kind: type, message: str) -> None:
    from botocore.stub import Stubber

    write_archives(tmp_path, 1)
    destination = S3Destination("locked", options={"endpoint_url": "http://127.0.0.1:9"})
    shipper = Shipper(destination, key_template="{name}{suffix}")
    # botocore's Stubber answers in place of a server that says these things.
    with Stubber(destination.client) as server:
        server.add_client_error("head_bucket", service_error_code=code,
                                http_status_code=status)
        server.add_client_error("head_object", service_error_code=code,
                                http_status_code=status)
        with pytest.raises(kind, match=re.escape(message)):
            destination.check()
        with pytest.raises(kind, match=re.escape("s3://locked/app-000.events.gz")):
            shipper.ship(str(tmp_path / "app-000.events"))


def test_unreachable_server_is_a_transient_error(tmp_path: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_archives(tmp_path, 1)
    shipper = Shipper(open_destination("s3://some-bucket",
                                       {"endpoint_url": f"http://127.0.0.1:{port}"}),
                      key_template="{name}{suffix}")
    with pytest.raises(TransientUploadError, match=re.escape("s3://some-bucket/app-000.events.gz")):
        shipper.ship(str(tmp_path / "app-000.events"))
    assert os.path.exists(tmp_path / "app-000.events")


def test_s3_options_with_a_directory_destination_are_refused(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="storage_class only apply to s3://"):
        open_destination(str(tmp_path), S3Options(storage_class="GLACIER"))
    with pytest.raises(ValueError, match="only s3://, file://"):
        open_destination("gs://bucket/prefix")


@pytest.mark.parametrize("action, expected", [("delete", None), ("keep", "same"),
                                              ("move:done", "moved")])
def test_after_upload_actions(tmp_path: Any, action: str, expected: str | None) -> None:
    write_archives(tmp_path, 1)
    path = str(tmp_path / "app-000.events")
    callback = after_upload_callback(action.replace("done", str(tmp_path / "done")))
    result = callback.on_close(path)
    if expected is None:
        assert result is None and not os.path.exists(path)
    elif expected == "same":
        assert result == path and os.path.exists(path)
    else:
        assert result == str(tmp_path / "done" / "app-000.events")
        assert os.path.exists(result) and not os.path.exists(path)


def test_after_upload_rejects_unknown_actions() -> None:
    with pytest.raises(ValueError, match="delete, keep or move:DIR"):
        after_upload_callback("move:")


def test_compress_callback_replaces_each_closed_archive_by_its_gzip(tmp_path: Any) -> None:
    manager = WritingRollManager("app.events", NeverRollChecker(), directory=str(tmp_path),
                                 archive_callback=CompressCallback(compression="gzip"))
    records = [({"i": str(i)}, f'{{"n": {i}}}') for i in range(100)]
    for record in records:
        manager.write(*record)
    manager.close()
    assert os.listdir(tmp_path) == ["app.events.gz"]
    with open(tmp_path / "app.events.gz", "rb") as compressed:
        assert read_compressed(compressed.read()) == records


def test_callbacks_load_by_dotted_name_with_shared_options(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    callbacks = CallbackList(
        callback_list="shoebox.shipping:S3UploadCallback",
        destination=f"s3://{bucket}", s3_options={"endpoint_url": s3_server.endpoint_url},
        compression="zstd", key_template="{name}{suffix}", after_upload="keep")
    manager = WritingRollManager("app.events", NeverRollChecker(), directory=str(tmp_path),
                                 archive_callback=callbacks)
    manager.write({"i": "1"}, "{}")
    manager.close()
    assert os.listdir(tmp_path) == ["app.events"]
    assert list(bucket_objects(s3_server.client(), bucket)) == ["app.events.zst"]


@pytest.mark.parametrize("compression, level", [("gzip", 15), ("gzip", -2), ("zstd", 99)])
def test_a_bad_compression_level_is_refused_at_construction(
        tmp_path: Any, compression: str, level: int) -> None:
    message = f"compression level {level} is not valid for {compression}"
    with pytest.raises(ValueError, match=message):
        Shipper(DirectoryDestination(tmp_path), compression=compression, level=level)
    with pytest.raises(ValueError, match=message):
        CompressCallback(compression=compression, level=level)


def test_compress_callback_needs_a_compression_method() -> None:
    with pytest.raises(ValueError, match="not 'none'"):
        CompressCallback(compression="none")
    with pytest.raises(ValueError, match="compression must be one of"):
        CompressCallback(compression="lzma")


def test_s3_upload_callback_uploads_on_close_and_deletes_after_confirming(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    callback = S3UploadCallback(destination=f"s3://{bucket}/app",
                                s3_options={"endpoint_url": s3_server.endpoint_url},
                                compression="zstd",
                                key_template="{prefix}/{host}/{name}{suffix}", host="h1")
    manager = WritingRollManager("app.events", NeverRollChecker(), directory=str(tmp_path),
                                 archive_callback=callback)
    records = [({"i": str(i)}, f'{{"n": {i}}}') for i in range(100)]
    for record in records:
        manager.write(*record)
    manager.close()
    assert os.listdir(tmp_path) == []
    objects = bucket_objects(s3_server.client(), bucket)
    assert list(objects) == ["app/h1/app.events.zst"]
    assert read_compressed(objects["app/h1/app.events.zst"]) == records


def test_s3_upload_callback_keeps_the_archive_when_the_upload_fails(
        s3_server: Any, tmp_path: Any) -> None:
    callback = S3UploadCallback(destination="s3://no-such-bucket-here",
                                s3_options={"endpoint_url": s3_server.endpoint_url})
    manager = WritingRollManager("app.events", NeverRollChecker(), directory=str(tmp_path),
                                 archive_callback=callback)
    manager.write({"i": "1"}, "{}")
    manager.close()
    assert os.listdir(tmp_path) == ["app.events"]


def test_s3_upload_callback_takes_every_s3_option_the_sidecar_has(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    """The in-process callback and the sidecar share S3Options: timeouts,
    ACL, tags, encryption and part sizes all reach the upload."""
    callback = S3UploadCallback(destination=f"s3://{bucket}/app", compression="none",
                                key_template="{prefix}/{name}{suffix}", s3_options={
                                    "endpoint_url": s3_server.endpoint_url,
                                    "connect_timeout": "3", "read_timeout": 7,
                                    "acl": "bucket-owner-full-control", "sse": "AES256",
                                    "tags": {"team": "obs"}, "multipart_threshold_mb": 5,
                                    "multipart_chunk_mb": 5})
    destination = callback.shipper.destination
    assert isinstance(destination, S3Destination)
    config = destination.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (3, 7)
    parts: list[Any] = []
    destination.client.meta.events.register("before-call.s3.UploadPart",
                                            lambda params, **_: parts.append(params))
    manager = WritingRollManager("app.events", NeverRollChecker(), directory=str(tmp_path),
                                 archive_callback=callback)
    for number in range(1200):
        manager.write({"i": str(number)}, "x" * 9000)
    manager.close()
    assert os.listdir(tmp_path) == [] and len(parts) == 3  # 11 MB in parts of 5 MiB
    client = s3_server.client()
    head = client.head_object(Bucket=bucket, Key="app/app.events")
    assert head["ServerSideEncryption"] == "AES256"
    tags = client.get_object_tagging(Bucket=bucket, Key="app/app.events")["TagSet"]
    assert tags == [{"Key": "team", "Value": "obs"}]
    grants = client.get_object_acl(Bucket=bucket, Key="app/app.events")["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"read_timeout": 0}, ValueError, "read_timeout must be more than 0 seconds, not 0"),
    ({"connect_timeout": "-1"}, ValueError, "connect_timeout must be a positive"),
    ({"read_timeout": "soon"}, InvalidOption, "read_timeout must be a number, not 'soon'"),
    ({"multipart_chunk_mb": 4}, ValueError, "multipart_chunk_mb must be at least 5"),
    ({"acl": "everyone"}, ValueError, "acl must be one of"),
    ({"sse": "rot13"}, ValueError, "sse must be one of AES256"),
    ({"tags": {f"k{n}": "v" for n in range(11)}}, ValueError, "at most 10 tags"),
    ({"tags": {"k": 1}}, TypeError, "tags must map strings to strings"),
    ({"max_concurrency": 0}, ValueError, "max_concurrency must be at least 1"),
    ({"read_timout": 5}, TypeError, "read_timout"),
])
def test_s3_options_are_checked_once_naming_the_option(
        options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        S3Options.of(options)
    with pytest.raises(error, match=re.escape(message)):
        S3UploadCallback(destination="s3://bucket", s3_options=options)


def test_s3_upload_callback_without_boto3_names_the_extra(tmp_path: Any) -> None:
    script = textwrap.dedent("""
        import sys
        sys.modules["boto3"] = None  # as if boto3 were not installed
        from shoebox import MissingExtra, S3UploadCallback
        try:
            S3UploadCallback(destination="s3://bucket/prefix")
        except MissingExtra as error:
            print("MissingExtra:", error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=subprocess_env(), check=True)
    assert "MissingExtra: S3 access needs boto3: pip install '.[s3]' in a shoebox checkout" \
        in result.stdout, result.stderr
