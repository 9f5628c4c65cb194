"""shoebox.arrow: archives as Arrow tables and record batches in one schema,
read back by DuckDB."""

from __future__ import annotations

import gzip

import duckdb
import pyarrow as pa
import pytest
from archive_files import METHODS, archive_bytes, compress, items, write, write_each_method
from test_codec import v1_record

from shoebox import ChecksumMismatch, DamageSkipped, decode_record, encode_record
from shoebox.arrow import DEFAULT_COLUMNS, Layout, hive_partitions, to_batches, to_table
from shoebox_logging import STANDARD_METADATA

FIXED = ["metadata", *DEFAULT_COLUMNS, "payload", "source", "offset"]


def rows(table: pa.Table) -> list[tuple[dict[str, str], str]]:
    """The table's records as ``(metadata, payload)`` pairs."""
    return [(dict(row["metadata"]), row["payload"]) for row in table.to_pylist()]


def test_default_columns_are_the_logging_handlers_standard_metadata():
    assert DEFAULT_COLUMNS == STANDARD_METADATA


def test_a_table_holds_every_record_of_every_compression_in_order(tmp_path):
    expected = write_each_method(tmp_path, 50)
    table = to_table(tmp_path)
    assert table.schema.names == FIXED
    assert table.schema.field("metadata").type == pa.map_(pa.string(), pa.string())
    assert table.schema.field("offset").type == pa.int64()
    assert rows(table) == expected
    assert table.column("level").to_pylist() == [m["level"] for m, _ in expected]
    assert table.column("timestamp").to_pylist() == [m["timestamp"] for m, _ in expected]
    assert table.column("source").to_pylist() == [
        str(tmp_path / f"{index}.events") for index in range(3) for _ in range(50)]


@pytest.mark.parametrize("method", METHODS)
def test_source_and_offset_lead_back_to_each_record(tmp_path, method):
    records = items(30)
    path = write(tmp_path / "a.events", records, method)
    plain = archive_bytes(records)
    table = to_table(str(path))
    assert set(table.column("source").to_pylist()) == {str(path)}
    for offset, record in zip(table.column("offset").to_pylist(), records, strict=True):
        assert decode_record(plain, offset)[:2] == record


def test_metadata_keys_that_differ_between_records_give_nulls(tmp_path):
    write(tmp_path / "a.events", [({"level": "INFO", "request_id": "r1"}, "{}"),
                                  ({"logger": "app", "extra": "x"}, "[]"),
                                  ({}, "")])
    table = to_table(tmp_path, columns=["request_id", "level"])
    assert table.schema.names == ["metadata", *DEFAULT_COLUMNS, "request_id", "payload",
                                  "source", "offset"]
    assert table.column("level").to_pylist() == ["INFO", None, None]
    assert table.column("logger").to_pylist() == [None, "app", None]
    assert table.column("request_id").to_pylist() == ["r1", None, None]
    assert table.column("pid").to_pylist() == [None, None, None]
    assert [dict(m) for m in table.column("metadata").to_pylist()] == [
        {"level": "INFO", "request_id": "r1"}, {"logger": "app", "extra": "x"}, {}]


def test_hive_segments_of_the_paths_become_columns_null_where_missing(tmp_path):
    write(tmp_path / "dt=2026-11-27" / "region=eu%2Fwest" / "a.events", items(2))
    write(tmp_path / "dt=2026-11-28" / "host=ignored" / "b.events", items(1, host="h9"))
    write(tmp_path / "loose" / "c.events", items(1))
    write(tmp_path / "dt=__HIVE_DEFAULT_PARTITION__" / "d.events", items(1))
    table = to_table(tmp_path)
    # host is a promoted column already: its Hive segment does not add one.
    assert table.schema.names == [*FIXED, "dt", "region"]
    assert table.column("dt").to_pylist() == ["2026-11-27", "2026-11-27", "2026-11-28", None,
                                              None]
    assert table.column("region").to_pylist() == ["eu/west", "eu/west", None, None, None]
    assert table.column("host").to_pylist() == ["web-1", "web-1", "h9", "web-1", "web-1"]


def test_hive_partitions_read_directories_only_and_the_deepest_wins():
    assert hive_partitions("s3://b/logs/dt=1/x=a/dt=2/name=file.events") == {"dt": "2",
                                                                                "x": "a"}
    assert hive_partitions("a=b") == {}


def test_a_v1_legacy_archive_reads_into_the_same_schema(tmp_path):
    (tmp_path / "legacy.events").write_bytes(
        v1_record({"level": "WARNING", "host": "old"}, '{"m": 1}')
        + encode_record({"level": "INFO"}, '{"m": 2}'))
    table = to_table(tmp_path / "legacy.events")
    assert table.schema.names == FIXED
    assert rows(table) == [({"level": "WARNING", "host": "old"}, '{"m": 1}'),
                           ({"level": "INFO"}, '{"m": 2}')]
    assert table.column("host").to_pylist() == ["old", None]


def flip_byte_in_second_record(path, records) -> int:
    """Damage the second record of the plain archive at ``path``; return its offset."""
    first = len(encode_record(*records[0]))
    data = bytearray(path.read_bytes())
    data[first + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    return first


def test_a_flipped_byte_raises_naming_file_and_offset(tmp_path):
    write(tmp_path / "a.events", items(3))
    path = write(tmp_path / "b.events", items(3))
    offset = flip_byte_in_second_record(path, items(3))
    with pytest.raises(ChecksumMismatch, match=f"b.events, offset {offset}:") as caught:
        to_table(tmp_path)
    assert caught.value.filename == str(path)
    assert caught.value.offset == offset


def test_a_flipped_byte_is_skipped_and_reported_the_other_records_intact(tmp_path):
    records = items(3)
    write(tmp_path / "a.events", records)
    path = write(tmp_path / "b.events", records)
    offset = flip_byte_in_second_record(path, records)
    with pytest.warns(DamageSkipped, match=f"b.events: skipped .* at offset {offset}") as seen:
        table = to_table(tmp_path, on_damage="skip")
    assert len(seen) == 1
    assert rows(table) == [*records, records[0], records[2]]


def test_a_file_that_is_no_archive_is_skipped_and_reported(tmp_path):
    write(tmp_path / "a.events", items(2))
    (tmp_path / "b.events").write_bytes(b"not an archive at all\n" * 10)
    (tmp_path / "c.events.gz").write_bytes(gzip.compress(archive_bytes(items(4)))[:-30])
    with pytest.warns(DamageSkipped) as seen:
        table = to_table(tmp_path, on_damage="skip")
    messages = [str(warning.message) for warning in seen]
    assert f"{tmp_path}/b.events: skipped the file, not a shoebox archive: no record found in " \
           "its 220 bytes" in messages
    assert any("c.events.gz: skipped" in m and "gzip" in m for m in messages)
    got = rows(table)
    assert got[:2] == items(2)
    assert got[2:] == items(4)[:len(got) - 2]  # the gzip data up to the damage


def test_an_archive_gone_before_it_is_read_is_skipped_and_reported(tmp_path):
    write(tmp_path / "a.events", items(2))
    gone = write(tmp_path / "b.events", items(2))
    reader = to_batches(tmp_path, on_damage="skip")  # lists both archives now
    gone.unlink()
    with pytest.warns(DamageSkipped, match="b.events: skipped the archive, which could not "
                                           "be opened"):
        table = reader.read_all()
    assert rows(table) == items(2)


def test_strict_reading_raises_for_an_archive_gone_before_it_is_read(tmp_path):
    gone = write(tmp_path / "b.events", items(2))
    reader = to_batches(tmp_path)
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=r"b\.events"):
        reader.read_all()


def test_batches_hold_at_most_batch_size_records_span_archives_and_share_one_schema(tmp_path):
    expected = write_each_method(tmp_path, 10)
    reader = to_batches(tmp_path, batch_size=7)
    batches = list(reader)
    assert [batch.num_rows for batch in batches] == [7, 7, 7, 7, 2]
    assert all(batch.schema == reader.schema for batch in batches)
    table = pa.Table.from_batches(batches)
    assert rows(table) == expected
    # The second batch ends the first archive and starts the second.
    assert batches[1].column("source").to_pylist() == (
        [str(tmp_path / "0.events")] * 3 + [str(tmp_path / "1.events")] * 4)
    assert table.equals(to_table(tmp_path))


def test_a_list_of_sources_reads_each_in_turn(tmp_path):
    first = write(tmp_path / "x" / "a.events", items(2))
    second = write(tmp_path / "y" / "b.events", items(3, host="other"))
    assert rows(to_table([second, str(first)])) == items(3, host="other") + items(2)


def test_an_empty_directory_gives_an_empty_table_with_the_schema(tmp_path):
    table = to_table(tmp_path)
    assert table.num_rows == 0
    assert table.schema.names == FIXED


def test_a_path_naming_nothing_raises_when_called(tmp_path):
    with pytest.raises(FileNotFoundError):
        to_batches(tmp_path / "missing")


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"columns": "request_id"}, TypeError, "not the string"),
    ({"columns": [1]}, TypeError, "metadata keys"),
    ({"columns": ["payload"]}, ValueError, "'payload'"),
    ({"columns": [""]}, ValueError, "''"),
    ({"on_damage": "ignore"}, ValueError, "on_damage must be one of raise, skip"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"storage_options": {"anon": True}}, ValueError, "storage_options anon not supported"),
    ({"storage_options": {"client_kwargs": {"region_name": "x"}}}, ValueError,
     "client_kwargs.region_name"),
])
def test_invalid_options_fail_at_the_call_naming_them(tmp_path, options, error, match):
    write(tmp_path / "a.events", items(1))
    with pytest.raises(error, match=match):
        to_batches(tmp_path, **options)


@pytest.mark.parametrize("spelling", ["top", "client_kwargs"])
def test_s3_prefixes_are_read_with_hive_columns_from_the_keys(s3_server, bucket, spelling):
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="logs/dt=2026-11-27/a.events.gz",
                      Body=archive_bytes(items(3), "gzip"))
    client.put_object(Bucket=bucket, Key="logs/dt=2026-11-28/b.events.zst",
                      Body=archive_bytes(items(2, host="h2"), "zstd"))
    options = ({"endpoint_url": s3_server.endpoint_url} if spelling == "top"
               else {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}})
    table = to_table(f"s3://{bucket}/logs/", storage_options=options)
    assert rows(table) == items(3) + items(2, host="h2")
    assert table.column("dt").to_pylist() == ["2026-11-27"] * 3 + ["2026-11-28"] * 2
    assert table.column("source").to_pylist()[-1] == f"s3://{bucket}/logs/dt=2026-11-28/b.events.zst"


def test_an_empty_s3_prefix_gives_an_empty_table(s3_server, bucket):
    table = to_table(f"s3://{bucket}/nothing/here/",
                     storage_options={"endpoint_url": s3_server.endpoint_url})
    assert table.num_rows == 0
    assert table.schema.names == FIXED


def test_duckdb_queries_a_table_counting_levels_and_reading_payload_fields(tmp_path):
    write_each_method(tmp_path, 40)
    records = to_table(tmp_path)  # noqa: F841 - DuckDB finds the table by its name
    counts = duckdb.sql("SELECT host, level, count(*) FROM records GROUP BY ALL "
                        "ORDER BY ALL").fetchall()
    assert counts == [(host, level, count) for host in ("h0", "h1", "h2")
                      for level, count in (("ERROR", 10), ("INFO", 30))]
    messages = duckdb.sql("SELECT payload->>'message' FROM records WHERE "
                          "metadata['index'] = '7' ORDER BY source").fetchall()
    assert messages == [("event 7",)] * 3


def test_layout_fixes_the_columns_before_any_record():
    layout = Layout(["s3://b/dt=1/a.events", "/x/dt=2/y=3/b.events", "/z/source=q/c"],
                    columns=["tenant", "level"])
    assert layout.columns == (*DEFAULT_COLUMNS, "tenant")
    assert layout.partitions == ("dt", "y")
    assert layout.schema.names == [*FIXED[:6], "tenant", *FIXED[6:], "dt", "y"]


def test_compressed_and_plain_copies_of_an_archive_give_the_same_rows(tmp_path):
    data = archive_bytes(items(20))
    for method in METHODS:
        (tmp_path / f"copy.{method}").write_bytes(compress(data, method))
    table = to_table(tmp_path)
    by_source = table.group_by("source").aggregate([("offset", "list")])
    offsets = [sorted(entry) for entry in by_source.column("offset_list").to_pylist()]
    assert offsets[0] == offsets[1] == offsets[2]
    assert rows(table) == items(20) * 3
