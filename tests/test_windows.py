"""Time windows on every reader (issue 21): ``--since``/``--until`` on ``cat``,
``stats`` and ``export``, ``since=``/``until=`` on ``to_table`` and
``read_archives``, exactly what a full read filtered by time gives; and
pruning: a windowed read of the sidecar's ``hive`` layout lists only the
``dt=`` days around the window and fetches only the archives whose span
(in their names) meets it."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from _lake_support import UTC, Fleet, at, fleet_archives, ship
from archive_files import run, write
from s3_faults import FaultProxy

from shoebox.arrow import to_table
from shoebox.errors import InvalidOption
from shoebox.windows import TimeWindow

#: (since, until) windows over the fleet: inside one archive, across two
#: archives of one host, across midnight.
WINDOWS = {
    "inside one archive": (at(1, 7), at(1, 7, 30)),
    "across archives": (at(1, 5), at(1, 7)),
    "across midnight": (at(1, 22, 30), at(2, 1, 30)),
}


def iso(moment: datetime.datetime) -> str:
    return moment.isoformat()


# --- the window value ------------------------------------------------------

@pytest.mark.parametrize("since", [
    datetime.datetime(2026, 11, 27, 14, 0),  # naive: UTC
    datetime.datetime(2026, 11, 27, 15, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
    "2026-11-27T14:00:00Z", "2026-11-27T14:00", "2026-11-27T15:00:00+01:00",
    "2026-11-27 14:00:00.000z",
])
def test_every_spelling_of_a_moment_means_the_same_utc_time(since: Any) -> None:
    window = TimeWindow.of(since, "2026-11-27T14:30Z")
    assert window is not None
    assert window.since == datetime.datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def test_since_is_inside_until_is_not_and_an_unreadable_timestamp_is_outside() -> None:
    window = TimeWindow.of("2026-11-27T14:00Z", "2026-11-27T14:30Z")
    assert window is not None
    assert window.admits("2026-11-27T14:00:00.000Z")
    assert window.admits("2026-11-27T14:29:59.999999Z")
    assert not window.admits("2026-11-27T14:30:00Z")
    assert not window.admits("2026-11-27T13:59:59.999Z")
    assert not window.admits("yesterday")
    assert not window.admits(None)


@pytest.mark.parametrize("since, until, message", [
    ("2026-11-27T14:00Z", "2026-11-27T14:00Z", "since must be before until"),
    ("2026-11-28", "2026-11-27", "since must be before until"),
    ("yesterday", None, "since is not an ISO 8601 time: 'yesterday'"),
    (None, "14h", "until is not an ISO 8601 time: '14h'"),
])
def test_a_bad_window_is_refused_naming_the_bad_value(since: Any, until: Any,
                                                      message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        TimeWindow.of(since, until)


def test_no_bounds_is_no_window() -> None:
    assert TimeWindow.of() is None


# --- the readers over the fleet ---------------------------------------------

def cat_ids(out: str) -> list[str]:
    return sorted(json.loads(line)["metadata"]["id"] for line in out.splitlines())


@pytest.mark.parametrize("name", WINDOWS)
def test_windowed_cat_gives_the_records_of_a_filtered_full_read_fetching_only_overlapping_archives(
        fleet: Fleet, capsys: Any, name: str) -> None:
    since, until = WINDOWS[name]
    with FaultProxy(fleet.endpoint_url) as proxy:
        status, out, err = run(capsys, "cat", fleet.url, "--since", iso(since),
                               "--until", iso(until), "--endpoint-url", proxy.endpoint_url)
        fetched = {f"s3://fleet/{seen.key}" for seen in proxy.seen
                   if seen.operation == "GetObject"}
        gets = proxy.count("GetObject")
    assert status == 0
    expected = fleet.ids_in(since, until)
    assert expected and cat_ids(out) == expected
    # Only the archives whose records' span meets the window, each once.
    assert fetched == fleet.overlapping(since, until)
    assert gets == len(fetched) < len(fleet.archives) / 4
    # The full read, filtered by time here, gives the same records.
    status, full, _err = run(capsys, "cat", fleet.url, "--endpoint-url", fleet.endpoint_url)
    assert sorted(json.loads(line)["metadata"]["id"] for line in full.splitlines()
                  if _inside(json.loads(line)["metadata"], since, until)) == expected
    assert f"{len(expected):,} records inside" in err
    assert "without a readable timestamp" in err


def _inside(metadata: dict[str, str], since: datetime.datetime,
            until: datetime.datetime) -> bool:
    from _lake_support import inside

    return inside(metadata, since, until)


def test_a_windowed_read_lists_only_the_days_around_the_window(fleet: Fleet,
                                                               capsys: Any) -> None:
    since, until = at(2, 10), at(2, 11)  # the last day: its day before and itself
    with FaultProxy(fleet.endpoint_url) as proxy:
        status, out, _err = run(capsys, "cat", fleet.url, "--since", iso(since), "--until",
                                iso(until), "--endpoint-url", proxy.endpoint_url)
        windowed_lists = proxy.count("ListObjectsV2")
    assert status == 0 and cat_ids(out) == fleet.ids_in(since, until)
    with FaultProxy(fleet.endpoint_url) as proxy:
        run(capsys, "stats", fleet.url, "--since", iso(at(1, 10)), "--until", iso(at(1, 11)),
            "--endpoint-url", proxy.endpoint_url)
        middle_lists = proxy.count("ListObjectsV2")
    # One request to see that telemetry is no object, one listing of its
    # dt= folders, then one per day listed: the last day and the one before
    # (there is none after) - not the first day; the middle day and both of
    # its neighbours.
    assert windowed_lists == 2 + 2
    assert middle_lists == 2 + 3


@pytest.mark.parametrize("name", WINDOWS)
def test_windowed_to_table_gives_the_records_of_a_filtered_full_read(fleet: Fleet,
                                                                     name: str) -> None:
    since, until = WINDOWS[name]
    options = {"endpoint_url": fleet.endpoint_url}
    table = to_table(fleet.url, storage_options=options, since=since, until=until)
    ids = sorted(metadata["id"] for metadata in map(dict, table.column("metadata").to_pylist()))
    assert ids == fleet.ids_in(since, until)
    full = to_table(fleet.url, storage_options=options)
    assert sorted(dict(metadata)["id"] for metadata in full.column("metadata").to_pylist()
                  if _inside(dict(metadata), since, until)) == ids


def test_windowed_read_archives_on_a_cluster_gives_the_records_of_a_filtered_full_read(
        fleet: Fleet, dask_client: Any) -> None:
    from shoebox.dask import list_archives, read_archives, to_dataframe

    options = {"endpoint_url": fleet.endpoint_url}
    for since, until in WINDOWS.values():
        bag = read_archives(fleet.url, storage_options=options, since=iso(since),
                            until=iso(until))
        ids = sorted(bag.map(lambda record: record["metadata"]["id"]).compute())
        assert ids == fleet.ids_in(since, until)
        # One partition per archive that can hold records of the window.
        assert bag.npartitions == len(fleet.overlapping(since, until))
        frame = to_dataframe(fleet.url, storage_options=options, since=since, until=until)
        assert len(frame) == len(ids)
    window = TimeWindow.of(*WINDOWS["across midnight"])
    assert len(list_archives(fleet.url, storage_options=options, window=window)) < len(
        list_archives(fleet.url, storage_options=options)) / 4


def test_windowed_stats_and_export_count_only_the_window(fleet: Fleet, capsys: Any,
                                                        tmp_path: Any) -> None:
    since, until = WINDOWS["across midnight"]
    expected = fleet.ids_in(since, until)
    status, out, err = run(capsys, "stats", fleet.url, "--json", "--since", iso(since),
                           "--until", iso(until), "--endpoint-url", fleet.endpoint_url)
    assert status == 0
    total = json.loads(out)["total"]
    assert total["records"] == len(expected)
    assert since.isoformat() <= total["first_timestamp"].replace("Z", "+00:00")
    status, out, err = run(capsys, "export", fleet.url, "--to", tmp_path / "out",
                           "--since", iso(since), "--until", iso(until),
                           "--endpoint-url", fleet.endpoint_url)
    assert status == 0 and f"{len(expected):,} records" in out
    import duckdb

    rows = duckdb.sql(f"SELECT metadata['id'] FROM read_parquet('{tmp_path}/out/**/*.parquet')"
                      ).fetchall()
    assert sorted(row[0] for row in rows) == expected
    assert "left unread" in err


# --- local directories --------------------------------------------------------

def test_a_windowed_read_of_a_directory_skips_the_archives_its_names_rule_out(
        tmp_path: Any, capsys: Any) -> None:
    archives = fleet_archives(hosts=("db-1", "db-2"), days=2, per_archive=12)
    ship(archives, tmp_path / "watch", str(tmp_path / "shipped"))
    fleet = Fleet(archives)
    since, until = at(0, 23), at(1, 1)
    status, out, err = run(capsys, "cat", tmp_path / "shipped", "--since", iso(since),
                           "--until", iso(until))
    assert status == 0 and cat_ids(out) == fleet.ids_in(since, until)
    pruned = int(err.split("; ")[-1].split()[0])
    assert pruned >= len(archives) - 4
    table = to_table(tmp_path / "shipped", since=since, until=until)
    assert table.num_rows == len(fleet.ids_in(since, until))


def test_records_out_of_order_inside_an_archive_are_found_by_the_span(
        tmp_path: Any, capsys: Any) -> None:
    late = {"id": "late", "timestamp": "2026-11-27T08:00:00Z"}
    write(tmp_path / "watch" / "a.events", [
        ({"id": "first", "timestamp": "2026-11-27T10:00:00Z"}, "{}"), (late, "{}"),
        ({"id": "untimed"}, "{}")])
    from shoebox_sidecar.cli import main as sidecar

    assert sidecar([str(tmp_path / "watch"), "--dest", str(tmp_path / "out"), "--once",
                    "--key-template", "hive", "--host", "h"]) == 0
    [shipped] = (tmp_path / "out").rglob("*.gz")
    assert shipped.name == "20261127T080000Z-20261127T100000Z_a.events.gz"
    status, out, err = run(capsys, "cat", tmp_path / "out", "--since", "2026-11-27T07:59:59",
                           "--until", "2026-11-27T08:00:01")
    assert status == 0 and cat_ids(out) == ["late"]
    assert "1 without a readable timestamp" in err


# --- the command line's errors ---------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--since", "2026-11-27T14:00Z", "--until", "2026-11-27T13:00Z"],
     "--since must be before until"),
    (["--since", "tuesday"], "expected an ISO 8601 time"),
])
@pytest.mark.parametrize("command", ["cat", "stats", "export"])
def test_a_bad_window_on_the_command_line_is_a_usage_error(tmp_path: Any, capsys: Any,
                                                          command: str, args: list[str],
                                                          message: str) -> None:
    write(tmp_path / "a.events", [({"timestamp": "2026-11-27T13:30:00Z"}, "{}")])
    extra = ["--to", str(tmp_path / "out")] if command == "export" else []
    status, out, err = run(capsys, command, tmp_path / "a.events", *args, *extra)
    assert status == 2 and message in err and not out
