"""``shoebox-sidecar --once``: ship what is there, then exit (run in process
through ``shoebox_sidecar.cli.main``, against moto's S3 server)."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest
from _sidecar_support import (
    SidecarProcess,
    archives_in,
    bucket_objects,
    damage,
    read_compressed,
    write_archives,
)

from shoebox import NeverRollChecker, WritingRollManager
from shoebox_sidecar import config
from shoebox_sidecar.cli import EXIT_DESTINATION, EXIT_FAILED, EXIT_USAGE, build_parser, main

# Nothing listens there: every connection is refused.
UNREACHABLE = "http://127.0.0.1:1"


def log_lines(capsys: Any) -> list[dict[str, Any]]:
    """The JSON lines the sidecar wrote on stderr."""
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def events(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == event]


def test_once_ships_every_archive_to_s3_and_removes_the_local_files(
        s3_server: Any, bucket: str, tmp_path: Any, capsys: Any) -> None:
    written = write_archives(tmp_path, 5, records=120)
    code = main([str(tmp_path), "--dest", f"s3://{bucket}/logs", "--once", "--host", "web-1",
                 "--endpoint-url", s3_server.endpoint_url, "--key-template",
                 "{prefix}/{host}/{name}{suffix}"])
    assert code == 0
    assert archives_in(tmp_path) == []
    objects = bucket_objects(s3_server.client(), bucket)
    assert sorted(objects) == [f"logs/web-1/{name}.gz" for name in sorted(written)]
    for name, records in written.items():
        assert read_compressed(objects[f"logs/web-1/{name}.gz"]) == records
    shipped = events(log_lines(capsys), "shipped")
    assert len(shipped) == 5
    for line in shipped:
        assert line["bytes_in"] > line["bytes_out"] > 0
        assert line["ratio"] > 1 and line["seconds"] >= 0 and line["records"] == 120
        assert line["destination"] == f"s3://{bucket}/{line['key']}"


def test_once_ships_to_a_local_directory_with_no_server(tmp_path: Any, capsys: Any) -> None:
    watch = tmp_path / "watch"
    written = write_archives(watch, 3)
    code = main([str(watch), "--dest", str(tmp_path / "dest"), "--once"])
    assert code == 0
    assert archives_in(watch) == []
    copies = {path.name: path for path in (tmp_path / "dest").rglob("*.gz")}
    assert sorted(copies) == [f"{name}.gz" for name in sorted(written)]
    for name, records in written.items():
        assert read_compressed(copies[f"{name}.gz"].read_bytes()) == records
    lines = log_lines(capsys)
    finished = events(lines, "finished")[0]
    assert finished["archives"] == 3 and finished["records"] == 150
    assert finished["bytes_in"] == sum(line["bytes_in"] for line in events(lines, "shipped"))


def test_once_with_zstd_ships_zst_objects(s3_server: Any, bucket: str, tmp_path: Any) -> None:
    written = write_archives(tmp_path, 2)
    code = main([str(tmp_path), "--dest", f"s3://{bucket}", "--once", "--compress", "zstd",
                 "--endpoint-url", s3_server.endpoint_url, "--key-template", "{name}{suffix}"])
    assert code == 0
    objects = bucket_objects(s3_server.client(), bucket)
    assert sorted(objects) == [f"{name}.zst" for name in sorted(written)]
    for name, records in written.items():
        assert objects[f"{name}.zst"][:4] == b"\x28\xb5\x2f\xfd"
        assert read_compressed(objects[f"{name}.zst"]) == records


def test_open_archives_and_other_files_are_never_touched(tmp_path: Any) -> None:
    write_archives(tmp_path, 1)
    (tmp_path / "notes.txt").write_text("not an archive")
    active = WritingRollManager("live.events", NeverRollChecker(), directory=str(tmp_path))
    active.write({"i": "1"}, "{}")
    try:
        assert main([str(tmp_path), "--dest", str(tmp_path / "dest"), "--once"]) == 0
        assert sorted(os.listdir(tmp_path)) == ["dest", "live.events.open", "notes.txt"]
    finally:
        active.close()


def test_damaged_archive_is_quarantined_not_uploaded_not_deleted(
        s3_server: Any, bucket: str, tmp_path: Any, capsys: Any) -> None:
    written = write_archives(tmp_path, 3)
    damage(tmp_path / "app-001.events")
    damaged_bytes = (tmp_path / "app-001.events").read_bytes()
    code = main([str(tmp_path), "--dest", f"s3://{bucket}", "--once", "--verify",
                 "--endpoint-url", s3_server.endpoint_url, "--key-template", "{name}{suffix}"])
    assert code == EXIT_FAILED
    assert sorted(bucket_objects(s3_server.client(), bucket)) == [
        "app-000.events.gz", "app-002.events.gz"]
    assert (tmp_path / "quarantine" / "app-001.events").read_bytes() == damaged_bytes
    assert archives_in(tmp_path) == []
    quarantined = events(log_lines(capsys), "quarantined")
    assert [line["archive"] for line in quarantined] == [str(tmp_path / "app-001.events")]
    assert "checksum mismatch" in quarantined[0]["error"]
    assert set(written) == {"app-000.events", "app-001.events", "app-002.events"}


def test_an_archive_failing_unexpectedly_is_a_failure_naming_it(
        s3_server: Any, bucket: str, tmp_path: Any, capsys: Any) -> None:
    """A name that is not UTF-8 cannot be an S3 key (botocore raises
    UnicodeEncodeError): the run reports that archive and exits 1."""
    write_archives(tmp_path, 1)
    name = os.fsdecode(b"caf\xe9.events")
    os.rename(tmp_path / "app-000.events", tmp_path / name)
    code = main([str(tmp_path), "--dest", f"s3://{bucket}", "--once",
                 "--endpoint-url", s3_server.endpoint_url])
    assert code == EXIT_FAILED
    [failed] = events(log_lines(capsys), "failed")
    assert failed["archive"] == str(tmp_path / name)
    assert failed["error_type"] == "UnicodeEncodeError"
    assert archives_in(tmp_path) == [name]


def test_bad_bucket_fails_fast_with_a_message_naming_it(
        s3_server: Any, tmp_path: Any, capsys: Any) -> None:
    write_archives(tmp_path, 1)
    code = main([str(tmp_path), "--dest", "s3://no-such-bucket-for-sidecar/x",
                 "--endpoint-url", s3_server.endpoint_url])
    assert code == EXIT_DESTINATION
    [error] = events(log_lines(capsys), "destination_error")
    assert "bucket 'no-such-bucket-for-sidecar' does not exist" in error["message"]
    assert archives_in(tmp_path) == ["app-000.events"]


def test_unwritable_directory_destination_fails_fast(tmp_path: Any, capsys: Any) -> None:
    (tmp_path / "file").write_text("")
    code = main([str(tmp_path), "--dest", str(tmp_path / "file" / "dest")])
    assert code == EXIT_DESTINATION
    assert "cannot write into the destination directory" in \
        events(log_lines(capsys), "destination_error")[0]["message"]


def test_after_upload_keep_leaves_the_archive_and_move_moves_it(
        tmp_path: Any) -> None:
    write_archives(tmp_path / "a", 1)
    write_archives(tmp_path / "b", 1)
    assert main([str(tmp_path / "a"), "--dest", str(tmp_path / "dest-a"), "--once",
                 "--after-upload", "keep"]) == 0
    assert main([str(tmp_path / "b"), "--dest", str(tmp_path / "dest-b"), "--once",
                 "--after-upload", f"move:{tmp_path / 'shipped'}"]) == 0
    assert archives_in(tmp_path / "a") == ["app-000.events"]
    assert archives_in(tmp_path / "b") == []
    assert archives_in(tmp_path / "shipped") == ["app-000.events"]
    assert len(list((tmp_path / "dest-a").rglob("*.gz"))) == 1
    assert len(list((tmp_path / "dest-b").rglob("*.gz"))) == 1


def test_options_come_from_environment_variables(
        tmp_path: Any, monkeypatch: Any) -> None:
    write_archives(tmp_path / "watch", 2, prefix="svc")
    write_archives(tmp_path / "watch", 1, prefix="other")
    monkeypatch.setenv("SHOEBOX_SIDECAR_WATCH_DIR", str(tmp_path / "watch"))
    monkeypatch.setenv("SHOEBOX_SIDECAR_DEST", f"file://{tmp_path / 'dest'}")
    monkeypatch.setenv("SHOEBOX_SIDECAR_PATTERN", "svc-*.events")
    monkeypatch.setenv("SHOEBOX_SIDECAR_COMPRESS", "none")
    monkeypatch.setenv("SHOEBOX_SIDECAR_KEY_TEMPLATE", "flat/{name}{suffix}")
    monkeypatch.setenv("SHOEBOX_SIDECAR_ONCE", "true")
    assert main([]) == 0
    assert sorted(os.listdir(tmp_path / "dest" / "flat")) == ["svc-000.events",
                                                              "svc-001.events"]
    assert archives_in(tmp_path / "watch") == ["other-000.events"]


def test_command_line_wins_over_environment(tmp_path: Any, monkeypatch: Any) -> None:
    write_archives(tmp_path / "watch", 1)
    monkeypatch.setenv("SHOEBOX_SIDECAR_COMPRESS", "zstd")
    assert main([str(tmp_path / "watch"), "--dest", str(tmp_path / "dest"), "--once",
                 "--compress", "gzip", "--key-template", "{name}{suffix}"]) == 0
    assert os.listdir(tmp_path / "dest") == ["app-000.events.gz"]


@pytest.mark.parametrize("args, message", [
    (["--key-template", "{prefix}/{date}/{name}"], "unknown placeholders"),
    (["--after-upload", "shred"], "delete, keep or move:DIR"),
    (["--endpoint-url", "http://127.0.0.1:1"], "only apply to s3://"),
    (["--level", "15"], "compression level 15 is not valid for gzip"),
    (["--workers", "0"], "workers must be at least 1, not 0"),
    (["--scan-interval", "0"], "scan_interval must be more than 0"),
    (["--max-attempts", "-1"], "max_attempts must be at least 0"),
    (["--once-timeout", "-1"], "once_timeout must be at least 0"),
    (["--stale-after", "-1"], "stale_after must be at least 0"),
])
def test_bad_options_exit_with_a_usage_error(tmp_path: Any, capsys: Any, args: list[str],
                                             message: str) -> None:
    code = main([str(tmp_path), "--dest", str(tmp_path / "dest"), "--once", *args])
    assert code == EXIT_USAGE
    assert message in events(log_lines(capsys), "config_error")[0]["message"]


def test_log_level_from_the_environment_is_checked_and_case_insensitive(
        tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv("SHOEBOX_SIDECAR_LOG_LEVEL", "warning")
    assert main([str(tmp_path), "--dest", str(tmp_path / "dest"), "--once"]) == 0
    assert events(log_lines(capsys), "started") == []  # an INFO line
    monkeypatch.setenv("SHOEBOX_SIDECAR_LOG_LEVEL", "verbose")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--dest", str(tmp_path / "dest"), "--once"])
    assert exit_.value.code == EXIT_USAGE
    assert "SHOEBOX_SIDECAR_LOG_LEVEL: 'VERBOSE'" in capsys.readouterr().err


def test_recover_stale_finalizes_a_crashed_writers_idle_archive_and_ships_it(
        tmp_path: Any) -> None:
    write_archives(tmp_path, 2)
    for name in ("app-000.events", "app-001.events"):
        os.rename(tmp_path / name, tmp_path / f"{name}.open")
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path / "app-000.events.open", (an_hour_ago, an_hour_ago))
    assert main([str(tmp_path), "--dest", str(tmp_path / "dest"), "--once",
                 "--recover-stale", "--stale-after", "60",
                 "--key-template", "{name}{suffix}"]) == 0
    assert os.listdir(tmp_path / "dest") == ["app-000.events.gz"]
    assert not (tmp_path / "app-000.events.open").exists()
    assert (tmp_path / "app-001.events.open").exists(), "modified too recently to be stale"


def test_the_summary_counts_shipped_not_removed_and_not_shipped_apart(
        tmp_path: Any, capsys: Any) -> None:
    watch = tmp_path / "watch"
    write_archives(watch, 3)
    damage(watch / "app-002.events")
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "app-001.events").write_text("in the way: a move never replaces")
    code = main([str(watch), "--dest", str(tmp_path / "dest"), "--once", "--verify",
                 "--after-upload", f"move:{tmp_path / 'shipped'}"])
    assert code == EXIT_FAILED
    [finished] = events(log_lines(capsys), "finished")
    assert finished["shipped"] == 1
    assert finished["not_removed"] == [str(watch / "app-001.events")]
    assert finished["not_shipped"] == [str(watch / "app-002.events")]
    assert finished["archives"] == 2  # copies confirmed, the one not removed included
    assert finished["message"].startswith(
        f"shipped 1 archives; 1 shipped but not removed: {watch / 'app-001.events'}"
        f"; 1 not shipped: {watch / 'app-002.events'} (2 copies confirmed: ")
    assert archives_in(watch) == ["app-001.events"]
    assert archives_in(tmp_path / "shipped") == ["app-000.events", "app-001.events"]


def test_once_gives_up_by_default_within_five_minutes() -> None:
    values = config.resolve(build_parser().parse_args(["watch", "--once"]), {}).values
    assert values.once_timeout > 0
    assert values.once_timeout + values.shutdown_timeout <= 300


def test_once_against_an_unreachable_endpoint_gives_up_naming_what_is_left(
        tmp_path: Any) -> None:
    write_archives(tmp_path, 2)
    sidecar = SidecarProcess(str(tmp_path), "--dest", "s3://unreachable/x", "--endpoint-url",
                             UNREACHABLE, "--once", "--once-timeout", "2",
                             "--initial-backoff", "0.05", "--max-backoff", "0.2")
    try:
        assert sidecar.wait(120) == EXIT_FAILED
    finally:
        sidecar.close()
    names = [str(tmp_path / "app-000.events"), str(tmp_path / "app-001.events")]
    [gave_up] = [line for line in sidecar.lines if line.get("event") == "gave_up"]
    assert gave_up["not_shipped"] == names
    finished = sidecar.lines[-1]
    assert (finished["event"], finished["shipped"], finished["not_removed"],
            finished["not_shipped"]) == ("finished", 0, [], names)
    assert f"; 2 not shipped: {', '.join(names)} (0 copies" in finished["message"]
    assert archives_in(tmp_path) == ["app-000.events", "app-001.events"]


@pytest.mark.parametrize("mode", ["--once", "--no-once"])
def test_a_signal_while_retrying_leaves_the_archives_named_and_exits_1(
        tmp_path: Any, mode: str) -> None:
    """Stopped by SIGTERM, the sidecar says what it left and exits 1, watching
    too (before issue 18 a watching sidecar exited 0 whatever it left)."""
    code = EXIT_FAILED
    write_archives(tmp_path, 2)
    sidecar = SidecarProcess(str(tmp_path), "--dest", "s3://unreachable/x", "--endpoint-url",
                             UNREACHABLE, mode, "--initial-backoff", "0.05",
                             "--max-backoff", "0.2")
    try:
        sidecar.wait_events("retrying", 1)
        assert sidecar.signal(signal.SIGTERM) == code
    finally:
        sidecar.close()
    names = [str(tmp_path / "app-000.events"), str(tmp_path / "app-001.events")]
    finished = sidecar.lines[-1]
    assert (finished["event"], finished["shipped"], finished["not_shipped"]) == (
        "finished", 0, names)
    assert archives_in(tmp_path) == ["app-000.events", "app-001.events"]


def test_help_explains_each_option_and_its_environment_variable(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--dest", "--pattern", "--compress", "--level", "--key-template",
                   "--after-upload", "--once", "--workers", "--recover-stale", "--verify",
                   "--max-backoff", "--shutdown-timeout", "--endpoint-url", "--once-timeout",
                   "--stale-after"):
        variable = "SHOEBOX_SIDECAR_" + option[2:].upper().replace("-", "_")
        assert option in text and f"[env {variable}]" in text
