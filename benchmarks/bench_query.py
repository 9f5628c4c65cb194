"""Archives into Arrow and Dask, against what a user writes by hand.

Writes ``--records`` log-like records (the logging handler's metadata, a
python-json-logger payload) into ``--files`` gzip archives, and the same
records as gzip JSON Lines files (``{"metadata": …, "payload": …}`` per
line). Then times, over the same records:

* ``by hand``: ``json.loads`` per line into ``pyarrow.Table.from_pylist``;
* ``to_table``: ``shoebox.arrow.to_table`` over the archives;
* ``by hand + Parquet``: the same table written with ``pyarrow.parquet.write_table``
  (zstd), one file;
* ``export``: ``shoebox.export.export`` of the archives to zstd Parquet,
  partitioned by day (what ``shoebox export`` does);
* ``dask 1 worker`` / ``dask 2 workers``: ``shoebox.dask.to_dataframe`` over
  the archives, grouped by host and level, computed on a ``LocalCluster``
  of 1 or 2 single-threaded worker processes (cluster start-up not timed).

All but Dask also run on 4 threads, each thread reading a quarter of the
files (the GIL serialises most of it: this shows what threads buy). Each
configuration runs in a fresh process, ``--repeat`` rounds, interleaved (one
run of every configuration per round, in a rotating order), and the median
counts: on a shared machine neighbours slow some runs, and interleaving
spreads that over all configurations.

    python benchmarks/bench_query.py [--records 200000] [--files 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_cli import _records  # noqa: E402 - log-like records, shared with bench_cli

from shoebox import compression, encode_record  # noqa: E402

#: (name, threads) of every configuration, and the one it is compared with.
CONFIGS = [(name, threads) for threads in (1, 4)
           for name in ("by hand", "to_table", "by hand + Parquet", "export")]
CONFIGS += [("dask 1 worker", 1), ("dask 2 workers", 1)]
BASELINES = {"to_table": "by hand", "export": "by hand + Parquet",
             "dask 2 workers": "dask 1 worker"}
GOALS = {"to_table": 1.5, "export": 1.5, "dask 2 workers": 1.6}


def prepare(directory: Path, records: int, files: int) -> None:
    """Write the gzip archives (``archives/``) and gzip JSON Lines (``lines/``)."""
    (directory / "archives").mkdir()
    (directory / "lines").mkdir()
    parts: list[list[bytes]] = [[] for _ in range(files)]
    lines: list[list[str]] = [[] for _ in range(files)]
    for index, (metadata, payload) in enumerate(_records(records)):
        parts[index % files].append(encode_record(metadata, payload))
        lines[index % files].append(json.dumps({"metadata": metadata,
                                                "payload": json.loads(payload)}) + "\n")
    for index in range(files):
        path = directory / "archives" / f"bench-{index:02d}.events.gz"
        with open(path, "wb") as target, compression.open_compressor(target, "gzip") as sink:
            sink.write(b"".join(parts[index]))
        with gzip.open(directory / "lines" / f"bench-{index:02d}.jsonl.gz", "wt",
                       encoding="utf-8", compresslevel=6) as text:
            text.write("".join(lines[index]))


def by_hand(paths: list[Path], out: Path) -> int:
    """``json.loads`` per line into ``Table.from_pylist``; return the rows."""
    import pyarrow as pa

    rows = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            rows.extend(json.loads(line) for line in lines)
    return pa.Table.from_pylist(rows).num_rows


def by_hand_parquet(paths: list[Path], out: Path) -> int:
    """The same, then the table written as one zstd Parquet file per thread."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            rows.extend(json.loads(line) for line in lines)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, out / f"{paths[0].name}.parquet", compression="zstd")
    return table.num_rows


def shoebox_table(paths: list[Path], out: Path) -> int:
    from shoebox.arrow import to_table

    return to_table(paths).num_rows


def shoebox_export(paths: list[Path], out: Path) -> int:
    from shoebox.export import export

    return sum(result.records for result in export(paths, out))


#: What each configuration runs, and over which files.
READERS: dict[str, tuple[Callable[[list[Path], Path], int], str]] = {
    "by hand": (by_hand, "lines"), "to_table": (shoebox_table, "archives"),
    "by hand + Parquet": (by_hand_parquet, "lines"), "export": (shoebox_export, "archives"),
}


def threaded(read: Callable[[list[Path], Path], int], paths: list[Path], out: Path,
             threads: int) -> int:
    """Read ``paths`` split over ``threads`` threads; return the rows read."""
    rows = [0] * threads

    def work(index: int) -> None:
        rows[index] = read(paths[index::threads], out)

    if threads == 1:
        work(0)
    else:
        pool = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    return sum(rows)


def dask_query(directory: Path, workers: int) -> tuple[float, int]:
    from distributed import Client, LocalCluster

    from shoebox.dask import to_dataframe

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        # Imports and first calls on the workers are start-up, not query
        # time: a query over one archive warms every worker.
        client.run(lambda: __import__("shoebox.dask"))
        first = sorted((directory / "archives").iterdir())[0]
        for _ in range(workers):
            to_dataframe(str(first)).groupby(["host", "level"]).size().compute()
        start = time.perf_counter()
        counts = to_dataframe(str(directory / "archives")).groupby(
            ["host", "level"]).size().compute()
        seconds = time.perf_counter() - start
    return seconds, int(counts.sum())


def run_one(directory: Path, config: str, threads: int) -> dict[str, float]:
    """Time one configuration in this process."""
    if config.startswith("dask"):
        seconds, rows = dask_query(directory, int(config.split()[1]))
        return {"seconds": seconds, "rows": rows}
    import pyarrow.parquet  # noqa: F401 - imports are not the query's time

    import shoebox.export  # noqa: F401

    read, inputs = READERS[config]
    paths = sorted((directory / inputs).iterdir())
    with tempfile.TemporaryDirectory(dir=directory) as out:
        start = time.perf_counter()
        rows = threaded(read, paths, Path(out), threads)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=8, help="archives (and JSON Lines files)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--keep", metavar="DIR", help="write the data here and keep it")
    parser.add_argument("--run", nargs=3, metavar=("DIR", "CONFIG", "THREADS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(Path(args.run[0]), args.run[1], int(args.run[2]))))
        return

    directory = Path(args.keep or tempfile.mkdtemp(prefix="bench-query-"))
    directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    runs: dict[tuple[str, int], list[float]] = {config: [] for config in CONFIGS}
    try:
        prepare(directory, args.records, args.files)
        for round_ in range(args.repeat):
            order = CONFIGS[round_ % len(CONFIGS):] + CONFIGS[:round_ % len(CONFIGS)]
            for config, threads in order:
                result = json.loads(subprocess.run(
                    [sys.executable, __file__, "--run", str(directory), config, str(threads)],
                    env=env, check=True, capture_output=True, text=True).stdout)
                if result["rows"] != args.records:
                    raise SystemExit(f"{config} read {result['rows']} rows, "
                                     f"not {args.records}")
                runs[(config, threads)].append(result["seconds"])
    finally:
        if not args.keep:
            shutil.rmtree(directory)
    print(f"{args.records:,} records in {args.files} gzip files, median of {args.repeat} "
          f"interleaved runs, each in a fresh process; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs\n")
    print("| configuration | threads | median s | records/s | vs | speed-up | goal |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    medians = {config: statistics.median(times) for config, times in runs.items()}
    for (config, threads), seconds in medians.items():
        baseline = BASELINES.get(config)
        versus = ratio = goal = ""
        if baseline is not None:
            versus = baseline
            ratio = f"{medians[(baseline, threads)] / seconds:.2f}x"
            goal = f">= {GOALS[config]}x"
        print(f"| {config} | {threads} | {seconds:.2f} | {args.records / seconds:,.0f} "
              f"| {versus} | {ratio} | {goal} |")


if __name__ == "__main__":
    main()
