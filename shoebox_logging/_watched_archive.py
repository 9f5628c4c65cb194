"""An archive writer that notices when its file is deleted under it."""

from __future__ import annotations

import time

from shoebox.archive import ArchiveWriter
from shoebox.errors import ArchiveVanished

#: Seconds between two checks of whether the active archive still has a name.
UNLINK_CHECK_SECONDS = 1.0


class WatchedArchiveWriter(ArchiveWriter):
    """An :class:`~shoebox.archive.ArchiveWriter` that, after a write, raises
    :class:`~shoebox.errors.ArchiveVanished` once it finds that its file was
    deleted (its directory removed, say).

    Writing to a deleted file succeeds, so nothing else would notice: every
    record would go into a file nobody can read, and the rename at the next
    roll would fail. The check is one ``fstat``, made at most once every
    :data:`UNLINK_CHECK_SECONDS` (on the write path an ``fstat`` per record
    would cost as much as the write itself); records written between the
    deletion and the check are lost with the deleted file. The write that
    raises did reach the deleted file, so its caller writes that record
    again into a new archive.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._next_check = time.monotonic() + UNLINK_CHECK_SECONDS

    def write_encoded(self, record: bytes) -> None:
        super().write_encoded(record)
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + UNLINK_CHECK_SECONDS
            if self.unlinked:
                raise ArchiveVanished(f"{self.filename} was deleted while being written; "
                                      f"records written to it since are lost",
                                      filename=self.filename)
