"""File-system steps that never replace an existing file, that make
renames durable, and that open only regular files really in a directory
(never following a symbolic link out of it)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Callable

from .errors import NotRegularFile, UnusableDirectory

#: Test hook: when set, :func:`open_regular` calls it with the path just
#: before opening it, so that a test can swap the file for a symbolic link
#: between a scan and the open. ``None`` (the default) in normal use.
before_open: Callable[[str], None] | None = None

_KIND_TESTS = ((stat.S_ISLNK, "symlink"), (stat.S_ISDIR, "directory"),
               (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
               (stat.S_ISCHR, "char_device"), (stat.S_ISBLK, "block_device"))


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, as :class:`~shoebox.errors.NotRegularFile`
    names it: ``"regular"``, ``"symlink"``, ``"directory"``, ``"fifo"``…"""
    if stat.S_ISREG(mode):
        return "regular"
    return next((kind for test, kind in _KIND_TESTS if test(mode)), "unknown")


def open_regular(path: str, flags: int = os.O_RDONLY) -> int:
    """Open ``path``, found in a directory that someone else may write, only
    if it is a regular file really there; return the descriptor.

    The last component is opened with ``O_NOFOLLOW`` (a symbolic link is
    never followed) and ``O_NONBLOCK`` (opening a FIFO does not wait for a
    writer), then the descriptor itself is checked with ``fstat``: what
    was opened is what is judged, so swapping the name for a link or a
    FIFO between a scan and this open is caught. ``O_NONBLOCK`` is cleared
    again before returning. ``flags`` adds the access mode
    (``os.O_WRONLY`` to truncate, say); ``O_CLOEXEC`` is always set.

    Raises :class:`~shoebox.errors.NotRegularFile` naming ``path`` and what
    it is, and ``OSError`` (``FileNotFoundError``…) as ``os.open`` does.
    """
    if before_open is not None:
        before_open(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        # ELOOP: the last component is a link. EISDIR (a directory opened
        # for writing), ENXIO (a FIFO without reader opened for writing):
        # name what is there, from the entry itself, for the message only.
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
        try:
            kind = file_kind(os.stat(path, follow_symlinks=False).st_mode)
        except OSError:
            raise exc from None
        if kind == "regular":
            raise
        raise NotRegularFile(kind, filename=path) from None
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind != "regular":
            raise NotRegularFile(kind, filename=path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_entry(path: str, fd: int) -> None:
    """Check that the directory entry ``path`` still names the file open as
    ``fd`` (same ``st_dev`` and ``st_ino``, the entry itself, a link not
    followed): done right before renaming or removing ``path`` after
    judging ``fd``. Raises :class:`~shoebox.errors.NotRegularFile` if the
    entry is now something else that is not a regular file,
    ``FileNotFoundError`` if it is gone or names another regular file."""
    opened = os.fstat(fd)
    check_identity(path, (opened.st_dev, opened.st_ino))


def check_identity(path: str, identity: tuple[int, int]) -> None:
    """Check that the directory entry ``path`` (a link not followed) is the
    file whose ``(st_dev, st_ino)`` is ``identity``: done right before
    removing or moving a file read earlier (an archive once its copy is
    confirmed). Raises as :func:`check_entry` does."""
    entry = os.stat(path, follow_symlinks=False)
    if (entry.st_dev, entry.st_ino) == identity:
        return
    kind = file_kind(entry.st_mode)
    if kind != "regular":
        raise NotRegularFile(kind, filename=path)
    raise FileNotFoundError(errno.ENOENT, "no longer the file that was read (replaced "
                            "meanwhile)", path)


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
    before the lock was taken). Only a regular file really there is opened
    (see :func:`open_regular`): anything else raises
    :class:`~shoebox.errors.NotRegularFile`. Raises ``OSError`` for other
    failures.
    """
    try:
        # Read-only: locking needs no more, and a process running as another
        # user may read the file but not write it.
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The entry itself (a link not followed): a link swapped in is not
        # the file locked.
        if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
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
    hard links are not supported it checks and renames. A symbolic link at
    ``source`` is moved as the link itself, never followed.
    """
    try:
        # follow_symlinks=False: Python's default (linkat's AT_SYMLINK_FOLLOW)
        # would hard-link a link's target under the new name, pulling a file
        # from outside the directory into it (issue 17).
        os.link(source, target, follow_symlinks=False)
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
    removed. That copy opens ``source`` with :func:`open_regular`: a
    symbolic link or other non-regular file raises
    :class:`~shoebox.errors.NotRegularFile` and is left where it is.
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
    with contextlib.ExitStack() as stack:
        try:
            dst = stack.enter_context(os.fdopen(fd, "wb"))
            src = stack.enter_context(os.fdopen(open_regular(source), "rb"))
            os.fchmod(dst.fileno(), stat.S_IMODE(os.fstat(src.fileno()).st_mode))
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
            dst.close()
            rename_no_replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        # Two file systems keep two journals: unless the new name is durable
        # first, a power cut could keep the unlink below and lose the copy.
        fsync_directory(os.path.dirname(target))
        check_entry(source, src.fileno())  # remove only the file copied
        os.unlink(source)
