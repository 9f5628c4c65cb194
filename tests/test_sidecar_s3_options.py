"""S3 options operators ask for: canned ACLs, object tags, and buckets with
Object Lock retention (against moto's S3 server)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from _sidecar_support import archives_in, bucket_objects, read_compressed, write_archives

from shoebox_sidecar.cli import EXIT_USAGE, main


def ship(s3_server: Any, directory: Any, dest: str, *args: str) -> int:
    return main([str(directory), "--dest", dest, "--once", "--endpoint-url",
                 s3_server.endpoint_url, "--key-template", "{prefix}/{name}{suffix}", *args])


def test_objects_get_the_canned_acl_and_every_tag(s3_server: Any, bucket: str,
                                                  tmp_path: Any) -> None:
    write_archives(tmp_path, 2)
    assert ship(s3_server, tmp_path, f"s3://{bucket}/p", "--acl", "public-read",
                "--tag", "team=observability", "--tag", "env=prod",
                "--tag", "note=a b/c:d") == 0
    client = s3_server.client()
    for key in ("p/app-000.events.gz", "p/app-001.events.gz"):
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        assert {tag["Key"]: tag["Value"] for tag in tags} == {
            "team": "observability", "env": "prod", "note": "a b/c:d"}
        grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert {"Permission": "READ", "Grantee": {
            "Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}} in grants


def test_tags_from_the_environment_are_comma_separated(
        s3_server: Any, bucket: str, tmp_path: Any, monkeypatch: Any) -> None:
    write_archives(tmp_path, 1)
    monkeypatch.setenv("SHOEBOX_SIDECAR_TAG", "team=obs, env=dev")
    assert ship(s3_server, tmp_path, f"s3://{bucket}/p") == 0
    tags = s3_server.client().get_object_tagging(Bucket=bucket,
                                                 Key="p/app-000.events.gz")["TagSet"]
    assert {tag["Key"]: tag["Value"] for tag in tags} == {"team": "obs", "env": "dev"}


@pytest.mark.parametrize("args, message", [
    (["--tag", "team"], "--tag 'team': expected KEY=VALUE"),
    (["--tag", "=x"], "--tag '=x': expected KEY=VALUE"),
    (["--tag", "a=1", "--tag", "a=2"], "tag 'a' given twice"),
    ([arg for n in range(11) for arg in ("--tag", f"k{n}=v")], "at most 10 tags"),
    (["--tag", "k" * 129 + "=v"], "keys of 1 to 128 characters"),
])
def test_bad_tags_are_configuration_errors(tmp_path: Any, capsys: Any, args: list[str],
                                           message: str) -> None:
    assert main([str(tmp_path), "--dest", "s3://b/p", "--once", *args]) == EXIT_USAGE
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["config_error"]
    assert message in lines[0]["message"]


@pytest.mark.parametrize(("dest", "args", "message"), [
    ("s3://b/p", ["--read-timeout", "0"], "--read-timeout must be more than 0 seconds, not 0"),
    ("s3://b/p", ["--connect-timeout", "-1"], "--connect-timeout must be more than 0"),
    ("dir", ["--read-timeout", "0"], "--read-timeout must be more than 0"),
    ("s3://b/p", ["--multipart-chunk-mb", "4"],
     "--multipart-chunk-mb must be at least 5 (S3's smallest part), not 4"),
    ("s3://b/p", ["--read-timeout", "inf"], "--read-timeout must be a positive finite number"),
])
def test_timeouts_and_part_sizes_s3_cannot_take_are_configuration_errors(
        tmp_path: Any, capsys: Any, dest: str, args: list[str], message: str) -> None:
    target = str(tmp_path / dest) if dest == "dir" else dest
    assert main([str(tmp_path), "--dest", target, "--once", *args]) == EXIT_USAGE
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["config_error"]
    assert message in lines[0]["message"]


def test_an_unknown_canned_acl_is_refused(tmp_path: Any, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--dest", "s3://b/p", "--acl", "everyone"])
    assert exit_.value.code == EXIT_USAGE
    assert "invalid choice: 'everyone'" in capsys.readouterr().err


@pytest.fixture
def locked_bucket(s3_server: Any) -> str:
    """A bucket with Object Lock on and a default retention: every new object
    is locked, and S3 refuses uploads without an integrity header."""
    name = f"locked-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    return name


@pytest.mark.parametrize("multipart", [False, True], ids=["single-part", "multipart"])
def test_uploads_into_an_object_lock_bucket_are_accepted_and_locked(
        s3_server: Any, locked_bucket: str, tmp_path: Any, multipart: bool) -> None:
    # Multipart: 6 MB archives stored uncompressed, in 5 MiB parts (S3's least).
    records, size = (1500, 4000) if multipart else (50, 40)
    written = write_archives(tmp_path, 2, records=records, payload_size=size)
    args = (["--compress", "none", "--multipart-threshold-mb", "5",
             "--multipart-chunk-mb", "5"] if multipart else [])
    assert ship(s3_server, tmp_path, f"s3://{locked_bucket}/p", *args) == 0
    assert archives_in(tmp_path) == []
    client = s3_server.client()
    objects = bucket_objects(client, locked_bucket)
    suffix = "" if multipart else ".gz"
    for name, expected in written.items():
        key = f"p/{name}{suffix}"
        assert read_compressed(objects[key]) == expected
        head = client.head_object(Bucket=locked_bucket, Key=key)
        if not multipart:
            # moto (5.x) applies a bucket's default retention to objects PUT
            # whole only, and checks no headers on the parts of a multipart
            # upload: S3 locks both, and wants a checksum on every part,
            # which the transfer manager sends (ChecksumAlgorithm).
            assert head["ObjectLockMode"] == "GOVERNANCE"
        # A multipart object's ETag ends with its number of parts.
        assert head["ETag"].endswith('-2"') == multipart
