"""``shoebox compact`` and ``shoebox.lake`` (issue 21): the fleet's archives
(shipped by the real sidecar into moto) become a few sorted Parquet files
per day, counted exactly by DuckDB; incremental (a re-run does nothing, a
late archive lands once), exactly once across SIGKILL, on a cluster too."""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from _lake_support import Archive, Fleet, at, moment_of, ship, stamp
from archive_files import SHOEBOX, archive_bytes, compress, run, subprocess_env

from shoebox.lake import ROW_GROUP_ROWS, UNDATED, compact


@pytest.fixture
def source(fleet: Fleet, s3_server: Any) -> Fleet:
    """A copy of the fleet in a bucket of the test's own (so that it may add
    late archives)."""
    client = s3_server.client()
    bucket = f"src-{os.urandom(6).hex()}"
    client.create_bucket(Bucket=bucket)
    for archive in fleet.archives:
        key = archive.key.removeprefix("s3://fleet/")
        client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": "fleet", "Key": key})
    copy = Fleet([Archive(a.name, a.host, a.records, a.key.replace("s3://fleet/",
                                                                   f"s3://{bucket}/"))
                  for a in fleet.archives], f"s3://{bucket}/telemetry", fleet.endpoint_url)
    return copy


def expected_counts(fleet: Fleet) -> collections.Counter[tuple[str, str]]:
    return collections.Counter((m["host"], m["level"]) for m, _ in fleet.records)


def lake_counts(lake: Path) -> collections.Counter[tuple[str, str]]:
    rows = duckdb.sql(f"""
        SELECT host, level, count(*) FROM read_parquet('{lake}/dt=*/*.parquet',
                                                       hive_partitioning = true)
        GROUP BY ALL""").fetchall()
    return collections.Counter({(host, level): count for host, level, count in rows})


def day_files(lake: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(lake.glob("dt=*/*")):
        found.setdefault(path.parent.name, []).append(path.name)
    return found


def snapshot(lake: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(lake)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in lake.rglob("*") if path.is_file()}


def compact_cli(capsys: Any, fleet: Fleet, lake: Path, *args: str) -> tuple[int, str, str]:
    return run(capsys, "compact", fleet.url, "--to", lake, "--endpoint-url",
               fleet.endpoint_url, *args)


def test_compaction_gives_every_record_once_in_few_sorted_files_per_day(
        source: Fleet, tmp_path: Path, capsys: Any) -> None:
    lake = tmp_path / "lake"
    status, out, err = compact_cli(capsys, source, lake)
    assert status == 0, err
    total = len(source.records)
    assert out.startswith(f"compacted {len(source.archives)} archives (0 skipped as already "
                          f"done), {total:,} records")
    # Not a terminal: progress as JSON lines, the sidecar's style.
    events = [json.loads(line) for line in err.splitlines()]
    assert [event["event"] for event in events] == ["plan", "day", "day", "day", "summary"]
    assert events[-1]["records"] == total and events[-1]["logger"] == "shoebox.lake"
    # Per host and level, exactly the raw archives' records (DuckDB over the lake).
    assert lake_counts(lake) == expected_counts(source)
    files = day_files(lake)
    assert sorted(files) == ["dt=2026-11-26", "dt=2026-11-27", "dt=2026-11-28",
                             f"dt={UNDATED}"]
    assert all(len(names) <= 2 for day, names in files.items() if day != f"dt={UNDATED}")
    # Each record is in its own UTC day; untimed ones (no timestamp, or an
    # unreadable one) under the null partition.
    rows = duckdb.sql(f"""
        SELECT dt, timestamp, time FROM read_parquet('{lake}/dt=*/*.parquet',
                                                     hive_partitioning = true)""").fetchall()
    for day, text, moment in rows:
        if day is None:
            assert moment is None
        else:
            assert str(day) == text[:10] == moment.date().isoformat()
    untimed = [m for m, _ in source.records if moment_of((m, "")) is None]
    assert sum(day is None for day, _, _ in rows) == len(untimed)
    # Rows sorted by host, then time, within every file; zstd columns.
    for path in lake.glob("dt=*/*.parquet"):
        table = pq.read_table(path)
        keys = list(zip(table.column("host").to_pylist(), table.column("time").to_pylist(),
                        strict=True))
        assert keys == sorted(keys, key=lambda key: (key[0], key[1] is None, key[1]))
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert all(meta.row_group(n).num_rows == ROW_GROUP_ROWS
                   for n in range(meta.num_row_groups - 1))


def test_a_second_run_with_nothing_new_changes_nothing(source: Fleet, tmp_path: Path,
                                                      capsys: Any) -> None:
    lake = tmp_path / "lake"
    assert compact_cli(capsys, source, lake)[0] == 0
    before = snapshot(lake)
    status, out, _err = compact_cli(capsys, source, lake)
    assert status == 0
    assert out.startswith(f"compacted 0 archives ({len(source.archives)} skipped as already "
                          "done), 0 records")
    assert snapshot(lake) == before


def test_a_late_archive_lands_exactly_once_in_its_day_only(
        source: Fleet, tmp_path: Path, capsys: Any) -> None:
    lake = tmp_path / "lake"
    assert compact_cli(capsys, source, lake)[0] == 0
    before = snapshot(lake)
    # web-9 ships yesterday's archive today.
    late = Archive("log_web-9_late.events", "web-9", [
        ({"host": "web-9", "level": "ERROR", "id": f"late-{n}",
          "timestamp": stamp(at(1, 13, n))}, "{}") for n in range(10)])
    ship([late], tmp_path / "watch", source.url, source.endpoint_url)
    source.archives.append(late)
    status, out, _err = compact_cli(capsys, source, lake)
    assert status == 0 and out.startswith("compacted 1 archive (34 skipped as already done), "
                                          "10 records")
    assert lake_counts(lake) == expected_counts(source)
    after = snapshot(lake)
    changed = {name for name in after if before.get(name) != after[name]}
    assert {name.split("/")[0] for name in changed} == {"dt=2026-11-27", "_shoebox"}
    assert changed >= {"_shoebox/days/2026-11-27.json"}
    assert len(day_files(lake)["dt=2026-11-27"]) == 2
    assert compact_cli(capsys, source, lake)[1].startswith("compacted 0 archives")


def test_a_window_compacts_only_the_days_it_touches_and_the_rest_comes_later(
        source: Fleet, tmp_path: Path, capsys: Any) -> None:
    lake = tmp_path / "lake"
    status, _out, _err = compact_cli(capsys, source, lake, "--since", at(1, 12).isoformat(),
                                     "--until", at(1, 13).isoformat())
    assert status == 0
    # That day, and the untimed records of the archives that start on it.
    assert sorted(day_files(lake)) == ["dt=2026-11-27", f"dt={UNDATED}"]
    day = sum(1 for m, _ in source.records if (moment_of((m, "")) or at(9, 0)).date()
              == at(1, 0).date())
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/dt=2026-11-27/*.parquet')"
                      ).fetchall() == [(day,)]
    assert compact_cli(capsys, source, lake)[0] == 0
    assert lake_counts(lake) == expected_counts(source)


def test_a_day_larger_than_the_target_is_compacted_in_parts_of_separate_hosts(
        source: Fleet, tmp_path: Path, capsys: Any) -> None:
    lake = tmp_path / "lake"
    # About one host's archives of a day per part.
    status, _out, err = compact_cli(capsys, source, lake, "--target-mb", "0.004")
    assert status == 0, err
    plan = json.loads(err.splitlines()[0])
    assert plan["event"] == "plan" and plan["days"] == 3 and plan["parts"] > 3
    assert lake_counts(lake) == expected_counts(source)
    for day, names in day_files(lake).items():
        if day == f"dt={UNDATED}":
            continue
        assert len(names) > 1
        hosts = [set(pq.read_table(lake / day / name).column("host").to_pylist())
                 for name in names]
        assert all(not a & b for n, a in enumerate(hosts) for b in hosts[n + 1:])
    # Each day committed once, with every part's files.
    manifests = sorted((lake / "_shoebox" / "days").glob("2026-*.json"))
    assert [json.loads(path.read_text())["day"] for path in manifests] == [
        "2026-11-26", "2026-11-27", "2026-11-28"]
    assert compact_cli(capsys, source, lake)[1].startswith("compacted 0 archives")


def test_compaction_on_a_cluster_into_s3_gives_the_same_lake(
        source: Fleet, s3_server: Any, dask_client: Any, tmp_path: Path) -> None:
    client = s3_server.client()
    bucket = f"lake-{os.urandom(6).hex()}"
    client.create_bucket(Bucket=bucket)
    result = compact(source.url, f"s3://{bucket}/lake", endpoint_url=source.endpoint_url,
                     client=dask_client)
    assert result.records == len(source.records) and result.archives == len(source.archives)
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert all(key.startswith("lake/") for key in keys)
    local = tmp_path / "copy"
    for key in keys:
        target = local / key.removeprefix("lake/")
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    assert lake_counts(local) == expected_counts(source)
    again = compact(source.url, f"s3://{bucket}/lake", endpoint_url=source.endpoint_url,
                    client=dask_client)
    assert again.archives == 0 and again.skipped == len(source.archives)


class LakeView:
    """A lake in a directory or under an S3 prefix, as the SIGKILL test sees it."""

    def __init__(self, where: str, tmp_path: Path, s3_server: Any) -> None:
        self.client = s3_server.client()
        self.local = tmp_path / "lake"
        if where == "s3":
            self.bucket = f"lake-{os.urandom(6).hex()}"
            self.client.create_bucket(Bucket=self.bucket)
            self.dest = f"s3://{self.bucket}/lake"
        else:
            self.bucket = ""
            self.dest = str(self.local)

    def files(self) -> dict[str, bytes]:
        """Every file of the lake (downloaded, for S3), by relative path."""
        if not self.bucket:
            return {str(path.relative_to(self.local)): path.read_bytes()
                    for path in self.local.rglob("*") if path.is_file()}
        listed = self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {item["Key"].removeprefix("lake/"): self.client.get_object(
            Bucket=self.bucket, Key=item["Key"])["Body"].read() for item in listed}

    def wipe(self) -> None:
        if not self.bucket:
            shutil.rmtree(self.local)
            return
        for name in self.files():
            self.client.delete_object(Bucket=self.bucket, Key=f"lake/{name}")

    def copy(self, target: Path) -> Path:
        for name, data in self.files().items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(data)
        return target


@pytest.mark.parametrize("where", ["directory", "s3"])
def test_sigkill_at_random_moments_then_a_rerun_gives_every_record_exactly_once(
        source: Fleet, tmp_path: Path, capsys: Any, s3_server: Any, where: str) -> None:
    lake = LakeView(where, tmp_path, s3_server)
    seed = int.from_bytes(os.urandom(4), "big")
    chance = random.Random(seed)
    command = [*SHOEBOX, "compact", source.url, "--to", lake.dest, "--endpoint-url",
               source.endpoint_url]
    kills = []  # days committed when each kill came
    for attempt in range(20):
        if len(kills) >= 4:
            break
        process = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        if attempt % 2:
            # Once the days are being written (the plan is logged first).
            while (line := process.stderr.readline()) and "planned" not in line:
                pass
            time.sleep(chance.uniform(0.0, 0.5))
        else:
            # Anywhere: importing, cleaning up, listing, writing.
            time.sleep(chance.uniform(0.3, 2.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            files = lake.files()
            kills.append(sum(name.startswith("_shoebox/") for name in files))
            # Whatever a reader globbing the files sees, no file is half-written.
            for name, data in files.items():
                if name.endswith(".parquet") and not name.rsplit("/", 1)[-1].startswith("."):
                    assert data[:4] == data[-4:] == b"PAR1", name
        elif process.wait(timeout=60) == 0:
            # It finished first: start again, so that the next kill finds work.
            lake.wipe()
        process.stderr.close()
    assert len(kills) >= 3, f"seed {seed}: the runs ended before their kills"
    status, _out, err = run(capsys, "compact", source.url, "--to", lake.dest,
                            "--endpoint-url", source.endpoint_url)
    assert status == 0, f"seed {seed}: {err}"
    copy = lake.copy(tmp_path / "copy")
    assert lake_counts(copy) == expected_counts(source), f"seed {seed}, kills {kills}"
    assert not [name for name in lake.files() if name.rsplit("/", 1)[-1].startswith(".")]


# --- bad input -------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--since", "2026-11-27", "--until", "2026-11-27"], "--since must be before until"),
    (["--since", "noon"], "expected an ISO 8601 time"),
    (["--target-mb", "0"], "target_mb must be a positive finite number, not 0"),
])
def test_a_bad_window_or_size_is_a_usage_error(tmp_path: Path, capsys: Any, args: list[str],
                                               message: str) -> None:
    (tmp_path / "src").mkdir()
    status, out, err = run(capsys, "compact", tmp_path / "src", "--to", tmp_path / "lake",
                           *args)
    assert status == 2 and message in err and not out


@pytest.mark.parametrize("dest", ["src/lake", "src", "s3"])
def test_dest_inside_src_is_refused(tmp_path: Path, capsys: Any, dest: str,
                                   s3_server: Any, bucket: str) -> None:
    (tmp_path / "src").mkdir()
    if dest == "s3":
        src, target = f"s3://{bucket}/raw", f"s3://{bucket}/raw/lake"
    else:
        src, target = str(tmp_path / "src"), str(tmp_path / dest)
    status, _out, err = run(capsys, "compact", src, "--to", target, "--endpoint-url",
                            s3_server.endpoint_url)
    assert status == 2 and "is inside SRC" in err


def test_a_damaged_source_archive_stops_compaction_naming_it_unless_recover(
        tmp_path: Path, capsys: Any) -> None:
    records = [({"host": "h", "level": "INFO", "timestamp": f"2026-11-27T10:00:{n:02d}Z"},
                f'{{"n": {n}}}') for n in range(20)]
    good = tmp_path / "src" / "good.events"
    good.parent.mkdir()
    good.write_bytes(archive_bytes(records))
    data = bytearray(archive_bytes(records))
    data[len(data) // 2] ^= 0xFF  # inside a record: its checksum fails
    bad = tmp_path / "src" / "bad.events.gz"
    bad.write_bytes(compress(bytes(data), "gzip"))
    status, _out, err = run(capsys, "compact", tmp_path / "src", "--to", tmp_path / "lake")
    assert status == 1
    assert str(bad) in err and "offset" in err and "--recover" in err
    status, out, err = run(capsys, "compact", tmp_path / "src", "--to", tmp_path / "lake",
                           "--recover")
    assert status == 0
    assert str(bad) in err and "skipped" in err
    [(kept,)] = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/lake/dt=*/*.parquet')").fetchall()
    assert 20 < kept < 40
    assert "compacted 2 archives" in out


def test_archives_without_a_span_in_their_names_are_read_for_their_days(
        tmp_path: Path, capsys: Any) -> None:
    # Written by the handler, not shipped: no dt= folder, no span.
    records = [({"host": "h", "level": "INFO", "timestamp": "2026-11-27T23:59:59Z"}, "{}"),
               ({"host": "h", "level": "INFO", "timestamp": "2026-11-28T00:00:01Z"}, "{}"),
               ({"host": "h", "level": "INFO"}, "{}")]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.events").write_bytes(archive_bytes(records))
    status, _out, err = run(capsys, "compact", tmp_path / "src", "--to", tmp_path / "lake")
    assert status == 0, err
    assert sorted(day_files(tmp_path / "lake")) == [
        "dt=2026-11-27", "dt=2026-11-28", f"dt={UNDATED}"]
    assert sum(lake_counts(tmp_path / "lake").values()) == 3
