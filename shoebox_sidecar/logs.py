"""The sidecar's own log: JSON lines on stderr (python-json-logger)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

from shoebox._redact import RedactingFormatter

#: The sidecar's logger; per-archive lines carry an ``event`` field
#: (``shipped``, ``retrying``, ``failed``, ``quarantined``, …).
logger = logging.getLogger("shoebox_sidecar")

# Loggers whose records go to the JSON stream: the sidecar's and the
# library's (recovery warnings, for example).
_LOGGERS = ("shoebox_sidecar", "shoebox")
# The S3 libraries' loggers: their warnings (never less, whatever the
# level: their DEBUG lines are every request) go to the JSON stream too,
# redacted, rather than to logging's last-resort handler, which would
# print them as plain text with any URL in them whole (issue 17).
_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3")


@contextlib.contextmanager
def json_lines(level: str | int = "INFO", stream: TextIO | None = None) -> Iterator[None]:
    """While the ``with`` block runs, send the sidecar's and shoebox's log
    records to ``stream`` (default: stderr) as JSON lines, one object per
    record: ``timestamp``, ``level``, ``logger``, ``message`` and the
    record's extra fields (``event``, ``archive``, ``key``…), with the
    credentials of every URL in them hidden (:func:`shoebox._redact.redact`).
    The warnings of botocore, boto3, s3transfer and urllib3 go there too.
    The loggers' previous settings come back afterwards, so that
    :func:`main` can run inside another program (or a test) without
    changing its logging."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    # Redacted as a whole line, the fields and a traceback too: botocore's
    # messages repeat the endpoint URL with any password in it (issue 17).
    handler.setFormatter(RedactingFormatter(JsonFormatter(
        "{levelname}{name}{message}", style="{", timestamp=True,
        rename_fields={"levelname": "level", "name": "logger"})))
    saved = []
    for name in _LOGGERS + _LIBRARIES:
        target = logging.getLogger(name)
        saved.append((target, target.level, target.propagate))
        target.addHandler(handler)
        target.setLevel(level if name in _LOGGERS
                        else max(logging.WARNING, logging.getLogger(_LOGGERS[0]).level))
        target.propagate = False
    try:
        yield
    finally:
        for target, old_level, old_propagate in saved:
            target.removeHandler(handler)
            target.setLevel(old_level)
            target.propagate = old_propagate
        handler.close()
