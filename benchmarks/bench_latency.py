"""Tail latency of a log call: every call timed, across many rolls (issue 19).

Each configuration logs the same record as ``bench_logging.py`` (a message
with two arguments and two extras) into archives or files that roll every
2 MB, from 1 and from 4 threads, in two loops: ``tight`` (log calls back
to back) and ``app`` (each call followed by ~100 µs of work that releases
the GIL, ``time.sleep``, as a request waiting on a socket does). Every call
is timed with ``perf_counter_ns``; the table gives, over all calls of all
threads, the mean, p50, p99, p99.9, p99.99, the worst call and how many
took over 1 ms. Each run is a fresh process (``bench_logging``'s harness:
the same record, handlers and environment), configurations interleaved
round after round; each figure is the median of ``--repeat`` runs.

    python benchmarks/bench_latency.py [--records 100000] [--repeat 3] [--svg docs/latency.svg]
                                       [--baseline DIR]

``--svg`` writes the plot (p50 … max per handler, log scale; stdlib only).
``--baseline DIR`` also runs the shoebox rows from another source tree (an
older checkout) in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import bench_logging
from bench_logging import ROOT, _env, _loguru_log_function, _stdlib_log_function

ROLL_BYTES = 2 << 20
WARM_UP = 500
THREADS = (1, 4)
LOOPS = ("tight", "app")
APP_WORK_SECONDS = 100e-6
CONFIGS = ["rotating+json", "QueueHandler+QueueListener", "loguru", "loguru enqueue",
           "shoebox blocking", "shoebox hold_gil", "shoebox non-blocking"]
MEASURES = ("mean", "p50", "p99", "p99.9", "p99.99", "max", "over_1ms")
PLOTTED = ("p50", "p99", "p99.9", "p99.99", "max")


def _shoebox(queue_size: int = 0, hold_gil: bool = False) -> Callable[[str], logging.Handler]:
    def build(directory: str) -> logging.Handler:
        from shoebox_logging import ShoeboxHandler

        return ShoeboxHandler(directory=directory, metadata_fields=["request_id", "tenant"],
                              roll_size_mb=ROLL_BYTES / (1 << 20), queue_size=queue_size,
                              hold_gil=hold_gil)

    return build


HANDLERS: dict[str, Callable[[str], logging.Handler]] = {
    "rotating+json": lambda directory: bench_logging._rotating_handler(directory, ROLL_BYTES),
    "QueueHandler+QueueListener": lambda directory: bench_logging._queue_handler(
        directory, ROLL_BYTES),
    "shoebox blocking": _shoebox(),
    "shoebox hold_gil": _shoebox(hold_gil=True),
    "shoebox non-blocking": _shoebox(queue_size=10_000),
}


def _log_function(config: str, directory: str) -> tuple[Callable[[], None],
                                                        Callable[[], None]]:
    if config.startswith("loguru"):
        return _loguru_log_function(directory, enqueue=config == "loguru enqueue",
                                    rotation="2 MB")
    return _stdlib_log_function(config, directory, HANDLERS)


def _percentile(ordered: list[int], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def run_one(config: str, threads: int, loop: str, records: int) -> dict[str, float]:
    """Time every call of one configuration in this process; µs."""
    with tempfile.TemporaryDirectory() as directory:
        log, close = _log_function(config, directory)
        for _ in range(WARM_UP):
            log()
        per_thread = records // threads
        barrier = threading.Barrier(threads)
        timings: list[list[int]] = [[] for _ in range(threads)]
        work = APP_WORK_SECONDS if loop == "app" else 0.0

        def calls(index: int) -> None:
            clock, sleep, own = time.perf_counter_ns, time.sleep, timings[index]
            barrier.wait()
            for _ in range(per_thread):
                start = clock()
                log()
                own.append(clock() - start)
                if work:
                    sleep(work)

        workers = [threading.Thread(target=calls, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        close()
    ordered = sorted(t for own in timings for t in own)
    return {"mean": statistics.fmean(ordered) / 1000, "p50": _percentile(ordered, 0.5),
            "p99": _percentile(ordered, 0.99), "p99.9": _percentile(ordered, 0.999),
            "p99.99": _percentile(ordered, 0.9999), "max": ordered[-1] / 1000,
            "over_1ms": sum(1 for t in ordered if t > 1_000_000)}


def _svg(results: dict[tuple[str, int, str], dict[str, float]], configs: list[str],
         path: Path, title: str) -> None:
    """p50 … max per handler, one panel per thread count and loop, log scale."""
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf"]
    panel_w, panel_h, left, top, gap = 330, 260, 60, 50, 40
    panels = [(threads, loop) for loop in LOOPS for threads in THREADS]
    width = left + len(panels) * (panel_w + gap)
    height = top + panel_h + 60 + 18 * len(configs)
    values = [results[(c, t, loop)][m] for c in configs for t, loop in panels for m in PLOTTED]
    low = 10 ** int(min(__import__("math").log10(max(v, 1)) for v in values))
    high = 10 ** (int(__import__("math").log10(max(values))) + 1)

    import math

    def y(value: float) -> float:
        fraction = (math.log10(max(value, low)) - math.log10(low)) / (
            math.log10(high) - math.log10(low))
        return top + panel_h - fraction * panel_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{title}</text>']
    for index, (threads, loop) in enumerate(panels):
        x0 = left + index * (panel_w + gap)
        out.append(f'<text x="{x0}" y="{top - 8}" font-size="12">{threads} thread'
                   f'{"s" if threads > 1 else ""}, {loop} loop</text>')
        out.append(f'<rect x="{x0}" y="{top}" width="{panel_w}" height="{panel_h}" '
                   'fill="none" stroke="#999"/>')
        decade = low
        while decade <= high:
            yy = y(decade)
            out.append(f'<line x1="{x0}" x2="{x0 + panel_w}" y1="{yy:.1f}" y2="{yy:.1f}" '
                       'stroke="#ddd"/>')
            if index == 0:
                label = f"{decade:,.0f} µs" if decade < 1000 else f"{decade / 1000:,.0f} ms"
                out.append(f'<text x="{x0 - 5}" y="{yy + 4:.1f}" text-anchor="end">'
                           f'{label}</text>')
            decade *= 10
        step = panel_w / (len(PLOTTED) + 1)
        for position, measure in enumerate(PLOTTED, 1):
            out.append(f'<text x="{x0 + position * step:.1f}" y="{top + panel_h + 15}" '
                       f'text-anchor="middle">{measure}</text>')
        for number, config in enumerate(configs):
            result = results[(config, threads, loop)]
            points = " ".join(f"{x0 + position * step:.1f},{y(result[measure]):.1f}"
                              for position, measure in enumerate(PLOTTED, 1))
            color = colors[number % len(colors)]
            out.append(f'<polyline points="{points}" fill="none" stroke="{color}" '
                       'stroke-width="1.5"/>')
            for point in points.split():
                px, py = point.split(",")
                out.append(f'<circle cx="{px}" cy="{py}" r="2.5" fill="{color}"/>')
    for number, config in enumerate(configs):
        yy = top + panel_h + 40 + 18 * number
        color = colors[number % len(colors)]
        out.append(f'<line x1="{left}" x2="{left + 24}" y1="{yy - 4}" y2="{yy - 4}" '
                   f'stroke="{color}" stroke-width="3"/>')
        out.append(f'<text x="{left + 30}" y="{yy}">{config}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000,
                        help="log calls per run, over all threads (default 100000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per configuration, interleaved; the median counts (3)")
    parser.add_argument("--only", nargs="+", metavar="CONFIG", choices=CONFIGS,
                        help="run only these configurations")
    parser.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS))
    parser.add_argument("--threads", nargs="+", type=int, default=list(THREADS))
    parser.add_argument("--svg", type=Path, help="write the plot here")
    parser.add_argument("--baseline", type=Path,
                        help="also run the shoebox rows from this source tree")
    parser.add_argument("--run", nargs=3, metavar=("CONFIG", "THREADS", "LOOP"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        config, threads, loop = args.run
        print(json.dumps(run_one(config, int(threads), loop, args.records)))
        return

    configs = [c for c in CONFIGS if not args.only or c in args.only]
    try:
        import loguru  # noqa: F401
    except ImportError:
        configs = [c for c in configs if not c.startswith("loguru")]
    rows = configs + [f"{c} (baseline)" for c in configs
                      if args.baseline and c.startswith("shoebox")]
    keys = [(c, t, loop) for loop in args.loops for t in args.threads for c in rows]
    runs: dict[tuple[str, int, str], list[dict[str, float]]] = {key: [] for key in keys}
    started = time.monotonic()
    for _ in range(args.repeat):
        for key in keys:
            row, threads, loop = key
            config = row.removesuffix(" (baseline)")
            root = args.baseline.resolve() if row != config else ROOT
            out = subprocess.run(
                [sys.executable, __file__, "--records", str(args.records),
                 "--run", config, str(threads), loop],
                env=_env(root), check=True, capture_output=True, text=True).stdout
            runs[key].append(json.loads(out))
    median = {key: {m: statistics.median(run[m] for run in results) for m in MEASURES}
              for key, results in runs.items()}
    load = os.getloadavg()
    print(f"{args.records:,} log calls per run, 2 MB rolls, median of {args.repeat} "
          f"interleaved runs, each in a fresh process; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; load average at the end {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; {time.monotonic() - started:.0f} s\n")
    print("| handler | threads | loop | mean µs | p50 | p99 | p99.9 | p99.99 | worst "
          "| calls > 1 ms |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for config, threads, loop in keys:
        r = median[(config, threads, loop)]
        print(f"| {config} | {threads} | {loop} | {r['mean']:.0f} | {r['p50']:.0f} "
              f"| {r['p99']:.0f} | {r['p99.9']:,.0f} | {r['p99.99']:,.0f} | {r['max']:,.0f} "
              f"| {r['over_1ms']:.0f} |")
    if args.svg:
        if set(args.loops) != set(LOOPS) or set(args.threads) != set(THREADS):
            parser.error("--svg needs every loop and thread count")
        _svg(median, rows, args.svg,
             f"Log call latency, µs (median of {args.repeat} runs of {args.records:,} calls)")


if __name__ == "__main__":
    main()
