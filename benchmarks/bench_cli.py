"""Benchmark: ``shoebox cat`` versus ``zcat`` + a Python JSON Lines loop.

Writes ~``--megabytes`` MB (uncompressed) of log-like records into gzip
archives, and the same records as a gzip-compressed JSON Lines file. Then,
in one run, times

* ``shoebox cat ARCHIVES > /dev/null`` (decompress, decode, check every
  checksum, print JSON Lines), and
* ``zcat LINES.gz | python -c '<json.loads + json.dumps per line>' > /dev/null``,

and prints records/s for each and their ratio (target: at least 0.8).

    python benchmarks/bench_cli.py [--megabytes 100] [--files 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from shoebox import compression, encode_record  # noqa: E402

BASELINE = (
    "import json, sys\n"
    "write = sys.stdout.write\n"
    "for line in sys.stdin:\n"
    "    write(json.dumps(json.loads(line)) + '\\n')\n"
)


def _records(count: int, seed: int = 7):
    """Log-like records: the metadata the logging handler writes and a
    python-json-logger payload."""
    rng = random.Random(seed)
    loggers = ["app.http", "app.db", "app.jobs", "app.auth"]
    levels = ["INFO"] * 8 + ["WARNING", "ERROR"]
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
             "kappa", "lambda", "mu"]
    for index in range(count):
        level = rng.choice(levels)
        logger = rng.choice(loggers)
        stamp = f"2026-11-27T{index // 3600000 % 24:02d}:{index // 60000 % 60:02d}:" \
                f"{index // 1000 % 60:02d}.{index % 1000:03d}Z"
        metadata = {"level": level, "logger": logger, "timestamp": stamp,
                    "host": "web-1", "pid": "4242"}
        payload = {"message": " ".join(rng.choices(words, k=rng.randint(4, 16))),
                   "timestamp": stamp, "level": level, "logger": logger,
                   "module": "views", "funcName": "handle", "lineno": rng.randint(1, 900),
                   "request_id": f"{rng.getrandbits(64):016x}",
                   "duration_ms": round(rng.random() * 250, 3), "status": rng.choice([200, 404])}
        yield metadata, json.dumps(payload)


def _prepare(directory: str, megabytes: float, files: int) -> tuple[list[str], str, int]:
    """Write the gzip archives and the gzip JSON Lines file; return their
    paths and the record count."""
    target = int(megabytes * 1e6)
    archives = [os.path.join(directory, f"bench-{index:02d}.events") for index in range(files)]
    lines_path = os.path.join(directory, "bench.jsonl.gz")
    written = count = 0
    outputs = [open(path, "wb") for path in archives]  # noqa: SIM115
    with gzip.open(lines_path, "wt", encoding="utf-8", compresslevel=6) as lines:
        for metadata, payload in _records(10**9):
            record = encode_record(metadata, payload)
            outputs[count % files].write(record)
            lines.write(json.dumps({"metadata": metadata, "payload": json.loads(payload)}) + "\n")
            written += len(record)
            count += 1
            if written >= target:
                break
    gz_archives = []
    for output, path in zip(outputs, archives, strict=True):
        output.close()
        with (open(path, "rb") as source, open(path + ".gz", "wb") as target_file,
              compression.open_compressor(target_file, "gzip") as sink):
            shutil.copyfileobj(source, sink, 1 << 20)
        os.unlink(path)
        gz_archives.append(path + ".gz")
    return gz_archives, lines_path, count


def _time(command: str) -> float:
    env = dict(os.environ, PYTHONPATH=ROOT)
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=100.0,
                        help="uncompressed archive data to generate (default: 100)")
    parser.add_argument("--files", type=int, default=4, help="archives to spread it over")
    parser.add_argument("--keep", metavar="DIR", help="write the data here and keep it")
    args = parser.parse_args()
    directory = args.keep or tempfile.mkdtemp(prefix="bench-cli-")
    os.makedirs(directory, exist_ok=True)
    try:
        archives, lines_path, count = _prepare(directory, args.megabytes, args.files)
        quoted = " ".join(archives)
        shoebox = _time(f"{sys.executable} -m shoebox cat {quoted} > /dev/null")
        baseline = _time(f"zcat {lines_path} | {sys.executable} -c {_quote(BASELINE)} "
                         "> /dev/null")
    finally:
        if not args.keep:
            shutil.rmtree(directory)
    print(f"records: {count:,} ({args.megabytes:g} MB of archives in {args.files} gzip files)")
    print(f"shoebox cat:             {shoebox:7.2f} s  {count / shoebox:12,.0f} records/s")
    print(f"zcat + json loads/dumps: {baseline:7.2f} s  {count / baseline:12,.0f} records/s")
    print(f"ratio (shoebox / baseline): {baseline / shoebox:.2f}  (target >= 0.8)")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    main()
