"""docs/query.md: every Python snippet runs as written, over archives laid
out as the sidecar ships them, and gives the answers the records hold."""

from __future__ import annotations

import collections
import json
import re
import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from archive_files import write

from shoebox.cli import main

QUERY_MD = Path(__file__).resolve().parent.parent / "docs" / "query.md"
HOSTS = ("web-1", "web-2", "web-3")


def records(host: str, count: int) -> list[tuple[dict[str, str], str]]:
    """Log-like records: the handler's metadata, a request id, a JSON payload."""
    return [({"level": ("ERROR", "INFO", "INFO", "WARNING")[i % 4], "logger": "app",
              "timestamp": f"2026-11-27T10:00:{i:02d}.000Z", "host": host, "pid": "42",
              "request_id": f"{host}-{i}"},
             json.dumps({"message": f"{host} event {i}", "duration_ms": i * 10}))
            for i in range(count)]


def blocks(language: str = r"\w+") -> list[tuple[str, str]]:
    """``(language, text)`` of the page's fenced blocks, in page order."""
    return re.findall(rf"```({language})\n(.*?)```", QUERY_MD.read_text(), re.S)


def run_page(namespace: dict[str, object]) -> None:
    """Run the Python blocks and the ``shoebox`` command lines, in page order."""
    for language, text in blocks("python|sh"):
        if language == "python":
            exec(compile(text, str(QUERY_MD), "exec"), namespace)
            continue
        for line in text.splitlines():
            argv = shlex.split(line, comments=True)
            assert argv[0] == "shoebox"
            assert main(argv[1:]) == 0


@pytest.fixture
def archive(tmp_path, monkeypatch) -> list[tuple[dict[str, str], str]]:
    """``archive/dt=…/host=…/`` under the working directory; the records."""
    expected = []
    for index, host in enumerate(HOSTS):
        written = records(host, 10 + 5 * index)
        name = f"log_20261127_100000_000000_{host}_42.events.gz"
        write(tmp_path / "archive" / "dt=2026-11-27" / f"host={host}" / name, written, "gzip")
        expected += written
    monkeypatch.chdir(tmp_path)
    return expected


def test_every_python_snippet_of_docs_query_runs_and_answers_right(archive, dask_client):
    # The Dask snippet connects to a running cluster: the session's.
    namespace: dict[str, object] = {"scheduler_address": dask_client.scheduler.address}
    run_page(namespace)
    levels = collections.Counter(metadata["level"] for metadata, _ in archive)
    assert namespace["ten_seconds"].num_rows == sum(
        "2026-11-27T10:00:10" <= m["timestamp"] < "2026-11-27T10:00:20" for m, _ in archive) > 0
    assert namespace["by_level"] == sorted(levels.items())
    assert namespace["errors"] == sorted(
        ((m["timestamp"], m["host"], json.loads(p)["message"]) for m, p in archive
         if m["level"] == "ERROR"))
    assert namespace["slow"] == sorted(
        ((m["request_id"], float(json.loads(p)["duration_ms"])) for m, p in archive
         if json.loads(p)["duration_ms"] > 200), key=lambda row: (-row[1], row[0]))
    assert namespace["per_host"] == collections.Counter(m["host"] for m, _ in archive)
    assert namespace["per_level"] == levels
    by_host_level = collections.Counter((m["host"], m["level"]) for m, _ in archive)
    assert namespace["per_host_level"] == sorted(
        (host, level, count) for (host, level), count in by_host_level.items())
    assert namespace["one_day_errors"] == sorted(
        (json.loads(p)["message"],) for m, p in archive if m["level"] == "ERROR")


ARROW_TO_HIVE = {"map<string, string>": "map<string, string>", "string": "string",
                 "int64": "bigint"}


def test_the_athena_table_definition_matches_the_exported_files(archive, capsys):
    (ddl,) = [text for language, text in blocks("sql")
              if "CREATE EXTERNAL TABLE" in text and "MSCK REPAIR" in text]  # the export's
    columns = re.search(r"CREATE EXTERNAL TABLE \w+ \((.*?)\n\)", ddl, re.S).group(1)
    declared = [tuple(re.fullmatch(r"\s*`?(\w+)`?\s+(.+?),?", line).groups())
                for line in columns.strip().splitlines()]
    partitions = re.search(r"PARTITIONED BY \((.*?)\)", ddl).group(1)
    (command,) = [text for language, text in blocks("sh")]
    assert main(shlex.split(command)[1:]) == 0
    capsys.readouterr()
    (path, *_rest) = sorted(Path("exports").rglob("*.parquet"))
    schema = pq.read_schema(path)
    assert declared == [(field.name, ARROW_TO_HIVE[str(field.type).replace(
        "map<string, string ('metadata')>", "map<string, string>")]) for field in schema]
    assert partitions == ", ".join(f"{part.split('=')[0]} string"
                                   for part in path.parent.relative_to("exports").parts)


README = QUERY_MD.parent.parent / "README.md"


def test_the_readme_query_example_counts_per_host_and_level(archive, capsys):
    section = README.read_text().split("## Querying archives at scale", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, str(README), "exec"), {})
    shown = capsys.readouterr().out
    counts = collections.Counter((m["host"], m["level"]) for m, _ in archive)
    for (host, level), count in counts.items():
        assert re.search(rf"{host}\s*│\s*{level}\s*│\s*{count}\s", shown), shown
