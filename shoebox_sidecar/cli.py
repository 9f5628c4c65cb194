"""``shoebox-sidecar WATCH_DIR --dest DEST [options]``: the command line.

The options are :data:`~shoebox_sidecar.options.OPTIONS`; each can also
be set with an environment variable named ``SHOEBOX_SIDECAR_`` plus the
option's name in capitals (``--max-backoff`` is
``SHOEBOX_SIDECAR_MAX_BACKOFF``) or in a TOML file (``--config``; see
:mod:`~shoebox_sidecar.config`): the command line wins over the
environment, which wins over the file. Exit codes: 0 done, nothing left
behind; 1 archives left, not shipped or not removed (``--once``, also
when it gave up; either mode when stopped by a signal, watch mode also
for archives still being written then); 2 bad options (also from
``--print-config``); 3 the destination cannot work (no such bucket,
credentials refused, access denied, a directory that cannot be written).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

from shoebox._redact import redact, remember_url
from shoebox.callbacks import after_upload_callback
from shoebox.destinations import open_destination
from shoebox.errors import (
    InvalidOption,
    MissingExtra,
    PermanentUploadError,
    TransientUploadError,
)
from shoebox.s3 import S3Options
from shoebox.shipping import Shipper

from . import config, logs
from .backoff import Backoff
from .logs import logger
from .options import BY_NAME, ENV_PREFIX, OPTIONS
from .sidecar import Sidecar

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DESTINATION = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, built from :data:`~shoebox_sidecar.options.OPTIONS`.
    It has no defaults: what the command line leaves out is absent from the
    namespace, for :func:`~shoebox_sidecar.config.resolve` to fill in."""
    parser = argparse.ArgumentParser(
        prog="shoebox-sidecar",
        description="Watch a directory for closed shoebox archives, compress them, ship "
                    "them to S3 or a directory, confirm each copy, then delete (or keep, "
                    "or move) the local archive. Delivery is at least once; keys are "
                    "deterministic, so a retry rewrites the same object.",
        epilog=f"Every option can also be set from the environment: {ENV_PREFIX} plus the "
               "option name in capitals, dashes as underscores (--max-backoff is "
               f"{ENV_PREFIX}MAX_BACKOFF; flags take true/false), or in the --config file, "
               "by the option name with underscores (max_backoff = 10.0). The command line "
               "wins over the environment, which wins over the file. Exit codes: 0 done (watch "
               "mode: stopped by SIGTERM/SIGINT), 1 archives left unshipped or not removed "
               "(--once, also when it gave up or was stopped), 2 bad options, "
               "3 the destination cannot work.")
    for option in OPTIONS:
        option.add_to(parser)
    parser.add_argument("--config", metavar="FILE.toml", default=argparse.SUPPRESS,
                        help="read options from this TOML file (keys: the option names with "
                             f"underscores) [env {config.CONFIG_VARIABLE}]")
    parser.add_argument("--print-config", action="store_true",
                        help="print every option's value and where it comes from (command "
                             "line, environment, file, default) as TOML, check them as a run "
                             "would, then exit (2 if a run would refuse them)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sidecar; return the exit code. Uploads still running after
    ``--shutdown-timeout`` are left to their threads (see :func:`script`)."""
    return _main(argv)[0]


def script() -> NoReturn:
    """The ``shoebox-sidecar`` command (and ``python -m shoebox_sidecar``):
    :func:`main`, then exit with its code.

    When uploads outlast ``--shutdown-timeout``, the process ends at once
    (``os._exit``, after flushing its log): boto3's transfer threads are
    joined at interpreter exit, so a plain exit would wait for an upload
    stuck in network I/O, a minute or more, past the timeout. Their
    archives stay for the next run.
    """
    code, abandoned = _main(None)
    if abandoned:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _main(argv: Sequence[str] | None) -> tuple[int, bool]:
    """The exit code, and whether uploads were left running."""
    parser = build_parser()
    given = parser.parse_args(argv)
    try:
        settings = config.resolve(given, os.environ, getattr(given, "config", None))
    except config.ConfigError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {redact(str(exc))}\n")
    # Before anything can print it or fail and say where: see shoebox._redact.
    remember_url(settings.values.endpoint_url)
    args = settings.values
    if given.print_config:
        sys.stdout.write(config.render(settings))
        sys.stdout.flush()
        # The checks of a run, nothing started: the deploy README uses
        # --print-config as the check step (issue 18: it passed workers = -1
        # and a key template without {name}, which the run then refused).
        _require(parser, args)
        try:
            _build(args)
        except (ValueError, MissingExtra) as exc:
            parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
        return EXIT_OK, False
    _require(parser, args)
    with logs.json_lines(args.log_level):
        try:
            sidecar = _build(args)
            _ensure_watch_dir(sidecar.watch_dir)
        except (ValueError, MissingExtra) as exc:
            logger.error("bad configuration: %s", exc, extra={"event": "config_error"})
            return EXIT_USAGE, False
        return _run(args, sidecar), sidecar.abandoned_uploads


def _require(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 naming the first required option that no source set."""
    for option in (BY_NAME["watch_dir"], BY_NAME["dest"]):
        if not getattr(args, option.name):
            parser.error(f"{option.flag} is required (or {option.variable}, or "
                         f"{option.name} in the --config file)")


def _run(args: argparse.Namespace, sidecar: Sidecar) -> int:
    if args.metrics_port is None:
        return _start(args, sidecar)
    from .metrics import MetricsServer, SidecarMetrics

    assert isinstance(sidecar.observer, SidecarMetrics)  # see _build
    try:
        # Before the destination check, which may wait for a slow endpoint:
        # probes get answers from the start.
        server = MetricsServer(sidecar.observer, args.metrics_address, args.metrics_port)
    except OSError as exc:
        logger.error("cannot serve metrics on %s port %d: %s", args.metrics_address,
                     args.metrics_port, exc, extra={"event": "config_error"})
        return EXIT_USAGE
    with server:
        logger.info("serving /metrics and /healthz on %s port %d", server.address, server.port,
                    extra={"event": "metrics_listening", "address": server.address,
                           "port": server.port})
        return _start(args, sidecar)


def _start(args: argparse.Namespace, sidecar: Sidecar) -> int:
    """Check the destination, clean up after earlier runs, then run."""
    destination = sidecar.shipper.destination
    try:
        destination.check()
    except PermanentUploadError as exc:
        logger.error("destination %s cannot work: %s", destination.url, exc,
                     extra={"event": "destination_error", "destination": destination.url})
        return EXIT_DESTINATION
    except TransientUploadError as exc:
        logger.warning("destination %s not reachable yet: %s; going on, uploads will retry",
                       destination.url, exc,
                       extra={"event": "destination_unreachable", "destination": destination.url})
    try:
        for path in sidecar.shipper.remove_stale_temporaries():
            logger.info("removed %s, left by a sidecar killed while shipping", path,
                        extra={"event": "removed_stale", "path": path})
    except OSError as exc:  # leftovers cost space, not data: go on
        logger.warning("removing stale temporary files failed: %s", exc,
                       extra={"event": "cleanup_failed", "error": str(exc)})
    previous = _on_signals(sidecar, once=args.once)
    try:
        return sidecar.run_once() if args.once else sidecar.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _build(args: argparse.Namespace) -> Sidecar:
    """Turn parsed options into a :class:`Sidecar`; raises ``ValueError``."""
    destination = open_destination(args.dest, _s3_options(args))
    shipper = Shipper(destination, key_template=args.key_template, compression=args.compress,
                      level=args.level, verify=args.verify, host=args.host,
                      tmp_dir=args.tmp_dir)
    observer = None
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            raise ValueError(f"--metrics-port must be 0 to 65535, not {args.metrics_port}")
        from .metrics import SidecarMetrics

        observer = SidecarMetrics(unhealthy_after=args.unhealthy_after)
    sidecar = Sidecar(args.watch_dir, shipper, pattern=args.pattern,
                      after_upload=after_upload_callback(args.after_upload),
                      workers=args.workers, quarantine_dir=args.quarantine_dir,
                      backoff=Backoff(args.initial_backoff, args.max_backoff),
                      max_attempts=args.max_attempts, scan_interval=args.scan_interval,
                      shutdown_timeout=args.shutdown_timeout, once_timeout=args.once_timeout,
                      recover_stale=args.recover_stale, stale_after=args.stale_after,
                      observer=observer)
    if observer is not None:
        observer.watch(sidecar)
    return sidecar


def _ensure_watch_dir(path: str) -> None:
    """Create ``path`` if it does not exist yet (mode 0750, less the umask),
    and say so; raises ``ValueError`` if it cannot be created or is not a
    directory.

    Created rather than waited for: the application's handler creates it
    only with its first record, and a sidecar started first (systemd's
    ``Restart=always``, a pod's containers in any order) must not fail in a
    loop meanwhile (issue 13). It belongs to the sidecar's user: an
    application running as another user needs it made beforehand, shared
    (docs/sidecar.md).
    """
    if os.path.isdir(path):
        return
    if os.path.lexists(path):
        raise ValueError(f"WATCH_DIR {path!r} is not a directory")
    try:
        os.makedirs(path, mode=0o750)
    except FileExistsError:
        if not os.path.isdir(path):  # else: the application made it meanwhile
            raise ValueError(f"WATCH_DIR {path!r} is not a directory") from None
        return
    except OSError as exc:
        raise ValueError(f"WATCH_DIR {path!r} does not exist and cannot be created: "
                         f"{exc.strerror or exc}") from None
    stat = os.stat(path)
    mode = stat.st_mode & 0o7777
    logger.info("created WATCH_DIR %s (mode %04o, owner %d:%d): it did not exist yet", path,
                mode, stat.st_uid, stat.st_gid,
                extra={"event": "created_watch_dir", "path": path, "mode": f"{mode:04o}",
                       "uid": stat.st_uid, "gid": stat.st_gid})


def _s3_options(args: argparse.Namespace) -> S3Options:
    """The S3 options the flags give, checked whatever the destination (a
    directory destination refuses those that would change the copy);
    raises ``ValueError`` naming the flag."""
    values = {name: getattr(args, name) for name in (
        "endpoint_url", "connect_timeout", "read_timeout", "sse", "sse_kms_key_id",
        "storage_class", "acl", "multipart_threshold_mb", "multipart_chunk_mb")}
    values["tags"] = _tags(args.tag or [])
    try:
        return S3Options(**values)
    except InvalidOption as exc:
        flag = BY_NAME["tag" if exc.option == "tags" else exc.option].flag
        raise ValueError(f"{flag} {exc.problem}") from None


def _tags(items: list[str]) -> dict[str, str]:
    """``--tag KEY=VALUE`` options as a mapping; raises ``ValueError``."""
    tags: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"--tag {item!r}: expected KEY=VALUE")
        if key in tags:
            raise ValueError(f"--tag {item!r}: tag {key!r} given twice")
        tags[key] = value
    return tags


def _on_signals(sidecar: Sidecar, *, once: bool = False) -> dict[int, Any]:
    """Make SIGTERM and SIGINT stop the sidecar (a second one: at once);
    return the previous handlers."""
    received: list[int] = []

    def stopping(signum: int) -> None:
        received.append(signum)
        if len(received) > 1:
            plan = "stopping at once, leaving what is not shipped yet"
        elif once:
            plan = "finishing uploads in progress, taking no new work"
        else:
            plan = (f"shipping what closed since the last scan, for up to "
                    f"{sidecar.shutdown_timeout:g} s (--shutdown-timeout)")
        logger.info("received %s: %s", signal.Signals(signum).name, plan,
                    extra={"event": "stopping"})
        sidecar.stop()

    def stop(signum: int, frame: FrameType | None) -> None:
        # A handler runs on the main thread between two bytecodes, possibly
        # while that thread holds a lock that stop() takes (the pool's, while
        # a scan submits archives; an Event's): taking it here would
        # deadlock. Another thread waits for it instead.
        threading.Thread(target=stopping, args=(signum,), name="sidecar-stop",
                         daemon=True).start()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, stop)
    return previous
