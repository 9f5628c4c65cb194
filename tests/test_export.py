"""shoebox.export: Hive-partitioned Parquet and gzip JSON Lines, in a
directory or on S3 (moto over HTTP), read back by DuckDB and by shoebox."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from archive_files import items, write
from test_arrow import flip_byte_in_second_record, rows

from shoebox import ChecksumMismatch, DamageSkipped
from shoebox.arrow import DEFAULT_COLUMNS, to_table
from shoebox.export import Exporter, export
from shoebox.jsonl import render_record


def day_records(host: str, stamps: list[str]) -> list[tuple[dict[str, str], str]]:
    return [({"level": "ERROR" if i % 3 == 0 else "INFO", "host": host, "timestamp": stamp,
              "index": str(i)}, f'{{"message": "{host} {i}"}}')
            for i, stamp in enumerate(stamps)]


def files_under(root) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    found = {}
    for top, _dirs, names in os.walk(root):
        for name in names:
            path = Path(top, name)
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def parquet(root) -> str:
    return f"read_parquet('{root}/**/*.parquet', hive_partitioning = true)"


def test_records_go_to_their_own_day_whatever_archive_holds_them(tmp_path):
    # One archive that spans midnight; times with a zone are taken to UTC.
    write(tmp_path / "in" / "dt=2026-11-27" / "a.events.gz", day_records("web-1", [
        "2026-11-27T23:59:59.000Z", "2026-11-28T00:00:01.000Z",
        "2026-11-28T01:30:00+02:00"]), "gzip")
    export(tmp_path / "in", tmp_path / "out")
    assert sorted(files_under(tmp_path / "out")) == ["dt=2026-11-27/a.events.parquet",
                                                     "dt=2026-11-28/a.events.parquet"]
    got = duckdb.sql(f"SELECT CAST(dt AS VARCHAR), metadata['index'] FROM "
                     f"{parquet(tmp_path / 'out')} ORDER BY 2").fetchall()
    assert got == [("2026-11-27", "0"), ("2026-11-28", "1"), ("2026-11-27", "2")]


def test_parquet_is_zstd_compressed_in_the_schema_less_its_partition_columns(tmp_path):
    write(tmp_path / "a.events", day_records("web-1", ["2026-11-27T10:00:00Z"] * 5))
    (result,) = export(tmp_path / "a.events", tmp_path / "out", partition_by=["dt", "host"])
    assert result.records == 5
    (path,) = result.written
    assert path == str(tmp_path / "out" / "dt=2026-11-27" / "host=web-1" / "a.events.parquet")
    metadata = pq.ParquetFile(path).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    names = [name for name in to_table(tmp_path / "a.events").schema.names if name != "host"]
    assert pq.read_schema(path).names == names
    assert result.bytes_out == os.path.getsize(path)


def test_duckdb_counts_per_host_and_level_match_the_records(tmp_path):
    expected = {}
    for host in ("web-1", "web-2", "web-3"):
        records = day_records(host, [f"2026-11-27T10:00:{i % 60:02d}Z" for i in range(30)])
        write(tmp_path / "in" / f"{host}.events.zst", records, "zstd")
        for metadata, _ in records:
            key = (host, metadata["level"])
            expected[key] = expected.get(key, 0) + 1
    export(tmp_path / "in", tmp_path / "out", partition_by=["dt", "host"])
    got = duckdb.sql(f"SELECT host, level, count(*) FROM {parquet(tmp_path / 'out')} "
                     "GROUP BY ALL").fetchall()
    assert {(host, level): count for host, level, count in got} == expected
    message = duckdb.sql(f"SELECT payload->>'message' FROM {parquet(tmp_path / 'out')} "
                         "WHERE host = 'web-2' AND metadata['index'] = '4'").fetchall()
    assert message == [("web-2 4",)]


def test_a_rerun_rewrites_the_same_files_with_the_same_bytes(tmp_path):
    records = day_records("web-1", ["2026-11-27T10:00:00Z"] * 4)
    write(tmp_path / "in" / "a.events", records)
    export(tmp_path / "in", tmp_path / "out")
    first = files_under(tmp_path / "out")
    export(tmp_path / "in", tmp_path / "out")
    assert files_under(tmp_path / "out") == first
    # The same archive compressed and read from elsewhere replaces its files
    # (their source column names where it was read now), adding none.
    write(tmp_path / "elsewhere" / "a.events.gz", records, "gzip")
    export(tmp_path / "elsewhere", tmp_path / "out")
    assert sorted(files_under(tmp_path / "out")) == ["dt=2026-11-27/a.events.parquet"]
    got = duckdb.sql(f"SELECT DISTINCT source FROM {parquet(tmp_path / 'out')}").fetchall()
    assert got == [(str(tmp_path / "elsewhere" / "a.events.gz"),)]


def test_two_archives_with_one_name_are_refused_before_anything_is_written(tmp_path):
    write(tmp_path / "in" / "x" / "a.events", items(1))
    write(tmp_path / "in" / "y" / "a.events.gz", items(1), "gzip")
    with pytest.raises(ValueError, match=r"would export to the same files \(a.events.parquet"):
        export(tmp_path / "in", tmp_path / "out")
    assert files_under(tmp_path / "out") == {}


def test_records_without_the_key_go_to_the_null_partition(tmp_path):
    write(tmp_path / "a.events", [({"host": "web-1", "timestamp": "yesterday"}, "{}"),
                                  ({"timestamp": "2026-11-27T10:00:00"}, "{}"),
                                  ({"host": "a/b", "timestamp": "2026-11-27"}, "{}")])
    export(tmp_path / "a.events", tmp_path / "out", partition_by=["dt", "host"])
    assert sorted(files_under(tmp_path / "out")) == [
        "dt=2026-11-27/host=__HIVE_DEFAULT_PARTITION__/a.events.parquet",
        "dt=2026-11-27/host=a%2Fb/a.events.parquet",
        "dt=__HIVE_DEFAULT_PARTITION__/host=web-1/a.events.parquet"]
    back = duckdb.sql(f"SELECT CAST(dt AS VARCHAR), host FROM {parquet(tmp_path / 'out')}"
                      " ORDER BY ALL").fetchall()
    assert back == [("2026-11-27", "a/b"), ("2026-11-27", None), (None, "web-1")]


def test_partitioning_by_a_metadata_key_promotes_it(tmp_path):
    write(tmp_path / "a.events", [({"tenant": "t1"}, "{}"), ({"tenant": "t2"}, "[]")])
    export(tmp_path / "a.events", tmp_path / "out", partition_by=["tenant"])
    assert sorted(files_under(tmp_path / "out")) == ["tenant=t1/a.events.parquet",
                                                     "tenant=t2/a.events.parquet"]


def test_partitioning_by_a_hive_segment_of_the_sources_keeps_its_values(tmp_path):
    write(tmp_path / "in" / "region=eu" / "a.events", [({"region": "not this"}, "{}")])
    write(tmp_path / "in" / "region=us" / "b.events", [({}, "{}")])
    export(tmp_path / "in", tmp_path / "out", partition_by=["region"])
    assert sorted(files_under(tmp_path / "out")) == ["region=eu/a.events.parquet",
                                                     "region=us/b.events.parquet"]


def test_no_partitions_puts_every_archive_at_the_top(tmp_path):
    write(tmp_path / "in" / "a.events", items(2))
    write(tmp_path / "in" / "b.events", items(3))
    export(tmp_path / "in", tmp_path / "out", partition_by=[])
    assert sorted(files_under(tmp_path / "out")) == ["a.events.parquet", "b.events.parquet"]


def test_jsonl_export_holds_the_lines_shoebox_cat_prints_gzip_compressed(tmp_path):
    records = day_records("web-1", ["2026-11-27T10:00:00Z", "2026-11-28T10:00:00Z"])
    write(tmp_path / "a.events", records)
    export(tmp_path / "a.events", tmp_path / "out", format="jsonl")
    found = files_under(tmp_path / "out")
    assert sorted(found) == ["dt=2026-11-27/a.events.jsonl.gz",
                             "dt=2026-11-28/a.events.jsonl.gz"]
    assert gzip.decompress(found["dt=2026-11-28/a.events.jsonl.gz"]).decode() == render_record(
        *records[1])


def test_an_s3_prefix_receives_the_export_and_reads_back(s3_server, bucket, tmp_path):
    records = day_records("web-1", ["2026-11-27T10:00:00Z"] * 3)
    write(tmp_path / "a.events", records)
    options = {"endpoint_url": s3_server.endpoint_url}
    (result,) = export(tmp_path, f"s3://{bucket}/exports", storage_options=options)
    assert result.written == [f"s3://{bucket}/exports/dt=2026-11-27/a.events.parquet"]
    keys = [item["Key"] for item in
            s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["exports/dt=2026-11-27/a.events.parquet"]
    body = s3_server.client().get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    path = tmp_path / "copy.parquet"
    path.write_bytes(body)
    table = pq.read_table(path)
    assert [(dict(row["metadata"]), row["payload"]) for row in table.to_pylist()] == records


def test_a_damaged_archive_raises_and_leaves_no_file_of_its_own(tmp_path):
    write(tmp_path / "in" / "a.events", items(3))
    path = write(tmp_path / "in" / "b.events", items(3))
    flip_byte_in_second_record(path, items(3))
    with pytest.raises(ChecksumMismatch, match=r"b\.events, offset"):
        export(tmp_path / "in", tmp_path / "out", partition_by=[])
    assert sorted(files_under(tmp_path / "out")) == ["a.events.parquet"]


def test_a_damaged_record_is_skipped_and_reported_with_on_damage_skip(tmp_path):
    write(tmp_path / "in" / "a.events", items(3))
    path = write(tmp_path / "in" / "b.events", items(3))
    flip_byte_in_second_record(path, items(3))
    with pytest.warns(DamageSkipped, match="b.events: skipped"):
        results = export(tmp_path / "in", tmp_path / "out", partition_by=[],
                         on_damage="skip")
    assert [result.records for result in results] == [3, 2]
    assert rows(pq.read_table(tmp_path / "out" / "b.events.parquet")) == [items(3)[0],
                                                                         items(3)[2]]


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"format": "csv"}, ValueError, "format must be one of parquet, jsonl"),
    ({"partition_by": "dt"}, TypeError, "not the string"),
    ({"partition_by": ["payload"]}, ValueError, "'payload' cannot be a partition key"),
    ({"partition_by": ["dt", "dt"]}, ValueError, "repeats"),
    ({"columns": ["source"]}, ValueError, "'source'"),
    ({"on_damage": "ignore"}, ValueError, "on_damage"),
    ({"storage_options": {"anon": True}}, ValueError, "anon"),
])
def test_invalid_options_fail_at_construction_naming_them(tmp_path, options, error, match):
    with pytest.raises(error, match=match):
        Exporter(tmp_path / "out", **options)


def test_the_default_columns_are_in_every_export(tmp_path):
    write(tmp_path / "a.events", [({}, "{}")])
    (result,) = export(tmp_path / "a.events", tmp_path / "out", partition_by=[])
    assert set(DEFAULT_COLUMNS) <= set(pq.read_schema(result.written[0]).names)
