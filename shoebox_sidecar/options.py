"""The sidecar's options, in one table: the command line, the environment
(:mod:`~shoebox_sidecar.config`), the TOML file and ``--print-config`` are
all built from :data:`OPTIONS`, so an option exists everywhere or nowhere.

Each option has a name (``max_backoff``: the flag is ``--max-backoff``, the
environment variable ``SHOEBOX_SIDECAR_MAX_BACKOFF``, the file key
``max_backoff``), a kind that says how text (flag, variable) and TOML
values become its value, a default, and its help.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from shoebox.compression import SUFFIXES
from shoebox.s3 import CANNED_ACLS, MIN_MULTIPART_CHUNK_MB, S3Options
from shoebox.shipping import DEFAULT_KEY_TEMPLATE

from .sidecar import DEFAULT_ONCE_TIMEOUT, DEFAULT_STALE_AFTER

Kind = Literal["str", "int", "float", "bool", "list"]

#: Prefix of the environment variables that set options.
ENV_PREFIX = "SHOEBOX_SIDECAR_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_bool(text: str) -> bool:
    """``true``/``false`` and their usual spellings, as environment variables give them."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, not {text!r}")


# How a kind's text (a flag's argument, an environment variable) is parsed.
_FROM_TEXT: dict[Kind, Callable[[str], Any]] = {
    "str": str, "int": int, "float": float, "bool": parse_bool,
    # Comma-separated in the environment (S3 tags cannot hold commas).
    "list": lambda text: [part.strip() for part in text.split(",") if part.strip()],
}
# What each kind is called in error messages.
_KIND_NAMES: dict[Kind, str] = {"str": "a string", "int": "an integer", "float": "a number",
                                "bool": "true or false", "list": "a list of strings"}


@dataclass(frozen=True)
class Option:
    """One setting of the sidecar."""

    name: str
    kind: Kind
    help: str
    default: Any = None
    choices: tuple[str, ...] | None = None
    #: Applied to every value, whatever its source (``str.upper`` for log levels).
    normalize: Callable[[Any], Any] | None = None
    positional: bool = False

    @property
    def flag(self) -> str:
        """How the command line spells it: ``--max-backoff`` (or ``WATCH_DIR``)."""
        return self.name.upper() if self.positional else "--" + self.name.replace("_", "-")

    @property
    def variable(self) -> str:
        """The environment variable that sets it."""
        return ENV_PREFIX + self.name.upper()

    def from_text(self, text: str) -> Any:
        """The value of a flag's argument or an environment variable; raises
        ``ValueError`` saying what was expected."""
        try:
            value = _FROM_TEXT[self.kind](text)
        except ValueError:
            raise ValueError(f"expected {_KIND_NAMES[self.kind]}, not {text!r}") from None
        return self.check(value)

    def from_toml(self, value: Any) -> Any:
        """The value of a TOML key; raises ``TypeError`` for the wrong type and
        ``ValueError`` for a value out of its choices."""
        if self.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        expected = {"str": str, "int": int, "float": float, "bool": bool,
                    "list": list}[self.kind]
        if self.kind == "list" and isinstance(value, list):
            right = all(isinstance(item, str) for item in value)
        else:  # bool is an int subclass, but not an integer option's value
            right = isinstance(value, expected) and (
                self.kind == "bool" or not isinstance(value, bool))
        if not right:
            raise TypeError(f"expected {_KIND_NAMES[self.kind]}, not {value!r}")
        return self.check(value)

    def check(self, value: Any) -> Any:
        """``value`` normalized and checked against the choices."""
        if self.normalize is not None:
            value = self.normalize(value)
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{value!r} is not one of {', '.join(self.choices)}")
        return value

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the option to ``parser``, with no default: an option absent
        from the command line is absent from the parsed namespace, so the
        environment, the file or the default can fill it in."""
        shown = ("" if self.default is None or self.kind == "bool"
                 else f" (default: {self.default})".replace("%", "%%"))
        text = f"{self.help}{shown} [env {self.variable}]"
        if self.positional:
            parser.add_argument(self.name, metavar=self.flag, nargs="?", help=text,
                                default=argparse.SUPPRESS, type=self._argparse_type)
        elif self.kind == "bool":
            parser.add_argument(self.flag, dest=self.name, help=text, default=argparse.SUPPRESS,
                                action=argparse.BooleanOptionalAction)
        elif self.kind == "list":
            parser.add_argument(self.flag, dest=self.name, help=text, default=argparse.SUPPRESS,
                                action="append", type=self._argparse_type)
        else:
            parser.add_argument(self.flag, dest=self.name, help=text, default=argparse.SUPPRESS,
                                type=self._argparse_type, choices=self.choices)

    def _argparse_type(self, text: str) -> Any:
        try:
            # A list option takes one item per flag: --tag a=1 --tag b=2.
            value = text if self.kind == "list" else _FROM_TEXT[self.kind](text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return self.normalize(value) if self.normalize is not None else value


# The S3 options' defaults are S3Options's, which the in-process upload
# callback takes too: one place for each.
_S3 = S3Options()

#: Every option, in the order ``--help`` and ``--print-config`` show them.
OPTIONS: tuple[Option, ...] = (
    Option("watch_dir", "str", "directory where the application closes its archives",
           positional=True),
    Option("dest", "str", "where archives go: s3://bucket/prefix (boto3's default credentials "
           "and region), a directory path or a file:// URL (a mounted volume, NFS)"),
    Option("endpoint_url", "str", "S3 endpoint for MinIO, Ceph or a local test server"),
    Option("pattern", "str", "wildcard for archive names; *.open files (still being written) "
           "are never touched", "*.events"),
    Option("compress", "str", "compression of the shipped copies; zstd needs the zstandard "
           "package", "gzip", choices=tuple(sorted(SUFFIXES))),
    Option("level", "int", "compression level (default: gzip 6, zstd 3)"),
    Option("key_template", "str", "how object keys (or paths under a directory) are built, "
           "or 'hive' for {prefix}/dt=%%Y-%%m-%%d/host={host}/{span}_{name}{suffix}, the "
           "layout for query engines and windowed reads: strftime codes use the time the "
           "archive starts in UTC (its first record's timestamp metadata, else when its file "
           "was created, so a retry gives the same key), plus {prefix} (of the s3:// URL), "
           "{host}, {name} (the archive's file name), {suffix} (.gz, .zst or nothing) and "
           "{span} (first and last record time, 20261127T101500Z-20261127T103000Z, or "
           "untimed; reads every record's timestamp)", DEFAULT_KEY_TEMPLATE),
    Option("host", "str", "value of {host} in keys (default: this machine's host name; in a "
           "Kubernetes pod, the pod name)"),
    Option("after_upload", "str", "what to do with an archive once its copy is confirmed: "
           "delete, keep, or move:DIR", "delete"),
    Option("once", "bool", "ship every closed archive present now, then exit (cron, batch "
           "jobs); otherwise watch until SIGTERM/SIGINT", False),
    Option("once_timeout", "float", "with --once: give up this many seconds after starting "
           "(0: never); archives not shipped by then stay for the next run, and the exit code "
           "is 1 (uploads in progress get --shutdown-timeout to finish)",
           DEFAULT_ONCE_TIMEOUT),
    Option("workers", "int", "archives shipped in parallel", 2),
    Option("verify", "bool", "decode every record and check its checksum before shipping; a "
           "damaged archive is moved to the quarantine directory and reported, never shipped "
           "or deleted (without it, records are counted from their headers only; an archive "
           "with broken structure ships as it is, its damage logged and counted in the "
           "object's damaged-bytes metadata)", False),
    Option("quarantine_dir", "str", "where --verify moves damaged archives (default: "
           "WATCH_DIR/quarantine)"),
    Option("recover_stale", "bool", "at start and before every scan, finalize the .open "
           "archives of writers that are gone (shoebox.recover: no writer holds their lock, "
           "and they have not been modified for --stale-after seconds); they are then "
           "shipped", False),
    Option("stale_after", "float", "with --recover-stale: seconds an .open archive must have "
           "gone unmodified, its lock free, before it is finalized", DEFAULT_STALE_AFTER),
    Option("max_backoff", "float", "longest wait, in seconds, between retries of a transient "
           "failure (connection refused, timeouts, 5xx, throttling)", 30.0),
    Option("initial_backoff", "float", "first wait, in seconds, before retrying a transient "
           "failure; waits double up to --max-backoff, with jitter", 0.5),
    Option("max_attempts", "int", "give up on an archive (it stays, for the next scan or run) "
           "after this many attempts at a transient failure; 0 retries forever", 0),
    Option("scan_interval", "float", "seconds between full scans of WATCH_DIR, catching what "
           "file events missed", 60.0),
    Option("shutdown_timeout", "float", "on SIGTERM/SIGINT, seconds to wait for uploads in "
           "progress", 30.0),
    Option("tmp_dir", "str", "where compressed copies are staged (default: the system "
           "temporary directory for S3, the destination itself for a directory); stale "
           "copies a killed sidecar left there are removed at start"),
    Option("sse", "str", "S3 server-side encryption: AES256 or aws:kms"),
    Option("sse_kms_key_id", "str", "KMS key for --sse aws:kms"),
    Option("storage_class", "str", "S3 storage class, such as STANDARD_IA or GLACIER_IR"),
    Option("acl", "str", "S3 canned ACL of the uploaded objects (buckets that enforce object "
           "ownership refuse ACLs)", choices=CANNED_ACLS),
    Option("tag", "list", "S3 object tag KEY=VALUE for every upload; repeat for more (up to "
           "10); in the environment, comma-separated"),
    Option("multipart_threshold_mb", "float", "upload in parts from this size on (MiB)",
           _S3.multipart_threshold_mb),
    Option("multipart_chunk_mb", "float", f"size of each part of a multipart upload (MiB; at "
           f"least {MIN_MULTIPART_CHUNK_MB}, S3's smallest part)", _S3.multipart_chunk_mb),
    Option("connect_timeout", "float", "S3: seconds to wait for a connection to the endpoint; "
           "a connection that takes longer fails and is retried", _S3.connect_timeout),
    Option("read_timeout", "float", "S3: seconds to wait for each read of an answer; a "
           "request the server stalls on fails after it and is retried", _S3.read_timeout),
    Option("metrics_port", "int", "serve /metrics (Prometheus) and /healthz on this TCP port "
           "(0: any free port, logged); needs shoebox-archive[metrics]"),
    Option("metrics_address", "str", "address the metrics server listens on", "127.0.0.1"),
    Option("unhealthy_after", "float", "/healthz answers 503 once the oldest archive waiting "
           "to be shipped has waited this many seconds (counted from the sidecar's start at "
           "the earliest)", 900.0),
    Option("log_level", "str", "DEBUG, INFO, WARNING or ERROR", "INFO", choices=LOG_LEVELS,
           normalize=str.upper),
)

#: The options by name.
BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
