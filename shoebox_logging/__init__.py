"""shoebox_logging: a ``logging.Handler`` that archives every log record as
string metadata plus a JSON payload in rolling shoebox archives.

Configure it with ``logging.config.dictConfig`` (``"class":
"shoebox_logging.ShoeboxHandler"``) or build it directly; see
:class:`~shoebox_logging.handler.ShoeboxHandler` for its options and
``docs/logging.md`` for the details.
"""

from __future__ import annotations

from ._options import DEFAULT_ROLL_MINUTES, DEFAULT_ROLL_SIZE_MB, STANDARD_METADATA
from .formatter import ShoeboxJsonFormatter
from .handler import DEFAULT_FILENAME_TEMPLATE, ShoeboxHandler

__all__ = [
    "DEFAULT_FILENAME_TEMPLATE",
    "DEFAULT_ROLL_MINUTES",
    "DEFAULT_ROLL_SIZE_MB",
    "STANDARD_METADATA",
    "ShoeboxHandler",
    "ShoeboxJsonFormatter",
]
