"""The lake (issue 21), on one fleet: windowed reads, DuckDB over the
compacted lake against DuckDB over ``shoebox export``, and compaction
throughput on one and two Dask workers.

Builds a fleet of ``--hosts`` hosts by ``--days`` days by ``--per-day``
archives a day (an hour each at the default 24), ``--records`` log-like
records per archive, shipped by the real sidecar (``--key-template hive``)
into a moto S3 server on loopback, behind the fault proxy of the tests in
pass-through (it records every request). Then reports:

(a) a 30-minute question about one host (``shoebox cat`` of that host's
    day folder with ``--since``/``--until``, and the same window over the
    whole prefix) against the full read: objects and bytes fetched, seconds;
(b) the same question in DuckDB over the compacted lake against DuckDB over
    ``shoebox export``'s one-file-per-archive output: seconds (median of
    ``--repeat`` runs, a fresh connection each) and files;
(c) compaction throughput (records/s) in process, on a ``LocalCluster`` of 1
    and of 2 single-threaded worker processes (their imports not timed), and
    ``shoebox export``'s; from S3, then from a local copy of the bucket.

Not a timed test: numbers depend on the machine and its neighbours (the
load average is printed with them).

    python benchmarks/bench_lake.py [--hosts 10] [--days 2] [--per-day 24] [--records 400]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from s3_faults import FaultProxy  # noqa: E402 - the tests' recording proxy

from shoebox import encode_record  # noqa: E402
from shoebox.cli import main as shoebox  # noqa: E402

UTC = datetime.timezone.utc
START = datetime.datetime(2026, 11, 26, tzinfo=UTC)
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def write_fleet(root: Path, hosts: int, days: int, per_day: int, records: int) -> int:
    """One directory of closed archives per host; returns the record count."""
    rng = random.Random(7)
    span = datetime.timedelta(days=1) / per_day
    total = 0
    for host in range(hosts):
        directory = root / f"web-{host}"
        directory.mkdir(parents=True)
        for number in range(days * per_day):
            begin = START + span * number
            parts = []
            for index in range(records):
                moment = begin + span * index / records
                stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
                level = rng.choice(["INFO"] * 8 + ["WARNING", "ERROR"])
                metadata = {"level": level, "logger": "app.http", "timestamp": stamp,
                            "host": f"web-{host}", "pid": str(4000 + host)}
                payload = {"message": " ".join(rng.choices(WORDS, k=rng.randint(4, 12))),
                           "request_id": f"{rng.getrandbits(64):016x}",
                           "duration_ms": round(rng.random() * 250, 3)}
                parts.append(encode_record(metadata, json.dumps(payload)))
            name = f"app_{begin:%Y%m%d_%H%M%S}_web-{host}.events"
            (directory / name).write_bytes(b"".join(parts))
            total += records
    return total


def ship(root: Path, dest: str, endpoint: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    processes = [subprocess.Popen(
        [sys.executable, "-m", "shoebox_sidecar", str(directory), "--dest", dest,
         "--endpoint-url", endpoint, "--once", "--key-template", "hive",
         "--host", directory.name], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL) for directory in sorted(root.iterdir())]
    for process in processes:
        if process.wait(timeout=1800) != 0:
            raise SystemExit("the sidecar failed")


def quiet_cat(*argv: str) -> float:
    """Run ``shoebox cat argv…`` with its output discarded; return seconds."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.TextIOWrapper(open(os.devnull, "wb"))) as out, \
            contextlib.redirect_stderr(io.StringIO()):
        status = shoebox(["cat", *argv])
        out.flush()
    if status != 0:
        raise SystemExit(f"shoebox cat {argv} failed: {status}")
    return time.perf_counter() - started


def fetched(proxy: FaultProxy, sizes: dict[str, int], before: int) -> tuple[int, int]:
    """Objects and bytes fetched since the proxy had seen ``before`` requests."""
    keys = [seen.key for seen in proxy.seen[before:] if seen.operation == "GetObject"]
    return len(keys), sum(sizes.get(key, 0) for key in keys)


def part_a(proxy: FaultProxy, sizes: dict[str, int], host: str, since: str,
           until: str) -> list[tuple[str, int, int, float]]:
    day = since[:10]
    rows = []
    for label, argv in [
            ("windowed, host's day folder", [f"s3://fleet/telemetry/dt={day}/host={host}/",
                                             "--since", since, "--until", until]),
            ("windowed, whole prefix", ["s3://fleet/telemetry/", "--since", since,
                                        "--until", until, "--where", f"host={host}"]),
            ("full read", ["s3://fleet/telemetry/", "--where", f"host={host}"])]:
        before = len(proxy.seen)
        seconds = quiet_cat(*argv, "--endpoint-url", proxy.endpoint_url)
        objects, size = fetched(proxy, sizes, before)
        rows.append((label, objects, size, seconds))
    return rows


def duckdb_question(glob: str, host: str, since: str, until: str, repeat: int) -> tuple[
        float, int]:
    import duckdb

    query = f"""SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)
                WHERE host = '{host}' AND timestamp >= '{since}' AND timestamp < '{until}'"""
    times, answer = [], 0
    for _ in range(repeat):
        connection = duckdb.connect()
        started = time.perf_counter()
        [(answer,)] = connection.execute(query).fetchall()
        times.append(time.perf_counter() - started)
        connection.close()
    return statistics.median(times), answer


def timed_compaction(src: str, dest: str, endpoint: str | None, workers: int | None,
                     target_mb: float) -> float:
    from shoebox.lake import compact

    shutil.rmtree(dest, ignore_errors=True)
    if workers is None:
        started = time.perf_counter()
        compact(src, dest, endpoint_url=endpoint, target_mb=target_mb)
        return time.perf_counter() - started
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        # Warm-up, not timed: each worker imports shoebox and pyarrow.
        client.run(importlib.import_module, "shoebox.lake")
        started = time.perf_counter()
        compact(src, dest, endpoint_url=endpoint, client=client, target_mb=target_mb)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--per-day", type=int, default=24)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--target-mb", type=float, default=256.0,
                        help="compaction's file size; below a day's size, days are "
                             "compacted in parts (more tasks for the workers)")
    args = parser.parse_args()
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log

    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host_, port = server.get_host_and_port()
    endpoint = f"http://{host_}:{port}"
    work = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="fleet")
        started = time.perf_counter()
        records = write_fleet(work / "fleet", args.hosts, args.days, args.per_day, args.records)
        ship(work / "fleet", "s3://fleet/telemetry", endpoint)
        sizes = {item["Key"]: item["Size"] for page in client.get_paginator(
            "list_objects_v2").paginate(Bucket="fleet") for item in page.get("Contents", ())}
        print(f"fleet: {args.hosts} hosts x {args.days} days x {args.per_day} archives/day = "
              f"{len(sizes)} archives, {records:,} records, {sum(sizes.values()) / 1e6:.1f} MB "
              f"shipped (built in {time.perf_counter() - started:.0f} s); load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        host = f"web-{min(3, args.hosts - 1)}"
        since = (START + datetime.timedelta(hours=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
        until = (START + datetime.timedelta(hours=14, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

        print(f"\n(a) {host}, {since} to {until}")
        with FaultProxy(endpoint) as proxy:
            rows = part_a(proxy, sizes, host, since, until)
        full = rows[-1]
        for label, objects, size, seconds in rows:
            print(f"  {label:30} {objects:5} objects ({100 * objects / full[1]:5.1f}%)  "
                  f"{size / 1e6:8.2f} MB  {seconds:7.2f} s")

        src = "s3://fleet/telemetry"
        target = args.target_mb
        in_process = timed_compaction(src, str(work / "lake"), endpoint, None, target)
        one = timed_compaction(src, str(work / "lake1"), endpoint, 1, target)
        two = timed_compaction(src, str(work / "lake2"), endpoint, 2, target)
        from shoebox.export import export

        started = time.perf_counter()
        export(src, work / "export", storage_options={"endpoint_url": endpoint})
        exported = time.perf_counter() - started
        # The same from a local copy of the bucket: moto serves every GET
        # from one Python process (this one), which the workers share.
        for key in sizes:
            copy = work / "copy" / key
            copy.parent.mkdir(parents=True, exist_ok=True)
            client.download_file("fleet", key, str(copy))
        local = str(work / "copy" / "telemetry")
        local_runs = [
            ("in process", timed_compaction(local, str(work / "l0"), None, None, target)),
            ("dask 1 worker", timed_compaction(local, str(work / "l1"), None, 1, target)),
            ("dask 2 workers", timed_compaction(local, str(work / "l2"), None, 2, target))]
        started = time.perf_counter()
        export(local, work / "export-local")
        local_runs.append(("shoebox export", time.perf_counter() - started))

        lake_files = len(list((work / "lake").glob("dt=*/*.parquet")))
        export_files = len(list((work / "export").glob("dt=*/*.parquet")))
        lake_s, lake_n = duckdb_question(f"{work}/lake/dt=*/*.parquet", host, since, until,
                                         args.repeat)
        export_s, export_n = duckdb_question(f"{work}/export/dt=*/*.parquet", host, since,
                                             until, args.repeat)
        assert lake_n == export_n, (lake_n, export_n)
        print(f"\n(b) the same question in DuckDB ({lake_n} records)")
        print(f"  lake    {lake_files:5} files  {lake_s * 1000:8.1f} ms")
        print(f"  export  {export_files:5} files  {export_s * 1000:8.1f} ms")
        print(f"  lake is {export_s / lake_s:.1f}x faster with {export_files / lake_files:.0f}x "
              "fewer files")

        for where, runs in [("S3 (moto)", [("in process", in_process), ("dask 1 worker", one),
                                           ("dask 2 workers", two),
                                           ("shoebox export", exported)]),
                            ("a local copy", local_runs)]:
            print(f"\n(c) compaction of {records:,} records from {where}")
            for label, seconds in runs:
                print(f"  {label:16} {seconds:7.2f} s  {records / seconds:10,.0f} records/s")
            timing = dict(runs)
            print(f"  2 workers / 1 worker: "
                  f"{timing['dask 1 worker'] / timing['dask 2 workers']:.2f}x; "
                  f"in process / export: "
                  f"{timing['shoebox export'] / timing['in process']:.2f}x")
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
