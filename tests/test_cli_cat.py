"""``shoebox cat``: records as JSON Lines, filters, limits, damage, stdin and S3."""

from __future__ import annotations

import json
import subprocess

import pytest
from archive_files import (
    METHODS,
    SHOEBOX,
    archive_bytes,
    items,
    run,
    subprocess_env,
    write,
    write_each_method,
)
from hypothesis import given
from hypothesis import strategies as st

from shoebox import encode_record
from shoebox.jsonl import payload_json


def parse(out: str) -> list[dict]:
    lines = out.splitlines()  # also breaks at U+2028 and friends: they must be escaped
    assert len(lines) == out.count("\n")
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("method", METHODS)
def test_cat_prints_every_record_as_a_json_line(tmp_path, capsys, method):
    records = items(50)
    path = write(tmp_path / "a.events", records, method)
    status, out, err = run(capsys, "cat", path)
    assert (status, err) == (0, "")
    assert parse(out) == [{"metadata": m, "payload": json.loads(p)} for m, p in records]


def test_cat_reads_files_in_name_order_across_compressions(tmp_path, capsys):
    expected = write_each_method(tmp_path, 5)
    status, out, _ = run(capsys, "cat", "--metadata-only", tmp_path)
    assert status == 0
    assert parse(out) == [metadata for metadata, _ in expected]


def test_a_payload_that_is_not_json_is_printed_as_a_string(tmp_path, capsys):
    payloads = ["plain text", "NaN", '{"a": 1', "", "héllo \u2028 wörld\x85", '{"x": Infinity}',
                '["\u2029"]']
    write(tmp_path / "a.events", [({"i": str(i)}, p) for i, p in enumerate(payloads)])
    status, out, _ = run(capsys, "cat", "--payload-only", tmp_path / "a.events")
    assert status == 0
    assert parse(out) == [*payloads[:-1], ["\u2029"]]


def test_a_multi_line_json_payload_is_embedded_on_one_line(tmp_path, capsys):
    value = {"text": "line one\nline two", "list": [1, 2.5, None, True], "big": 10**30}
    write(tmp_path / "a.events", [({}, json.dumps(value, indent=2).replace("\n", "\r\n"))])
    status, out, _ = run(capsys, "cat", tmp_path / "a.events")
    assert status == 0
    assert out.count("\n") == 1
    assert parse(out) == [{"metadata": {}, "payload": value}]


@pytest.mark.parametrize(("payload", "line"), [
    ('  {"a": 1}\t', '  {"a": 1}\t'),
    ('{"a": 1}\x0c', '"{\\"a\\": 1}\\f"'),
    ("[1] [2]", '"[1] [2]"'),
    (" ", '" "'),
    ("", '""'),
    ("NaN", '"NaN"'),
    ("-Infinity", '"-Infinity"'),
    ('"text"', '"text"'),
])
def test_exactly_the_payloads_that_are_json_are_embedded(payload, line):
    assert payload_json(payload) == line


def test_a_number_is_embedded_exactly_as_written():
    assert payload_json('{"x": 1e400, "y": 0.10000000000000000001}') == \
        '{"x": 1e400, "y": 0.10000000000000000001}'


def test_deeply_nested_json_is_embedded_or_quoted_but_always_valid():
    deep = "[" * 100000 + "]" * 100000
    assert json.loads(payload_json(deep)) == deep


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=12),
       st.sampled_from([None, 1, "\t"]))
def test_any_json_payload_comes_back_as_its_value_on_one_line(value, indent):
    line = payload_json(json.dumps(value, indent=indent, ensure_ascii=False))
    assert len((line + "\n").splitlines()) == 1
    assert json.loads(line) == value


@given(st.text())
def test_any_text_payload_comes_back_as_valid_json_on_one_line(text):
    line = payload_json(text)
    assert len((line + "\n").splitlines()) == 1
    value = json.loads(line)
    assert value == text or json.loads(text) == value


@pytest.mark.parametrize(("where", "indexes"), [
    (["level=ERROR"], [0, 4, 8]),
    (["index=1*"], [1, 10, 11]),
    (["index=[3-5]"], [3, 4, 5]),
    (["level=ERROR", "index=?"], [0, 4, 8]),
    (["level=ERROR", "index=1?"], []),
    (["missing=*"], []),
    (["index="], []),
])
def test_where_keeps_records_whose_metadata_matches_every_condition(
        tmp_path, capsys, where, indexes):
    write(tmp_path / "a.events", items(12), "gzip")
    argv = ["cat", "--metadata-only", tmp_path / "a.events"]
    for condition in where:
        argv += ["--where", condition]
    status, out, _ = run(capsys, *argv)
    assert status == 0
    assert [int(m["index"]) for m in parse(out)] == indexes


@pytest.mark.parametrize(("limit", "count"), [("0", 0), ("3", 3), ("15", 15), ("100", 20)])
def test_limit_stops_after_n_records_across_files(tmp_path, capsys, limit, count):
    write(tmp_path / "1.events", items(10))
    write(tmp_path / "2.events", items(10, host="h2"), "zstd")
    status, out, _ = run(capsys, "cat", "--limit", limit, tmp_path)
    assert status == 0
    assert len(parse(out)) == count


def test_limit_counts_records_that_pass_where(tmp_path, capsys):
    write(tmp_path / "a.events", items(40))
    status, out, _ = run(capsys, "cat", "--where", "level=ERROR", "--limit", "2",
                         "--metadata-only", tmp_path / "a.events")
    assert status == 0
    assert [m["index"] for m in parse(out)] == ["0", "4"]


def damaged_archive(tmp_path):
    data = bytearray(b"".join(encode_record(m, p) for m, p in items(10)))
    data[len(encode_record(*items(1)[0])) + 20] ^= 0xFF  # inside the second record
    path = tmp_path / "bad.events"
    path.write_bytes(bytes(data))
    return path


def test_cat_stops_at_damage_with_status_1_naming_file_and_offset(tmp_path, capsys):
    path = damaged_archive(tmp_path)
    status, out, err = run(capsys, "cat", path)
    assert status == 1
    assert len(parse(out)) == 1
    assert str(path) in err and "offset" in err and "checksum" in err
    assert "Traceback" not in err


def test_cat_recover_skips_damage_and_reports_it_on_stderr(tmp_path, capsys):
    path = damaged_archive(tmp_path)
    status, out, err = run(capsys, "cat", "--recover", "--metadata-only", path)
    assert status == 0
    assert [m["index"] for m in parse(out)] == [str(i) for i in range(10) if i != 1]
    assert f"{path}: skipped damaged bytes at offset" in err


@pytest.mark.parametrize("argv", [
    ["cat"],
    ["cat", "x", "--where", "no-equals-sign"],
    ["cat", "x", "--limit", "-1"],
    ["cat", "x", "--metadata-only", "--payload-only"],
    ["frobnicate"],
])
def test_usage_errors_exit_with_status_2(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert "usage:" in err


def test_a_missing_file_exits_with_status_2_and_a_message(tmp_path, capsys):
    status, out, err = run(capsys, "cat", tmp_path / "missing.events")
    assert (status, out) == (2, "")
    assert "missing.events" in err and "Traceback" not in err


@pytest.mark.parametrize("method", METHODS)
def test_cat_reads_standard_input(tmp_path, method):
    records = items(30)
    result = subprocess.run([*SHOEBOX, "cat", "--metadata-only", "-"],
                            input=archive_bytes(records, method), capture_output=True,
                            env=subprocess_env(), check=False, timeout=60)
    assert (result.returncode, result.stderr) == (0, b"")
    assert parse(result.stdout.decode()) == [m for m, _ in records]


def test_cat_reads_an_s3_prefix(s3_server, bucket, capsys):
    client = s3_server.client()
    expected = []
    for index, method in enumerate(METHODS):
        records = items(7, host=f"h{index}")
        client.put_object(Bucket=bucket, Key=f"2026/11/27/{index}.events",
                          Body=archive_bytes(records, method))
        expected += [m for m, _ in records]
    status, out, err = run(capsys, "cat", "--metadata-only", f"s3://{bucket}/2026/11/",
                           "--endpoint-url", s3_server.endpoint_url)
    assert (status, err) == (0, "")
    assert parse(out) == expected


@pytest.mark.parametrize("command", ["cat", "verify", "stats"])
def test_a_missing_s3_bucket_exits_with_status_2_naming_it(s3_server, capsys, command):
    status, _, err = run(capsys, command, "s3://no-such-bucket-here/x",
                         "--endpoint-url", s3_server.endpoint_url)
    assert status == 2
    assert err == ("shoebox: s3://no-such-bucket-here/x: bucket 'no-such-bucket-here' does "
                   "not exist (NoSuchBucket)\n")


def test_the_s3_endpoint_may_come_from_aws_endpoint_url(s3_server, bucket):
    """boto3 (botocore 1.31+) takes the endpoint from the environment when
    ``--endpoint-url`` is not given, as documented in docs/cli.md."""
    records = items(4)
    s3_server.client().put_object(Bucket=bucket, Key="2026/a.events",
                                  Body=archive_bytes(records))
    result = subprocess.run([*SHOEBOX, "cat", "--metadata-only", f"s3://{bucket}/2026"],
                            capture_output=True, text=True, check=False, timeout=120,
                            env={**subprocess_env(), "AWS_ENDPOINT_URL": s3_server.endpoint_url})
    assert (result.returncode, result.stderr) == (0, "")
    assert parse(result.stdout) == [m for m, _ in records]


@pytest.mark.parametrize("command", ["cat", "verify", "stats"])
@pytest.mark.parametrize("url", ["s3://", "s3:///key"])
def test_an_s3_url_without_a_bucket_is_a_usage_error(capsys, command, url):
    status, out, err = run(capsys, command, url)
    assert (status, out) == (2, "")
    assert url in err and "Traceback" not in err
