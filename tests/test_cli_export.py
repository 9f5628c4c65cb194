"""``shoebox export``: Parquet or JSON Lines for query engines, with a
summary line, a progress bar on a terminal, and the command's exit statuses."""

from __future__ import annotations

import gzip
import subprocess

import duckdb
from archive_files import SHOEBOX, items, run, subprocess_env, write, write_each_method
from test_arrow import flip_byte_in_second_record
from test_cli_terminal import run_with_terminal_stderr

from shoebox.jsonl import render_record


def test_export_writes_parquet_by_day_and_prints_a_summary(tmp_path, capsys):
    write_each_method(tmp_path / "in", 40)
    status, out, err = run(capsys, "export", tmp_path / "in", "--to", tmp_path / "out",
                           "--partition-by", "dt,host")
    assert (status, err) == (0, "")
    size = sum(path.stat().st_size for path in (tmp_path / "in").iterdir())
    written = sorted((tmp_path / "out").rglob("*.parquet"))
    assert [str(path.relative_to(tmp_path / "out")) for path in written] == [
        f"dt=2026-11-27/host=h{index}/{index}.events.parquet" for index in range(3)]
    out_size = sum(path.stat().st_size for path in written)
    assert out == (f"exported 3 archives, 120 records, {size / 1e6:,.1f} MB in, "
                   f"{out_size / 1e6:,.1f} MB out: 3 parquet files in {tmp_path / 'out'}\n")
    counts = duckdb.sql(f"SELECT host, count(*) FROM read_parquet('{tmp_path}/out/**/*.parquet',"
                        " hive_partitioning = true) GROUP BY ALL ORDER BY ALL").fetchall()
    assert counts == [(f"h{index}", 40) for index in range(3)]


def test_export_writes_gzip_json_lines_without_partitions(tmp_path, capsys):
    write(tmp_path / "a.events.zst", items(3), "zstd")
    status, out, _err = run(capsys, "export", tmp_path / "a.events.zst", "--to",
                            tmp_path / "out", "--format", "jsonl", "--partition-by", "")
    assert status == 0
    assert "1 archive, 3 records" in out and "1 jsonl files" in out
    text = gzip.decompress((tmp_path / "out" / "a.events.jsonl.gz").read_bytes()).decode()
    assert text == "".join(render_record(*record) for record in items(3))


def test_a_damaged_record_stops_the_export_with_status_1_naming_file_and_offset(
        tmp_path, capsys):
    path = write(tmp_path / "in" / "b.events", items(3))
    offset = flip_byte_in_second_record(path, items(3))
    status, out, err = run(capsys, "export", tmp_path / "in", "--to", tmp_path / "out")
    assert (status, out) == (1, "")
    assert f"b.events, offset {offset}: checksum mismatch" in err
    assert "--recover skips damaged records" in err
    assert not list((tmp_path / "out").rglob("*.parquet"))


def test_recover_skips_a_damaged_record_and_says_where(tmp_path, capsys):
    path = write(tmp_path / "in" / "b.events", items(3))
    offset = flip_byte_in_second_record(path, items(3))
    status, out, err = run(capsys, "export", tmp_path / "in", "--to", tmp_path / "out",
                           "--recover")
    assert status == 0
    assert "2 records" in out
    assert "b.events: skipped" in err and f"at offset {offset}" in err


def test_unusable_arguments_are_usage_errors(tmp_path, capsys):
    write(tmp_path / "x" / "a.events", items(1))
    write(tmp_path / "y" / "a.events.gz", items(1), "gzip")
    for argv, message in [
        (["--partition-by", "payload"], "'payload' cannot be a partition key"),
        (["--columns", "offset"], "'offset'"),
    ]:
        status, _out, err = run(capsys, "export", tmp_path / "x", "--to", tmp_path / "out",
                                *argv)
        assert status == 2 and message in err
    status, _out, err = run(capsys, "export", tmp_path, "--to", tmp_path / "out")
    assert status == 2 and "would export to the same files" in err
    status, _out, err = run(capsys, "export", "-", "--to", tmp_path / "out")
    assert status == 2 and "standard input" in err


def test_a_progress_bar_is_drawn_when_stderr_is_a_terminal(tmp_path):
    paths = [str(write(tmp_path / f"{i}.events", items(3000), "gzip")) for i in range(3)]
    status, out, terminal = run_with_terminal_stderr(
        [*SHOEBOX, "export", *paths, "--to", str(tmp_path / "out")], tmp_path / "stdout")
    assert status == 0
    assert b"0/3 files" in terminal and b"2/3 files" in terminal
    assert terminal.endswith(b"\r\x1b[K")
    assert out.startswith(b"exported 3 archives, 9,000 records")


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    path = write(tmp_path / "a.events", items(3000), "gzip")
    result = subprocess.run([*SHOEBOX, "export", str(path), "--to", str(tmp_path / "out")],
                            capture_output=True, env=subprocess_env(), check=False, timeout=60)
    assert (result.returncode, result.stderr) == (0, b"")


def test_export_leaves_live_open_archives_alone(tmp_path, capsys):
    write(tmp_path / "in" / "a.events", items(2))
    write(tmp_path / "in" / "b.events.open", items(2))
    status, out, _err = run(capsys, "export", tmp_path / "in", "--to", tmp_path / "out",
                            "--partition-by", "")
    assert status == 0 and out.startswith("exported 1 archive, 2 records")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.events.parquet"]
    status, _out, err = run(capsys, "export", tmp_path / "in", "--to", tmp_path / "out",
                            "--include-open")
    assert status == 2 and "--include-open" in err
