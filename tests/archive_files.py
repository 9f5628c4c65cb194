"""Archives on disk for the reader and command tests: plain, gzip or zstd,
and the in-process runner of the ``shoebox`` command."""

from __future__ import annotations

import io
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from shoebox import compression, encode_record
from shoebox.cli import main

#: Every stored compression, for parametrizing.
METHODS = ["none", "gzip", "zstd"]
#: The repository root, for running ``python -m shoebox`` in a subprocess.
ROOT = Path(__file__).resolve().parent.parent


def items(n: int, host: str = "web-1") -> list[tuple[dict[str, str], str]]:
    """``n`` log-like records with ISO 8601 timestamps and JSON payloads."""
    return [({"level": "ERROR" if i % 4 == 0 else "INFO", "host": host, "index": str(i),
              "timestamp": f"2026-11-27T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z"},
             f'{{"n": {i}, "message": "event {i}"}}')
            for i in range(n)]


def compress(data: bytes, method: str) -> bytes:
    """Archive bytes ``data`` (maybe damaged on purpose) stored with ``method``."""
    target = io.BytesIO()
    with compression.open_compressor(target, method) as sink:
        sink.write(data)
    return target.getvalue()


def archive_bytes(records: list[tuple[dict[str, str], str]], method: str = "none") -> bytes:
    """``records`` as the bytes of an archive stored with ``method``."""
    return compress(b"".join(encode_record(m, p) for m, p in records), method)


def write(path: str | os.PathLike[str], records: list[tuple[dict[str, str], str]],
          method: str = "none") -> Path:
    """Write ``records`` as an archive stored with ``method``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as target:
        target.write(archive_bytes(records, method))
    return path


def write_each_method(directory: Path, count: int,
                      name: str = "{index}.events") -> list[tuple[dict[str, str], str]]:
    """One archive of ``count`` records per stored compression, named
    ``name.format(index=…)`` in name order; return all records in that order."""
    expected = []
    for index, method in enumerate(METHODS):
        records = items(count, host=f"h{index}")
        write(directory / name.format(index=index), records, method)
        expected += records
    return expected


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``shoebox argv…`` in this process; return (status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def subprocess_env() -> dict[str, str]:
    """The environment for a child Python (``python -m shoebox``, ``-m
    shoebox_sidecar``) to import this checkout."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]))


#: The command line that runs the ``shoebox`` command from this checkout.
SHOEBOX = [sys.executable, "-m", "shoebox"]


def in_forked_child(child: Callable[[], bool]) -> int:
    """Run ``child`` in a forked copy of this process (threads and all, on
    purpose); return the child's exit code: 0 when ``child`` returned True,
    2 when it returned False, 1 when it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if child() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
