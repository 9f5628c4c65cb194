"""Finding closed archives: watchdog events for files created in or moved into
the directory, and full scans (at start, then periodically) for what events
missed."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from typing import Any

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from shoebox.naming import is_open


class ArchiveWatcher:
    """Calls ``found(path)`` for every closed archive in ``directory`` whose
    name matches the wildcard ``pattern``.

    Never reports ``.open`` files (archives still being written) nor hidden
    files (temporary files start with a dot), and only looks at
    ``directory`` itself, not its subdirectories (where quarantined or moved
    archives go).
    """

    def __init__(self, directory: str, pattern: str, found: Callable[[str], object]) -> None:
        self.directory = os.path.abspath(directory)
        self.pattern = pattern
        self._found = found
        self._observer: Any = None

    def matches(self, path: str) -> bool:
        """Whether ``path`` is a closed archive this watcher reports."""
        directory, name = os.path.split(os.path.abspath(path))
        return (directory == self.directory and fnmatch.fnmatchcase(name, self.pattern)
                and not is_open(name) and not name.startswith("."))

    def paths(self) -> list[str]:
        """Every matching regular file present now, in name order."""
        with os.scandir(self.directory) as entries:
            names = sorted(entry.name for entry in entries if entry.is_file(follow_symlinks=False))
        return [path for path in (os.path.join(self.directory, name) for name in names)
                if self.matches(path)]

    def scan(self) -> int:
        """Report every matching regular file present now, in name order;
        return how many."""
        paths = self.paths()
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
        if self.matches(text) and os.path.isfile(text):
            self._found(text)


class _Events(FileSystemEventHandler):
    """watchdog handler: a file created in, or moved into, the directory."""

    def __init__(self, watcher: ArchiveWatcher) -> None:
        super().__init__()
        self._watcher = watcher

    def on_created(self, event: Any) -> None:
        if not event.is_directory:
            self._watcher._consider(event.src_path)

    def on_moved(self, event: Any) -> None:
        if not event.is_directory:
            self._watcher._consider(event.dest_path)
