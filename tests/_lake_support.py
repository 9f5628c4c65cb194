"""A simulated fleet for the windowed-read and compaction tests: several hosts
writing archives of a few hours each over several days (some crossing
midnight, some with records out of order, some records without a readable
timestamp), shipped by the real sidecar (``--key-template hive``)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive_files import subprocess_env, write

UTC = datetime.timezone.utc
HOSTS = ("web-1", "web-2", "web-3")
#: The first day of the fleet; it writes for DAYS days from its midnight.
START = datetime.datetime(2026, 11, 26, tzinfo=UTC)
DAYS = 3
ARCHIVE_HOURS = 6
RECORDS_PER_ARCHIVE = 40
LEVELS = ("INFO", "INFO", "WARNING", "ERROR", "DEBUG")

Record = tuple[dict[str, str], str]


@dataclass
class Archive:
    """One archive the fleet wrote: its file name, host and records."""

    name: str
    host: str
    records: list[Record]
    #: The object key it was shipped under (filled in after shipping).
    key: str = ""

    @property
    def moments(self) -> list[datetime.datetime]:
        return [moment for moment in map(moment_of, self.records) if moment is not None]


@dataclass
class Fleet:
    """The fleet's archives, and where they were shipped."""

    archives: list[Archive] = field(default_factory=list)
    url: str = ""
    endpoint_url: str = ""

    @property
    def records(self) -> list[Record]:
        return [record for archive in self.archives for record in archive.records]

    def ids_in(self, since: datetime.datetime | None,
               until: datetime.datetime | None) -> list[str]:
        """The ids of the records inside ``[since, until)``, sorted: what a
        full read filtered by time gives (computed here, independently)."""
        return sorted(metadata["id"] for metadata, _payload in self.records
                      if inside(metadata, since, until))

    def overlapping(self, since: datetime.datetime, until: datetime.datetime) -> set[str]:
        """The keys of the archives whose records' time range meets the window."""
        return {archive.key for archive in self.archives if archive.moments
                and min(archive.moments) < until and max(archive.moments) >= since}


def moment_of(record: Record) -> datetime.datetime | None:
    stamp = record[0].get("timestamp")
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None
    return moment if moment is None else moment.astimezone(UTC)


def inside(metadata: dict[str, str], since: datetime.datetime | None,
           until: datetime.datetime | None) -> bool:
    moment = moment_of((metadata, ""))
    return moment is not None and (since is None or since <= moment) and (
        until is None or moment < until)


def stamp(moment: datetime.datetime) -> str:
    """As the logging handler writes it: milliseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fleet_archives(hosts: tuple[str, ...] = HOSTS, days: int = DAYS,
                   per_archive: int = RECORDS_PER_ARCHIVE) -> list[Archive]:
    """The archives each host writes: one every ARCHIVE_HOURS hours, host
    ``i`` starting ``2 * i`` hours after midnight (so some cross it).
    Records come about every 9 minutes, on whole seconds; every third
    archive has its first two records swapped (out of order); record 5 of
    each archive has no timestamp, and every seventh archive has one whose
    timestamp cannot be read."""
    archives = []
    number = 0
    step = datetime.timedelta(hours=ARCHIVE_HOURS) / per_archive
    for index, host in enumerate(hosts):
        begin = START + datetime.timedelta(hours=2 * index)
        end = START + datetime.timedelta(days=days)
        while begin + datetime.timedelta(hours=ARCHIVE_HOURS) <= end:
            records = []
            moments = [begin + step * n + datetime.timedelta(seconds=n % 7)
                       for n in range(per_archive)]
            if number % 3 == 0:
                moments[0], moments[1] = moments[1], moments[0]
            for n, moment in enumerate(moments):
                metadata = {"level": LEVELS[(n + number) % len(LEVELS)], "host": host,
                            "logger": "app", "pid": str(1000 + index),
                            "id": f"{host}-{number:03d}-{n:02d}", "timestamp": stamp(moment)}
                if n == 5:
                    del metadata["timestamp"]
                if n == 6 and number % 7 == 0:
                    metadata["timestamp"] = "yesterday"
                records.append((metadata, json.dumps({"message": f"request {n} done",
                                                      "n": n})))
            archives.append(Archive(f"log_{host}_{number:03d}.events", host, records))
            number += 1
            begin += datetime.timedelta(hours=ARCHIVE_HOURS)
    return archives


def ship(archives: list[Archive], root: Path, dest: str,
         endpoint_url: str | None = None) -> None:
    """Write the archives into one directory per host under ``root`` and
    ship them with the real sidecar (``--once --key-template hive``);
    fill in each archive's key (relative to ``dest``)."""
    for host in sorted({archive.host for archive in archives}):
        watch = root / host
        for archive in archives:
            if archive.host == host:
                write(watch / archive.name, archive.records)
        command = [sys.executable, "-m", "shoebox_sidecar", str(watch), "--dest", dest,
                   "--once", "--key-template", "hive", "--host", host]
        if endpoint_url:
            command += ["--endpoint-url", endpoint_url]
        subprocess.run(command, env=subprocess_env(), check=True, timeout=120,
                       capture_output=True)
        assert not list(watch.glob("*.events"))  # shipped, confirmed, deleted


def fill_keys(archives: list[Archive], keys: list[str]) -> None:
    """Match each archive to the key it was shipped under (by its name)."""
    by_name = {os.path.basename(key).split("_", 1)[1].removesuffix(".gz"): key
               for key in keys}
    for archive in archives:
        archive.key = by_name[archive.name]


def build_fleet(s3_server: Any, root: Path) -> Fleet:
    """The fleet shipped into a bucket of its own on ``s3_server``."""
    client = s3_server.client()
    client.create_bucket(Bucket="fleet")
    fleet = Fleet(fleet_archives(), "s3://fleet/telemetry", s3_server.endpoint_url)
    ship(fleet.archives, root, fleet.url, s3_server.endpoint_url)
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket="fleet") for item in page.get("Contents", ())]
    assert len(keys) == len(fleet.archives)
    fill_keys(fleet.archives, [f"s3://fleet/{key}" for key in keys])
    return fleet


def at(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    """A moment ``day`` days after the fleet's first midnight."""
    return START + datetime.timedelta(days=day, hours=hour, minutes=minute)
