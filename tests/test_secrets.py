"""A password in ``--endpoint-url`` never reaches the output of
``shoebox-sidecar`` (JSON log lines on stderr at DEBUG, ``--print-config``)
or of the ``shoebox`` commands, whether the endpoint refuses connections
or answers (issue 17); where the URL is shown, it is shown redacted.

Real processes, so that every byte they write is seen: a closed port
(nothing listens: every connection is refused, and botocore's message
repeats the endpoint URL whole), and moto's server, which ignores the
userinfo of the URL it is reached by.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
from typing import Any

import pytest
from _sidecar_support import archives_in, bucket_objects, read_compressed, write_archives
from archive_files import SHOEBOX, archive_bytes, items, subprocess_env

from shoebox import NeverRollChecker, S3UploadCallback, WritingRollManager

SECRET = "s3cr3t-P4ss"
USER = "u5er-Q7"
SIDECAR = [sys.executable, "-m", "shoebox_sidecar"]
COMMANDS = [["cat"], ["stats", "--json"], ["verify"]]


def with_userinfo(endpoint: str) -> str:
    """``endpoint`` (``http://host:port``) with a user and :data:`SECRET` in it."""
    scheme, rest = endpoint.split("://", 1)
    return f"{scheme}://{USER}:{SECRET}@{rest}"


@pytest.fixture
def closed_endpoint() -> str:
    """An endpoint URL with credentials on a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return with_userinfo(f"http://127.0.0.1:{port}")


def run(argv: list[str]) -> tuple[int, str]:
    """Run ``argv``; its exit code and everything it wrote, stdout then stderr.
    botocore tries each request once: the ``shoebox`` command's client
    otherwise retries a refused connection for seconds."""
    result = subprocess.run(argv, env={**subprocess_env(), "AWS_MAX_ATTEMPTS": "1"},
                            capture_output=True, text=True, check=False, timeout=120)
    return result.returncode, result.stdout + result.stderr


def sidecar(watch: Any, dest: str, endpoint: str, *options: str) -> tuple[int, str]:
    return run([*SIDECAR, str(watch), "--dest", dest, "--endpoint-url", endpoint, "--once",
                "--log-level", "DEBUG", "--connect-timeout", "2", "--read-timeout", "5",
                "--max-attempts", "1", "--initial-backoff", "0.05", *options])


def test_the_sidecar_never_prints_the_password_of_an_unreachable_endpoint(
        tmp_path: Any, closed_endpoint: str) -> None:
    write_archives(tmp_path, 1, records=5)
    code, output = sidecar(tmp_path, "s3://telemetry/logs", closed_endpoint)
    assert code == 1, output  # the archive is left for the next run
    assert len(archives_in(tmp_path)) == 1
    assert SECRET not in output and USER not in output
    host = closed_endpoint.rsplit("@", 1)[1]
    # destination_unreachable at the start, the failed upload after: both
    # say where the request went.
    assert output.count(f"***@{host}") >= 2, output
    assert '"event": "destination_unreachable"' in output


def test_print_config_shows_the_endpoint_redacted(tmp_path: Any, closed_endpoint: str) -> None:
    code, output = run([*SIDECAR, str(tmp_path), "--dest", "s3://telemetry/logs",
                        "--endpoint-url", closed_endpoint, "--print-config"])
    assert code == 0
    host = closed_endpoint.rsplit("@", 1)[1]
    assert f'endpoint_url = "http://***@{host}"  # command line; credentials hidden' in (
        output.splitlines())
    assert SECRET not in output


def test_print_config_hides_a_password_given_in_a_config_file(
        tmp_path: Any) -> None:
    config = tmp_path / "sidecar.toml"
    config.write_text(f'endpoint_url = "https://u:{SECRET}@gateway:8443"\n')
    code, output = run([*SIDECAR, str(tmp_path), "--dest", "s3://b", "--config", str(config),
                        "--print-config"])
    assert code == 0 and SECRET not in output
    assert 'endpoint_url = "https://***@gateway:8443"' in output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda argv: argv[0])
def test_shoebox_commands_never_print_the_password_of_an_unreachable_endpoint(
        command: list[str], closed_endpoint: str) -> None:
    code, output = run([*SHOEBOX, *command, "s3://telemetry/logs/",
                        "--endpoint-url", closed_endpoint])
    assert code == 2, output
    assert SECRET not in output and USER not in output
    host = closed_endpoint.rsplit("@", 1)[1]
    assert output.startswith("shoebox: s3://telemetry/logs/: Could not connect to the "
                             f'endpoint URL: "http://***@{host}/telemetry?'), output


def test_an_endpoint_botocore_refuses_is_named_without_its_password(tmp_path: Any) -> None:
    endpoint = f"http://{USER}:{SECRET}@not a host:9000"
    code, output = run([*SHOEBOX, "cat", "s3://telemetry/logs/", "--endpoint-url", endpoint])
    assert (code, output) == (2, "shoebox: Invalid endpoint: http://***@not a host:9000\n")
    code, output = sidecar(tmp_path, "s3://telemetry/logs", endpoint)
    assert code == 2 and SECRET not in output
    assert "bad configuration: Invalid endpoint: http://***@not a host:9000" in output


def test_the_sidecar_ships_through_an_endpoint_with_userinfo_without_printing_it(
        s3_server: Any, bucket: str, tmp_path: Any) -> None:
    written = write_archives(tmp_path, 2, records=5)
    code, output = sidecar(tmp_path, f"s3://{bucket}/logs", with_userinfo(s3_server.endpoint_url),
                           "--key-template", "{name}{suffix}")
    assert code == 0, output
    objects = bucket_objects(s3_server.client(), bucket)
    assert {key: read_compressed(data) for key, data in objects.items()} == {
        f"{name}.gz": records for name, records in written.items()}
    assert output.count('"event": "shipped"') == 2
    assert SECRET not in output


def test_the_sidecar_names_a_missing_bucket_without_the_password(
        s3_server: Any, tmp_path: Any) -> None:
    write_archives(tmp_path, 1, records=5)
    code, output = sidecar(tmp_path, "s3://no-such-bucket-here/logs",
                           with_userinfo(s3_server.endpoint_url))
    assert code == 3, output  # see cli.EXIT_DESTINATION
    assert "bucket 'no-such-bucket-here' does not exist" in output
    assert SECRET not in output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda argv: argv[0])
def test_shoebox_commands_read_through_an_endpoint_with_userinfo_without_printing_it(
        command: list[str], s3_server: Any, bucket: str) -> None:
    records = items(3)
    s3_server.client().put_object(Bucket=bucket, Key="x/a.events",
                                  Body=archive_bytes(records))
    endpoint = with_userinfo(s3_server.endpoint_url)
    code, output = run([*SHOEBOX, *command, f"s3://{bucket}/x/", "--endpoint-url", endpoint])
    assert code == 0, output
    assert SECRET not in output
    if command == ["cat"]:
        assert output.count('"n": ') == len(records)
    code, output = run([*SHOEBOX, *command, "s3://no-such-bucket-here/x/",
                        "--endpoint-url", endpoint])
    assert code == 2
    assert SECRET not in output
    assert "bucket 'no-such-bucket-here' does not exist" in output


def test_a_password_botocore_takes_unencoded_is_hidden_too(
        tmp_path: Any, closed_endpoint: str) -> None:
    # A space and a quote: no pattern can tell where such a userinfo ends,
    # but botocore connects with it and repeats it in its message.
    host = closed_endpoint.rsplit("@", 1)[1]
    endpoint = f'http://{USER}:{SECRET} "x y@{host}'
    code, output = run([*SHOEBOX, "cat", "s3://telemetry/logs/", "--endpoint-url", endpoint])
    assert code == 2 and SECRET not in output
    assert f'"http://***@{host}/telemetry?' in output
    write_archives(tmp_path, 1, records=5)
    code, output = sidecar(tmp_path, "s3://telemetry/logs", endpoint)
    assert code == 1 and SECRET not in output
    assert output.count(f"***@{host}") >= 2, output


def test_export_to_a_missing_bucket_says_so_without_the_password(
        s3_server: Any, tmp_path: Any) -> None:
    archive = tmp_path / "a.events"
    archive.write_bytes(archive_bytes(items(3)))
    code, output = run([*SHOEBOX, "export", str(archive), "--to", "s3://no-such-bucket-here/out",
                        "--format", "jsonl",
                        "--endpoint-url", with_userinfo(s3_server.endpoint_url)])
    # boto3's S3UploadFailedError is an I/O error like botocore's: one line,
    # exit 2 (it was a traceback).
    assert code == 2, output
    assert output.startswith("shoebox: ") and "NoSuchBucket" in output
    assert "Traceback" not in output and SECRET not in output


def test_the_in_process_upload_callback_leaves_the_password_out_of_the_applications_log(
        tmp_path: Any, closed_endpoint: str) -> None:
    # The roll manager logs a failed callback with its traceback, through
    # the application's own handlers and formatters: botocore's error,
    # whose message repeats the URL, must not be chained into it.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("shoebox")
    logger.addHandler(handler)
    try:
        callback = S3UploadCallback(destination="s3://telemetry/logs",
                                    s3_options={"endpoint_url": closed_endpoint})
        manager = WritingRollManager("app.events", NeverRollChecker(), tmp_path,
                                     archive_callback=callback)
        manager.write({"level": "INFO"}, "{}")
        manager.close()
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "TransientUploadError" in output and "Traceback" in output
    assert SECRET not in output and USER not in output
    assert f"***@{closed_endpoint.rsplit('@', 1)[1]}" in output
    assert os.listdir(tmp_path) == ["app.events"]  # it stays, for the sidecar
