"""Write and read records through shoebox's roll managers, and the same
records as JSON Lines (the obvious alternative), from 1 and 4 threads.

    python benchmarks/bench_core.py [--records N] [--payload-bytes B] [--repeat R]
                                    [--baseline DIR]

Each record: 3 metadata pairs and a ~300-byte JSON payload. The pairs
compared, like for like:

- *write-through*: ``WritingRollManager`` (16 MiB size rolls; each record
  reaches the operating system before ``write()`` returns) against a JSON
  Lines file flushed after every line;
- *buffered*: ``WritingRollManager(buffer_size=65536)`` against a plain
  buffered JSON Lines file;
- *read*: ``ReadingRollManager`` against ``json.loads`` per line;
- *encode*: ``encode_record`` against ``json.dumps`` of the same record
  (one thread).

JSON Lines lines are ``json.dumps({"metadata": …, "payload": …})``. With 4
threads, writers share one ``WritingRollManager`` (or one file behind a
lock); readers each read their own quarter of the files. ``ratio`` is
JSON Lines' time over shoebox's (higher: shoebox is faster), from wall
time; ``ratio of CPU time`` from the processes' CPU time, which a machine
shared with other jobs disturbs less. Writes end with
closing (shoebox: ``durability="never"``, so neither side calls ``fsync``,
whose time on a shared disk would drown the difference). Every measurement
runs in a fresh process; the runs of all configurations are interleaved
(so a machine whose speed drifts affects all alike), each after an
untimed warm-up pass, and the median of ``--repeat`` counts.
``--baseline DIR`` also runs shoebox's side from another source tree (an
older checkout) in the same rounds.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADS = (1, 4)
# (label, shoebox operation, JSON Lines operation)
PAIRS = [("write-through", "sb_through", "jl_flushed"),
         ("buffered 64 KiB", "sb_buffered", "jl_buffered"),
         ("read", "sb_read", "jl_read"),
         ("encode one record", "sb_encode", "jl_encode")]
SINGLE_THREAD_ONLY = {"sb_encode", "jl_encode"}
WARM_UP = 5000


def make_records(n: int, payload_bytes: int) -> list[tuple[dict[str, str], str]]:
    records = []
    for i in range(n):
        metadata = {"request_id": f"req-{i:08d}", "tenant": f"tenant-{i % 17}",
                    "level": "INFO"}
        body = {"event": "compute.instance.create.end", "seq": i,
                "message": "instance created", "host": "compute-07"}
        pad = max(0, payload_bytes - len(json.dumps(body)) - 12)
        body["detail"] = "x" * pad
        records.append((metadata, json.dumps(body)))
    return records


def timed(threads: int, work: Callable[[int], None]) -> float:
    if threads == 1:
        start = time.perf_counter()
        work(0)
        return time.perf_counter() - start
    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - start


def sb_write(directory: str, records, threads: int, buffer_size: int) -> float:
    from shoebox import SizeRollChecker, WritingRollManager

    writer = WritingRollManager("bench_%Y%m%d_%H%M%S_%f.events", SizeRollChecker(roll_size_mb=16),
                                directory=directory, buffer_size=buffer_size,
                                durability="never")
    share = len(records) // threads

    def work(t: int) -> None:
        write = writer.write
        for metadata, payload in records[t * share:(t + 1) * share]:
            write(metadata, payload)

    seconds = timed(threads, work)
    start = time.perf_counter()
    writer.close()
    return seconds + time.perf_counter() - start


def jl_write(directory: str, records, threads: int, flush: bool) -> float:
    """JSON Lines writers sharing one file behind a lock."""
    share = len(records) // threads
    lock = threading.Lock()
    out = open(os.path.join(directory, "bench.jsonl"), "w", encoding="utf-8")  # noqa: SIM115

    def work(t: int) -> None:
        dumps = json.dumps
        for metadata, payload in records[t * share:(t + 1) * share]:
            line = dumps({"metadata": metadata, "payload": payload}) + "\n"
            with lock:
                out.write(line)
                if flush:
                    out.flush()

    seconds = timed(threads, work)
    start = time.perf_counter()
    out.close()
    return seconds + time.perf_counter() - start


def sb_read(directory: str, threads: int) -> float:
    from shoebox import ReadingRollManager

    parts = len(glob.glob(os.path.join(directory, "part_*.events")))

    def work(t: int) -> None:
        mine = "".join(str(p) for p in range(t, parts, threads))
        for _metadata, _payload in ReadingRollManager(f"part_[{mine}].events",
                                                      directory=directory):
            pass

    return timed(threads, work)


def jl_read(directory: str, threads: int) -> float:
    paths = sorted(glob.glob(os.path.join(directory, "*.jsonl")))

    def work(t: int) -> None:
        loads = json.loads
        for path in paths[t::threads]:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    record = loads(line)
                    _metadata, _payload = record["metadata"], record["payload"]

    return timed(threads, work)


def encode_loop(records, encode: Callable[[dict[str, str], str], object]) -> float:
    start = time.perf_counter()
    for metadata, payload in records:
        encode(metadata, payload)
    return time.perf_counter() - start


def run_one(op: str, threads: int, records, data: str) -> float:
    """Seconds for one operation over all records, in this process."""
    if op in ("sb_read", "jl_read"):
        return sb_read(os.path.join(data, "events"), threads) if op == "sb_read" \
            else jl_read(os.path.join(data, "jsonl"), threads)
    if op == "sb_encode":
        from shoebox import encode_record
        return encode_loop(records, encode_record)
    if op == "jl_encode":
        return encode_loop(records, lambda metadata, payload: json.dumps(
            {"metadata": metadata, "payload": payload}))
    with tempfile.TemporaryDirectory() as directory:
        if op == "sb_through":
            return sb_write(directory, records, threads, 0)
        if op == "sb_buffered":
            return sb_write(directory, records, threads, 64 * 1024)
        return jl_write(directory, records, threads, flush=op == "jl_flushed")


def prepare(data: str, records, parts: int) -> None:
    """The files the readers read: ``parts`` archives and ``parts`` JSON Lines files."""
    from shoebox import NeverRollChecker, WritingRollManager

    size = len(records) // parts
    os.makedirs(os.path.join(data, "jsonl"))
    for p in range(parts):
        chunk = records[p * size:(p + 1) * size]
        with WritingRollManager(f"part_{p}.events", NeverRollChecker(),
                                directory=os.path.join(data, "events")) as writer:
            for metadata, payload in chunk:
                writer.write(metadata, payload)
        with open(os.path.join(data, "jsonl", f"part_{p}.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"metadata": m, "payload": p_}) + "\n" for m, p_ in chunk)


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(root), os.environ.get("PYTHONPATH")]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--payload-bytes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of every configuration, interleaved; the median counts (5)")
    parser.add_argument("--baseline", type=Path,
                        help="also run shoebox's side from this source tree")
    parser.add_argument("--run", nargs=3, metavar=("OP", "THREADS", "DATA"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    # A multiple of 4, so that 4 threads share the records evenly.
    args.records -= args.records % max(THREADS)
    records = make_records(args.records, args.payload_bytes)
    if args.run:
        op, threads, data = args.run
        # Untimed, once, on a few records (reads: on all the files): a fresh
        # process's first pass pays for growing its heap and specializing
        # the interpreter's code, which a long-running process has paid.
        run_one(op, 1, records[:WARM_UP], data)
        cpu = time.process_time()
        wall = run_one(op, int(threads), records, data)
        print(json.dumps({"wall": wall, "cpu": time.process_time() - cpu}))
        return

    trees = {"": ROOT} | ({" (baseline)": args.baseline.resolve()} if args.baseline else {})
    configs = [(op, threads, tag) for _, sb, jl in PAIRS for op in (sb, jl)
               for threads in THREADS for tag in trees
               if not (op in SINGLE_THREAD_ONLY and threads > 1)
               and not (tag and op.startswith("jl_"))]
    seconds: dict[tuple[str, int, str], list[dict[str, float]]] = {
        config: [] for config in configs}
    with tempfile.TemporaryDirectory() as data:
        prepare(data, records, max(THREADS))
        for _ in range(args.repeat):
            for op, threads, tag in configs:
                out = subprocess.run(
                    [sys.executable, __file__, "--records", str(args.records),
                     "--payload-bytes", str(args.payload_bytes),
                     "--run", op, str(threads), data],
                    env=_env(trees[tag]), check=True, capture_output=True, text=True).stdout
                seconds[(op, threads, tag)].append(json.loads(out))
    median = {config: {measure: statistics.median(run[measure] for run in runs)
                       for measure in ("wall", "cpu")}
              for config, runs in seconds.items()}
    print(f"{args.records:,} records (3 metadata pairs, ~{args.payload_bytes}-byte JSON "
          f"payload), median of {args.repeat} interleaved runs, each in a fresh process; "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print("| operation | threads | shoebox rec/s | JSON Lines rec/s | ratio "
          "| ratio of CPU time |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, sb, jl in PAIRS:
        for threads in THREADS:
            if sb in SINGLE_THREAD_ONLY and threads > 1:
                continue
            theirs = median[(jl, threads, "")]
            for tag in trees:
                ours = median[(sb, threads, tag)]
                print(f"| {label}{tag} | {threads} | {args.records / ours['wall']:,.0f} "
                      f"| {args.records / theirs['wall']:,.0f} "
                      f"| {theirs['wall'] / ours['wall']:.2f}x "
                      f"| {theirs['cpu'] / ours['cpu']:.2f}x |")


if __name__ == "__main__":
    main()
