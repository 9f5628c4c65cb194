"""Finding closed archives: watchdog events for files created in or moved into
the directory, and full scans (at start, then periodically) for what events
missed. Names that match but are not regular files (symbolic links, FIFOs,
sockets, directories) are told apart, never reported as archives."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable
from typing import Any

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from shoebox._files import file_kind
from shoebox.naming import is_open


class ArchiveWatcher:
    """Calls ``found(path)`` for every closed archive in ``directory`` whose
    name matches the wildcard ``pattern``.

    Never reports ``.open`` files (archives still being written) nor hidden
    files (temporary files start with a dot), and only looks at
    ``directory`` itself, not its subdirectories (where quarantined or moved
    archives go). A matching name that is not a regular file (a symbolic
    link, whatever it points to, a FIFO, a socket, a directory) goes to
    ``not_regular(path, kind)`` instead (``kind`` as
    :class:`~shoebox.errors.NotRegularFile` names it), at every scan and
    event that meets it: this only filters, and whoever opens a path found
    must still refuse what is not a regular file (the name may change in
    between; see :func:`shoebox._files.open_regular`).
    """

    def __init__(self, directory: str, pattern: str, found: Callable[[str], object],
                 not_regular: Callable[[str, str], object] | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.pattern = pattern
        self._found = found
        self._not_regular = not_regular
        self._observer: Any = None

    def matches(self, path: str) -> bool:
        """Whether ``path`` is a closed archive this watcher reports."""
        directory, name = os.path.split(os.path.abspath(path))
        return (directory == self.directory and fnmatch.fnmatchcase(name, self.pattern)
                and not is_open(name) and not name.startswith("."))

    def paths(self) -> list[str]:
        """Every matching regular file present now, in name order."""
        return self.listing()[0]

    def listing(self) -> tuple[list[str], dict[str, str]]:
        """The matching regular files present now, in name order, and the
        matching names that are not regular files, with what each is."""
        regular, other = [], {}
        with os.scandir(self.directory) as entries:
            for entry in sorted(entries, key=lambda entry: entry.name):
                if not self.matches(entry.path):
                    continue
                try:
                    # The entry itself: a link is a link, never what it points to.
                    kind = file_kind(entry.stat(follow_symlinks=False).st_mode)
                except FileNotFoundError:
                    continue  # shipped and removed since the listing
                if kind == "regular":
                    regular.append(entry.path)
                else:
                    other[entry.path] = kind
        return regular, other

    def scan(self) -> int:
        """Report every matching regular file present now, in name order,
        and every matching name that is not one; return how many regular
        files."""
        paths, other = self.listing()
        if self._not_regular is not None:
            for path, kind in other.items():
                self._not_regular(path, kind)
        for path in paths:
            self._found(path)
        return len(paths)

    def start(self) -> None:
        """Start watching (a watchdog ``Observer`` thread)."""
        observer = Observer()
        observer.schedule(_Events(self), self.directory, recursive=False)
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        """Stop watching and join the observer thread. Harmless if not started."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()

    def _consider(self, path: str | bytes) -> None:
        text = os.fsdecode(path)
        if not self.matches(text):
            return
        try:
            # Not os.path.isfile, which follows a link out of the directory
            # (issue 17: a link created in WATCH_DIR shipped its target).
            mode = os.stat(text, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return  # shipped, or renamed away, since the event
        if stat.S_ISREG(mode):
            self._found(text)
        elif self._not_regular is not None:
            self._not_regular(text, file_kind(mode))


class _Events(FileSystemEventHandler):
    """watchdog handler: a file created in, or moved into, the directory."""

    def __init__(self, watcher: ArchiveWatcher) -> None:
        super().__init__()
        self._watcher = watcher

    # Directory events too: a directory named like an archive is reported
    # as not regular (the watcher tells what each path is).
    def on_created(self, event: Any) -> None:
        self._watcher._consider(event.src_path)

    def on_moved(self, event: Any) -> None:
        self._watcher._consider(event.dest_path)
