"""``shoebox-sidecar WATCH_DIR --dest DEST [options]``: the command line.

Every option can also be set with an environment variable named
``SHOEBOX_SIDECAR_`` plus the option's name in capitals (``--max-backoff``
is ``SHOEBOX_SIDECAR_MAX_BACKOFF``); a command-line option wins. Exit
codes: 0 done (or stopped by SIGTERM/SIGINT), 1 some archives could not be
shipped (``--once``), 2 bad options, 3 the destination cannot work (no
such bucket, access denied, a directory that cannot be written).
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

import shoebox
from shoebox.callbacks import after_upload_callback
from shoebox.compression import SUFFIXES
from shoebox.destinations import open_destination
from shoebox.errors import MissingExtra, PermanentUploadError, TransientUploadError
from shoebox.shipping import DEFAULT_KEY_TEMPLATE, Shipper

from . import logs
from .backoff import Backoff
from .logs import logger
from .sidecar import Sidecar

ENV_PREFIX = "SHOEBOX_SIDECAR_"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DESTINATION = 0, 1, 2, 3
_MB = 1024 * 1024
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper().replace("-", "_")


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def build_parser(environ: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; defaults come from ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="shoebox-sidecar",
        description="Watch a directory for closed shoebox archives, compress them, ship "
                    "them to S3 or a directory, confirm each copy, then delete (or keep, "
                    "or move) the local archive. Delivery is at least once; keys are "
                    "deterministic, so a retry rewrites the same object.",
        epilog=f"Every option can be set from the environment: {ENV_PREFIX} plus the option "
               "name in capitals, dashes as underscores (--max-backoff is "
               f"{ENV_PREFIX}MAX_BACKOFF; flags take true/false). Exit codes: 0 done or "
               "stopped by SIGTERM/SIGINT, 1 archives left unshipped (--once), 2 bad options, "
               "3 the destination cannot work.")

    def option(name: str, help: str, default: Any = None, **kwargs: Any) -> None:
        variable = _env(name.lstrip("-") if name.startswith("-") else name)
        if kwargs.get("action") == "store_true":
            kwargs["default"] = _flag(env.get(variable, "")) if variable in env else default
        else:
            kwargs["default"] = env.get(variable, default)
        shown = ("" if kwargs.get("action") == "store_true" or default is None
                 else f" (default: {default})".replace("%", "%%"))
        parser.add_argument(name, help=f"{help}{shown} [env {variable}]", **kwargs)

    option("watch_dir", "directory where the application closes its archives",
           metavar="WATCH_DIR", nargs="?")
    option("--dest", "where archives go: s3://bucket/prefix (boto3's default credentials and "
           "region), a directory path or a file:// URL (a mounted volume, NFS)")
    option("--endpoint-url", "S3 endpoint for MinIO, Ceph or a local test server")
    option("--pattern", "wildcard for archive names; *.open files (still being written) are "
           "never touched", "*.events")
    option("--compress", "compression of the shipped copies; zstd needs the zstandard package",
           "gzip", choices=sorted(SUFFIXES))
    option("--level", "compression level (default: gzip 6, zstd 3)", type=int)
    option("--key-template", "how object keys (or paths under a directory) are built: strftime "
           "codes use the archive's modification time in UTC (when it was closed, so a retry "
           "gives the same key), plus {prefix} (of the s3:// URL), {host}, {name} (the "
           "archive's file name) and {suffix} (.gz, .zst or nothing)",
           DEFAULT_KEY_TEMPLATE)
    option("--host", "value of {host} in keys (default: this machine's host name; in a "
           "Kubernetes pod, the pod name)")
    option("--after-upload", "what to do with an archive once its copy is confirmed: delete, "
           "keep, or move:DIR", "delete")
    option("--once", "ship every closed archive present now, then exit (cron, batch jobs); "
           "otherwise watch until SIGTERM/SIGINT", False, action="store_true")
    option("--workers", "archives shipped in parallel", 2, type=int)
    option("--verify", "decode every record and check its checksum before shipping; a damaged "
           "archive is moved to the quarantine directory and reported, never shipped or deleted "
           "(without it, records are counted from their headers only; an archive with "
           "broken structure ships as it is, its damage logged and counted in the object's "
           "damaged-bytes metadata)", False, action="store_true")
    option("--quarantine-dir", "where --verify moves damaged archives (default: "
           "WATCH_DIR/quarantine)")
    option("--recover-stale", "at start, finalize .open archives left by crashed writers "
           "(shoebox.recover: no live writer holds their lock); they are then shipped",
           False, action="store_true")
    option("--max-backoff", "longest wait, in seconds, between retries of a transient "
           "failure (connection refused, timeouts, 5xx, throttling)", 30.0, type=float)
    option("--initial-backoff", "first wait, in seconds, before retrying a transient failure; "
           "waits double up to --max-backoff, with jitter", 0.5, type=float)
    option("--max-attempts", "give up on an archive (it stays, for the next scan or run) after "
           "this many attempts at a transient failure; 0 retries forever", 0, type=int)
    option("--scan-interval", "seconds between full scans of WATCH_DIR, catching what file "
           "events missed", 60.0, type=float)
    option("--shutdown-timeout", "on SIGTERM/SIGINT, seconds to wait for uploads in progress",
           30.0, type=float)
    option("--tmp-dir", "where compressed copies are staged (default: the system temporary "
           "directory for S3, the destination itself for a directory)")
    option("--sse", "S3 server-side encryption: AES256 or aws:kms")
    option("--sse-kms-key-id", "KMS key for --sse aws:kms")
    option("--storage-class", "S3 storage class, such as STANDARD_IA or GLACIER_IR")
    option("--multipart-threshold-mb", "upload in parts from this size on (MiB)", 64.0,
           type=float)
    option("--multipart-chunk-mb", "size of each part of a multipart upload (MiB)", 16.0,
           type=float)
    option("--log-level", "DEBUG, INFO, WARNING or ERROR", "INFO", type=str.upper,
           choices=_LOG_LEVELS)
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
    args = parser.parse_args(argv)
    if not args.watch_dir:
        parser.error(f"WATCH_DIR is required (or {_env('watch_dir')})")
    if not args.dest:
        parser.error(f"--dest is required (or {_env('dest')})")
    # argparse checks choices on the command line only, not on a default
    # taken from the environment.
    if args.log_level not in _LOG_LEVELS:
        parser.error(f"{_env('log_level')}: {args.log_level!r} is not one of "
                     f"{', '.join(_LOG_LEVELS)}")
    with logs.json_lines(args.log_level):
        try:
            sidecar = _build(args)
        except (ValueError, MissingExtra) as exc:
            logger.error("bad configuration: %s", exc, extra={"event": "config_error"})
            return EXIT_USAGE, False
        return _run(args, sidecar), sidecar.abandoned_uploads


def _run(args: argparse.Namespace, sidecar: Sidecar) -> int:
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
    if args.recover_stale:
        for path in shoebox.recover(sidecar.watch_dir, args.pattern).finalized:
            logger.info("finalized stale archive %s", path,
                        extra={"event": "recovered", "archive": path})
    previous = _on_signals(sidecar)
    try:
        return sidecar.run_once() if args.once else sidecar.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _build(args: argparse.Namespace) -> Sidecar:
    """Turn parsed options into a :class:`Sidecar`; raises ``ValueError``."""
    if not os.path.isdir(args.watch_dir):
        raise ValueError(f"WATCH_DIR {args.watch_dir!r} is not a directory")
    s3_options: dict[str, Any] = {
        "server_side_encryption": args.sse, "kms_key_id": args.sse_kms_key_id,
        "storage_class": args.storage_class}
    if args.dest.startswith("s3://"):
        s3_options.update(multipart_threshold=int(args.multipart_threshold_mb * _MB),
                          multipart_chunksize=int(args.multipart_chunk_mb * _MB))
    destination = open_destination(args.dest, endpoint_url=args.endpoint_url or None,
                                   **s3_options)
    shipper = Shipper(destination, key_template=args.key_template, compression=args.compress,
                      level=args.level, verify=args.verify, host=args.host,
                      tmp_dir=args.tmp_dir)
    return Sidecar(args.watch_dir, shipper, pattern=args.pattern,
                   after_upload=after_upload_callback(args.after_upload),
                   workers=args.workers, quarantine_dir=args.quarantine_dir,
                   backoff=Backoff(args.initial_backoff, args.max_backoff),
                   max_attempts=args.max_attempts, scan_interval=args.scan_interval,
                   shutdown_timeout=args.shutdown_timeout)


def _on_signals(sidecar: Sidecar) -> dict[int, Any]:
    """Make SIGTERM and SIGINT stop the sidecar; return the previous handlers."""
    def stopping(signum: int) -> None:
        logger.info("received %s: finishing uploads in progress, taking no new work",
                    signal.Signals(signum).name, extra={"event": "stopping"})
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
