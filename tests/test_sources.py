"""Reading archives wherever they are: expand_paths, open_archive, compressed
archives read transparently (ArchiveReader, ReadingRollManager), and S3."""

from __future__ import annotations

import gzip
import io
import os
import threading

import pytest
from archive_files import METHODS, archive_bytes, items, write, write_each_method

from shoebox import (
    ArchiveReader,
    BadCompressedData,
    DamagedRange,
    ReadingRollManager,
    encode_record,
    open_archive,
)
from shoebox.sources import STDIN, expand, expand_paths


def open_fds(under: object) -> set[str]:
    """This process's descriptors open on files under ``under`` (other threads
    of the test session, a Dask cluster's or moto's, open and close their own
    descriptors meanwhile)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith(str(under)):
            found.add(fd)
    return found


@pytest.mark.parametrize("method", METHODS)
def test_archive_reader_reads_each_compression_detected_by_content(tmp_path, method):
    records = items(300)
    path = write(tmp_path / "no-telling-suffix", records, method)
    with ArchiveReader(path) as reader:
        assert list(reader) == records
        assert reader.compression == method
        assert reader.version == 2


@pytest.mark.parametrize("method", METHODS)
def test_archive_reader_closes_every_file_it_opened(tmp_path, method):
    path = write(tmp_path / "a.events", items(10), method)
    before = open_fds(tmp_path)
    reader = ArchiveReader(path)
    assert open_fds(tmp_path) != before
    reader.read()
    reader.close()
    assert open_fds(tmp_path) == before


@pytest.mark.parametrize("method", METHODS)
def test_archive_reader_decompresses_a_file_object_and_closes_it(tmp_path, method):
    records = items(20)
    source = io.BytesIO(archive_bytes(records, method))
    with ArchiveReader(source, filename="memory") as reader:
        assert list(reader) == records
        assert reader.filename == "memory"
    assert source.closed


def test_archive_reader_reads_a_compressed_archive_from_a_pipe(tmp_path):
    records = items(50)
    data = archive_bytes(records, "gzip")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        with ArchiveReader(fifo) as reader:
            assert list(reader) == records
            assert reader.compression == "gzip"
    finally:
        feeder.join()


@pytest.mark.parametrize("method", ["gzip", "zstd"])
def test_a_truncated_compressed_archive_keeps_its_records_up_to_the_damage(tmp_path, method):
    records = items(20000)
    whole = archive_bytes(records, method)
    cut = tmp_path / "cut"
    cut.write_bytes(whole[:len(whole) // 2])

    with ArchiveReader(cut, recover=True) as reader:
        got = list(reader)
        damaged = reader.damaged
    assert 0 < len(got) < len(records)
    assert got == records[:len(got)]
    assert len(damaged) == 1
    assert damaged[0].offset == sum(len(encode_record(*r)) for r in got)
    assert f"{method} data is damaged or ends early" in damaged[0].reason

    with ArchiveReader(cut) as reader, pytest.raises(BadCompressedData) as error:
        list(reader)
    assert str(cut) in str(error.value)


def test_corrupt_gzip_data_is_reported_as_damage_not_an_exception(tmp_path):
    data = bytearray(gzip.compress(b"".join(encode_record(m, p) for m, p in items(5000)),
                                   mtime=0))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(data))
    with ArchiveReader(path, recover=True) as reader:
        list(reader)
        assert reader.damaged
        assert all(isinstance(item, DamagedRange) for item in reader.damaged)


def test_reading_roll_manager_reads_compressed_archives_transparently(tmp_path):
    expected = write_each_method(tmp_path, 40, "day-{index}.events")
    assert list(ReadingRollManager("day-*.events", directory=tmp_path)) == expected


def test_expand_paths_orders_a_directory_tree_by_name_and_skips_open_files(tmp_path):
    for name in ["b/2.events", "a/1.events.gz", "a/0.events", "c.events", "live.events.open"]:
        write(tmp_path / name, items(1))
    assert [source.name for source in expand_paths([tmp_path])] == [
        str(tmp_path / name) for name in ["a/0.events", "a/1.events.gz", "b/2.events",
                                          "c.events"]]


def test_expand_paths_expands_globs_and_keeps_argument_order(tmp_path):
    for name in ["x-2.events", "x-1.events", "y.events", "x-3.events.open"]:
        write(tmp_path / name, items(1))
    sources = expand_paths([tmp_path / "y.events", str(tmp_path / "x-*"), STDIN])
    assert [source.name for source in sources] == [
        str(tmp_path / "y.events"), str(tmp_path / "x-1.events"),
        str(tmp_path / "x-2.events"), STDIN]
    assert sources[0].size == (tmp_path / "y.events").stat().st_size


def test_expand_lists_the_open_archives_it_leaves_out_or_includes_them(tmp_path):
    for name in ["a.events", "a.events.open", "sub/b.events.open"]:
        write(tmp_path / name, items(1))
    found = expand([tmp_path, str(tmp_path / "*.open")])
    assert [source.name for source in found.sources] == [str(tmp_path / "a.events")]
    assert found.skipped_open == [str(tmp_path / "a.events.open"),
                                  str(tmp_path / "sub" / "b.events.open"),
                                  str(tmp_path / "a.events.open")]
    assert [source.name for source in expand([tmp_path], include_open=True).sources] == [
        str(tmp_path / name) for name in ["a.events", "a.events.open", "sub/b.events.open"]]


def test_an_explicitly_named_open_archive_is_read(tmp_path):
    path = write(tmp_path / "live.events.open", items(3))
    assert [source.name for source in expand_paths([path])] == [str(path)]


@pytest.mark.parametrize("name", ["missing.events", "missing-*.events"])
def test_a_path_naming_nothing_is_file_not_found(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="missing"):
        expand_paths([tmp_path / name])


def test_open_archive_reads_every_archive_under_a_directory(tmp_path):
    expected = write_each_method(tmp_path, 25)
    with open_archive(tmp_path) as stream:
        assert list(stream) == expected
        assert stream.damaged == []


def test_open_archive_recover_lists_damage_and_skips_it(tmp_path):
    data = bytearray(b"".join(encode_record(m, p) for m, p in items(10)))
    data[100] ^= 0xFF
    (tmp_path / "bad.events").write_bytes(bytes(data))
    with open_archive(tmp_path / "bad.events", recover=True) as stream:
        got = list(stream)
        assert len(got) == 9
        assert [item.filename for item in stream.damaged] == [str(tmp_path / "bad.events")]


def test_closing_an_open_archive_part_way_closes_the_file(tmp_path):
    write(tmp_path / "a.events", items(100), "gzip")
    before = open_fds(tmp_path)
    stream = open_archive(tmp_path / "a.events")
    next(iter(stream))
    assert open_fds(tmp_path) != before
    stream.close()
    assert open_fds(tmp_path) == before


# --- S3 ------------------------------------------------------------------

def put(s3_server, bucket, key, records, method="none"):
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=archive_bytes(records, method))


def test_open_archive_streams_every_object_under_an_s3_prefix(s3_server, bucket):
    expected = []
    for index, method in enumerate(METHODS):
        records = items(30, host=f"h{index}")
        put(s3_server, bucket, f"logs/2026/11/27/{index}.events", records, method)
        expected += records
    put(s3_server, bucket, "logs/2026/11/27/live.events.open", items(1))
    put(s3_server, bucket, "other/x.events", items(1))

    url = f"s3://{bucket}/logs/"
    with open_archive(url, endpoint_url=s3_server.endpoint_url) as stream:
        assert list(stream) == expected


def test_an_s3_url_naming_one_key_reads_that_object_only(s3_server, bucket):
    put(s3_server, bucket, "a.events.gz", items(3), "gzip")
    put(s3_server, bucket, "a.events.gz.bak", items(5))
    sources = expand_paths([f"s3://{bucket}/a.events.gz"], endpoint_url=s3_server.endpoint_url)
    assert [(source.name, source.size is not None) for source in sources] == [
        (f"s3://{bucket}/a.events.gz", True)]
    with sources[0].reader() as reader:
        assert list(reader) == items(3)
        assert reader.filename == f"s3://{bucket}/a.events.gz"


def test_an_s3_glob_filters_keys(s3_server, bucket):
    for name in ["a-1.events", "a-2.events", "b-1.events"]:
        put(s3_server, bucket, f"p/{name}", items(1))
    sources = expand_paths([f"s3://{bucket}/p/*-1.events"], endpoint_url=s3_server.endpoint_url)
    assert [source.name for source in sources] == [
        f"s3://{bucket}/p/a-1.events", f"s3://{bucket}/p/b-1.events"]


def test_an_s3_key_naming_nothing_is_file_not_found(s3_server, bucket):
    with pytest.raises(FileNotFoundError, match="missing"):
        expand_paths([f"s3://{bucket}/missing"], endpoint_url=s3_server.endpoint_url)
    assert expand_paths([f"s3://{bucket}/empty/"], endpoint_url=s3_server.endpoint_url) == []


@pytest.mark.parametrize(("path", "read"), [
    ("prod", ["prod/a.events", "prod/b/c.events"]),
    ("prod/", ["prod/a.events", "prod/b/c.events"]),
    ("prod*", ["prod/a.events", "prod/b/c.events", "prods.events", "production/d.events"]),
    ("prod/b", ["prod/b/c.events"]),
])
def test_an_s3_key_that_is_not_an_object_is_a_folder_not_a_raw_prefix(
        s3_server, bucket, path, read):
    """``s3://bucket/prod`` reads ``prod/…``, never ``production/…`` (issue 13)."""
    for key in ["prod/a.events", "prod/b/c.events", "production/d.events", "prods.events"]:
        put(s3_server, bucket, key, items(1))
    sources = expand_paths([f"s3://{bucket}/{path}"], endpoint_url=s3_server.endpoint_url)
    assert [source.name for source in sources] == [f"s3://{bucket}/{key}" for key in read]


def test_an_s3_object_named_like_a_folder_is_read_alone(s3_server, bucket):
    put(s3_server, bucket, "prod", items(2))
    put(s3_server, bucket, "prod/a.events", items(5))
    with open_archive(f"s3://{bucket}/prod", endpoint_url=s3_server.endpoint_url) as stream:
        assert list(stream) == items(2)


def test_an_s3_folder_that_only_starts_another_name_is_file_not_found(s3_server, bucket):
    put(s3_server, bucket, "production/d.events", items(1))
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/prod"):
        expand_paths([f"s3://{bucket}/prod"], endpoint_url=s3_server.endpoint_url)


def test_an_s3_glob_may_use_question_marks(s3_server, bucket):
    for name in ["a-1.events", "a-22.events", "b-3.events"]:
        put(s3_server, bucket, f"p/{name}", items(1))
    sources = expand_paths([f"s3://{bucket}/p/?-?.events"], endpoint_url=s3_server.endpoint_url)
    assert [source.name for source in sources] == [
        f"s3://{bucket}/p/a-1.events", f"s3://{bucket}/p/b-3.events"]


@pytest.mark.parametrize("key", ["p/a#1.events", "p/k=v&x.events", "p/x%20y.events"])
def test_s3_keys_with_url_characters_are_read_as_written(s3_server, bucket, key):
    """S3 keys are not URLs: ``#``, ``&`` and ``%`` are plain characters in them."""
    put(s3_server, bucket, key, items(2))
    put(s3_server, bucket, "p/a", items(5))
    with open_archive(f"s3://{bucket}/{key}", endpoint_url=s3_server.endpoint_url) as stream:
        assert list(stream) == items(2)


def zstd_cut_at_a_block_end(records, after: int) -> tuple[bytes, int]:
    """A zstd archive of ``records`` whose frame is cut right after a block
    that ends with record ``after - 1``: it decompresses to whole records,
    yet is not complete. Returns the bytes and the decompressed size."""
    zstandard = pytest.importorskip("zstandard")
    head = b"".join(encode_record(m, p) for m, p in records[:after])
    target = io.BytesIO()
    writer = zstandard.ZstdCompressor(write_checksum=True).stream_writer(target, closefd=False)
    writer.write(head)
    writer.flush(zstandard.FLUSH_BLOCK)
    cut = target.tell()
    writer.write(b"".join(encode_record(m, p) for m, p in records[after:]))
    writer.close()
    return target.getvalue()[:cut], len(head)


def test_a_zstd_archive_cut_between_records_is_still_damaged(tmp_path):
    """python-zstandard's stream reader ends quietly where a stream is cut;
    a cut that falls between records must not pass for a complete archive."""
    records = items(200)
    data, size = zstd_cut_at_a_block_end(records, 120)
    path = tmp_path / "cut.events.zst"
    path.write_bytes(data)
    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == records[:120]
        assert [(d.offset, d.length) for d in reader.damaged] == [(size, 0)]
        assert "zstd data is damaged or ends early" in reader.damaged[0].reason
    with ArchiveReader(path) as reader, pytest.raises(BadCompressedData):
        list(reader)


def test_a_zstd_archive_missing_its_checksum_is_damaged(tmp_path):
    records = items(50)
    whole = archive_bytes(records, "zstd")
    path = tmp_path / "cut.events.zst"
    path.write_bytes(whole[:-2])
    with ArchiveReader(path, recover=True) as reader:
        assert list(reader) == records
        assert len(reader.damaged) == 1


def test_zstd_archives_of_several_and_skippable_frames_read_whole():
    zstandard = pytest.importorskip("zstandard")
    records = items(30)
    parts = [b"".join(encode_record(m, p) for m, p in records[i:i + 10]) for i in (0, 10, 20)]
    skippable = b"\x5a\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"hello"
    data = (zstandard.ZstdCompressor(write_checksum=True).compress(parts[0]) + skippable
            + zstandard.ZstdCompressor(write_content_size=False).compress(parts[1])
            + zstandard.ZstdCompressor(level=19).compress(parts[2]))
    with ArchiveReader(io.BytesIO(data)) as reader:
        assert list(reader) == records
        assert reader.damaged == []
