"""``ShoeboxHandler.stats()`` agrees with what is read back, and
``shoebox_logging.metrics.register`` serves the same numbers to Prometheus,
scraped over HTTP."""

from __future__ import annotations

import os
import re
import sys
import threading
import urllib.request
from typing import Any

import pytest
from _logging_support import attach, restore_logging  # noqa: F401
from archive_files import ROOT
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from shoebox import ReadingRollManager
from shoebox_logging import ShoeboxHandler
from shoebox_logging.metrics import register

pytestmark = pytest.mark.usefixtures("restore_logging")


def read_back(directory: Any) -> list[tuple[dict[str, str], str]]:
    return list(ReadingRollManager("*.events", directory=directory))


def test_stats_count_written_bytes_archives_and_lost_records(
        tmp_path: Any) -> None:
    handler = ShoeboxHandler(directory=tmp_path, roll_size_mb=0.01,
                             max_record_mb=0.001)
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    logger = attach(handler)
    for number in range(500):
        logger.info("record %d", number)
    logger.info("too large: %s", "x" * 2000)  # past max_record_mb: lost, counted
    handler.close()
    records = read_back(tmp_path)
    stats = handler.stats()
    assert stats == {
        "records_written": 500, "records_dropped": 0, "records_dropped_budget": 0,
        "records_dropped_queue": 0, "records_dropped_closing": 0,
        "records_dropped_reentrant": 0, "errors": 1,
        "bytes_written": sum(os.path.getsize(tmp_path / name) for name in os.listdir(tmp_path)),
        "archives_closed": len(os.listdir(tmp_path)), "records_deferred": 0,
        "skipped_not_regular": 0, "finish_errors": 0, "archives_finishing": 0,
        "rolls_postponed": 0}
    assert len(records) == 500 and stats["archives_closed"] > 1


def test_queue_drops_are_counted_exactly(tmp_path: Any) -> None:
    handler = ShoeboxHandler(directory=tmp_path, queue_size=10, when_full="drop")
    logger = attach(handler)
    threads = [threading.Thread(target=lambda: [logger.info("r") for _ in range(2000)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.close()
    stats = handler.stats()
    assert stats["records_dropped_queue"] == handler.dropped
    assert stats["records_written"] == len(read_back(tmp_path))
    assert stats["records_written"] + stats["records_dropped"] == 8000


def test_failed_writes_are_counted_as_errors(tmp_path: Any) -> None:
    directory = tmp_path / "archive"
    handler = ShoeboxHandler(directory=directory)
    directory.rmdir()
    directory.write_text("a file where the directory should be")
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    logger = attach(handler)
    for _ in range(7):
        logger.info("lost")
    assert handler.stats()["errors"] == handler.failed == 7
    assert handler.stats()["records_written"] == 0


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape_and_stop(server: Any, thread: threading.Thread) -> dict[Any, float]:
    """Scrape prometheus_client's HTTP server, then stop it."""
    try:
        return scrape(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_registered_handlers_are_scraped_over_http(
        tmp_path: Any) -> None:
    budgeted = ShoeboxHandler(directory=tmp_path / "a", max_local_mb=0.01)
    budgeted.handleError = lambda record: None  # type: ignore[method-assign]
    plain = ShoeboxHandler(directory=tmp_path / "b", roll_size_mb=0.001)
    for handler in (budgeted, plain):
        logger = attach(handler)
    registry = CollectorRegistry()
    register(budgeted, registry)
    register(plain, registry)
    register(plain, registry)  # harmless
    for number in range(300):
        logger.info("record %d", number, extra={"text": "t" * 100})
    for handler in (budgeted, plain):
        handler.flush()  # rolled archives finished: the counters hold still (issue 19)
    samples = scrape_and_stop(*start_http_server(0, addr="127.0.0.1", registry=registry))
    for handler in (budgeted, plain):
        stats = handler.stats()
        directory = handler.directory

        def value(name: str, handler_directory: str = directory, **labels: str) -> float:
            key = tuple(sorted({"directory": handler_directory, **labels}.items()))
            return samples[(name, key)]

        assert value("shoebox_handler_records_written_total") == stats["records_written"]
        assert value("shoebox_handler_bytes_written_total") == stats["bytes_written"]
        assert value("shoebox_handler_records_dropped_total", reason="budget") == stats[
            "records_dropped_budget"]
        assert value("shoebox_handler_records_dropped_total", reason="queue") == 0
        assert value("shoebox_handler_errors_total") == 0
        assert value("shoebox_handler_archives_closed_total") == stats["archives_closed"]
    assert budgeted.stats()["records_dropped_budget"] > 0
    assert plain.stats()["records_written"] == 300


def test_metrics_need_the_metrics_extra(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "shoebox_logging.metrics")
    with pytest.raises(ImportError, match=r"pip install '\.\[metrics\]' in a shoebox checkout"):
        import shoebox_logging.metrics  # noqa: F401


def test_the_docs_metrics_snippet_serves_the_handlers_counters(
        tmp_path: Any) -> None:
    section = (ROOT / "docs" / "logging.md").read_text().split("## Counters", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None and "9100" in match.group(1)
    handler = ShoeboxHandler(directory=tmp_path)
    logger = attach(handler)
    logger.info("one")
    handler.flush()
    namespace: dict[str, Any] = {"handler": handler}
    exec(compile(match.group(1).replace("9100", "0"), "docs/logging.md", "exec"), namespace)
    samples = scrape_and_stop(namespace["server"], namespace["thread"])
    key = ("shoebox_handler_records_written_total", (("directory", str(tmp_path)),))
    assert samples[key] == 1
