"""Ship MB of archives to a local S3 server with ``shoebox-sidecar --once``,
and, in the same run, do the same by hand: the gzip module then boto3's
``upload_file``, one file after another.

    python benchmarks/bench_sidecar.py [--mb 200] [--archive-mb 20] [--workers 2]
                                       [--compress gzip,zstd] [--level N]

The S3 server is moto's, in a process of its own on 127.0.0.1, so that
neither side shares an interpreter with it. The sidecar runs once per
method in ``--compress``. Prints MB/s of archive data for each, the speedup
over the by-hand path, the compression ratio, and the sidecar's peak RSS
(from ``wait4``). Each archive's records are log-like JSON (a few metadata pairs,
~300-byte payloads with varied words and numbers).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]

from shoebox import SizeRollChecker, WritingRollManager  # noqa: E402

WORDS = ("instance", "created", "deleted", "resized", "volume", "attached", "detached",
         "network", "port", "scheduler", "compute", "api", "request", "tenant", "user",
         "image", "flavor", "host", "region", "zone", "ok", "error", "retry", "timeout",
         "queue", "message")


def make_archives(directory: str, total_mb: float, archive_mb: float) -> list[str]:
    """Write about ``total_mb`` of records into archives of ``archive_mb``."""
    rng = random.Random(0)
    writer = WritingRollManager("bench_%Y%m%d_%H%M%S_%f.events",
                                SizeRollChecker(roll_size_mb=archive_mb), directory=directory)
    written = 0
    sequence = 0
    while written < total_mb * 1024 * 1024:
        batch = []
        for _ in range(1000):
            sequence += 1
            metadata = {"request_id": f"req-{rng.getrandbits(64):016x}",
                        "tenant": f"tenant-{rng.randrange(50)}", "level": "INFO"}
            payload = json.dumps({
                "event": f"compute.instance.{rng.choice(WORDS)}.end", "seq": sequence,
                "message": " ".join(rng.choices(WORDS, k=20)),
                "duration_ms": round(rng.random() * 1000, 3),
                "host": f"compute-{rng.randrange(100):02d}",
                "detail": " ".join(rng.choices(WORDS, k=12))})
            batch.append((metadata, payload))
        for metadata, payload in batch:
            writer.write(metadata, payload)
            written += len(payload) + 80
    writer.close()
    return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                  if name.endswith(".events"))


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # a benchmark may poll; tests never do
    return server, f"http://127.0.0.1:{port}"


def by_hand(paths: list[str], client, bucket: str, scratch: str,
            level: int) -> tuple[float, float]:
    """Gzip then upload each archive in turn; return seconds and CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        compressed = os.path.join(scratch, os.path.basename(path) + ".gz")
        with open(path, "rb") as source, gzip.open(compressed, "wb", compresslevel=level) as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        client.upload_file(compressed, bucket, f"hand/{os.path.basename(path)}.gz")
        os.unlink(compressed)
    return time.perf_counter() - start, time.process_time() - cpu


def sidecar(paths: list[str], watch: str, endpoint: str, bucket: str, prefix: str,
            workers: int, compress: str, level: int | None) -> tuple[float, float, int]:
    """Run the sidecar --once over hard links of ``paths``; return seconds, CPU
    seconds and peak RSS in bytes."""
    os.makedirs(watch)
    for path in paths:
        os.link(path, os.path.join(watch, os.path.basename(path)))
    env = dict(os.environ, PYTHONPATH=ROOT)
    command = [sys.executable, "-m", "shoebox_sidecar", watch, "--dest",
               f"s3://{bucket}/{prefix}", "--endpoint-url", endpoint, "--once",
               "--workers", str(workers), "--compress", compress, "--log-level", "WARNING"]
    if level is not None:
        command += ["--level", str(level)]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 or os.listdir(watch):
        raise SystemExit(f"sidecar failed ({process.returncode}) or left {os.listdir(watch)}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def stored(client, bucket: str, prefix: str) -> int:
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        total += sum(item["Size"] for item in page.get("Contents", []))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200, help="archive data to ship (MB)")
    parser.add_argument("--archive-mb", type=float, default=20, help="size of each archive")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compress", default="gzip,zstd",
                        help="comma-separated methods for the sidecar runs")
    parser.add_argument("--level", type=int, default=None)
    args = parser.parse_args()
    methods = args.compress.split(",")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        paths = make_archives(os.path.join(scratch, "archives"), args.mb, args.archive_mb)
        size = sum(os.path.getsize(path) for path in paths)
        server, endpoint = start_server()
        try:
            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket="bench")
            seconds, cpu = by_hand(paths, client, "bench", scratch,
                                   6 if args.level is None else args.level)
            rows.append(("by hand: gzip, upload_file", seconds, cpu,
                         stored(client, "bench", "hand/"), None))
            for method in methods:
                seconds, cpu, rss = sidecar(paths, os.path.join(scratch, f"watch-{method}"),
                                       endpoint, "bench", method, args.workers, method,
                                       args.level)
                rows.append((f"shoebox-sidecar --compress {method}", seconds, cpu,
                             stored(client, "bench", f"{method}/"), rss))
        finally:
            server.terminate()
            server.wait()
    mb = size / 1e6
    print(f"{len(paths)} archives, {mb:.1f} MB; sidecar --once --workers {args.workers}")
    print(f"{'':34} {'seconds':>8} {'MB/s':>7} {'speedup':>8} {'cores':>6} {'ratio':>6} "
          f"{'peak RSS':>9}")
    for name, seconds, cpu, shipped, rss in rows:
        memory = "" if rss is None else f"{rss / 2**20:.0f} MiB"
        print(f"{name:34} {seconds:8.2f} {mb / seconds:7.1f} {rows[0][1] / seconds:7.2f}x "
              f"{cpu / seconds:6.2f} {size / shipped:6.2f} {memory:>9}")
    print("cores: CPU seconds of that process over its wall time (the S3 server's own "
          "work is not counted)")


if __name__ == "__main__":
    main()
