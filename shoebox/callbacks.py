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

from . import plugins, storage
from ._files import move_no_replace, rename_no_replace
from .compression import check_level

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


class CompressCallback(ArchiveCallback):
    """Compresses the closed archive next to itself (``a.events`` becomes
    ``a.events.gz``) and removes the original once the compressed file is
    synced and its checksum confirmed; returns the compressed file's path.

    ``compression`` is ``"gzip"`` (default) or ``"zstd"`` (``shoebox[zstd]``),
    at ``level``. The work is :class:`~shoebox.storage.Shipper`'s, the same
    code the sidecar runs, into a
    :class:`~shoebox.storage.DirectoryDestination`. It runs on the thread
    that closed the archive (the writer's, or the idle-roll thread), and
    writes to the roll manager wait until it is done.
    """

    def __init__(self, *, compression: str = "gzip", level: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if compression == "none":
            raise ValueError("CompressCallback needs a compression method, not 'none'")
        # Checked now, so that a bad method or level or a missing extra
        # fails at configuration time rather than on the first close.
        self.compression = check_level(compression, level)
        self.level = level

    def on_close(self, filename: str) -> str:
        directory = storage.DirectoryDestination(os.path.dirname(filename) or ".")
        shipper = storage.Shipper(directory, key_template="{name}{suffix}",
                                  compression=self.compression, level=self.level)
        result = shipper.ship(filename)
        os.unlink(filename)
        return result.location


class S3UploadCallback(ArchiveCallback):
    """Compresses the closed archive and uploads it, in process: the same code
    as the sidecar (:class:`~shoebox.storage.Shipper`), one attempt, on the
    thread that closed the archive (writes to the roll manager wait until
    it is done).

    ``destination``: ``s3://bucket/prefix`` (or a directory / ``file://``
    URL); ``endpoint_url`` for MinIO, Ceph or a test server;
    ``key_template`` (see :class:`~shoebox.storage.KeyTemplate`);
    ``compression`` and ``level``; ``verify``; ``host``;
    ``server_side_encryption``, ``kms_key_id``, ``storage_class``;
    ``after_upload``: ``"delete"`` (default), ``"keep"`` or ``"move:DIR"``,
    applied only once the copy is confirmed. A failed upload raises
    :class:`~shoebox.errors.UploadError`; the roll manager logs it and the
    archive stays where it is, for a later ``shoebox-sidecar --once`` run.
    """

    def __init__(self, *, destination: str, endpoint_url: str | None = None,
                 key_template: str = storage.DEFAULT_KEY_TEMPLATE,
                 compression: str = "gzip", level: int | None = None,
                 verify: bool = False, host: str | None = None,
                 server_side_encryption: str | None = None, kms_key_id: str | None = None,
                 storage_class: str | None = None, after_upload: str = "delete",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = storage.open_destination(
            destination, endpoint_url=endpoint_url,
            server_side_encryption=server_side_encryption, kms_key_id=kms_key_id,
            storage_class=storage_class)
        self.shipper = storage.Shipper(target, key_template=key_template,
                                       compression=compression, level=level,
                                       verify=verify, host=host)
        self.after_upload = after_upload_callback(after_upload)

    def on_close(self, filename: str) -> str | None:
        self.shipper.ship(filename)
        return self.after_upload.on_close(filename)
