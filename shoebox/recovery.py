"""Finalizing archives left ``.open`` by writers that crashed."""

from __future__ import annotations

import errno
import glob
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ._files import check_entry, file_kind, lock_unheld, open_regular
from .archive import ArchiveReader
from .codec import (
    DEFAULT_MAX_RECORD_SIZE,
    MARKER_BYTES,
    PREAMBLE_SIZE,
    Incomplete,
    record_length,
)
from .errors import CorruptRecord, NotRegularFile
from .naming import OPEN_SUFFIX, finalize

logger = logging.getLogger("shoebox.recovery")

# Bytes of a record's start that hold its preamble and header (version 2
# needs 20, version 1 18): enough to tell a torn record from other bytes.
_HEAD = 24


@dataclass
class Recovery:
    """What :func:`recover` did."""

    #: Final paths of the archives it finalized, in name order.
    finalized: list[str] = field(default_factory=list)
    #: Stale archives it had to leave ``.open``, with the reason, by path.
    left: dict[str, str] = field(default_factory=dict)
    #: ``.open`` archives modified less than ``min_idle`` seconds ago, left
    #: alone (their lock untried) for a later call, in name order.
    recent: list[str] = field(default_factory=list)
    #: Names matching the pattern that are not regular files (a symbolic
    #: link, a FIFO, a directory), never followed, written, renamed or
    #: removed, by path: what each is (``"symlink"``, ``"fifo"``…, as
    #: :class:`~shoebox.errors.NotRegularFile` names it).
    skipped: dict[str, str] = field(default_factory=dict)


def recover(directory: str | os.PathLike[str] = ".", pattern: str = "*",
            max_record_size: int = DEFAULT_MAX_RECORD_SIZE, *, min_idle: float = 0.0,
            clock: Callable[[], float] = time.time) -> Recovery:
    """Finalize stale ``.open`` archives in ``directory``; return a
    :class:`Recovery` naming those finalized and those it had to leave.

    ``pattern`` is a wildcard for final names (``"*.events"``); the files
    considered are those matching ``pattern + ".open"``. A file modified
    less than ``min_idle`` seconds ago (by ``clock``, wall-clock seconds
    like ``st_mtime``) is left alone and listed in :attr:`Recovery.recent`:
    only a file that has also stopped changing counts as stale. A file whose
    advisory lock is held belongs to a live writer and is left alone. A
    stale file keeps every record that validates: a torn tail (the record a
    crash interrupted) is truncated away; other bytes that do not validate
    (damage, a record version or size this reader does not accept) are left
    for recovering readers to skip or newer ones to read; then the file is
    synced and renamed to its final name (a unique variant if that is taken:
    nothing is replaced). A file that cannot be recovered is logged (logger
    ``shoebox.recovery``), left, and listed in :attr:`Recovery.left`; the
    others are still recovered.

    Only regular files really in ``directory`` are acted on: each is opened
    without following a symbolic link and judged on the descriptor (see
    :func:`shoebox._files.open_regular`), truncated through a descriptor
    checked to be that same file, and renamed only while the name still
    leads to it. Anything else matching (a link, wherever it points, a
    FIFO, a directory) is left as it is and listed in
    :attr:`Recovery.skipped`, not logged: the caller reports it (the
    sidecar once per path, ``shoebox recover`` on stderr), since a caller
    that recovers at every scan would otherwise log it again and again.
    """
    if not min_idle >= 0:
        raise ValueError(f"min_idle must be at least 0, not {min_idle!r}")
    directory = os.fspath(directory)
    result = Recovery()
    for path in sorted(glob.glob(os.path.join(glob.escape(directory), pattern + OPEN_SUFFIX))):
        try:
            # The entry itself, a link never followed: only a filter, since
            # lock_unheld() judges what it opens.
            entry = os.stat(path, follow_symlinks=False)
            kind = file_kind(entry.st_mode)
            if kind != "regular":
                raise NotRegularFile(kind, filename=path)
            # Before trying the lock: a writer locks its file just after
            # creating it, and a lock taken by us in between makes it give
            # that file up (see ArchiveWriter); a file that new is recent.
            if min_idle and clock() - entry.st_mtime < min_idle:
                result.recent.append(path)
                continue
            fd = lock_unheld(path)
        except FileNotFoundError:
            continue  # finalized by its writer meanwhile
        except NotRegularFile as exc:
            result.skipped[path] = exc.kind
            continue
        except OSError as exc:
            _cannot(result, path, exc)
            continue
        if fd is None:
            # Finalized by its writer meanwhile, or a live writer holds it.
            continue
        final = None
        try:
            final = _finalize_stale(fd, path, max_record_size, result)
        except NotRegularFile as exc:  # swapped in after the lock was taken
            result.skipped[path] = exc.kind
            continue
        except OSError as exc:
            _cannot(result, path, exc)
            continue
        finally:
            os.close(fd)
        if final is not None:
            result.finalized.append(final)
    return result


def _cannot(result: Recovery, path: str, error: OSError) -> None:
    # One file that cannot be recovered (a directory by that name, a
    # read-only file system) must not keep the others .open.
    logger.error("%s: cannot recover it (%s); left as it is", path, error)
    result.left[path] = str(error)


def _finalize_stale(fd: int, path: str, max_record_size: int,
                    result: Recovery) -> str | None:
    """Truncate a torn tail of the locked stale archive open on ``fd`` and
    rename it; return its final path, or ``None`` if it must stay (noted in
    ``result``)."""
    end = _valid_end(fd, path, max_record_size)
    size = os.fstat(fd).st_size
    if end < size and _torn(os.pread(fd, _HEAD, end), size - end):
        try:
            _truncate(fd, path, end)
        except PermissionError as exc:
            logger.error("%s: cannot truncate a torn tail of %d bytes at offset %d "
                         "(%s); left as it is", path, size - end, end, exc.strerror)
            result.left[path] = (f"cannot truncate a torn tail of {size - end} bytes at "
                                 f"offset {end} ({exc.strerror})")
            return None
        logger.warning("%s: truncating a torn tail of %d bytes at offset %d",
                       path, size - end, end)
    elif end < size:
        logger.warning("%s: keeping %d bytes at offset %d that do not validate "
                       "but are no torn record", path, size - end, end)
    os.fsync(fd)
    check_entry(path, fd)  # rename only the file judged stale
    return finalize(path)


def _torn(head: bytes, size: int) -> bool:
    """Whether the ``size`` bytes after the last record that validates,
    starting with ``head``, are a record a crash cut short: its start, with
    a length running past the end of the file.

    Anything else (a whole record over this reader's ``max_record_size``, a
    record version it does not know, a damaged record) is kept for readers
    that can use it or skip it: recovery never destroys a record.
    """
    if size < PREAMBLE_SIZE:
        return MARKER_BYTES.startswith(head[:len(MARKER_BYTES)])
    try:
        # No size limit: only whether the record runs past the end matters.
        return record_length(head, 0, max_record_size=1 << 64) > size
    except Incomplete:
        return True  # the file ends inside the record's header
    except CorruptRecord:
        return False


def _truncate(fd: int, path: str, end: int) -> None:
    """Cut the file open as ``fd`` (read-only, locked) at ``end``, through a
    second, writable descriptor of ``path`` checked to be that same file:
    never a file a link swapped in leads to."""
    writable = open_regular(path, os.O_WRONLY)
    try:
        if not os.path.samestat(os.fstat(writable), os.fstat(fd)):
            check_entry(path, fd)  # raises, naming what is there now if not regular
            raise FileNotFoundError(errno.ENOENT, "replaced while being recovered", path)
        os.ftruncate(writable, end)
    finally:
        os.close(writable)


def _valid_end(fd: int, path: str, max_record_size: int) -> int:
    """Offset just past the last record that validates in the file open as
    ``fd`` (``path`` names it in errors)."""
    end = 0
    source = os.fdopen(os.dup(fd), "rb")
    source.seek(0)
    with ArchiveReader(source, filename=path, recover=True,
                       max_record_size=max_record_size) as reader:
        for _record in reader:
            end = reader.offset
    return end
