"""shoebox-sidecar: runs next to a service, ships its closed shoebox archives
to S3 or a directory, and deletes each local archive only once its copy is
confirmed.

Modules: :mod:`~shoebox_sidecar.cli` (the command, exit codes),
:mod:`~shoebox_sidecar.options` (the table of options),
:mod:`~shoebox_sidecar.config` (environment, TOML file, precedence),
:mod:`~shoebox_sidecar.sidecar` (the run loops and per-archive shipping),
:mod:`~shoebox_sidecar.retry` (attempt limits, the throttling pause, full
staging episodes), :mod:`~shoebox_sidecar.outcomes` (where each archive
stands, totals), :mod:`~shoebox_sidecar.events` (events told to observers;
the log is one), :mod:`~shoebox_sidecar.watch` (watchdog events and periodic
scans), :mod:`~shoebox_sidecar.pool` (workers, one run per archive at a
time), :mod:`~shoebox_sidecar.backoff` (retry waits),
:mod:`~shoebox_sidecar.logs` (JSON lines on stderr),
:mod:`~shoebox_sidecar.metrics` (``/metrics`` and ``/healthz``;
``shoebox-archive[metrics]``, imported only when used). The
compression and upload code itself is :mod:`shoebox.shipping` and
:mod:`shoebox.destinations`, shared with the in-process callbacks.
"""

from __future__ import annotations

from .backoff import Backoff
from .cli import build_parser, main
from .events import Event, SidecarObserver
from .outcomes import Summary
from .pool import WorkerPool
from .sidecar import Backlog, Sidecar
from .watch import ArchiveWatcher

__all__ = [
    "ArchiveWatcher",
    "Backlog",
    "Backoff",
    "Event",
    "Sidecar",
    "SidecarObserver",
    "Summary",
    "WorkerPool",
    "build_parser",
    "main",
]
