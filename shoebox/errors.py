"""The exceptions shoebox raises: one hierarchy rooted in :class:`ShoeboxError`
(and the warnings it issues, rooted in :class:`ShoeboxWarning`).

Where a builtin fits, a class also inherits it, so ``except ValueError`` or
``except TypeError`` keeps working for callers who do not know shoebox.
Errors about stored data name the file and the byte offset of the record.
"""

from __future__ import annotations

import errno

#: ``errno`` values of a local file-system error that says there is no room:
#: no space, a quota, a file-size limit. They pass once room is made.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: ``errno`` values of the local file-system errors that may pass: no room
#: (above), or a flaky mount (I/O errors, timeouts, a stale NFS handle).
PASSING_ERRNOS = NO_SPACE_ERRNOS | {errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE,
                                    errno.EINTR}


class ShoeboxError(Exception):
    """Base class of every error shoebox raises on purpose."""


class RecordTypeError(ShoeboxError, TypeError):
    """A record to write has the wrong type: metadata not ``dict[str, str]``,
    or a payload that is neither ``str`` nor ``bytes``."""


class InvalidRecord(ShoeboxError, ValueError):
    """A record to write has a value that cannot be stored (text that is not
    valid UTF-8, such as a lone surrogate or undecodable payload bytes)."""


class RecordTooLarge(ShoeboxError, ValueError):
    """An encoded record is larger than the configured ``max_record_size``."""


class ArchiveClosed(ShoeboxError, ValueError):
    """A write or read reached an archive, roll manager or archive stream
    after ``close()``."""


class ArchiveVanished(ShoeboxError, FileNotFoundError):
    """An archive's file was deleted (with its directory, say) while it was
    being written: what went into it since is gone. ``filename`` is the
    archive's path."""

    def __init__(self, message: str, *, filename: str) -> None:
        super().__init__(errno.ENOENT, message, filename)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments: pickle (multiprocessing) needs the recipe.
        return _rebuild, (type(self), (self.strerror,), {"filename": self.filename})


class CorruptRecord(ShoeboxError, ValueError):
    """A stored record is damaged or malformed.

    ``filename`` and ``offset`` say where the record starts (``filename`` is
    ``None`` when decoding bytes that came from no file); ``reason`` says
    what is wrong with it.
    """

    def __init__(self, reason: str, *, filename: str | None = None,
                 offset: int | None = None) -> None:
        self.reason = reason
        self.filename = filename
        self.offset = offset
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.filename is not None:
            where.append(str(self.filename))
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments: pickle (multiprocessing) needs the recipe.
        return _rebuild, (type(self), (self.reason,),
                          {"filename": self.filename, "offset": self.offset})

    def located(self, filename: str | None, offset: int) -> CorruptRecord:
        """Return a copy of this error that names ``filename`` and ``offset``."""
        return type(self)(self.reason, filename=filename, offset=offset)


class BadMarker(CorruptRecord):
    """The bytes where a record should start are not the begin-of-record marker."""


class UnknownVersion(CorruptRecord):
    """A record declares a version that no registered codec reads."""


class ChecksumMismatch(CorruptRecord):
    """A record's stored checksum does not match its contents."""


class BadMetadata(CorruptRecord):
    """A record's metadata block does not describe a dict the way
    ``docs/format.md`` says: its pair count does not fit the block, its
    string lengths do not add up to the block's length, a string is not
    followed by its NUL terminator where its length says, or a key repeats.
    Refused even when the checksum holds: another reader of the format
    would take the strings by their lengths and read something else."""


class TruncatedRecord(CorruptRecord):
    """A record's lengths run past the end of the file (a torn write)."""


class BadCompressedData(CorruptRecord):
    """The gzip or zstd data an archive is stored in is damaged or ends early;
    the offset counts decompressed bytes."""


class NotAnArchive(CorruptRecord):
    """A file read as an archive is not one: it does not start with a record
    marker (a text file, say), or it is too short to hold a record. Raised
    also with ``recover=True`` when no record is found in it (issue 18:
    such a file was reported as damage, and skipping it printed nothing,
    exit 0). The message names the file, not an offset: the whole file is
    meant."""

    def _message(self) -> str:
        return f"{self.filename}: {self.reason}" if self.filename is not None else self.reason


class EndOfFile(ShoeboxError, EOFError):
    """An :class:`~shoebox.archive.ArchiveReader` has no more records."""


class NoMoreFiles(ShoeboxError):
    """A :class:`~shoebox.roll_manager.ReadingRollManager` has read every file."""


class PluginNotFound(ShoeboxError, ImportError):
    """A dotted plugin name does not lead to an importable object."""


class MissingExtra(ShoeboxError, ImportError):
    """A feature needs a package from an extra that is not installed; the
    message says how to install the extra (:func:`install_hint`)."""

    @classmethod
    def needs(cls, what: str, extra: str) -> MissingExtra:
        """``what`` needs the extra ``extra``: the error, with the install hint."""
        return cls(f"{what}: {install_hint(extra)}")


#: Whether the distribution can be installed by name from PyPI. Until it
#: is, install hints name the checkout install: the name alone gave
#: "No matching distribution found" (issue 18).
PUBLISHED = False


def install_hint(extra: str) -> str:
    """How to install the extra ``extra`` (``"s3"``, ``"metrics"``…)."""
    if PUBLISHED:
        return f"pip install 'shoebox-archive[{extra}]'"
    return (f"pip install '.[{extra}]' in a shoebox checkout (shoebox-archive is not on "
            f"PyPI yet)")


class InvalidOption(ShoeboxError, ValueError):
    """An option's value cannot be taken. ``option`` names it as the code
    that checked it knows it; ``problem`` says what is wrong (``"must be
    more than 0, not -1"``), so a caller that spells the option otherwise
    (a command-line flag) can say the same with its own name."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option = option
        self.problem = problem

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.option, self.problem))


class UnusableDirectory(ShoeboxError, OSError):
    """Archives cannot be written in a directory: it cannot be created, is
    not a directory, or this process may not create files in it.
    ``filename`` is the directory; ``errno`` and ``strerror`` say why."""


class NotRegularFile(ShoeboxError, OSError):
    """A file found in a directory was refused: it is not a regular file
    really there, but a symbolic link (never followed), a directory, a
    FIFO, a socket or a device. ``filename`` is the path; :attr:`kind` says
    what it is (``"symlink"``, ``"directory"``, ``"fifo"``, ``"socket"``,
    ``"char_device"``, ``"block_device"``, ``"unknown"``)."""

    def __init__(self, kind: str, *, filename: str) -> None:
        self.kind = kind
        code = {"symlink": errno.ELOOP, "directory": errno.EISDIR}.get(kind, errno.EINVAL)
        super().__init__(code, f"not a regular file but {_KINDS.get(kind, kind)}: "
                         "refused, never followed", filename)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments: pickle (multiprocessing) needs the recipe.
        return _rebuild, (type(self), (self.kind,), {"filename": self.filename})


#: How :class:`NotRegularFile` names each kind of file in its message.
_KINDS = {"symlink": "a symbolic link", "directory": "a directory", "fifo": "a FIFO",
          "socket": "a socket", "char_device": "a character device",
          "block_device": "a block device", "unknown": "a file of unknown type"}


class BudgetExceeded(ShoeboxError, OSError):
    """The archives waiting in ``directory`` reached the disk budget
    (``max_local_mb``, ``max_bytes``): records are being dropped, and
    counted, until shipped archives are deleted. Reported, never raised
    into a write."""

    def __init__(self, message: str, *, directory: str | None = None,
                 max_bytes: int | None = None) -> None:
        super().__init__(message)
        self.directory = directory
        self.max_bytes = max_bytes


class UploadError(ShoeboxError, OSError):
    """Copying an archive to a destination (an S3 bucket, a directory) failed.

    ``destination`` is where it was going (``s3://bucket`` or a directory)
    and ``key`` the object key or relative path, when known; the message
    names both. :attr:`transient` says whether trying again later may work.
    """

    #: Whether the same copy may succeed if tried again later.
    transient = False

    def __init__(self, message: str, *, destination: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.destination = destination
        self.key = key


class TransientUploadError(UploadError):
    """An upload failed for a reason that may pass (connection refused, a
    timeout, a 5xx answer, throttling, a copy that did not confirm): retry
    with backoff, keep the archive.

    :attr:`throttled` says the server asked to slow down (S3's
    ``503 SlowDown``, a 429): a sign of load, not of failure.
    :attr:`retry_after` is how many seconds its ``Retry-After`` header asked
    for, when it sent one.
    """

    transient = True

    def __init__(self, message: str, *, destination: str | None = None,
                 key: str | None = None, throttled: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message, destination=destination, key=key)
        self.throttled = throttled
        self.retry_after = retry_after


class PermanentUploadError(UploadError):
    """An upload cannot work until someone changes something (no such bucket,
    access denied, an unwritable directory, a key that already holds other
    data): retrying as is will not help."""


class ShoeboxWarning(UserWarning):
    """Base class of the warnings shoebox issues."""


class DamageSkipped(ShoeboxWarning):
    """A reader told to skip damage (``on_damage="skip"``) left out damaged
    bytes or an archive it could not read; the message names the file and
    the byte offset."""


def _rebuild(cls: type[Exception], args: tuple[object, ...],
             keywords: dict[str, object]) -> Exception:
    """Unpickle an error whose constructor takes keyword-only arguments."""
    return cls(*args, **keywords)
