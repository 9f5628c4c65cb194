"""Records per second through ShoeboxHandler and the alternatives.

Every configuration logs the same record (a message with two arguments and
two extras) from 1 and from 4 threads, each run in a fresh process. The
table gives microseconds per record as the logging threads see them
(``caller``) and including the time to get everything on disk (``total``:
for the non-blocking mode, draining the queue at close), and the speed
relative to ``RotatingFileHandler`` + python-json-logger's ``JsonFormatter``
on the same number of threads (higher is faster). Each configuration runs
``--repeat`` times and the fastest run counts, as ``timeit`` does: on a
shared machine the slower runs measure the neighbours.

    python benchmarks/bench_logging.py [--records 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ["floor", "rotating+json", "shoebox", "shoebox non-blocking", "loguru"]
WARM_UP = 500


def _null_handler(directory: str) -> logging.Handler:
    class DoNothing(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            pass

    return DoNothing()


def _rotating_handler(directory: str) -> logging.Handler:
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.handlers.RotatingFileHandler(
        os.path.join(directory, "bench.log"), maxBytes=64 << 20, backupCount=5)
    handler.setFormatter(JsonFormatter(
        "%(message)s %(levelname)s %(name)s %(module)s %(funcName)s %(lineno)d "
        "%(threadName)s %(processName)s", timestamp=True))
    return handler


def _shoebox_handler(queue_size: int) -> Callable[[str], logging.Handler]:
    def build(directory: str) -> logging.Handler:
        from shoebox_logging import ShoeboxHandler

        return ShoeboxHandler(directory=directory, metadata_fields=["request_id", "tenant"],
                              queue_size=queue_size)

    return build


HANDLERS: dict[str, Callable[[str], logging.Handler]] = {
    "floor": _null_handler,
    "rotating+json": _rotating_handler,
    "shoebox": _shoebox_handler(0),
    "shoebox non-blocking": _shoebox_handler(10_000),
}


def _stdlib_log_function(config: str, directory: str) -> tuple[Callable[[int], None],
                                                                Callable[[], None]]:
    handler = HANDLERS[config](directory)
    logger = logging.getLogger("bench")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def log(index: int) -> None:
        logger.info("user %s did %s", "ann", "login",
                    extra={"request_id": "7f3a9c", "tenant": "acme"})

    return log, handler.close


def _loguru_log_function(directory: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    from loguru import logger

    logger.remove()
    logger.add(os.path.join(directory, "bench.log"), serialize=True, level="INFO")

    def log(index: int) -> None:
        logger.info("user {} did {}", "ann", "login", request_id="7f3a9c", tenant="acme")

    return log, logger.remove


def run_one(config: str, threads: int, records: int) -> dict[str, float]:
    """Time one configuration in this process; return µs per record."""
    with tempfile.TemporaryDirectory() as directory:
        if config == "loguru":
            log, close = _loguru_log_function(directory)
        else:
            log, close = _stdlib_log_function(config, directory)
        for index in range(WARM_UP):
            log(index)
        per_thread = records // threads
        barrier = threading.Barrier(threads + 1)

        def work() -> None:
            barrier.wait()
            for index in range(per_thread):
                log(index)

        workers = [threading.Thread(target=work) for _ in range(threads)]
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
    return {"caller": caller / count * 1e6, "total": total / count * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000,
                        help="records per run (default 10000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per configuration, the fastest counts (default 3)")
    parser.add_argument("--run", nargs=2, metavar=("CONFIG", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run[0], int(args.run[1]), args.records)))
        return

    try:
        import loguru  # noqa: F401
        configs = CONFIGS
    except ImportError:
        configs = [config for config in CONFIGS if config != "loguru"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print(f"{args.records} records per run, best of {args.repeat} runs, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print("| handler | threads | caller µs/record | total µs/record | records/s "
          "| caller vs floor | speed vs rotating+json |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for threads in (1, 4):
        results = {}
        for config in configs:
            runs = [json.loads(subprocess.run(
                [sys.executable, __file__, "--records", str(args.records),
                 "--run", config, str(threads)],
                env=env, check=True, capture_output=True, text=True).stdout)
                for _ in range(args.repeat)]
            results[config] = min(runs, key=lambda run: run["total"])
        baseline = results["rotating+json"]["total"]
        floor = results["floor"]["caller"]
        for config in configs:
            caller, total = results[config]["caller"], results[config]["total"]
            print(f"| {config} | {threads} | {caller:.1f} | {total:.1f} | {1e6 / total:,.0f} "
                  f"| {caller / floor:.2f} | {baseline / total:.2f}x |")


if __name__ == "__main__":
    main()
