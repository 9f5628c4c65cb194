"""A fault-injecting HTTP proxy for S3, on 127.0.0.1, in front of the moto server.

Tests (``from s3_faults import FaultProxy, Rule``) and ``benchmarks/soak.py``
point boto3 or the sidecar's ``--endpoint-url`` at :attr:`FaultProxy.endpoint_url`;
by rule, the proxy answers ``503 SlowDown`` or ``500 InternalError``, resets the
connection in the middle of the request or of the response, delays the answer
or stalls, per S3 operation (issue 12). Requests no rule matches are forwarded
untouched. Standard library only, and no dependency on shoebox.

Example::

    with FaultProxy(s3_server.endpoint_url, [Rule("UploadPart", "slowdown", times=2)]) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.endpoint_url)
        ...
        assert proxy.count("UploadPart", "slowdown") == 2
"""

from __future__ import annotations

import http.client
import http.server
import itertools
import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["ANY", "FAULTS", "OPERATIONS", "FaultProxy", "Rule", "Seen"]

OPERATIONS = ("PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload",
              "AbortMultipartUpload", "ListMultipartUploads", "HeadObject", "HeadBucket",
              "GetObject", "ListObjectsV2", "DeleteObject", "CreateBucket", "Other")
FAULTS = ("slowdown", "error", "reset_request", "reset_response", "delay", "stall")


class _Any:
    """The type of :data:`ANY`."""

    def __repr__(self) -> str:
        return "ANY"


#: ``FaultProxy.count(fault=ANY)``: count requests whatever happened to them.
ANY: Any = _Any()

# Per-hop headers: they describe one connection, not the request, so they are
# not passed on (the proxy keeps its own connections alive).
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection"})
# Query parameters that turn GET /bucket/key into something other than GetObject.
_OBJECT_SUBRESOURCES = frozenset({"uploadId", "tagging", "acl", "attributes", "retention",
                                  "legal-hold", "torrent", "restore", "select"})
_ERRORS = {
    "slowdown": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "error": (500, "Internal Server Error", "InternalError",
              "We encountered an internal error. Please try again."),
}
_UPSTREAM_TIMEOUT = 60.0


@dataclass
class Rule:
    """When and how to misbehave.

    A rule matches a request of ``operation`` (one of :data:`OPERATIONS`, or
    ``"*"`` for any) whose object key contains ``key_contains``, while it has
    fired on fewer than ``times`` requests (``None``: no limit), and with
    chance ``probability`` (drawn from the proxy's seeded RNG). ``seconds`` is
    how long ``"delay"`` waits before forwarding, and how long ``"stall"``
    holds the request without answering before closing the connection (``0``:
    until the proxy stops). ``retry_after`` adds a ``Retry-After`` header (in
    seconds) to ``"slowdown"`` and ``"error"`` answers.

    Raises ``ValueError`` at construction for an unknown operation or fault,
    or an out-of-range number.
    """

    operation: str
    fault: str
    times: int | None = None
    probability: float = 1.0
    key_contains: str = ""
    seconds: float = 0.0
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.operation != "*" and self.operation not in OPERATIONS:
            raise ValueError(f"unknown operation {self.operation!r}: one of {OPERATIONS} or '*'")
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}: one of {FAULTS}")
        if self.times is not None and self.times < 0:
            raise ValueError(f"times must be >= 0 or None, not {self.times!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], not {self.probability!r}")
        if self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {self.seconds!r}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 or None, not {self.retry_after!r}")


@dataclass(frozen=True)
class Seen:
    """One request the proxy received.

    ``time`` is ``time.monotonic()`` when its headers arrived (CLOCK_MONOTONIC
    is system-wide on Linux, so it compares with other processes' clocks);
    ``key`` is the URL-unquoted object key (``""`` for bucket-level requests);
    ``fault`` the fault applied (``None``: forwarded untouched); ``status``
    the status sent to the client (``None``: reset, stalled, or not answered
    yet).
    """

    time: float
    operation: str
    method: str
    key: str
    fault: str | None
    status: int | None


def classify(method: str, target: str) -> tuple[str, str]:
    """The S3 operation and URL-unquoted object key of a path-style request
    (``/bucket/key?query``)."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    bucket, _, raw_key = parts.path.lstrip("/").partition("/")
    key = unquote(raw_key)
    if not bucket:
        return "Other", key
    if method == "PUT":
        if key:
            return ("UploadPart" if "uploadId" in query and "partNumber" in query
                    else "PutObject"), key
        return ("CreateBucket" if not query else "Other"), key
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload", key
        if "uploadId" in query:
            return "CompleteMultipartUpload", key
        return "Other", key
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload", key
        return ("DeleteObject" if key else "Other"), key
    if method == "GET":
        if key:
            return ("Other" if _OBJECT_SUBRESOURCES & query.keys() else "GetObject"), key
        if "uploads" in query:
            return "ListMultipartUploads", key
        if query.get("list-type") == ["2"]:
            return "ListObjectsV2", key
        return "Other", key
    if method == "HEAD":
        return ("HeadObject" if key else "HeadBucket"), key
    return "Other", key


class FaultProxy:
    """An HTTP proxy on a free port of 127.0.0.1 that forwards to ``upstream``
    (``"http://host:port"``) and applies the first matching :class:`Rule`.

    Rules are checked in the order added; ``add_rule`` and ``clear_rules`` are
    thread-safe and take effect for the next request. ``seed`` seeds the RNG
    of the rules' ``probability`` draws. Each client connection gets one
    upstream connection; HTTP/1.1 keep-alive, ``Expect: 100-continue`` and
    request bodies framed by ``Content-Length`` or ``Transfer-Encoding:
    chunked`` (passed on as they came) are handled. ``stop()`` (or leaving the
    ``with`` block) wakes stalled and delayed requests, closes every
    connection and joins every thread before it returns.
    """

    def __init__(self, upstream: str, rules: Iterable[Rule] = (), *, seed: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http://host:port URL, not {upstream!r}")
        self.upstream = upstream
        self._upstream_address = (parts.hostname, parts.port or 80)
        self.endpoint_url = ""
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._fired: dict[int, int] = {}  # id(rule) -> requests it fired on
        self._random = random.Random(seed)
        self._seen: list[Seen] = []
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._request_ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for rule in rules:
            self.add_rule(rule)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen on a free port of 127.0.0.1 and serve in background threads;
        sets :attr:`endpoint_url`. Returns the proxy."""
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._stopping.clear()
        self._server = _Server(self)
        port = self._server.server_port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        # The thread-leak guard in tests/conftest.py knows this name as long-lived.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"FaultProxy-{port} serve_forever", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake stalled and delayed requests (they are closed
        unanswered), close every connection, join every thread. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)
        server.server_close()  # joins the per-connection threads
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # -- rules and records ---------------------------------------------------

    def add_rule(self, rule: Rule) -> None:
        """Check ``rule`` after the rules already there, from the next request on."""
        if not isinstance(rule, Rule):
            raise TypeError(f"expected a Rule, not {rule!r}")
        with self._lock:
            self._rules.append(rule)
            self._fired.setdefault(id(rule), 0)

    def clear_rules(self) -> None:
        """Forget every rule: from the next request on, everything is forwarded."""
        with self._lock:
            self._rules.clear()
            self._fired.clear()

    @property
    def seen(self) -> list[Seen]:
        """A copy of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._seen)

    def count(self, operation: str | None = None, fault: str | object | None = ANY) -> int:
        """How many requests of ``operation`` (``None``: any) got ``fault``
        (``None``: forwarded untouched; ``ANY``: whatever happened)."""
        return sum(1 for seen in self.seen
                   if (operation is None or seen.operation == operation)
                   and (fault is ANY or seen.fault == fault))

    def _match(self, operation: str, key: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.operation not in ("*", operation) or rule.key_contains not in key:
                    continue
                fired = self._fired.get(id(rule), 0)
                if rule.times is not None and fired >= rule.times:
                    continue
                # Draw only for rules that otherwise match, so that the
                # sequence of draws (and faults) depends on the seed and the
                # requests alone.
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                self._fired[id(rule)] = fired + 1
                return rule
        return None

    def _record(self, seen: Seen) -> int:
        with self._lock:
            self._seen.append(seen)
            return len(self._seen) - 1

    def _settle(self, index: int, status: int | None) -> None:
        with self._lock:
            self._seen[index] = replace(self._seen[index], status=status)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self._stopping.is_set():  # accepted while stop() was closing the others
            _shutdown(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _request_id(self) -> str:
        return f"FAULTPROXY{next(self._request_ids):08X}"


def _shutdown(sock: socket.socket) -> None:
    """Wake whoever is blocked on ``sock``."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Server(http.server.ThreadingHTTPServer):
    """One thread per connection (socketserver's ``process_request_thread``,
    a name the thread-leak guard knows); ``server_close`` joins them."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up (timeouts, the faults themselves) make
        # connection errors routine; anything else is a bug worth a traceback.
        if not isinstance(sys.exc_info()[1], (OSError, http.client.HTTPException)):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and BaseHTTPRequestHandler's 100-continue
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.proxy = self.server.proxy
        self.upstream: http.client.HTTPConnection | None = None
        self.upstream_used = False
        self.upstream_sock: socket.socket | None = None
        self.index = -1  # of the current request in proxy.seen
        self.proxy._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.proxy._untrack(self.connection)
            self._close_upstream()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # -- one request ---------------------------------------------------------

    def _handle(self) -> None:
        arrived = time.monotonic()
        target = self.path
        if "://" in target:  # absolute-form request target: keep path and query
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        operation, key = classify(self.command, target)
        rule = self.proxy._match(operation, key)
        fault = rule.fault if rule is not None else None
        self.index = self.proxy._record(Seen(arrived, operation, self.command, key, fault, None))
        if rule is None:
            self._forward_and_answer(target, self._read_body())
        elif rule.fault in _ERRORS:
            self._read_body()
            self._answer_error(rule, target)
        elif rule.fault == "reset_request":
            self._read_half_body()
            self._reset()
        elif rule.fault == "reset_response":
            response = self._forward(target, self._read_body())
            if response is None:
                self._answer_bad_gateway()
            else:
                head, body = response
                self.wfile.write(head + body[:len(body) // 2] if body else head[:len(head) // 2])
                self._reset()
        elif rule.fault == "delay":
            body = self._read_body()
            if self.proxy._stopping.wait(rule.seconds):
                self.close_connection = True
            else:
                self._forward_and_answer(target, body)
        else:  # stall
            self._read_body()
            self.proxy._stopping.wait(rule.seconds or None)
            self.close_connection = True

    def _send(self, status: int, data: bytes) -> None:
        """Record ``status`` as this request's, then send ``data``: recorded
        first, so that a client that has its answer finds it in ``seen``."""
        self.proxy._settle(self.index, status)
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        """The request body exactly as framed on the wire (chunked bodies keep
        their chunk framing and trailers: they are passed on as they came)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionResetError("client closed in the middle of a chunked body")
                raw += line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    break
                raw += self._read_exactly(size + 2)  # the chunk and its CRLF
            while True:  # trailers, up to the empty line
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionResetError("client closed in a chunked body's trailers")
                raw += line
                if line in (b"\r\n", b"\n"):
                    return bytes(raw)
        length = int(self.headers.get("Content-Length") or 0)
        return self._read_exactly(length)

    def _read_half_body(self) -> None:
        """Read at most half of the request body (of a chunked one: half of
        its first chunk)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16) if line else 0
            self._read_exactly(size // 2)
        else:
            self._read_exactly(int(self.headers.get("Content-Length") or 0) // 2)

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise ConnectionResetError(f"client closed after {len(data)} of {size} bytes")
        return data

    def _forward(self, target: str, body: bytes) -> tuple[bytes, bytes] | None:
        """Send the request upstream; the response's head and body as they are
        to be sent to the client, or ``None`` if upstream failed."""
        for attempt in (1, 2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(*self.proxy._upstream_address,
                                                           timeout=_UPSTREAM_TIMEOUT)
                self.upstream_used = False
                try:
                    self.upstream.connect()
                except OSError:
                    self._close_upstream()
                    return None
                # So that stop() can wake a handler waiting for upstream.
                self.upstream_sock = self.upstream.sock
                self.proxy._track(self.upstream_sock)
            reused = self.upstream_used
            try:
                return self._exchange(self.upstream, target, body)
            except (OSError, http.client.HTTPException):
                self._close_upstream()
                # A kept-alive upstream connection the server closed meanwhile:
                # try once more on a new one. A new one failing is an answer.
                if not reused or attempt == 2 or self.proxy._stopping.is_set():
                    return None
        return None

    def _exchange(self, upstream: http.client.HTTPConnection, target: str,
                  body: bytes) -> tuple[bytes, bytes]:
        upstream.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                upstream.putheader(name, value)
        upstream.endheaders()
        if body:
            upstream.send(body)
        # http.client skips the upstream's own "100 Continue", if any.
        response = upstream.getresponse()
        data = response.read()
        self.upstream_used = True
        if upstream.sock is None:  # upstream closed it: the next request opens a tracked one
            self._close_upstream()
        no_body = (self.command == "HEAD" or response.status in (204, 304)
                   or 100 <= response.status < 200)
        lines = [f"HTTP/1.1 {response.status} {response.reason}\r\n"]
        for name, value in response.getheaders():
            lowered = name.lower()
            # The body was read whole: it goes on with a Content-Length of its
            # own, whatever its framing upstream (HEAD keeps upstream's).
            if lowered in _HOP_BY_HOP or lowered == "transfer-encoding" or (
                    lowered == "content-length" and not no_body):
                continue
            lines.append(f"{name}: {value}\r\n")
        if not no_body:
            lines.append(f"Content-Length: {len(data)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1"), b"" if no_body else data

    def _forward_and_answer(self, target: str, body: bytes) -> None:
        response = self._forward(target, body)
        if response is None:
            self._answer_bad_gateway()
            return
        head, data = response
        self._send(int(head.split(b" ", 2)[1]), head + data)

    def _answer(self, status: int, reason: str, headers: list[tuple[str, str]],
                body: bytes) -> None:
        lines = [f"HTTP/1.1 {status} {reason}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        self._send(status, "".join(lines).encode("latin-1")
                   + (b"" if self.command == "HEAD" else body))

    def _answer_error(self, rule: Rule, target: str) -> None:
        status, reason, code, message = _ERRORS[rule.fault]
        request_id = self.proxy._request_id()
        resource = unquote(urlsplit(target).path)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<Resource>{_xml_escape(resource)}</Resource>"
                f"<RequestId>{request_id}</RequestId></Error>").encode()
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id),
                   ("Date", self.date_time_string())]
        if rule.retry_after is not None:
            headers.append(("Retry-After", f"{rule.retry_after:g}"))
        self._answer(status, reason, headers, body)

    def _answer_bad_gateway(self) -> None:
        self.close_connection = True
        self._answer(502, "Bad Gateway", [("Content-Type", "text/plain")],
                            b"fault proxy: upstream failed\n")

    def _reset(self) -> None:
        """Abort the client connection: SO_LINGER 0, then close, sends RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The socket's file descriptor closes when its last user does:
        # rfile (a makefile of it) as well as the socket itself.
        self.rfile.close()
        self.connection.close()

    def _close_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if self.upstream_sock is not None:
            self.proxy._untrack(self.upstream_sock)
            self.upstream_sock = None
        if upstream is not None:
            upstream.close()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
