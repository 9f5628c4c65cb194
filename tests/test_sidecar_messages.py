"""Messages that say what is wrong (issue 18): wrong credentials are not
"access denied to bucket", a destination directory that is a file is not
"File exists", and a shipped archive that cannot be deleted says it was
shipped and what to change."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sidecar_support import SidecarProcess, archives_in, write_archives

from shoebox_sidecar.cli import EXIT_DESTINATION, EXIT_FAILED

_INVALID_KEY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code>'
                b"<Message>The AWS Access Key Id you provided does not exist in our records."
                b"</Message></Error>")


class _WrongCredentialsS3(http.server.BaseHTTPRequestHandler):
    """S3 as it answers an unknown access key: a bare 403 to a HEAD (no body,
    so no reason), InvalidAccessKeyId in the body of any other answer."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(_INVALID_KEY)))
        self.end_headers()
        self.wfile.write(_INVALID_KEY)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def wrong_credentials_s3() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WrongCredentialsS3)
    thread = threading.Thread(target=server.serve_forever, name="wrong-credentials-s3")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_sidecar(*args: str) -> tuple[int, list[dict[str, Any]]]:
    sidecar = SidecarProcess(*args)
    try:
        code = sidecar.wait(60)
    finally:
        sidecar.close()
    return code, sidecar.lines


def test_wrong_credentials_are_named_not_reported_as_access_denied(
        tmp_path: Path, wrong_credentials_s3: str) -> None:
    code, lines = run_sidecar(str(tmp_path), "--dest", "s3://bucket/p", "--endpoint-url",
                              wrong_credentials_s3, "--once")
    assert code == EXIT_DESTINATION
    error = next(line for line in lines if line.get("event") == "destination_error")
    assert "the credentials were refused (InvalidAccessKeyId)" in error["message"]
    assert "access denied to bucket" not in error["message"]


def test_a_destination_directory_that_is_a_file_is_said_to_be_one(tmp_path: Path) -> None:
    (tmp_path / "dest").write_text("a file")
    (tmp_path / "watch").mkdir()
    code, lines = run_sidecar(str(tmp_path / "watch"), "--dest", str(tmp_path / "dest"),
                              "--once")
    assert code == EXIT_DESTINATION
    error = next(line for line in lines if line.get("event") == "destination_error")
    assert error["message"].endswith(f"{tmp_path / 'dest'} is a file, not a directory")
    assert "File exists" not in error["message"]


@pytest.mark.unprivileged
def test_a_shipped_archive_that_cannot_be_deleted_says_it_was_shipped_and_what_to_change(
        tmp_path: Path) -> None:
    watch = tmp_path / "watch"
    write_archives(watch, 1)
    watch.chmod(0o555)  # the sidecar may read the archives, not delete them
    try:
        code, lines = run_sidecar(str(watch), "--dest", str(tmp_path / "dest"),
                                  "--key-template", "{name}{suffix}", "--once")
    finally:
        watch.chmod(0o755)
    assert code == EXIT_FAILED
    archive = str(watch / "app-000.events")
    error = next(line for line in lines if line.get("event") == "after_upload_failed")
    assert error["message"] == (
        f"{archive} was shipped (copy confirmed at {tmp_path / 'dest' / 'app-000.events.gz'}) "
        f"but removing it failed: Permission denied; the sidecar's user may not remove files "
        f"from {watch}: make that directory writable by its group (chmod 2770) with the "
        f"sidecar in the group; it stays, and the next run finds the copy and only removes it")
    assert lines[-1]["not_removed"] == [archive]
    assert archives_in(watch) == ["app-000.events"]
    assert os.listdir(tmp_path / "dest") == ["app-000.events.gz"]
