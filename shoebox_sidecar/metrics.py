"""The sidecar's own metrics and health, over HTTP: ``/metrics`` in the
Prometheus text format (prometheus_client, ``shoebox-archive[metrics]``) and
``/healthz`` for probes and load balancers.

Imported only when ``--metrics-port`` is given. Counters count confirmed
copies only (what the destination's confirmation saw, never attempts);
the backlog is read from the watched directory at each scrape.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from shoebox.errors import MissingExtra

from .events import Event, SidecarObserver
from .logs import logger
from .sidecar import Backlog, Sidecar

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
except ImportError as exc:
    raise MissingExtra.needs("--metrics-port needs prometheus_client", "metrics") from exc

#: Upload durations, in seconds: from small objects on a LAN to large ones
#: over a slow link.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: Health unless told otherwise: unhealthy once an archive waited 15 minutes.
DEFAULT_UNHEALTHY_AFTER = 900.0


class SidecarMetrics(SidecarObserver):
    """Counts what a :class:`~shoebox_sidecar.sidecar.Sidecar` does, in
    ``registry`` (default: a new one, with the process, platform and GC
    collectors), and judges its health.

    Give it to the sidecar as its ``observer``, then :meth:`watch` the
    sidecar so that the backlog gauges and :meth:`health` see its
    directory. ``clock`` gives wall-clock seconds (``time.time``), compared
    with archives' modification times.

    An archive counts as waiting from when it was closed (its modification
    time) or from when :meth:`watch` was called, whichever is later: a
    sidecar restarted onto a day's backlog gets ``unhealthy_after`` seconds
    to work through it before it reports itself unhealthy, so that a
    liveness probe does not restart it again and again while it drains.
    """

    def __init__(self, *, registry: Any = None, unhealthy_after: float = DEFAULT_UNHEALTHY_AFTER,
                 clock: Callable[[], float] = time.time) -> None:
        if not unhealthy_after > 0:
            raise ValueError(f"unhealthy_after must be more than 0, not {unhealthy_after}")
        if registry is None:
            registry = prometheus_client.CollectorRegistry()
            prometheus_client.ProcessCollector(registry=registry)
            prometheus_client.PlatformCollector(registry=registry)
            prometheus_client.GCCollector(registry=registry)
        self.registry = registry
        self.unhealthy_after = unhealthy_after
        self._clock = clock
        self._sidecar: Sidecar | None = None
        self._watched_since = clock()

        def counter(name: str, help: str, labels: Iterable[str] = ()) -> Any:
            return prometheus_client.Counter(name, help, list(labels), registry=registry)

        self.archives_shipped = counter(
            "shoebox_sidecar_archives_shipped", "Archives whose copy the destination confirmed")
        self.records_shipped = counter(
            "shoebox_sidecar_records_shipped", "Records in the archives shipped")
        self.bytes_shipped = counter(
            "shoebox_sidecar_bytes_shipped", "Bytes of the confirmed copies (compressed)")
        self.bytes_read = counter(
            "shoebox_sidecar_bytes_read", "Bytes of the archives shipped (uncompressed)")
        self.upload_failures = counter(
            "shoebox_sidecar_upload_failures", "Failed attempts to ship an archive, retried "
            "ones included; transient: whether trying again may work (it is retried)",
            ["transient"])
        self.throttled = counter(
            "shoebox_sidecar_throttled", "Failed attempts the destination throttled (503 "
            "SlowDown, 429), also counted in upload_failures: each one pauses every worker")
        self.quarantined_archives = counter(
            "shoebox_sidecar_quarantined", "Damaged archives moved to the quarantine directory")
        self.not_regular_files = counter(
            "shoebox_sidecar_skipped_not_regular", "Names matching the pattern that are not "
            "regular files (symbolic links, FIFOs, sockets, directories), left alone, never "
            "followed; each path once; kind: what it is", ["kind"])
        self.last_success = prometheus_client.Gauge(
            "shoebox_sidecar_last_success_timestamp_seconds",
            "When the last copy was confirmed (Unix time; 0 before the first)",
            registry=registry)
        self.upload_duration = prometheus_client.Histogram(
            "shoebox_sidecar_upload_duration_seconds", "Time a successful delivery took "
            "(upload and confirmation)", buckets=DURATION_BUCKETS, registry=registry)
        for transient in ("true", "false"):  # both series exist from the start
            self.upload_failures.labels(transient=transient)
        registry.register(_BacklogCollector(self.backlog, clock))

    def watch(self, sidecar: Sidecar) -> None:
        """Read the backlog from ``sidecar``'s directory from now on."""
        self._sidecar = sidecar
        self._watched_since = self._clock()

    def notify(self, event: Event) -> None:
        """Count ``event``: confirmed copies (``shipped``), failed attempts
        (transient or not, throttled or not), quarantined archives and
        names skipped as not regular files."""
        fields = event.fields
        if event.name == "shipped":
            self.archives_shipped.inc()
            self.records_shipped.inc(fields["records"])
            self.bytes_shipped.inc(fields["bytes_out"])
            self.bytes_read.inc(fields["bytes_in"])
            self.upload_duration.observe(fields["upload_seconds"])
            self.last_success.set(self._clock())
        elif event.failed_attempt:
            self.upload_failures.labels(
                transient="true" if fields.get("transient") else "false").inc()
            if fields.get("throttled"):
                self.throttled.inc()
        elif event.name == "quarantined":
            self.quarantined_archives.inc()
        elif event.name == "skipped_not_regular":
            self.not_regular_files.labels(kind=fields["kind"]).inc()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the sidecar is healthy, and why: it is while it has
        nothing to ship or the oldest waiting archive has waited at most
        ``unhealthy_after`` seconds; it is not when the directory cannot
        be read."""
        try:
            backlog = self.backlog()
        except OSError as exc:
            return False, {"status": "unhealthy", "error": f"cannot read the directory: {exc}"}
        now = self._clock()
        waited = (0.0 if backlog.oldest_mtime is None
                  else max(0.0, now - max(backlog.oldest_mtime, self._watched_since)))
        healthy = waited <= self.unhealthy_after
        return healthy, {"status": "ok" if healthy else "unhealthy",
                         "backlog_archives": backlog.archives, "backlog_bytes": backlog.bytes,
                         "oldest_waiting_seconds": round(waited, 3),
                         "unhealthy_after": self.unhealthy_after}

    def backlog(self) -> Backlog:
        """The watched sidecar's backlog; raises ``OSError``."""
        if self._sidecar is None:
            raise OSError("no sidecar watched yet")
        return self._sidecar.backlog()


_BACKLOG_GAUGES = (
    ("shoebox_sidecar_backlog_archives", "Closed archives waiting to be shipped"),
    ("shoebox_sidecar_backlog_bytes", "Bytes of the closed archives waiting"),
    ("shoebox_sidecar_backlog_oldest_age_seconds",
     "Time since the oldest waiting archive was closed (0: none waiting)"),
)


class _BacklogCollector:
    """The backlog gauges, read from the directory at each scrape."""

    def __init__(self, backlog: Callable[[], Backlog], clock: Callable[[], float]) -> None:
        self._backlog = backlog
        self._clock = clock

    def describe(self) -> Iterator[Any]:
        yield from self._families(None)

    def collect(self) -> Iterator[Any]:
        try:
            backlog = self._backlog()
        except OSError as exc:
            # A scrape that fails whole would hide the counters too.
            logger.warning("cannot measure the backlog: %s", exc,
                           extra={"event": "backlog_failed", "error": str(exc)})
            return
        yield from self._families(backlog)

    def _families(self, backlog: Backlog | None) -> Iterator[Any]:
        now = self._clock()
        values = (None, None, None) if backlog is None else (
            backlog.archives, backlog.bytes,
            0.0 if backlog.oldest_mtime is None else max(0.0, now - backlog.oldest_mtime))
        for (name, help), value in zip(_BACKLOG_GAUGES, values, strict=True):
            yield GaugeMetricFamily(name, help, value=value)


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` for ``metrics`` on ``address``
    and ``port`` (0: a free port, see :attr:`port`), from a thread of its
    own, until :meth:`close`. ``/healthz`` answers 200 or 503 with a JSON
    body (see :meth:`SidecarMetrics.health`); other paths 404. Raises
    ``OSError`` when the address cannot be bound."""

    def __init__(self, metrics: SidecarMetrics, address: str = "127.0.0.1",
                 port: int = 0) -> None:
        self._metrics = metrics
        self._prometheus = prometheus_client.make_wsgi_app(metrics.registry)
        server_class = _Server6 if ":" in address else _Server
        self._server = make_server(address, port, self._app, server_class=server_class,
                                   handler_class=_QuietHandler)
        self.address = address
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="shoebox-sidecar-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and join the server's thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._prometheus(environ, start_response)
        if path == "/healthz":
            healthy, body = self._metrics.health()
            start_response("200 OK" if healthy else "503 Service Unavailable",
                           [("Content-Type", "application/json")])
            return [json.dumps(body).encode() + b"\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /healthz\n"]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck scraper must not hold up the exit


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the JSON log on stderr."""
