"""Archive callbacks: what happens when an archive is opened and closed.

A roll manager calls ``on_open(filename)`` when it opens an archive and
``on_close(filename)`` once the archive is complete under its final name;
``on_close`` returns where the archive is afterwards (a callback that moves
or renames it returns the new path, one that deletes it returns ``None``),
so callbacks chain. Callbacks are plugins: built from keyword arguments
alone, and every callback accepts (and ignores) keywords meant for others,
so one set of options can be shared by a :class:`CallbackList`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from . import plugins
from ._files import move_no_replace, rename_no_replace

logger = logging.getLogger("shoebox.callbacks")


class ArchiveCallback:
    """Base class: does nothing on open, leaves the archive where it is on close."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def on_open(self, filename: str) -> None:
        """An archive was opened; ``filename`` is the path being written."""

    def on_close(self, filename: str) -> str | None:
        """An archive is complete at ``filename``; return where it is now."""
        return filename


class CallbackList(ArchiveCallback):
    """Calls several callbacks in order, each ``on_close`` getting the path the
    previous one returned.

    Build it from ``callbacks`` (instances or dotted names) or, as the
    original shoebox did, from ``callback_list``: a comma-separated string of
    dotted names, each built with all the keyword arguments given here.

    A callback that raises is logged (logger ``shoebox.callbacks``) and
    does not stop the ones after it; they get the path from before it.
    """

    def __init__(self, *, callbacks: Iterable[ArchiveCallback | str] = (),
                 callback_list: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        specs: list[ArchiveCallback | str] = list(callbacks)
        specs.extend(name.strip() for name in callback_list.split(",") if name.strip())
        self.callbacks: list[ArchiveCallback] = [plugins.create(spec, **kwargs)
                                                 for spec in specs]

    def on_open(self, filename: str) -> None:
        for callback in self.callbacks:
            try:
                callback.on_open(filename)
            except Exception:
                logger.exception("archive callback %r failed on open of %s",
                                 callback, filename)

    def on_close(self, filename: str) -> str | None:
        current: str | None = filename
        for callback in self.callbacks:
            if current is None:
                break
            try:
                current = callback.on_close(current)
            except Exception:
                logger.exception("archive callback %r failed on close of %s; "
                                 "the archive stays there", callback, current)
        return current


class ChangeExtensionCallback(ArchiveCallback):
    """Appends ``new_extension`` (default ``".done"``) to the closed archive's
    name, as the original did: ``a.events`` becomes ``a.events.done``.
    Never replaces an existing file."""

    def __init__(self, *, new_extension: str = ".done", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not new_extension:
            raise ValueError("new_extension must not be empty")
        self.new_extension = new_extension

    def on_close(self, filename: str) -> str:
        target = filename + self.new_extension
        rename_no_replace(filename, target)
        return target


class MoveFileCallback(ArchiveCallback):
    """Moves the closed archive into ``destination_folder`` (created if
    missing), keeping its name. Never replaces an existing file."""

    def __init__(self, *, destination_folder: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.destination_folder = os.fspath(destination_folder)

    def on_close(self, filename: str) -> str:
        os.makedirs(self.destination_folder, exist_ok=True)
        target = os.path.join(self.destination_folder, os.path.basename(filename))
        move_no_replace(filename, target)
        return target


class DeleteFileCallback(ArchiveCallback):
    """Deletes the closed archive.

    In a :class:`CallbackList` it runs even when a callback before it
    failed, so ``[S3UploadCallback, DeleteFileCallback]`` deletes an archive
    whose upload failed. To delete only after a confirmed copy, use
    ``S3UploadCallback(after_upload="delete")`` (its default) instead.
    """

    def on_close(self, filename: str) -> None:
        os.unlink(filename)
        return None


def after_upload_callback(action: str) -> ArchiveCallback:
    """The callback that applies an ``after_upload`` action to an archive whose
    copy is confirmed: ``"delete"``, ``"keep"`` or ``"move:DIR"``. Raises
    ``ValueError`` for anything else."""
    if action == "delete":
        return DeleteFileCallback()
    if action == "keep":
        return ArchiveCallback()
    if action.startswith("move:") and action[len("move:"):]:
        return MoveFileCallback(destination_folder=action[len("move:"):])
    raise ValueError(f"after_upload must be delete, keep or move:DIR, not {action!r}")

