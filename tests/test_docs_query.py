"""docs/query.md: every Python snippet runs as written, over archives laid
out as the sidecar ships them, and gives the answers the records hold."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest
from archive_files import write

QUERY_MD = Path(__file__).resolve().parent.parent / "docs" / "query.md"
HOSTS = ("web-1", "web-2", "web-3")


def records(host: str, count: int) -> list[tuple[dict[str, str], str]]:
    """Log-like records: the handler's metadata, a request id, a JSON payload."""
    return [({"level": ("ERROR", "INFO", "INFO", "WARNING")[i % 4], "logger": "app",
              "timestamp": f"2026-11-27T10:00:{i:02d}.000Z", "host": host, "pid": "42",
              "request_id": f"{host}-{i}"},
             json.dumps({"message": f"{host} event {i}", "duration_ms": i * 10}))
            for i in range(count)]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", QUERY_MD.read_text(), re.S)


@pytest.fixture
def archive(tmp_path, monkeypatch) -> list[tuple[dict[str, str], str]]:
    """``archive/dt=…/host=…/`` under the working directory; the records."""
    expected = []
    for index, host in enumerate(HOSTS):
        written = records(host, 10 + 5 * index)
        write(tmp_path / "archive" / "dt=2026-11-27" / f"host={host}" / "a.events.gz", written,
              "gzip")
        expected += written
    monkeypatch.chdir(tmp_path)
    return expected


def test_every_python_snippet_of_docs_query_runs_and_answers_right(archive):
    namespace: dict[str, object] = {}
    for block in python_blocks():
        exec(compile(block, str(QUERY_MD), "exec"), namespace)
    levels = collections.Counter(metadata["level"] for metadata, _ in archive)
    assert namespace["by_level"] == sorted(levels.items())
    assert namespace["errors"] == sorted(
        ((m["timestamp"], m["host"], json.loads(p)["message"]) for m, p in archive
         if m["level"] == "ERROR"))
    assert namespace["slow"] == sorted(
        ((m["request_id"], float(json.loads(p)["duration_ms"])) for m, p in archive
         if json.loads(p)["duration_ms"] > 200), key=lambda row: (-row[1], row[0]))
    assert namespace["per_host"] == collections.Counter(m["host"] for m, _ in archive)
    assert namespace["per_level"] == levels
