"""File-system steps that never replace an existing file, and that make
renames durable."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile

from .errors import UnusableDirectory


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


def lock_unheld(path: str) -> int | None:
    """Open ``path`` read-only and take its exclusive ``flock`` without
    waiting: the way to tell a file a live process is using (it holds the
    lock) from one a dead process left.

    Returns the descriptor, which holds the lock until the caller closes
    it; or ``None`` when the file is gone, another process holds the lock,
    or ``path`` no longer names the file locked (renamed or replaced just
    before the lock was taken). Raises ``OSError`` for other failures.
    """
    try:
        # Read-only: locking needs no more, and a process running as another
        # user may read the file but not write it.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def writable_directory(path: str) -> None:
    """Create the directory ``path`` if it is missing (see
    :func:`makedirs_durable`) and check that this process may create files
    in it, creating none: raises :class:`~shoebox.errors.UnusableDirectory`
    naming ``path`` and why when it cannot be created, is no directory, or
    is not writable (permissions, a read-only file system)."""
    try:
        makedirs_durable(path)
    except OSError as exc:
        blocking = not_a_directory(path) if exc.errno in (errno.EEXIST, errno.ENOTDIR) else None
        if blocking is not None:
            # Not "cannot create it (File exists)" (issue 18).
            what = "it" if blocking == path else repr(blocking)
            raise UnusableDirectory(errno.ENOTDIR, f"archives cannot be written there: {what} "
                                    f"is a file, not a directory", path) from exc
        cause = "it" if exc.filename in (None, path) else repr(exc.filename)
        raise UnusableDirectory(exc.errno or errno.EIO, f"archives cannot be written there: "
                                f"cannot create {cause} ({exc.strerror})", path) from exc
    if os.access(path, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        return
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        raise UnusableDirectory(errno.EROFS, "archives cannot be written there: it is on a "
                                "read-only file system", path)
    info = os.stat(path)
    raise UnusableDirectory(errno.EACCES, f"archives cannot be written there: user "
                            f"{os.geteuid()} may not create files in it (mode "
                            f"{stat.S_IMODE(info.st_mode):o}, owner {info.st_uid}, group "
                            f"{info.st_gid})", path)


def not_a_directory(path: str) -> str | None:
    """``path`` or the first of its parents that exists but is no directory, if any."""
    parts = os.path.abspath(path).split(os.sep)
    for end in range(2, len(parts) + 1):
        prefix = os.sep.join(parts[:end])
        if os.path.lexists(prefix) and not os.path.isdir(prefix):
            return path if end == len(parts) else prefix
    return None


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

    Across file systems the data is copied to a hidden temporary name
    beside ``target`` (unique, so that one left by a killed process never
    blocks a later move), with ``source``'s permission bits, synced,
    renamed into place, the directory synced, and only then is ``source``
    removed.
    """
    try:
        rename_no_replace(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    directory, name = os.path.split(target)
    fd, temporary = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.",
                                     suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as dst, open(source, "rb") as src:
            os.fchmod(dst.fileno(), stat.S_IMODE(os.fstat(src.fileno()).st_mode))
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        rename_no_replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # Two file systems keep two journals: unless the new name is durable
    # first, a power cut could keep the unlink below and lose the copy.
    fsync_directory(os.path.dirname(target))
    os.unlink(source)
