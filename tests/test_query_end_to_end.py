"""From logging calls to answers: three simulated hosts log through
ShoeboxHandler, the sidecar ships their archives to S3 (moto over HTTP) with
Hive keys, then Dask on a LocalCluster and ``shoebox export`` + DuckDB count
exactly the records logged, per level and per host."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys

import duckdb
from archive_files import run, subprocess_env

from shoebox.dask import read_archives, to_dataframe

# One process per simulated host: the handler takes the host from
# socket.gethostname(), for the metadata and the archive's name.
HOST_SCRIPT = """
import json, logging, socket, sys
socket.gethostname = lambda: sys.argv[2]
from shoebox_logging import ShoeboxHandler
handler = ShoeboxHandler(directory=sys.argv[1])
logger = logging.getLogger("app")
logger.addHandler(handler)
logger.setLevel(logging.DEBUG)
for level, count in json.loads(sys.argv[3]).items():
    for index in range(count):
        logger.log(getattr(logging, level), "request %d done", index, extra={"n": index})
handler.close()
"""

LOGGED = {
    "web-1": {"DEBUG": 5, "INFO": 40, "WARNING": 7, "ERROR": 3},
    "web-2": {"INFO": 25, "ERROR": 9},
    "web-3": {"INFO": 11, "WARNING": 2, "CRITICAL": 1},
}
HIVE_KEY = re.compile(r"telemetry/dt=(\d{4}-\d\d-\d\d)/host=(web-\d)/"
                      r"\d{8}T\d{6}Z-\d{8}T\d{6}Z_(log_[\w-]+\.events\.gz)")


def expected_counts() -> collections.Counter[tuple[str, str]]:
    return collections.Counter({(host, level): count for host, levels in LOGGED.items()
                                for level, count in levels.items()})


def test_logged_records_are_counted_exactly_by_dask_and_by_duckdb_over_the_export(
        tmp_path, s3_server, bucket, dask_client, capsys):
    for host, levels in LOGGED.items():
        logs = tmp_path / host
        subprocess.run([sys.executable, "-c", HOST_SCRIPT, str(logs), host, json.dumps(levels)],
                       env=subprocess_env(), check=True, timeout=60)
        subprocess.run([sys.executable, "-m", "shoebox_sidecar", str(logs),
                        "--dest", f"s3://{bucket}/telemetry",
                        "--endpoint-url", s3_server.endpoint_url, "--once",
                        "--key-template", "hive", "--host", host],
                       env=subprocess_env(), check=True, timeout=120, capture_output=True)
        assert not list(logs.glob("*.events"))  # shipped, confirmed, deleted

    client = s3_server.client()
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 3
    for key in keys:
        day, host, name = HIVE_KEY.fullmatch(key).groups()
        assert host in name
        # The key's day is the archive's first record's.
        first = run(capsys, "cat", f"s3://{bucket}/{key}", "--limit", "1",
                    "--endpoint-url", s3_server.endpoint_url)[1]
        assert json.loads(first)["metadata"]["timestamp"].startswith(day)

    options = {"endpoint_url": s3_server.endpoint_url}
    bag = read_archives(f"s3://{bucket}/telemetry/", storage_options=options)
    assert bag.npartitions == 3
    by_host_level = bag.map(lambda record: (record["metadata"]["host"],
                                            record["metadata"]["level"])).frequencies()
    assert collections.Counter(dict(by_host_level.compute())) == expected_counts()
    frame = to_dataframe(f"s3://{bucket}/telemetry/", storage_options=options)
    per_level = frame.groupby("level").size().compute().to_dict()
    assert per_level == {level: sum(count for (_, lvl), count in expected_counts().items()
                                    if lvl == level)
                         for level in {level for _, level in expected_counts()}}

    status, out, _err = run(capsys, "export", f"s3://{bucket}/telemetry/",
                            "--to", tmp_path / "export", "--partition-by", "dt,host",
                            "--endpoint-url", s3_server.endpoint_url)
    assert status == 0 and out.startswith("exported 3 archives, 103 records")
    rows = duckdb.sql(f"""
        SELECT host, level, count(*) FROM read_parquet('{tmp_path}/export/**/*.parquet',
                                                       hive_partitioning = true)
        GROUP BY ALL""").fetchall()
    assert collections.Counter({(host, level): count for host, level, count in rows}
                               ) == expected_counts()
    messages = duckdb.sql(f"""
        SELECT count(*) FROM read_parquet('{tmp_path}/export/**/*.parquet',
                                          hive_partitioning = true)
        WHERE payload->>'message' LIKE 'request % done'""").fetchall()
    assert messages == [(103,)]
