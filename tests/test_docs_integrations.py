"""docs/integrations.md's snippets run as written (each in a fresh
interpreter, its archive directory moved into the test's), and write the
records the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from _logging_support import read_records
from archive_files import ROOT, subprocess_env

PAGE = ROOT / "docs" / "integrations.md"
#: The directory the snippets name.
DOCUMENTED_DIRECTORY = "/var/lib/shop/archive"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def run_snippet(index: int, directory: Path) -> list[tuple[dict[str, str], Any]]:
    code = snippets()[index]
    assert DOCUMENTED_DIRECTORY in code
    code = code.replace(DOCUMENTED_DIRECTORY, str(directory))
    subprocess.run([sys.executable, "-c", code], env=subprocess_env(), check=True, timeout=60,
                   cwd=directory.parent)
    assert not list(directory.glob("*.open"))  # finished at interpreter exit
    return read_records(directory)


def test_the_page_has_the_snippets_these_tests_run() -> None:
    kinds = ["ShoeboxLoggerFactory", "ShoeboxRenderer", "ShoeboxSink",
             "ShoeboxLogRecordProcessor", "uvicorn.run"]
    assert [next(kind for kind in kinds if kind in code) for code in snippets()] == kinds


def test_structlog_s_two_paths_write_the_same_record(tmp_path: Path) -> None:
    ((direct, direct_payload),) = run_snippet(0, tmp_path / "factory")
    ((stdlib, stdlib_payload),) = run_snippet(1, tmp_path / "stdlib")
    for metadata in (direct, stdlib):
        assert (metadata["level"], metadata["logger"], metadata["request_id"]) == (
            "INFO", "shop", "req-7")
    assert direct.keys() == stdlib.keys()
    assert direct_payload.pop("timestamp") != stdlib_payload.pop("timestamp")  # two runs
    assert direct_payload == stdlib_payload == {
        "request_id": "req-7", "order_id": 42, "amount": 12.5, "event": "order paid",
        "level": "info"}


def test_loguru_s_snippet_archives_the_record_dict(tmp_path: Path) -> None:
    ((metadata, payload),) = run_snippet(2, tmp_path / "archive")
    assert (metadata["level"], metadata["logger"], metadata["request_id"]) == (
        "INFO", "__main__", "req-7")
    assert (payload["message"], payload["request_id"]) == ("order 42 paid", "req-7")


def test_opentelemetry_s_snippet_archives_through_the_logging_bridge(tmp_path: Path) -> None:
    ((metadata, payload),) = run_snippet(3, tmp_path / "archive")
    assert (metadata["level"], metadata["logger"], metadata["service.name"],
            metadata["order.id"]) == ("WARNING", "checkout.payments", "checkout", "42")
    assert payload == {"body": "card declined", "attributes": {"order.id": 42}}
