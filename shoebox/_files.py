"""File-system steps that never replace an existing file, and that make
renames durable."""

from __future__ import annotations

import errno
import os
import shutil


def fsync_directory(path: str) -> None:
    """``fsync`` a directory so that a rename or creation in it is durable.

    Filesystems that cannot sync a directory (``EINVAL``) are tolerated.
    """
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def rename_no_replace(source: str, target: str) -> None:
    """Rename ``source`` to ``target``, raising :class:`FileExistsError` rather
    than replacing an existing ``target``.

    Uses ``link`` + ``unlink`` (atomic refusal on POSIX filesystems); where
    hard links are not supported it checks and renames.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                             errno.EMLINK):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target) from None
        os.rename(source, target)
        return
    os.unlink(source)


def move_no_replace(source: str, target: str) -> None:
    """Move ``source`` to ``target``, across file systems if need be, raising
    :class:`FileExistsError` rather than replacing an existing ``target``.

    Across file systems the data is copied to a temporary name beside
    ``target``, synced, renamed into place (the directory synced too), and
    only then is ``source`` removed.
    """
    try:
        rename_no_replace(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    temporary = f"{target}.{os.getpid()}.partial"
    with open(source, "rb") as src, open(temporary, "xb") as dst:
        try:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        except BaseException:
            os.unlink(temporary)  # a copy cut short (a full disk): leave nothing behind
            raise
    try:
        rename_no_replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    # Two file systems keep two journals: unless the new name is durable
    # first, a power cut could keep the unlink below and lose the copy.
    fsync_directory(os.path.dirname(target))
    os.unlink(source)
