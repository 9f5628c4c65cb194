"""``shoebox stats``: records, bytes, compression ratio, timestamps, record
versions and frequent metadata values, as JSON or a table."""

from __future__ import annotations

import json

import pytest
from archive_files import METHODS, archive_bytes, items, run, write
from test_codec import v1_record

from shoebox import encode_record


def stats_json(capsys, *argv) -> dict:
    status, out, err = run(capsys, "stats", "--json", *argv)
    assert (status, err) == (0, "")
    return json.loads(out)


@pytest.mark.parametrize("method", METHODS)
def test_stats_reports_sizes_timestamps_versions_and_top_values(tmp_path, capsys, method):
    records = items(130)
    path = write(tmp_path / "a.events", records, method)
    size = len(archive_bytes(records))
    report = stats_json(capsys, "--top", "level", "--top", "host", path)

    [file] = report["files"]
    assert file == {**report["total"], "name": str(path)}
    assert file["records"] == 130
    assert file["bytes"] == size
    assert file["stored_bytes"] == path.stat().st_size
    assert file["compression"] == method
    if method == "none":
        assert file["ratio"] is None
    else:
        assert file["ratio"] == round(size / path.stat().st_size, 3) > 1
    assert file["first_timestamp"] == "2026-11-27T10:00:00.000Z"
    assert file["last_timestamp"] == "2026-11-27T10:02:09.000Z"
    assert file["versions"] == {"2": 130}
    assert file["top"] == {"level": [{"value": "INFO", "count": 97},
                                     {"value": "ERROR", "count": 33}],
                           "host": [{"value": "web-1", "count": 130}]}
    assert file["damaged"] == []


def test_stats_counts_each_record_version_seen(tmp_path, capsys):
    path = tmp_path / "mixed.events"
    path.write_bytes(v1_record({"a": "1"}, "{}") * 3 + encode_record({"a": "2"}, "{}") * 2)
    report = stats_json(capsys, path)
    assert report["total"]["versions"] == {"1": 3, "2": 2}


def test_stats_totals_many_archives(tmp_path, capsys):
    write(tmp_path / "1.events", items(10, host="a"))
    write(tmp_path / "2.events.gz", items(20, host="b"), "gzip")
    report = stats_json(capsys, "--top", "host", "--top-n", "1", tmp_path)
    total = report["total"]
    assert [file["records"] for file in report["files"]] == [10, 20]
    assert total["records"] == 30
    assert total["bytes"] == sum(file["bytes"] for file in report["files"])
    assert total["stored_bytes"] == sum(file["stored_bytes"] for file in report["files"])
    assert total["compression"] == "mixed"
    assert total["top"] == {"host": [{"value": "b", "count": 20}]}
    assert total["last_timestamp"] == "2026-11-27T10:00:19.000Z"


def test_the_timestamp_key_can_be_chosen_and_may_be_missing(tmp_path, capsys):
    write(tmp_path / "a.events", [({"when": "2026-01-02"}, "{}"), ({}, "{}"),
                                  ({"when": "2025-12-31"}, "{}")])
    report = stats_json(capsys, "--timestamp-key", "when", tmp_path / "a.events")
    assert (report["total"]["first_timestamp"], report["total"]["last_timestamp"]) == (
        "2025-12-31", "2026-01-02")
    report = stats_json(capsys, tmp_path / "a.events")
    assert report["total"]["first_timestamp"] is None


def test_stats_prints_a_table_without_json(tmp_path, capsys):
    path = write(tmp_path / "a.events.zst", items(10), "zstd")
    status, out, _ = run(capsys, "stats", "--top", "level", path)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["archive", "records", "bytes", "stored", "compression",
                                "ratio", "damaged"]
    assert lines[1].split()[:2] == [str(path), "10"]
    assert lines[2].split()[:2] == ["total", "10"]
    assert "first timestamp  2026-11-27T10:00:00.000Z" in lines
    assert "record versions  v2: 10" in lines
    assert "top level        INFO (7), ERROR (3)" in lines


def test_stats_stops_at_damage_unless_recovering(tmp_path, capsys):
    data = bytearray(archive_bytes(items(10)))
    data[-5] ^= 0xFF
    path = tmp_path / "bad.events"
    path.write_bytes(bytes(data))
    status, out, err = run(capsys, "stats", path)
    assert (status, out) == (1, "")
    assert "checksum mismatch" in err
    report = stats_json(capsys, "--recover", path)
    assert report["total"]["records"] == 9
    assert [item["reason"][:17] for item in report["total"]["damaged"]] == ["checksum mismatch"]


def test_stats_reads_s3_objects_with_their_stored_size(s3_server, bucket, capsys):
    body = archive_bytes(items(50), "zstd")
    s3_server.client().put_object(Bucket=bucket, Key="x/a.events.zst", Body=body)
    report = stats_json(capsys, f"s3://{bucket}/x/", "--endpoint-url", s3_server.endpoint_url)
    assert report["total"]["records"] == 50
    assert report["total"]["stored_bytes"] == len(body)
    assert report["total"]["compression"] == "zstd"
