"""Records per second through the structlog, loguru and OpenTelemetry
integrations, beside each library's own usual file path and a do-nothing
sink.

Per library, the same event (a message, two fields that shoebox copies into
its metadata) goes through: ``null`` (the library's pipeline ending in a
sink that does nothing: the library's own cost), ``file`` (its usual file
path: structlog's ``WriteLoggerFactory`` and ``JSONRenderer``, loguru's
``serialize=True`` file sink, the OTel SDK's ``ConsoleLogRecordExporter``
writing to a file on a ``BatchLogRecordProcessor``), ``shoebox`` and
``shoebox non-blocking`` (``queue_size=10000``). One logging thread. Each
run is a fresh process; the runs of all configurations are interleaved,
round after round, and the median of ``--repeat`` counts.

Per record: ``caller`` (the logging thread's wall time), ``total`` (until
everything is written and closed), ``caller vs null`` (the goal: within
1.5x) and ``speed vs file`` (the library's own file path's total time
divided by the row's; the goal: 1 or more).

    python benchmarks/bench_integrations.py [--records 30000] [--repeat 3]
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 500
LIBRARIES = ["structlog", "loguru", "otel"]
KINDS = ["null", "file", "shoebox", "shoebox non-blocking"]
CONFIGS = [f"{library} {kind}" for library in LIBRARIES for kind in KINDS]
FIELDS = ["request_id", "tenant"]

Setup = tuple[Callable[[], None], Callable[[], None]]


def _shoebox_options(kind: str, directory: str) -> dict[str, Any]:
    return {"directory": directory, "metadata_fields": FIELDS,
            "queue_size": 10_000 if "non-blocking" in kind else 0}


def _structlog(kind: str, directory: str) -> Setup:
    import structlog

    processors: list[Any] = [structlog.processors.add_log_level,
                             structlog.processors.TimeStamper(fmt="iso", utc=True)]
    closing: Callable[[], None] = lambda: None  # noqa: E731
    if kind == "null":
        class Nothing:
            def info(self, **event_dict: Any) -> None:
                pass

        factory: Any = lambda *args: Nothing()  # noqa: E731
    elif kind == "file":
        stream = open(os.path.join(directory, "bench.log"), "w")  # noqa: SIM115
        factory = structlog.WriteLoggerFactory(stream)
        processors.append(structlog.processors.JSONRenderer())
        closing = stream.close
    else:
        from shoebox_logging.structlog import ShoeboxLoggerFactory

        factory = ShoeboxLoggerFactory(**_shoebox_options(kind, directory))
        closing = factory.close
    log = structlog.wrap_logger(factory(), processors=processors,
                                wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

    def emit() -> None:
        log.info("user logged in", user="ann", request_id="7f3a9c", tenant="acme")

    return emit, closing


def _loguru(kind: str, directory: str) -> Setup:
    from loguru import logger

    logger.remove()
    if kind == "null":
        logger.add(lambda message: None, format="{message}", level="INFO")
    elif kind == "file":
        logger.add(os.path.join(directory, "bench.log"), serialize=True, level="INFO")
    else:
        from shoebox_logging.loguru import ShoeboxSink

        logger.add(ShoeboxSink(**_shoebox_options(kind, directory)), format="{message}",
                   level="INFO")
    bound = logger.bind(request_id="7f3a9c", tenant="acme")

    def emit() -> None:
        bound.info("user {} logged in", "ann")

    def close() -> None:
        logger.complete()
        logger.remove()

    return emit, close


def _otel(kind: str, directory: str) -> Setup:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    if kind == "null":
        class Nothing(LogRecordProcessor):
            def on_emit(self, log_record: Any) -> None:
                pass

            def shutdown(self) -> None:
                pass

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                return True

        provider.add_log_record_processor(Nothing())
    elif kind == "file":
        from opentelemetry.sdk._logs.export import (
            BatchLogRecordProcessor,
            ConsoleLogRecordExporter,
        )

        stream = open(os.path.join(directory, "bench.log"), "w")  # noqa: SIM115
        provider.add_log_record_processor(BatchLogRecordProcessor(
            ConsoleLogRecordExporter(out=stream)))
    else:
        from shoebox_logging.otel import ShoeboxLogRecordProcessor

        provider.add_log_record_processor(
            ShoeboxLogRecordProcessor(**_shoebox_options(kind, directory)))
    otel_logger = provider.get_logger("bench")

    def emit() -> None:
        otel_logger.emit(body="user ann logged in", severity_number=SeverityNumber.INFO,
                         severity_text="INFO", attributes={"request_id": "7f3a9c",
                                                           "tenant": "acme"})

    return emit, provider.shutdown


SETUPS: dict[str, Callable[[str, str], Setup]] = {
    "structlog": _structlog, "loguru": _loguru, "otel": _otel}


def run_one(config: str, records: int) -> dict[str, float]:
    """Time one configuration in this process; return µs per record."""
    library, kind = config.split(" ", 1)
    with tempfile.TemporaryDirectory() as directory:
        emit, close = SETUPS[library](kind, directory)
        for _ in range(WARM_UP):
            emit()
        start = time.perf_counter()
        for _ in range(records):
            emit()
        caller = time.perf_counter() - start
        close()
        total = time.perf_counter() - start
    return {"caller": caller / records * 1e6, "total": total / records * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30_000,
                        help="records per run (default 30000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per configuration, interleaved; the median counts (3)")
    parser.add_argument("--only", nargs="+", choices=LIBRARIES, help="only these libraries")
    parser.add_argument("--run", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run, args.records)))
        return

    configs = [config for config in CONFIGS
               if not args.only or config.split(" ", 1)[0] in args.only]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    runs: dict[str, list[dict[str, float]]] = {config: [] for config in configs}
    for _ in range(args.repeat):
        for config in configs:
            out = subprocess.run([sys.executable, __file__, "--records", str(args.records),
                                  "--run", config], env=env, check=True, capture_output=True,
                                 text=True).stdout
            runs[config].append(json.loads(out))
    median = {config: {measure: statistics.median(run[measure] for run in results)
                       for measure in results[0]} for config, results in runs.items()}
    print(f"{args.records:,} records per run, one thread, median of {args.repeat} "
          f"interleaved runs, each in a fresh process; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs\n")
    print("| configuration | caller µs | total µs | caller vs null | speed vs file |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for config in configs:
        library = config.split(" ", 1)[0]
        result = median[config]
        null, file = median[f"{library} null"], median[f"{library} file"]
        print(f"| {config} | {result['caller']:.1f} | {result['total']:.1f} "
              f"| {result['caller'] / null['caller']:.2f} "
              f"| {file['total'] / result['total']:.2f}x |")


if __name__ == "__main__":
    main()
