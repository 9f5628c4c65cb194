"""A local disk budget: how many bytes of archives may wait in a directory.

:class:`DiskBudget` answers, for each write, whether it fits, without a
``stat`` per write: it scans the directory once (the archives a manager's
names match, ``.open`` ones included), then adds what it is told was
written. It looks at the directory again only when the count comes near
the budget or past it, at most once per ``rescan_interval`` seconds of its
injected clock, and whenever asked (:meth:`DiskBudget.rescan`, at each new
archive): that is when it sees archives the sidecar shipped and deleted,
and what other processes wrote there.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable

from ._files import file_kind
from .naming import OPEN_SUFFIX

#: Past this share of the budget, the directory is looked at again (at a
#: bounded rate), since what other processes wrote is not counted between scans.
_NEAR = 0.9
#: Least time between two looks at the directory while near or over budget.
DEFAULT_RESCAN_INTERVAL = 1.0


class DiskBudget:
    """At most ``max_bytes`` of archives in ``directory``: files whose names
    match the wildcard ``pattern`` (see :func:`shoebox.naming.name_pattern`),
    finished or still ``.open``. ``clock`` (seconds, ``time.monotonic``)
    paces the rescans. Not thread-safe: the roll manager calls it under
    its lock.

    Only regular files count: a matching name that is a symbolic link
    (never followed: whatever it points to is not here), a FIFO or a
    directory is left out, and counted once per path in
    :attr:`skipped_not_regular`."""

    def __init__(self, max_bytes: int, directory: str, pattern: str, *,
                 clock: Callable[[], float] = time.monotonic,
                 rescan_interval: float = DEFAULT_RESCAN_INTERVAL) -> None:
        if max_bytes < 1:
            raise ValueError(f"a disk budget needs at least 1 byte, not {max_bytes}")
        self.max_bytes = max_bytes
        self.directory = directory
        self.pattern = pattern
        self._clock = clock
        self._rescan_interval = rescan_interval
        #: Bytes of archives in the directory, as last counted plus what was
        #: written since.
        self.used = 0
        #: Matching names found not to be regular files, each path once
        #: (again if it comes back after a scan did not see it).
        self.skipped_not_regular = 0
        self._not_regular: set[str] = set()
        self._scanned_at: float | None = None

    def admits(self, size: int, *, resuming: bool = False) -> bool:
        """Whether ``size`` more bytes keep the directory within the budget;
        ``resuming`` (after writes were refused), whether they keep it below
        90% of it, so that a writer at the edge does not go back and forth
        between writing and dropping with each record's size."""
        if self._scanned_at is None or (self.used + size > self.max_bytes * _NEAR
                                        and self._clock() - self._scanned_at
                                        >= self._rescan_interval):
            self.rescan()
        limit = self.max_bytes * _NEAR if resuming else self.max_bytes
        return self.used + size <= limit

    def written(self, size: int) -> None:
        """``size`` bytes were appended to an archive in the directory."""
        self.used += size

    def rescan(self) -> None:
        """Count the bytes of the archives in the directory now. A directory
        that cannot be listed (not created yet) holds nothing."""
        # By file (device, inode): an archive renamed from NAME.open to NAME
        # while the directory is listed (a writer's finisher finishing it)
        # is counted once, under whichever name is seen.
        sizes: dict[tuple[int, int], int] = {}
        not_regular = set()
        pattern, open_pattern = self.pattern, self.pattern + OPEN_SUFFIX
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    name = entry.name
                    if not (fnmatch.fnmatchcase(name, pattern)
                            or fnmatch.fnmatchcase(name, open_pattern)):
                        continue
                    try:
                        # The entry itself, never what a link points to.
                        status = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        if not name.endswith(OPEN_SUFFIX):
                            continue  # shipped and deleted meanwhile
                        try:  # finished meanwhile: the listing may be past its new name
                            status = os.stat(entry.path[:-len(OPEN_SUFFIX)],
                                             follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                    if file_kind(status.st_mode) == "regular":
                        sizes[(status.st_dev, status.st_ino)] = status.st_size
                    else:
                        not_regular.add(name)
        except FileNotFoundError:
            pass
        self.used = sum(sizes.values())
        self.skipped_not_regular += len(not_regular - self._not_regular)
        self._not_regular = not_regular
        self._scanned_at = self._clock()


__all__ = ["DEFAULT_RESCAN_INTERVAL", "DiskBudget"]
