"""The sidecar's own log: JSON lines on stderr (python-json-logger)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

#: The sidecar's logger; per-archive lines carry an ``event`` field
#: (``shipped``, ``retrying``, ``failed``, ``quarantined``, …).
logger = logging.getLogger("shoebox_sidecar")

# Loggers whose records go to the JSON stream: the sidecar's and the
# library's (recovery warnings, for example).
_LOGGERS = ("shoebox_sidecar", "shoebox")


def configure(level: str | int = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send the sidecar's and shoebox's log records to ``stream`` (default
    stderr) as JSON lines: ``timestamp``, ``level``, ``logger``, ``message``
    and the record's extra fields. Calling it again replaces the handler."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name("shoebox_sidecar.json")
    handler.setFormatter(JsonFormatter(
        "{levelname}{name}{message}", style="{", timestamp=True,
        rename_fields={"levelname": "level", "name": "logger"}))
    for name in _LOGGERS:
        target = logging.getLogger(name)
        for old in [h for h in target.handlers if h.get_name() == handler.get_name()]:
            target.removeHandler(old)
            old.close()
        target.addHandler(handler)
        target.setLevel(level)
        target.propagate = False
    return handler
