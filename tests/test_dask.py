"""shoebox.dask: archives read and decoded on the workers of a real
distributed cluster, from local files and from S3 (moto over HTTP) through
fsspec/s3fs; results read back by DuckDB."""

from __future__ import annotations

import collections

import duckdb
import pytest
from archive_files import archive_bytes, items, write, write_each_method
from distributed import Client
from test_arrow import flip_byte_in_second_record
from test_codec import v1_record

from shoebox import ChecksumMismatch, encode_record
from shoebox.arrow import to_table
from shoebox.dask import list_archives, read_archives, to_dataframe


@pytest.fixture
def client(dask_client: Client) -> Client:
    """The session's LocalCluster of two worker processes."""
    return dask_client


def counts(records, *keys: str) -> collections.Counter[tuple[str, ...]]:
    return collections.Counter(tuple(metadata.get(key) for key in keys)
                               for metadata, _payload in records)


def test_a_bag_has_one_partition_per_archive_decoded_on_the_workers(client, tmp_path):
    expected = write_each_method(tmp_path, 60)
    bag = read_archives(str(tmp_path))
    assert bag.npartitions == 3
    got = bag.compute()
    assert [(record["metadata"], record["payload"]) for record in got] == expected
    by_level_host = bag.map(lambda r: (r["metadata"]["level"], r["metadata"]["host"]))
    assert dict(by_level_host.frequencies().compute()) == counts(expected, "level", "host")


def test_a_bag_reads_v1_legacy_archives(client, tmp_path):
    (tmp_path / "legacy.events").write_bytes(
        v1_record({"level": "INFO", "host": "old"}, '{"m": 1}')
        + encode_record({"level": "ERROR"}, '{"m": 2}'))
    assert read_archives(str(tmp_path / "legacy.events")).compute() == [
        {"metadata": {"level": "INFO", "host": "old"}, "payload": '{"m": 1}'},
        {"metadata": {"level": "ERROR"}, "payload": '{"m": 2}'}]


@pytest.fixture
def shipped(s3_server, bucket) -> tuple[str, list[tuple[dict[str, str], str]]]:
    """Archives (gzip, zstd, plain) under Hive keys of a bucket; their URL prefix
    and records in key order."""
    client = s3_server.client()
    expected = []
    for index, (host, method) in enumerate([("h0", "gzip"), ("h1", "zstd"), ("h2", "none")]):
        records = items(40 + index, host=host)
        suffix = {"gzip": ".gz", "zstd": ".zst", "none": ""}[method]
        client.put_object(Bucket=bucket, Key=f"logs/dt=2026-11-27/host={host}/a.events{suffix}",
                          Body=archive_bytes(records, method))
        expected += records
    return f"s3://{bucket}/logs/", expected


@pytest.mark.parametrize("spelling", ["endpoint_url", "client_kwargs"])
def test_a_bag_reads_an_s3_prefix_through_s3fs_on_the_workers(client, s3_server, shipped,
                                                                spelling):
    url, expected = shipped
    options = ({"endpoint_url": s3_server.endpoint_url} if spelling == "endpoint_url"
               else {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}})
    bag = read_archives(url, storage_options=options)
    assert bag.npartitions == 3
    assert [(r["metadata"], r["payload"]) for r in bag.compute()] == expected


def test_a_dataframe_has_the_columns_of_to_table_and_duckdb_reads_its_parquet(
        client, s3_server, shipped, tmp_path):
    url, expected = shipped
    options = {"endpoint_url": s3_server.endpoint_url}
    frame = to_dataframe(url, columns=["index"], storage_options=options)
    table = to_table(url, columns=["index"], storage_options=options)
    assert list(frame.columns) == table.schema.names
    assert table.schema.names[-1] == "dt"  # host=… is a promoted column already
    assert frame.npartitions == 3
    computed = frame.compute()
    assert computed["source"].tolist() == table.column("source").to_pylist()
    assert computed["offset"].tolist() == table.column("offset").to_pylist()
    by_level = frame.groupby("level").size().compute().to_dict()
    assert by_level == {level: count for (level,), count in counts(expected, "level").items()}
    frame.to_parquet(str(tmp_path / "out"))
    rows = duckdb.sql(f"SELECT host, level, count(*) FROM read_parquet("
                      f"'{tmp_path}/out/*.parquet') GROUP BY ALL").fetchall()
    assert {(host, level): count for host, level, count in rows} == counts(
        expected, "host", "level")


def test_metadata_keys_that_differ_give_nulls_in_the_dataframe(client, tmp_path):
    write(tmp_path / "a.events", [({"level": "INFO"}, "{}")])
    write(tmp_path / "b.events", [({"logger": "app", "tenant": "t1"}, "[]")])
    frame = to_dataframe(str(tmp_path), columns=["tenant"]).compute()
    assert frame["level"].fillna("<null>").tolist() == ["INFO", "<null>"]
    assert frame["tenant"].fillna("<null>").tolist() == ["<null>", "t1"]
    assert [dict(m) for m in frame["metadata"].tolist()] == [{"level": "INFO"},
                                                             {"logger": "app", "tenant": "t1"}]


def test_an_empty_prefix_gives_an_empty_bag_and_dataframe(client, s3_server, bucket):
    options = {"endpoint_url": s3_server.endpoint_url}
    url = f"s3://{bucket}/nothing/"
    assert read_archives(url, storage_options=options).compute() == []
    frame = to_dataframe(url, storage_options=options)
    assert len(frame.compute()) == 0
    assert list(frame.columns) == to_table(url, storage_options=options).schema.names


def test_a_flipped_byte_fails_the_computation_naming_file_and_offset(client, tmp_path):
    write(tmp_path / "a.events", items(3))
    path = write(tmp_path / "b.events", items(3))
    offset = flip_byte_in_second_record(path, items(3))
    with pytest.raises(ChecksumMismatch, match=f"b.events, offset {offset}:"):
        read_archives(str(tmp_path)).compute()
    with pytest.raises(ChecksumMismatch, match=f"b.events, offset {offset}:"):
        to_dataframe(str(tmp_path)).compute()


def test_a_flipped_byte_is_skipped_on_the_workers_the_other_records_intact(client, tmp_path):
    records = items(3)
    write(tmp_path / "a.events", records)
    path = write(tmp_path / "b.events", records)
    flip_byte_in_second_record(path, records)
    got = read_archives(str(tmp_path), on_damage="skip").compute()
    assert [(r["metadata"], r["payload"]) for r in got] == [*records, records[0], records[2]]
    frame = to_dataframe(str(tmp_path), on_damage="skip").compute()
    assert frame["metadata"].map(lambda m: dict(m)["index"]).tolist() == [
        "0", "1", "2", "0", "2"]


def test_listing_skips_open_archives_and_a_path_naming_nothing_raises(tmp_path):
    write(tmp_path / "x" / "a.events", items(1))
    write(tmp_path / "x" / "b.events.open", items(1))
    assert [archive.name for archive in list_archives(str(tmp_path / "x"))] == [
        str(tmp_path / "x" / "a.events")]
    assert [archive.name for archive in list_archives(str(tmp_path / "x" / "*.events*"))] == [
        str(tmp_path / "x" / "a.events")]
    with pytest.raises(FileNotFoundError, match="missing"):
        list_archives(str(tmp_path / "missing/"))


def test_invalid_on_damage_fails_at_the_call(tmp_path):
    with pytest.raises(ValueError, match="on_damage"):
        read_archives(str(tmp_path), on_damage="ignore")
    with pytest.raises(ValueError, match="on_damage"):
        to_dataframe(str(tmp_path), on_damage="ignore")
