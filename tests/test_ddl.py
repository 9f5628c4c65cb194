"""``shoebox ddl`` (issue 21): the table definitions of a compacted lake. The
DuckDB view runs as printed; the others declare the lake's columns, and
docs/query.md shows each exactly as printed."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from archive_files import archive_bytes, run

from shoebox.ddl import COLUMNS, ENGINES, table_ddl
from shoebox.lake import compact, schema

QUERY_MD = Path(__file__).resolve().parent.parent / "docs" / "query.md"


def records() -> list[tuple[dict[str, str], str]]:
    return [({"host": f"web-{n % 3}", "level": ("INFO", "ERROR")[n % 2],
              "timestamp": f"2026-11-2{6 + n % 2}T10:{n % 60:02d}:00Z"}, f'{{"n": {n}}}')
            for n in range(200)]


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.events").write_bytes(archive_bytes(records()))
    compact(tmp_path / "src", tmp_path / "lake")
    return tmp_path / "lake"


def test_the_duckdb_view_runs_as_printed_and_counts_the_lake(lake: Path, capsys: Any) -> None:
    status, out, _err = run(capsys, "ddl", lake, "--engine", "duckdb", "--table", "telemetry")
    assert status == 0
    connection = duckdb.connect()
    connection.execute(out)
    rows = connection.execute("SELECT host, level, count(*) FROM telemetry GROUP BY ALL"
                              ).fetchall()
    expected = collections.Counter((m["host"], m["level"]) for m, _ in records())
    assert collections.Counter({(host, level): n for host, level, n in rows}) == expected
    [(day_count,)] = connection.execute(
        "SELECT count(*) FROM telemetry WHERE dt = DATE '2026-11-27' AND host = 'web-1'"
    ).fetchall()
    assert day_count == sum(1 for m, _ in records() if m["host"] == "web-1"
                            and m["timestamp"].startswith("2026-11-27"))


ARROW_KINDS = {"map<string, string>": "map", "string": "string", "int64": "bigint",
               "timestamp[us, tz=UTC]": "timestamp"}


def test_the_declared_columns_are_the_lake_files_columns(lake: Path) -> None:
    import pyarrow.parquet as pq

    (path, *_rest) = sorted(lake.glob("dt=2026-*/*.parquet"))
    written = pq.read_schema(path)
    assert written.names == schema().names == [name for name, _kind in COLUMNS]
    assert [ARROW_KINDS[str(field.type).replace("map<string, string ('metadata')>",
                                                "map<string, string>")]
            for field in written] == [kind for _name, kind in COLUMNS]


@pytest.mark.parametrize("engine", ENGINES)
def test_docs_query_shows_each_definition_exactly_as_printed(engine: str) -> None:
    text = table_ddl("s3://my-bucket/lake", engine=engine, table="telemetry",
                     first_day="2026-11-26")
    blocks = re.findall(r"```sql\n(.*?)```", QUERY_MD.read_text(), re.S)
    assert text in blocks, f"docs/query.md lacks the {engine} definition:\n{text}"


def test_athena_projects_dt_from_the_lakes_first_day_so_no_repair_is_needed(
        s3_server: Any, bucket: str, tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.events").write_bytes(archive_bytes(records()))
    compact(tmp_path / "src", f"s3://{bucket}/lake", endpoint_url=s3_server.endpoint_url)
    status, out, _err = run(capsys, "ddl", f"s3://{bucket}/lake", "--engine", "athena",
                            "--table", "telemetry", "--endpoint-url", s3_server.endpoint_url)
    assert status == 0
    assert "'projection.dt.range' = '2026-11-26,NOW'" in out
    assert f"'storage.location.template' = 's3://{bucket}/lake/dt=${{dt}}/'" in out
    assert "MSCK" not in out


@pytest.mark.parametrize("args, message", [
    (["--engine", "athena", "--table", "t"], "Athena reads S3 only"),
    (["--engine", "duckdb", "--table", "t; DROP TABLE x"], "must be a name"),
])
def test_bad_ddl_requests_are_usage_errors(tmp_path: Path, capsys: Any, args: list[str],
                                           message: str) -> None:
    status, out, err = run(capsys, "ddl", tmp_path, *args)
    assert status == 2 and message in err and not out
