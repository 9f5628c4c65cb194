"""Archive callbacks: what happens when an archive is opened and closed.

A roll manager calls ``on_open(filename)`` when it opens an archive and
``on_close(filename)`` once the archive is complete under its final name;
``on_close`` returns where the archive is afterwards (a callback that moves
or renames it returns the new path, one that deletes it returns ``None``),
so callbacks chain. Callbacks are plugins: built from keyword arguments
alone; a keyword a callback does not take is refused when it is built
(``TypeError`` naming it), so a misspelt option never silently gives the
default. A :class:`CallbackList` hands its shared options to each callback
that takes them.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterable
from typing import Any

from . import plugins
from ._files import move_no_replace, rename_no_replace

logger = logging.getLogger("shoebox.callbacks")


class ArchiveCallback:
    """Base class: does nothing on open, leaves the archive where it is on close."""

    def __init__(self) -> None:
        # Explicit, so that an option given to a callback that takes none is
        # refused by name ("unexpected keyword argument 'x'").
        pass

    def on_open(self, filename: str) -> None:
        """An archive was opened; ``filename`` is the path being written."""

    def on_close(self, filename: str) -> str | None:
        """An archive is complete at ``filename``; return where it is now."""
        return filename


class CallbackList(ArchiveCallback):
    """Calls several callbacks in order, each ``on_close`` getting the path the
    previous one returned.

    Build it from ``callbacks`` (instances, dotted names or ``{"()": dotted
    name, **options}`` mappings, see :mod:`shoebox.plugins`) or, as the
    original shoebox did, from ``callback_list``: a comma-separated string of
    dotted names. Each callback named by a dotted name is built with those
    of the keyword arguments given here that it takes; one that none of
    them takes is refused (``TypeError`` naming it).

    A callback that raises is logged (logger ``shoebox.callbacks``) and
    does not stop the ones after it; they get the path from before it.
    """

    def __init__(self, *, callbacks: Iterable[ArchiveCallback | plugins.Spec] = (),
                 callback_list: str = "", **shared: Any) -> None:
        specs: list[ArchiveCallback | plugins.Spec] = list(callbacks)
        specs.extend(name.strip() for name in callback_list.split(",") if name.strip())
        self.callbacks: list[ArchiveCallback] = []
        unused = set(shared)
        for spec in specs:
            options: dict[str, Any] = {}
            if isinstance(spec, str):
                options = _accepted(plugins.load(spec), shared)
                unused -= set(options)
            self.callbacks.append(plugins.create_as(ArchiveCallback, "callbacks", spec,
                                                    **options))
        if unused:
            raise TypeError(f"CallbackList: no callback takes the option(s) "
                            f"{', '.join(sorted(unused))}")

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


def _accepted(factory: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` that ``factory`` takes as keyword arguments."""
    parameters = inspect.signature(factory).parameters.values()
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return dict(options)
    names = {parameter.name for parameter in parameters
             if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)}
    return {name: value for name, value in options.items() if name in names}


class ChangeExtensionCallback(ArchiveCallback):
    """Appends ``new_extension`` (default ``".done"``) to the closed archive's
    name, as the original did: ``a.events`` becomes ``a.events.done``.
    Never replaces an existing file."""

    def __init__(self, *, new_extension: str = ".done") -> None:
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

    def __init__(self, *, destination_folder: str | os.PathLike[str]) -> None:
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

