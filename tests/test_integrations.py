"""What the structlog, loguru and OpenTelemetry integrations promise alike:
records ``shoebox cat`` reads back in the one schema, from several threads
and after ``os.fork()``; values JSON cannot hold and errors never raising
into the application; options refused at construction, naming
themselves; the archive closed at interpreter exit."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _integration_support import INTEGRATIONS, Integration, message_of
from _logging_support import read_records
from archive_files import run, subprocess_env

ISO_MILLIS_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
STANDARD = ["level", "logger", "timestamp", "host", "pid"]

pytestmark = pytest.mark.parametrize("kind", list(INTEGRATIONS))


def make(kind: str, directory: Path, **options: Any) -> Integration:
    return INTEGRATIONS[kind](directory, **options)


def cat(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    status, out, err = run(capsys, "cat", *argv)
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()]


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def test_records_read_back_with_the_common_schema(kind: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    integration = make(kind, tmp_path, metadata_fields=["request_id"])
    integration.log("paid", request_id="r-1", order=42)
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        integration.log_exception("failed")
    integration.close()

    paid, failed = cat(capsys, tmp_path)
    assert list(paid["metadata"])[:5] == STANDARD
    assert paid["metadata"]["level"] == "INFO"
    assert paid["metadata"]["logger"] == integration.logger_name
    assert re.fullmatch(ISO_MILLIS_UTC, paid["metadata"]["timestamp"])
    assert paid["metadata"]["host"] == socket.gethostname()
    assert paid["metadata"]["pid"] == str(os.getpid())
    assert paid["metadata"]["request_id"] == "r-1"
    assert message_of(integration, paid["payload"]) == "paid"
    assert integration.field(paid["payload"], "order") == 42
    assert failed["metadata"]["level"] == "ERROR"
    assert "request_id" not in failed["metadata"]
    text = integration.exception_text(failed["payload"])
    assert text.startswith("Traceback (most recent call last")
    assert "ZeroDivisionError: division by zero" in text
    assert cat(capsys, "--where", "level=ERROR", tmp_path) == [failed]


@pytest.mark.parametrize("queue_size", [0, 64], ids=["blocking", "non-blocking"])
def test_records_from_several_threads_are_all_written(kind: str, tmp_path: Path,
                                                      queue_size: int) -> None:
    integration = make(kind, tmp_path, queue_size=queue_size)
    start = threading.Barrier(4)

    def log(thread: int) -> None:
        start.wait()
        for seq in range(150):
            integration.log("event", thread=thread, seq=seq)

    threads = [threading.Thread(target=log, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    integration.close()
    seen = Counter((integration.field(payload, "thread"), integration.field(payload, "seq"))
                   for _metadata, payload in read_records(tmp_path))
    assert seen == Counter((thread, seq) for thread in range(4) for seq in range(150))
    assert integration.target.stats()["records_written"] == 600


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_writes_its_own_archive(kind: str, tmp_path: Path) -> None:
    integration = make(kind, tmp_path)
    integration.log("parent before fork")  # the parent's archive is open now
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for seq in range(50):
                integration.log("child", seq=seq)
            integration.close()
            code = 0
        finally:
            os._exit(code)
    for seq in range(50):
        integration.log("parent", seq=seq)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    integration.close()
    assert not list(tmp_path.glob("*.open"))
    records = read_records(tmp_path)
    by_pid = Counter((metadata["pid"], message_of(integration, payload))
                     for metadata, payload in records)
    assert by_pid == {(str(os.getpid()), "parent before fork"): 1,
                      (str(os.getpid()), "parent"): 50, (str(pid), "child"): 50}
    # One archive per process: the child's name carries its own pid.
    assert {path.name for path in tmp_path.iterdir() if f"_{pid}." in path.name}


def test_values_json_cannot_hold_never_raise_and_are_written_as_text(
        kind: str, tmp_path: Path) -> None:
    integration = make(kind, tmp_path)
    when = datetime.datetime(2026, 11, 27, 8, 15, 2, tzinfo=datetime.timezone.utc)
    integration.log("odd", when=when, data=b"\x00\xff", tags={"a"}, bad=Unprintable(),
                    nan=float("nan"))
    integration.close()
    ((_metadata, payload),) = read_records(tmp_path)  # strict JSON: NaN would fail it
    assert integration.field(payload, "when") == "2026-11-27T08:15:02+00:00"
    assert integration.field(payload, "data") == "AP8="  # base64, as the handler writes bytes
    assert integration.field(payload, "tags") == "{'a'}"
    assert isinstance(integration.field(payload, "bad"), str)
    assert integration.field(payload, "nan") == "nan"


def test_a_record_that_cannot_be_written_is_counted_not_raised(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    integration = make(kind, tmp_path, max_record_mb=0.001)
    integration.log("x" * 2000)  # over the 1 KiB limit
    integration.log("small")
    integration.close()
    assert integration.target.stats()["errors"] == 1
    assert [message_of(integration, payload) for _m, payload in read_records(tmp_path)] == [
        "small"]
    assert "RecordTooLarge" in capsys.readouterr().err  # reported through handleError


@pytest.mark.parametrize(("options", "error", "named"), [
    ({"roll_size_mb": "lots"}, ValueError, "roll_size_mb"),
    ({"queue_size": -1}, ValueError, "queue_size"),
    ({"when_full": "sometimes"}, ValueError, "when_full"),
    ({"metadata_fields": ["level"]}, ValueError, "'level'"),
    ({"directroy": "x"}, TypeError, "'directroy'"),
    ({"level": "INFO"}, TypeError, "'level'"),
], ids=["bad-size", "bad-queue", "bad-when-full", "standard-field", "unknown", "level"])
def test_a_bad_option_names_itself_at_construction(kind: str, tmp_path: Path,
                                                   options: dict[str, Any],
                                                   error: type[Exception], named: str) -> None:
    with pytest.raises(error, match=re.escape(named)):
        make(kind, tmp_path, **options)
    assert list(tmp_path.iterdir()) == []


def test_the_archive_is_closed_at_interpreter_exit(kind: str, tmp_path: Path) -> None:
    script = INTEGRATIONS[kind].exit_script
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=subprocess_env(),
                   check=True, timeout=60)
    assert not list(tmp_path.glob("*.open"))
    ((metadata, payload),) = read_records(tmp_path)
    assert metadata["level"] == "INFO"
    assert "bye" in payload.values()


def test_non_blocking_mode_archives_values_as_they_were_at_the_log_call(
        kind: str, tmp_path: Path) -> None:
    """Events whose values cannot change are formatted later, on the writer
    thread; one holding a list is formatted at the call, so a change to the
    list afterwards does not reach the archive."""
    integration = make(kind, tmp_path, queue_size=100)
    items = [1]
    integration.log("mutable", items=items)
    integration.log("immutable", count=1)
    items.append(2)
    integration.close()
    (_, mutable), (_, immutable) = read_records(tmp_path)
    assert integration.field(mutable, "items") == [1]
    assert integration.field(immutable, "count") == 1

