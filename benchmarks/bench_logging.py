"""Records per second through ShoeboxHandler and the alternatives.

Every configuration logs the same record (a message with two arguments and
two extras, which shoebox also copies into its metadata) from 1 and from 4
threads. Each run is a fresh process; the runs of all configurations are
interleaved, round after round, and the median of ``--repeat`` counts.

Per record, the table gives the logging threads' time as they see it
(``caller``: wall time from start to the last logging thread's end), the
CPU time those threads spent themselves (``caller CPU``: ``thread_time``,
which leaves out a writer thread's work and the time spent waiting for the
interpreter lock), and the time to have everything written (``total``:
until ``close()`` returns; for queued configurations, the queue drained).
``floor`` is a handler that does nothing (logging's own cost); ``speed`` is
``RotatingFileHandler`` + python-json-logger's ``JsonFormatter`` total time
divided by the row's (higher is faster). ``(json)`` rows make the default
formatter use the standard library's ``json`` even where orjson is
installed. ``--baseline DIR`` also runs the shoebox rows from another
source tree (an older checkout) in the same rounds. The last row measures
an alternative to the writer thread, a writer process fed through a pipe
(``_writer_process.py``, a prototype that is not part of shoebox).

    python benchmarks/bench_logging.py [--records 50000] [--repeat 5] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import queue
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
WARM_UP = 500
SHOEBOX = ["shoebox", "shoebox (json)", "shoebox hold_gil", "shoebox non-blocking",
           "shoebox non-blocking (json)"]
PROTOTYPE = "writer process (prototype)"
CONFIGS = ["floor", "rotating+json", "QueueHandler+QueueListener", "loguru enqueue", *SHOEBOX,
           PROTOTYPE]
# Rows an older tree can run: those that use no option it may not have.
BASELINE = ["shoebox", "shoebox non-blocking"]


class _DoNothing(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


def _null_handler(directory: str) -> logging.Handler:
    return _DoNothing()


def _rotating_handler(directory: str, max_bytes: int = 64 << 20) -> logging.Handler:
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.handlers.RotatingFileHandler(
        os.path.join(directory, "bench.log"), maxBytes=max_bytes, backupCount=5)
    handler.setFormatter(JsonFormatter(
        "%(message)s %(levelname)s %(name)s %(module)s %(funcName)s %(lineno)d "
        "%(threadName)s %(processName)s", timestamp=True))
    return handler


def _queue_handler(directory: str, max_bytes: int = 64 << 20) -> logging.Handler:
    handler = logging.handlers.QueueHandler(queue.SimpleQueue())
    listener = logging.handlers.QueueListener(handler.queue,
                                              _rotating_handler(directory, max_bytes))
    listener.start()
    closing = handler.close

    def close() -> None:
        if listener._thread is not None:  # logging.shutdown() closes it again at exit
            listener.stop()  # writes everything queued, then joins its thread
            for target in listener.handlers:
                target.close()
        closing()

    handler.close = close  # type: ignore[method-assign]
    return handler


def _shoebox_handler(config: str) -> Callable[[str], logging.Handler]:
    def build(directory: str) -> logging.Handler:
        from shoebox_logging import ShoeboxHandler

        handler = ShoeboxHandler(directory=directory, metadata_fields=["request_id", "tenant"],
                                 queue_size=10_000 if "non-blocking" in config else 0,
                                 hold_gil="hold_gil" in config)
        if "(json)" in config:
            from shoebox_logging import ShoeboxJsonFormatter

            handler.setFormatter(ShoeboxJsonFormatter(encoder="json"))
        return handler

    return build


def _writer_process_handler(directory: str) -> logging.Handler:
    from _writer_process import WriterProcessHandler

    return WriterProcessHandler(directory)


HANDLERS: dict[str, Callable[[str], logging.Handler]] = {
    PROTOTYPE: _writer_process_handler,
    "floor": _null_handler,
    "rotating+json": _rotating_handler,
    "QueueHandler+QueueListener": _queue_handler,
    **{config: _shoebox_handler(config) for config in SHOEBOX},
}


def _stdlib_log_function(config: str, directory: str,
                         handlers: dict[str, Callable[[str], logging.Handler]] | None = None,
                         ) -> tuple[Callable[[], None], Callable[[], None]]:
    """The benchmark's log call through ``handlers[config]`` (default
    :data:`HANDLERS`), and how to close it."""
    handler = (HANDLERS if handlers is None else handlers)[config](directory)
    logger = logging.getLogger("bench")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def log() -> None:
        logger.info("user %s did %s", "ann", "login",
                    extra={"request_id": "7f3a9c", "tenant": "acme"})

    return log, handler.close


def _loguru_log_function(directory: str, enqueue: bool = True, rotation: str | None = None,
                         ) -> tuple[Callable[[], None], Callable[[], None]]:
    from loguru import logger

    logger.remove()
    logger.add(os.path.join(directory, "bench.log"), serialize=True, level="INFO",
               enqueue=enqueue, rotation=rotation)

    def log() -> None:
        logger.info("user {} did {}", "ann", "login", request_id="7f3a9c", tenant="acme")

    def close() -> None:
        logger.complete()
        logger.remove()

    return log, close


def run_one(config: str, threads: int, records: int) -> dict[str, float]:
    """Time one configuration in this process; return µs per record."""
    with tempfile.TemporaryDirectory() as directory:
        if config == "loguru enqueue":
            log, close = _loguru_log_function(directory)
        else:
            log, close = _stdlib_log_function(config, directory)
        for _ in range(WARM_UP):
            log()
        per_thread = records // threads
        barrier = threading.Barrier(threads + 1)
        cpu = [0.0] * threads

        def work(index: int) -> None:
            barrier.wait()
            start = time.thread_time()
            for _ in range(per_thread):
                log()
            cpu[index] = time.thread_time() - start

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        caller = time.perf_counter() - start
        close()
        total = time.perf_counter() - start
    count = per_thread * threads
    return {"caller": caller / count * 1e6, "cpu": sum(cpu) / count * 1e6,
            "total": total / count * 1e6}


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(root), os.environ.get("PYTHONPATH")]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000,
                        help="records per run (default 50000)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs per configuration, interleaved; the median counts (5)")
    parser.add_argument("--baseline", type=Path,
                        help="also run the shoebox rows from this source tree")
    parser.add_argument("--only", nargs="+", metavar="CONFIG", choices=CONFIGS,
                        help="run only these configurations (floor and rotating+json always run)")
    parser.add_argument("--run", nargs=2, metavar=("CONFIG", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run[0], int(args.run[1]), args.records)))
        return

    configs = list(CONFIGS)
    if args.only:
        configs = [c for c in configs if c in ("floor", "rotating+json", *args.only)]
    try:
        import loguru  # noqa: F401
    except ImportError:
        configs.remove("loguru enqueue")
    rows = [(config, ROOT) for config in configs]
    if args.baseline:
        rows += [(f"{config} (baseline)", args.baseline.resolve()) for config in BASELINE]
    runs: dict[tuple[str, int], list[dict[str, float]]] = {
        (row, threads): [] for row, _ in rows for threads in THREADS}
    for _ in range(args.repeat):
        for threads in THREADS:
            for row, root in rows:
                config = row.removesuffix(" (baseline)")
                out = subprocess.run(
                    [sys.executable, __file__, "--records", str(args.records),
                     "--run", config, str(threads)],
                    env=_env(root), check=True, capture_output=True, text=True).stdout
                runs[(row, threads)].append(json.loads(out))
    median = {key: {measure: statistics.median(run[measure] for run in results)
                    for measure in results[0]}
              for key, results in runs.items()}
    print(f"{args.records:,} records per run, median of {args.repeat} interleaved runs, "
          f"each in a fresh process; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print("| handler | threads | caller µs | caller CPU µs | total µs | caller vs floor "
          "| caller CPU vs floor | speed vs rotating+json |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for threads in THREADS:
        floor = median[("floor", threads)]
        baseline = median[("rotating+json", threads)]["total"]
        for row, _ in rows:
            result = median[(row, threads)]
            print(f"| {row} | {threads} | {result['caller']:.1f} | {result['cpu']:.1f} "
                  f"| {result['total']:.1f} | {result['caller'] / floor['caller']:.2f} "
                  f"| {result['cpu'] / floor['cpu']:.2f} | {baseline / result['total']:.2f}x |")


if __name__ == "__main__":
    main()
