"""Where each archive a sidecar run took up stands, and the totals of what it
shipped: the bookkeeping behind the ``finished`` line and the exit code."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from shoebox.shipping import ShipResult

# An archive's identity on disk: its path, inode and modification time.
Identity = tuple[str, int, int]


def identity(path: str, stat: os.stat_result) -> Identity:
    """``path``'s identity, from its ``stat``."""
    return path, stat.st_ino, stat.st_mtime_ns


@dataclass(frozen=True)
class Summary:
    """Where the archives a run was given stand: three disjoint groups."""

    #: Archives shipped and then deleted, moved or kept, as ``after_upload`` says.
    shipped: int
    #: Archives shipped whose deletion or move failed: still here, by path.
    not_removed: list[str]
    #: Archives not shipped (failed, damaged, given up, or not reached before
    #: stopping): still here, or quarantined, by path.
    not_shipped: list[str]
    #: Archives still being written (``.open``, a live writer's) when
    #: :meth:`~shoebox_sidecar.sidecar.Sidecar.run` stopped: not shipped either.
    still_open: list[str] = field(default_factory=list)


class Outcomes:
    """The state of every archive taken up: pending, not shipped, not removed,
    or finished (shipped and dealt with), plus the archives shipped and kept
    (``after_upload`` "keep"), which scans must not ship again. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Archives taken up and not yet shipped and dealt with, by path:
        # "pending" (no outcome yet), "not_shipped" or "not_removed".
        self._unfinished: dict[str, str] = {}
        self._finished = 0
        self._kept: set[Identity] = set()
        # Names found that are not regular files, told once each (a scan
        # every scan_interval meets them again), by path: their kind.
        self._not_regular: dict[str, str] = {}
        # .open archives still being written when the run stopped.
        self._still_open: list[str] = []
        #: Totals over the archives shipped so far.
        self.totals = {"archives": 0, "records": 0, "bytes_in": 0, "bytes_out": 0}

    def take(self, archive: Identity) -> bool:
        """Take up an archive found in the directory; False for one shipped
        and kept. One known already keeps its state: one shipped but not
        removed is only shipped again (found at the destination) and removed."""
        with self._lock:
            # A regular file again: should a link take its name later, say so.
            self._not_regular.pop(archive[0], None)
            if archive in self._kept:
                return False
            self._unfinished.setdefault(archive[0], "pending")
            return True

    def not_regular(self, path: str, kind: str) -> bool:
        """``path`` is not a regular file but a ``kind``; return whether that
        is news (first seen, or it was something else before)."""
        with self._lock:
            if self._not_regular.get(path) == kind:
                return False
            self._not_regular[path] = kind
            return True

    def tried(self, path: str) -> bool:
        """Whether an attempt at ``path`` has had an outcome already (a failed
        one waits for the next run)."""
        with self._lock:
            return self._unfinished.get(path, "pending") != "pending"

    def left_here(self, archive: Identity) -> None:
        """After the run: an archive still here, unless shipped and kept,
        counts as not shipped (one that closed after the last scan too)."""
        with self._lock:
            if archive not in self._kept:
                self._unfinished.setdefault(archive[0], "not_shipped")

    def still_open(self, paths: list[str]) -> None:
        """After the run: the ``.open`` archives a live writer still writes."""
        with self._lock:
            self._still_open = list(paths)

    def kept(self, archive: Identity) -> bool:
        """Whether the archive was shipped and kept."""
        with self._lock:
            return archive in self._kept

    def gone(self, path: str) -> None:
        """The archive went away (shipped by someone else, moved): not left here."""
        with self._lock:
            self._unfinished.pop(path, None)

    def not_shipped(self, path: str) -> None:
        with self._lock:
            self._unfinished[path] = "not_shipped"

    def not_removed(self, path: str) -> None:
        with self._lock:
            self._unfinished[path] = "not_removed"

    def shipped(self, result: ShipResult) -> None:
        """A copy was confirmed: count it in the totals."""
        with self._lock:
            for name, value in (("archives", 1), ("records", result.records),
                                ("bytes_in", result.bytes_in), ("bytes_out", result.bytes_out)):
                self.totals[name] += value

    def finished(self, path: str, kept: Identity | None) -> None:
        """The archive was shipped and dealt with; ``kept`` is its identity
        when it stays in the directory."""
        with self._lock:
            self._unfinished.pop(path, None)
            self._finished += 1
            if kept is not None:
                self._kept.add(kept)

    def summary(self) -> Summary:
        """Where the archives taken up so far stand."""
        with self._lock:
            states = dict(self._unfinished)
            finished = self._finished
            still_open = list(self._still_open)
        return Summary(finished, sorted(path for path, state in states.items()
                                        if state == "not_removed"),
                       sorted(path for path, state in states.items()
                              if state != "not_removed"), still_open)

    def totals_now(self) -> dict[str, int]:
        """A copy of :attr:`totals`."""
        with self._lock:
            return dict(self.totals)
