"""shoebox: archive string metadata and JSON payloads in rolling binary files.

The public API is re-exported here; the modules hold the details (see
``docs/architecture.md``): :mod:`~shoebox.codec` (record codecs; also
``shoebox.disk_storage``), :mod:`~shoebox.archive` (one file),
:mod:`~shoebox.naming` (the ``.open`` contract), :mod:`~shoebox.roll_checker`
(when to roll), :mod:`~shoebox.roll_manager` (the active archive, rolling,
reading back), :mod:`~shoebox.reading` (many archives in order),
:mod:`~shoebox.callbacks`, :mod:`~shoebox.plugins`, :mod:`~shoebox.errors`,
:mod:`~shoebox.recovery`, :mod:`~shoebox.repairing`, :mod:`~shoebox.sources` (reading archives
wherever they are), :mod:`~shoebox.shipping` and
:mod:`~shoebox.destinations` (compressing, copying, confirming),
:mod:`~shoebox.s3`, :mod:`~shoebox.jsonl` and :mod:`~shoebox.cli` (the
``shoebox`` command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .archive import ArchiveReader, ArchiveWriter, DamagedRange
from .callbacks import (
    ArchiveCallback,
    CallbackList,
    ChangeExtensionCallback,
    DeleteFileCallback,
    MoveFileCallback,
)
from .codec import CURRENT_VERSION, DEFAULT_MAX_RECORD_SIZE, decode_record, encode_record
from .errors import (
    ArchiveClosed,
    ArchiveVanished,
    BadCompressedData,
    BadMarker,
    BadMetadata,
    BudgetExceeded,
    ChecksumMismatch,
    CorruptRecord,
    DamageSkipped,
    EndOfFile,
    InvalidOption,
    InvalidRecord,
    MissingExtra,
    NoMoreFiles,
    NotAnArchive,
    NotRegularFile,
    PermanentUploadError,
    PluginNotFound,
    RecordTooLarge,
    RecordTypeError,
    ShoeboxError,
    ShoeboxWarning,
    TransientUploadError,
    TruncatedRecord,
    UnknownVersion,
    UnusableDirectory,
    UploadError,
)
from .reading import ReadingRollManager
from .recovery import Recovery, recover
from .repairing import Repair, repair
from .roll_checker import (
    AnyOfRollChecker,
    NeverRollChecker,
    RollChecker,
    SizeRollChecker,
    TimeRollChecker,
    size_or_time,
)
from .roll_manager import WritingRollManager

if TYPE_CHECKING:
    from .s3 import S3Options
    from .shipping import CompressCallback, S3UploadCallback
    from .sources import open_archive

# Names whose modules load only when first asked for (PEP 562): writing an
# archive must not load the shipping pipeline or the S3 code (issue 11).
_LAZY = {"CompressCallback": "shipping", "S3UploadCallback": "shipping",
         "S3Options": "s3", "open_archive": "sources"}

__version__ = "0.1.0"

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_MAX_RECORD_SIZE",
    "AnyOfRollChecker",
    "ArchiveCallback",
    "ArchiveClosed",
    "ArchiveReader",
    "ArchiveVanished",
    "ArchiveWriter",
    "BadCompressedData",
    "BadMarker",
    "BadMetadata",
    "BudgetExceeded",
    "CallbackList",
    "ChangeExtensionCallback",
    "ChecksumMismatch",
    "CompressCallback",
    "CorruptRecord",
    "DamageSkipped",
    "DamagedRange",
    "DeleteFileCallback",
    "EndOfFile",
    "InvalidOption",
    "InvalidRecord",
    "MissingExtra",
    "MoveFileCallback",
    "NeverRollChecker",
    "NoMoreFiles",
    "NotAnArchive",
    "NotRegularFile",
    "PermanentUploadError",
    "PluginNotFound",
    "ReadingRollManager",
    "RecordTooLarge",
    "RecordTypeError",
    "Recovery",
    "Repair",
    "RollChecker",
    "S3Options",
    "S3UploadCallback",
    "ShoeboxError",
    "ShoeboxWarning",
    "SizeRollChecker",
    "TimeRollChecker",
    "TransientUploadError",
    "TruncatedRecord",
    "UnknownVersion",
    "UnusableDirectory",
    "UploadError",
    "WritingRollManager",
    "decode_record",
    "encode_record",
    "open_archive",
    "recover",
    "repair",
    "size_or_time",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
