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


def makedirs_durable(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, then ``fsync`` the parent of each
    directory it created, so that the new directories (and what is then
    renamed into them) survive a crash as a file's own directory does."""
    created = []
    head = path
    while head and not os.path.isdir(head):
        created.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    os.makedirs(path, exist_ok=True)
    for directory in reversed(created):
        fsync_directory(os.path.dirname(directory))


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
    ``target``, synced, renamed into place, and only then is ``source``
    removed.
    """
    try:
        rename_no_replace(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    temporary = f"{target}.{os.getpid()}.partial"
    with open(source, "rb") as src, open(temporary, "xb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    try:
        rename_no_replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    os.unlink(source)
