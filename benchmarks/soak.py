"""Soak: the logging handler and the sidecar, for an hour, against an S3 server
that fails about one request in twenty. Nothing may be lost or duplicated, and
memory, file descriptors and threads must stay flat (issue 12).

    python benchmarks/soak.py [--seconds 3600] [--rate 500] [--fault-rate 0.05]
                              [--big-every 60] [--json FILE] [--keep]

What runs, each in a process of its own:

- moto's S3 server on 127.0.0.1 (``python -m moto.server``); the bucket is
  created on it directly;
- the application: this script with ``--app``, logging records through
  ``shoebox_logging.ShoeboxHandler`` (256 KiB archives, so they roll about
  once a second) at ``--rate`` records a second, each with a unique,
  increasing ``seq`` (an ``extra`` field copied into the metadata), and every
  ``--big-every`` seconds (and twice at the start) one record of ``--big-mb``
  MiB of random base64, so that its archive, even gzipped, goes up in 5 MiB
  multipart parts; until
  SIGTERM, when it closes the handler and prints how many records it logged;
- the sidecar, ``python -m shoebox_sidecar`` in watch mode, shipping the
  application's archives to ``s3://soak/soak`` through the fault proxy
  (``tests/s3_faults.py``, run by this script in front of moto). The proxy
  applies, to PutObject, HeadObject, UploadPart, CreateMultipartUpload and
  CompleteMultipartUpload, eight kinds of fault with equal odds, about
  ``--fault-rate`` of those requests in all: 503 SlowDown (half of them
  with ``Retry-After: 1``), 500 InternalError, a reset while sending the
  request, a reset while answering (after the server acted), a 0.5 s delay,
  a stall until the end of the run and a stall longer than the sidecar's
  read timeout.

Every ``--sample-interval`` seconds the script reads VmRSS, VmHWM and Threads
from ``/proc/PID/status`` and counts ``/proc/PID/fd`` for the application
and the sidecar. After ``--seconds`` it stops the application, waits for the
sidecar to ship what is left (``--drain-timeout``), stops the sidecar, and
reads the bucket back from moto directly (not through the proxy) with
``shoebox.open_archive``, counting every ``seq``.

It prints records logged vs found, duplicates, missing, archives shipped,
faults injected by kind, the sidecar's log events by kind, and for both
processes RSS (after warm-up, peak, final), descriptors and threads (first,
after warm-up, final); ``--json FILE`` writes the same figures, the samples
included. Exit code 0 when every check passes: nothing missing, nothing
duplicated, the watch directory drained, no incomplete multipart upload left,
both processes exited cleanly, and both flat: final RSS at most 20% + 10 MiB
above the RSS after warm-up (the first minute, or 10% of a shorter run, at
least 15 s), final descriptors and threads at most ``--fd-slack`` and
``--thread-slack`` above their warm-up counts (warm-up, not the very start:
a process opens its connection pools and thread pools with its first
uploads). Otherwise 1, naming the checks that failed. Ctrl-C (or SIGTERM)
stops everything and removes the run's directory unless ``--keep``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
TESTS = os.path.join(ROOT, "tests")
BUCKET = "soak"
PREFIX = "soak"
MIB = 1024 * 1024
#: The operations faults are injected into, and the faults, with their options.
FAULTED_OPERATIONS = ("PutObject", "HeadObject", "UploadPart", "CreateMultipartUpload",
                      "CompleteMultipartUpload")
WORDS = ("instance", "created", "deleted", "resized", "volume", "attached", "detached",
         "network", "port", "scheduler", "compute", "api", "request", "tenant", "user",
         "image", "flavor", "host", "region", "zone", "ok", "error", "retry", "timeout")


# --- the application (run as ``soak.py --app DIR``) -------------------------


def run_app(args: argparse.Namespace) -> int:
    """Log records with an increasing ``seq`` at ``args.rate`` a second into
    ``args.app`` until SIGTERM or SIGINT; then close the handler (its archive
    is finished and renamed) and print one JSON line: ``logged`` (records
    handed to logging: seq 0 to logged - 1), ``big`` and the handler's
    ``stats()``."""
    # Imported here, not at the top: the application's memory should be the
    # handler's, not boto3's or the proxy's.
    import logging

    from shoebox_logging import ShoeboxHandler

    stopping: list[int] = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(signum)  # only a flag: the main loop may be inside the handler

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    handler = ShoeboxHandler(directory=args.app, roll_size_mb=args.roll_size_mb,
                             metadata_fields=["seq"])
    logger = logging.getLogger("soak")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    rng = random.Random(0)
    details = [" ".join(rng.choices(WORDS, k=30)) for _ in range(64)]
    logged = big = 0
    start = time.monotonic()
    # The first two big records come early (at 1 s and 6 s), so that the
    # warm-up figures include what big records and multipart uploads cost:
    # glibc's malloc raises its mmap threshold when the first big block is
    # freed, so the second one comes from the heap, and that memory stays
    # with the process for the next ones (measured: +8 MiB at the second).
    early = [start + 1.0, start + 6.0] if args.big_every > 0 else []
    next_big = early.pop(0) if early else float("inf")
    while not stopping:
        now = time.monotonic()
        if now >= next_big:
            blob = base64.b64encode(os.urandom(int(args.big_mb * MIB * 3 / 4))).decode()
            logger.info("soak big record", extra={"seq": logged, "blob": blob})
            del blob
            logged += 1
            big += 1
            next_big = early.pop(0) if early else next_big + args.big_every
        due = int((now - start) * args.rate)
        while logged < due and not stopping:
            logger.info("soak record %d", logged,
                        extra={"seq": logged, "tenant": f"tenant-{logged % 50}",
                               "detail": details[logged % len(details)]})
            logged += 1
        time.sleep(0.01)
    logger.removeHandler(handler)
    handler.close()
    print(json.dumps({"logged": logged, "big": big, "seconds": time.monotonic() - start,
                      "stats": handler.stats()}), flush=True)
    return 0


# --- measuring a process -----------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One look at a process: seconds since the run started, VmRSS and VmHWM
    (bytes), threads, open file descriptors."""

    time: float
    rss: int
    hwm: int
    threads: int
    fds: int


def sample(pid: int, elapsed: float) -> Sample | None:
    """``pid``'s figures from /proc, or ``None`` if it is gone."""
    fields: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    if "VmRSS" not in fields:  # a zombie: exited, not yet reaped
        return None
    return Sample(elapsed, int(fields["VmRSS"].split()[0]) * 1024,
                  int(fields["VmHWM"].split()[0]) * 1024, int(fields["Threads"]), fds)


@dataclass
class Watched:
    """A child process and its samples."""

    name: str
    process: subprocess.Popen[bytes]
    samples: list[Sample] = field(default_factory=list)

    def look(self, elapsed: float) -> Sample | None:
        taken = sample(self.process.pid, elapsed)
        if taken is not None:
            self.samples.append(taken)
        return taken

    def warm(self, warm_up: float) -> Sample:
        """The first sample taken after ``warm_up`` seconds (else the last)."""
        return next((taken for taken in self.samples if taken.time >= warm_up),
                    self.samples[-1])

    def figures(self, warm_up: float) -> dict[str, Any]:
        first, warm, last = self.samples[0], self.warm(warm_up), self.samples[-1]
        return {"rss_first": first.rss, "rss_warm": warm.rss, "rss_final": last.rss,
                "rss_peak": max(taken.hwm for taken in self.samples),
                "fds_first": first.fds, "fds_warm": warm.fds, "fds_final": last.fds,
                "threads_first": first.threads, "threads_warm": warm.threads,
                "threads_final": last.threads, "warm_up_at": warm.time,
                "exit_code": self.process.returncode}


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM ``process`` if it still runs, SIGKILL it after ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LogTail:
    """The sidecar's JSON log lines, read as the file grows, counted by event."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.events: Counter[str] = Counter()
        self.already_present = 0
        # A few lines at ERROR, and not JSON (a warning, a traceback), for the report.
        self.errors: list[str] = []

    def read(self) -> None:
        with open(self.path, "rb") as log:
            log.seek(self._offset)
            data = self._partial + log.read()
            self._offset = log.tell()
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"event": "unparsed", "message": line.decode(errors="replace")}
            event = entry.get("event", "other")
            self.events[event] += 1
            if event == "shipped" and entry.get("already_present"):
                self.already_present += 1
            if (event == "unparsed" or entry.get("level") in ("ERROR", "CRITICAL")) \
                    and len(self.errors) < 5:
                self.errors.append(json.dumps(entry)[:300])


# --- the soak ----------------------------------------------------------------


def fault_rules(rate: float, stall_seconds: float) -> list[Any]:
    """Rules for the fault proxy: each kind of fault on each operation of
    :data:`FAULTED_OPERATIONS`, with equal odds, so that about ``rate`` of
    those requests get one (the proxy draws each rule in turn)."""
    from s3_faults import Rule

    kinds: list[dict[str, Any]] = [
        {"fault": "slowdown"}, {"fault": "slowdown", "retry_after": 1.0}, {"fault": "error"},
        {"fault": "reset_request"}, {"fault": "reset_response"},
        {"fault": "delay", "seconds": 0.5}, {"fault": "stall", "seconds": 0.0},
        {"fault": "stall", "seconds": stall_seconds}]
    probability = 1 - (1 - rate) ** (1 / len(kinds))
    return [Rule(operation, probability=probability, **kind)
            for operation in FAULTED_OPERATIONS for kind in kinds]


def read_back(endpoint_url: str, logged: int) -> dict[str, Any]:
    """Every record under ``s3://BUCKET/PREFIX``, read from ``endpoint_url``:
    how many, duplicated ``seq`` values, missing ones (below ``logged``),
    unexpected ones, and the objects and incomplete multipart uploads there."""
    import boto3

    from shoebox import open_archive

    started = time.monotonic()
    seen = bytearray(logged)
    found = unexpected = foreign = 0
    with open_archive(f"s3://{BUCKET}/{PREFIX}", endpoint_url=endpoint_url) as stream:
        for metadata, _payload in stream:
            found += 1
            seq = metadata.get("seq")
            if seq is None:
                foreign += 1
            elif 0 <= int(seq) < logged:
                seen[int(seq)] = min(seen[int(seq)] + 1, 255)
            else:
                unexpected += 1
    client = boto3.client("s3", endpoint_url=endpoint_url)
    objects = sum(page.get("KeyCount", 0) for page in client.get_paginator(
        "list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX + "/"))
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=PREFIX + "/")
    missing = [seq for seq, count in enumerate(seen) if count == 0]
    return {"found": found, "distinct": logged - len(missing),
            "duplicates": sum(count - 1 for count in seen if count > 1),
            "missing": len(missing), "missing_ranges": ranges(missing)[:10],
            "unexpected": unexpected, "without_seq": foreign, "objects": objects,
            "incomplete_multipart_uploads": len(uploads.get("Uploads", [])),
            "seconds": round(time.monotonic() - started, 1)}


def ranges(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted ``numbers`` as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def archives_left(directory: str) -> list[str]:
    """Archives (closed or open) still in the watch directory."""
    return sorted(name for name in os.listdir(directory)
                  if name.endswith((".events", ".open")))


def environment() -> dict[str, str]:
    """The children's environment: this checkout first on the path, fake AWS
    credentials and no AWS config (moto takes any; nothing reaches AWS)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, os.environ.get("PYTHONPATH", "")]))
    env.update({"AWS_ACCESS_KEY_ID": "soak", "AWS_SECRET_ACCESS_KEY": "soak",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    return env


def warm_up_seconds(args: argparse.Namespace) -> float:
    """When the baseline for flatness is taken: the first minute, or 10% of a
    shorter run, but at least 15 s (the first multipart upload must be over);
    never past half the run."""
    if args.warm_up is not None:
        return float(args.warm_up)
    return min(60.0, max(15.0, 0.1 * args.seconds), args.seconds / 2)


def sidecar_command(args: argparse.Namespace, watch: str, proxy_url: str,
                    tmp_dir: str) -> list[str]:
    """The sidecar's command line: watch mode, shipping through the proxy."""
    command = [sys.executable, "-m", "shoebox_sidecar", watch,
               "--dest", f"s3://{BUCKET}/{PREFIX}", "--endpoint-url", proxy_url,
               "--initial-backoff", "0.2", "--max-backoff", "5", "--workers", "2",
               "--scan-interval", "10", "--tmp-dir", tmp_dir,
               "--multipart-threshold-mb", str(args.multipart_threshold_mb),
               "--multipart-chunk-mb", str(args.multipart_chunk_mb)]
    # 0: leave the sidecar's own default.
    if args.read_timeout > 0:
        command += ["--read-timeout", str(args.read_timeout)]
    if args.connect_timeout > 0:
        command += ["--connect-timeout", str(args.connect_timeout)]
    return command


def progress(elapsed: float, app: Watched, sidecar: Watched, log: LogTail,
             proxy: Any) -> None:
    """One line on how the run is going."""
    def memory(watched: Watched) -> str:
        last = watched.samples[-1]
        return f"{last.rss / MIB:.0f} MiB {last.fds} fds {last.threads} thr"

    faults = sum(1 for seen in proxy.seen if seen.fault)
    print(f"[{elapsed:6.0f} s] shipped {log.events['shipped']}, retries "
          f"{log.events['retrying']}, faults {faults}; app {memory(app)}; "
          f"sidecar {memory(sidecar)}", flush=True)


def soak(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    """Run the soak; return its figures (see :func:`checks`)."""
    sys.path[:0] = [BENCHMARKS, TESTS]
    import boto3
    from bench_sidecar import start_server
    from s3_faults import FaultProxy

    env = environment()
    # This process reads the bucket back with the same fake credentials.
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update({name: value for name, value in env.items() if name.startswith("AWS_")})
    run = tempfile.mkdtemp(prefix="shoebox-soak-")
    if args.keep:
        stack.callback(print, f"kept {run}")
    else:
        stack.callback(shutil.rmtree, run, ignore_errors=True)
    watch, tmp_dir = os.path.join(run, "watch"), os.path.join(run, "tmp")
    os.makedirs(watch)
    os.makedirs(tmp_dir)

    server, moto_url = start_server()
    stack.callback(stop_process, server)
    boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=BUCKET)
    proxy = FaultProxy(moto_url, fault_rules(args.fault_rate, args.stall_seconds),
                       seed=args.seed).start()
    stack.callback(proxy.stop)

    log_path, app_out = os.path.join(run, "sidecar.log"), os.path.join(run, "app.out")
    # New sessions: a Ctrl-C in the terminal reaches this script only, which
    # then stops the children itself, in order.
    with open(log_path, "wb") as sidecar_log:
        sidecar = Watched("sidecar", subprocess.Popen(
            sidecar_command(args, watch, proxy.endpoint_url, tmp_dir), env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sidecar_log,
            start_new_session=True))
    stack.callback(stop_process, sidecar.process, 40.0)
    with open(app_out, "wb") as out:
        app = Watched("app", subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--app", watch, "--rate",
             str(args.rate), "--roll-size-mb", str(args.roll_size_mb), "--big-every",
             str(args.big_every), "--big-mb", str(args.big_mb)], env=env,
            stdin=subprocess.DEVNULL, stdout=out, start_new_session=True))
    stack.callback(stop_process, app.process)
    log = LogTail(log_path)
    warm_up = warm_up_seconds(args)

    start = time.monotonic()
    next_progress = start + args.progress
    died: list[str] = []
    while True:
        now = time.monotonic()
        elapsed = now - start
        for watched in (app, sidecar):
            if watched.look(elapsed) is None:
                died.append(f"{watched.name} exited early ({watched.process.poll()})")
        log.read()
        if died or elapsed >= args.seconds:
            break
        if now >= next_progress:
            progress(elapsed, app, sidecar, log, proxy)
            next_progress += args.progress
        time.sleep(max(0.0, min(args.sample_interval, args.seconds - elapsed)))

    stop_process(app.process, 60.0)
    try:
        with open(app_out) as out:
            app_report = json.loads(out.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        app_report = {"logged": 0, "error": "the application reported nothing"}
        died.append("the application reported no count")
    logged = int(app_report["logged"])

    drain_started = time.monotonic()
    while (left := archives_left(watch)) and sidecar.process.poll() is None \
            and time.monotonic() - drain_started < args.drain_timeout:
        time.sleep(0.5)
    drain_seconds = time.monotonic() - drain_started
    sidecar.look(time.monotonic() - start)
    stop_process(sidecar.process, 40.0)
    log.read()
    seen = proxy.seen

    bucket = read_back(moto_url, logged)
    return {
        "config": {name: value for name, value in vars(args).items()
                   if name not in ("app", "json")},
        "seconds": round(time.monotonic() - start, 1), "warm_up": warm_up,
        "died": died, "logged": logged, "app": app_report, "bucket": bucket,
        "left_in_watch_dir": left, "drain_seconds": round(drain_seconds, 1),
        "archives_shipped": log.events["shipped"], "already_present": log.already_present,
        "sidecar_events": dict(log.events.most_common()), "sidecar_errors": log.errors,
        "requests": len(seen),
        "faultable_requests": sum(1 for item in seen if item.operation in FAULTED_OPERATIONS),
        "requests_by_operation": dict(Counter(item.operation for item in seen).most_common()),
        "faults": dict(Counter(item.fault for item in seen if item.fault).most_common()),
        "faults_by_operation": {f"{operation} {fault}": count for (operation, fault), count in
                                Counter((item.operation, item.fault) for item in seen
                                        if item.fault).most_common()},
        "processes": {watched.name: watched.figures(warm_up) for watched in (app, sidecar)},
        "samples": {watched.name: [asdict(taken) for taken in watched.samples]
                    for watched in (app, sidecar)},
    }


def checks(figures: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, bool, str]]:
    """Each check: name, whether it passed, the figures it looked at."""
    bucket = figures["bucket"]
    results = [
        ("ran to the end", not figures["died"], "; ".join(figures["died"]) or "yes"),
        ("nothing missing", bucket["missing"] == 0,
         f"{bucket['missing']} missing {bucket['missing_ranges']}"),
        ("nothing duplicated", bucket["duplicates"] == 0, f"{bucket['duplicates']} duplicates"),
        ("nothing unexpected", bucket["unexpected"] == 0 and bucket["without_seq"] == 0,
         f"{bucket['unexpected']} unknown seq, {bucket['without_seq']} without seq"),
        ("watch directory drained", not figures["left_in_watch_dir"],
         f"{len(figures['left_in_watch_dir'])} archives left"),
        ("no incomplete multipart upload", bucket["incomplete_multipart_uploads"] == 0,
         f"{bucket['incomplete_multipart_uploads']} left"),
    ]
    for name, process in figures["processes"].items():
        limit = process["rss_warm"] * (1 + args.rss_growth) + args.rss_slack_mb * MIB
        results += [
            (f"{name} exited cleanly", process["exit_code"] == 0, f"exit {process['exit_code']}"),
            (f"{name} RSS flat", process["rss_final"] <= limit,
             f"final {process['rss_final'] / MIB:.1f} MiB, limit {limit / MIB:.1f} MiB"),
            (f"{name} fds flat", process["fds_final"] <= process["fds_warm"] + args.fd_slack,
             f"final {process['fds_final']}, warm {process['fds_warm']} + {args.fd_slack}"),
            (f"{name} threads flat",
             process["threads_final"] <= process["threads_warm"] + args.thread_slack,
             f"final {process['threads_final']}, warm {process['threads_warm']} + "
             f"{args.thread_slack}"),
        ]
    return results


def report(figures: dict[str, Any], results: list[tuple[str, bool, str]]) -> None:
    """Print the figures and the checks."""
    bucket, app = figures["bucket"], figures["app"]
    print(f"soak: {figures['seconds']:.0f} s, fault rate {figures['config']['fault_rate']}, "
          f"{figures['config']['rate']} records/s")
    print(f"records logged {figures['logged']} (big {app.get('big', 0)}; handler: "
          f"{app.get('stats', {})})")
    print(f"records in the bucket {bucket['found']}: distinct {bucket['distinct']}, "
          f"duplicates {bucket['duplicates']}, missing {bucket['missing']}, unexpected "
          f"{bucket['unexpected']}; {bucket['objects']} objects, "
          f"{bucket['incomplete_multipart_uploads']} incomplete multipart uploads "
          f"(read back in {bucket['seconds']} s)")
    print(f"archives shipped {figures['archives_shipped']} (already present after a "
          f"retry: {figures['already_present']}); drained in {figures['drain_seconds']} s")
    print(f"requests through the proxy {figures['requests']}: {figures['requests_by_operation']}")
    injected = sum(figures["faults"].values())
    print(f"faults injected {injected} ({injected / max(1, figures['faultable_requests']):.1%} "
          f"of {figures['faultable_requests']} requests of the faulted operations): "
          f"{figures['faults']}")
    print(f"sidecar log events: {figures['sidecar_events']}")
    for line in figures["sidecar_errors"]:
        print(f"  sidecar: {line}")
    print(f"{'':8} {'RSS warm':>9} {'peak':>9} {'final':>9}   {'fds first/warm/final':>20}"
          f"   {'threads first/warm/final':>24}")
    for name, process in figures["processes"].items():
        fds = f"{process['fds_first']}/{process['fds_warm']}/{process['fds_final']}"
        threads = (f"{process['threads_first']}/{process['threads_warm']}/"
                   f"{process['threads_final']}")
        print(f"{name:8} {process['rss_warm'] / MIB:5.1f} MiB {process['rss_peak'] / MIB:5.1f} "
              f"MiB {process['rss_final'] / MIB:5.1f} MiB   {fds:>20}   {threads:>24}")
    print(f"(warm: the sample at {figures['warm_up']:.0f} s)")
    for name, passed, detail in results:
        print(f"{'ok  ' if passed else 'FAIL'} {name}: {detail}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3600, help="how long the app logs")
    parser.add_argument("--rate", type=float, default=500, help="records a second")
    parser.add_argument("--fault-rate", type=float, default=0.05,
                        help="share of the faulted operations' requests that get a fault")
    parser.add_argument("--seed", type=int, default=1, help="the fault proxy's random seed")
    parser.add_argument("--roll-size-mb", type=float, default=0.25)
    parser.add_argument("--big-every", type=float, default=60,
                        help="seconds between big records after the first two, at 1 s "
                             "and 6 s (0: none)")
    parser.add_argument("--big-mb", type=float, default=8,
                        help="MiB of random base64 in a big record (gzip leaves ~76%%)")
    parser.add_argument("--multipart-threshold-mb", type=float, default=5)
    parser.add_argument("--multipart-chunk-mb", type=float, default=5)
    parser.add_argument("--read-timeout", type=float, default=2,
                        help="the sidecar's --read-timeout (0: its default)")
    parser.add_argument("--connect-timeout", type=float, default=2,
                        help="the sidecar's --connect-timeout (0: its default)")
    parser.add_argument("--stall-seconds", type=float, default=5,
                        help="length of the bounded stalls (more than --read-timeout)")
    parser.add_argument("--sample-interval", type=float, default=5)
    parser.add_argument("--progress", type=float, default=60,
                        help="seconds between progress lines")
    parser.add_argument("--warm-up", type=float, default=None,
                        help="seconds until the flatness baseline (default: 10%% of the "
                             "run, 15 s to 60 s)")
    parser.add_argument("--drain-timeout", type=float, default=120,
                        help="seconds to wait for the sidecar to ship what is left")
    parser.add_argument("--rss-growth", type=float, default=0.2,
                        help="allowed RSS growth after warm-up, as a fraction")
    parser.add_argument("--rss-slack-mb", type=float, default=10)
    parser.add_argument("--fd-slack", type=int, default=8)
    parser.add_argument("--thread-slack", type=int, default=4)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    parser.add_argument("--app", metavar="DIR", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the children are stopped either way."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.app:
        return run_app(args)
    try:
        with terminate_as_interrupt(), contextlib.ExitStack() as stack:
            figures = soak(args, stack)
    except KeyboardInterrupt:
        print("interrupted: children stopped", file=sys.stderr)
        return 130
    results = checks(figures, args)
    figures["checks"] = [{"name": name, "passed": passed, "detail": detail}
                         for name, passed, detail in results]
    report(figures, results)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=1)
    return 0 if all(passed for _, passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
