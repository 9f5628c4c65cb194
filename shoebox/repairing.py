"""Repairing a finished archive that holds damage: a new archive of every
record that validates, under the archive's name, and the original kept
beside it under a ``.damaged`` name (:func:`repair`)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass, field

from . import compression
from ._files import check_entry, fsync_directory, open_regular
from .archive import ArchiveReader, DamagedRange
from .codec import DEFAULT_MAX_RECORD_SIZE
from .naming import DAMAGED_SUFFIX, OPEN_SUFFIX, is_open, rename_unique


@dataclass
class Repair:
    """What :func:`repair` found and did with one archive."""

    #: The archive repaired: where the repaired copy now is, when one was written.
    path: str
    #: How it is stored, and its repaired copy too: ``"none"``, ``"gzip"`` or ``"zstd"``.
    compression: str
    #: Records that validate, all kept.
    records: int = 0
    #: Bytes of those records (decompressed).
    kept_bytes: int = 0
    #: The ranges dropped (offsets and lengths count decompressed bytes).
    dropped: list[DamagedRange] = field(default_factory=list)
    #: Where the original now is, when it was damaged (``None`` for a clean one,
    #: left as it was).
    original: str | None = None

    @property
    def dropped_bytes(self) -> int:
        """Bytes of the original that are not in the repaired copy."""
        return sum(damaged.length for damaged in self.dropped)


def repair(path: str | os.PathLike[str], *,
           max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> Repair:
    """Repair the finished archive ``path``, never in place.

    Every record that validates is copied, byte for byte (a version 1 record
    stays version 1), into a new file beside it, stored with the original's
    compression (gzip and zstd archives stay so; offsets count decompressed
    bytes). If nothing was dropped the new file is removed and the archive
    left as it was. Otherwise the original is renamed to ``path +
    ".damaged"`` and the new file to ``path`` (each, if taken, to its first
    free variant: nothing is ever replaced) and the directory synced. A
    crash before the renames leaves the archive as it was (and a hidden
    ``.NAME.*.repair`` file); one between them leaves the original under its
    ``.damaged`` name: no record is ever lost.

    What is dropped is what this reader cannot validate: damaged bytes, a
    torn tail, damaged compressed data, records over ``max_record_size``
    or of a version it does not know. The ``.damaged`` original keeps them.

    Only a regular file really at ``path`` is repaired: it is opened
    without following a symbolic link and judged on the descriptor (see
    :func:`shoebox._files.open_regular`), and renamed aside only while
    ``path`` still names that file. A link (wherever it points), a FIFO or
    a directory raises :class:`~shoebox.errors.NotRegularFile` and is left
    as it is: nothing is read through it, renamed or written.

    Raises ``ValueError`` for a ``.open`` archive (a live writer's, or a
    crashed one's: :func:`shoebox.recover` finalizes those), ``OSError``
    for a file that cannot be read or a directory that cannot be written,
    and :class:`~shoebox.errors.MissingExtra` for zstd without zstandard.
    """
    path = os.fspath(path)
    if is_open(path):
        raise ValueError(f"{path}: an archive still being written ({OPEN_SUFFIX}); "
                         f"shoebox recover finalizes those of crashed writers")
    directory, name = os.path.split(path)
    source = os.fdopen(open_regular(path), "rb")
    with ArchiveReader(source, filename=path, recover=True,
                       max_record_size=max_record_size) as reader:
        result = Repair(path, reader.compression)
        mode = stat.S_IMODE(os.fstat(source.fileno()).st_mode)
        # Hidden, and not .open: neither the sidecar nor recover() takes it
        # for an archive if this process dies before renaming it.
        fd, temporary = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.",
                                         suffix=".repair")
        try:
            with os.fdopen(fd, "wb") as target:
                os.fchmod(target.fileno(), mode)
                with compression.open_compressor(target, result.compression) as sink:
                    for _record in reader:
                        record = reader.record_bytes
                        assert record is not None  # a record was just read
                        sink.write(record)
                        result.records += 1
                        result.kept_bytes += len(record)
                target.flush()
                os.fsync(target.fileno())
            result.dropped = list(reader.damaged)
            if not result.dropped:
                os.unlink(temporary)
                return result
            check_entry(path, source.fileno())  # set aside only the file read
            result.original = rename_unique(path, path + DAMAGED_SUFFIX)
            result.path = rename_unique(temporary, path)
        except BaseException:
            if result.original is None:  # else the repaired copy is all under the name
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            raise
    fsync_directory(directory)
    return result


__all__ = ["DAMAGED_SUFFIX", "Repair", "repair"]
