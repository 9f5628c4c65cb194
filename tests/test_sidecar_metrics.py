"""The sidecar's ``/metrics`` and ``/healthz``: scraped over HTTP from a real
sidecar process shipping to a moto server that goes away and comes back,
and the health rule checked to the second with an injected clock."""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

import boto3
import pytest
from _logging_support import wait_until
from _sidecar_support import SidecarProcess, archives_in, damage, write_archives
from prometheus_client.parser import text_string_to_metric_families

from shoebox.destinations import DirectoryDestination
from shoebox.shipping import Shipper
from shoebox_sidecar import Sidecar
from shoebox_sidecar.cli import EXIT_USAGE, main
from shoebox_sidecar.metrics import MetricsServer, SidecarMetrics


def get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``base``/metrics, by name and labels."""
    status, body = get(base + "/metrics")
    assert status == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def sizes(directory: Any, names: Any) -> int:
    return sum(os.path.getsize(os.path.join(directory, name)) for name in names)


@pytest.mark.parametrize("configured_by", ["flags", "toml"])
def test_metrics_and_health_follow_an_outage_and_the_recovery(
        restartable_server: Any, tmp_path: Any, configured_by: str) -> None:
    server = restartable_server
    bucket = f"metrics-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=server.endpoint_url).create_bucket(Bucket=bucket)
    watch = tmp_path / "watch"
    write_archives(watch, 3, prefix="before")
    options = {"dest": f"s3://{bucket}/p", "endpoint_url": server.endpoint_url,
               "initial_backoff": 0.05, "max_backoff": 0.2, "scan_interval": 3600.0,
               "metrics_port": 0, "unhealthy_after": 1.0}
    if configured_by == "flags":
        args = [str(watch)] + [text for name, setting in options.items()
                               for text in ("--" + name.replace("_", "-"), str(setting))]
    else:
        config = tmp_path / "sidecar.toml"
        config.write_text(f'watch_dir = "{watch}"\n' + "".join(
            f"{name} = {json.dumps(setting)}\n" for name, setting in options.items()))
        args = ["--config", str(config)]
    sidecar = SidecarProcess(*args)
    try:
        port = sidecar.wait_events("metrics_listening", 1)[0]["port"]
        base = f"http://127.0.0.1:{port}"
        shipped = sidecar.wait_events("shipped", 3)
        # "shipped" is logged when the copy is confirmed, before the delete.
        wait_until(lambda: value(scrape(base), "shoebox_sidecar_backlog_archives") == 0,
                   timeout=30, what="the shipped archives deleted")
        samples = scrape(base)
        assert value(samples, "shoebox_sidecar_archives_shipped_total") == 3
        assert value(samples, "shoebox_sidecar_records_shipped_total") == 150
        assert value(samples, "shoebox_sidecar_bytes_shipped_total") == sum(
            line["bytes_out"] for line in shipped)
        assert value(samples, "shoebox_sidecar_bytes_read_total") == sum(
            line["bytes_in"] for line in shipped)
        assert value(samples, "shoebox_sidecar_upload_duration_seconds_count") == 3
        assert value(samples, "shoebox_sidecar_upload_failures_total", transient="true") == 0
        assert value(samples, "shoebox_sidecar_backlog_archives") == 0
        assert value(samples, "shoebox_sidecar_backlog_bytes") == 0
        assert value(samples, "shoebox_sidecar_last_success_timestamp_seconds") > 0
        assert "process_resident_memory_bytes" in {name for name, _ in samples}
        status, body = get(base + "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"

        server.stop()
        during = write_archives(watch, 2, prefix="during")
        sidecar.wait_events("retrying", 2)
        samples = scrape(base)
        assert value(samples, "shoebox_sidecar_upload_failures_total", transient="true") >= 2
        assert value(samples, "shoebox_sidecar_archives_shipped_total") == 3  # no attempts
        assert value(samples, "shoebox_sidecar_backlog_archives") == 2
        assert value(samples, "shoebox_sidecar_backlog_bytes") == sizes(watch, during)
        # 503 once the oldest waited more than --unhealthy-after (1 s).
        wait_until(lambda: get(base + "/healthz")[0] == 503, timeout=60, what="503")
        body = json.loads(get(base + "/healthz")[1])
        assert body["status"] == "unhealthy" and body["backlog_archives"] == 2
        assert body["oldest_waiting_seconds"] > 1.0

        server.start()
        sidecar.wait_events("shipped", 2)
        wait_until(lambda: value(scrape(base), "shoebox_sidecar_backlog_archives") == 0,
                   timeout=30, what="the shipped archives deleted")
        samples = scrape(base)
        assert value(samples, "shoebox_sidecar_archives_shipped_total") == 5
        assert value(samples, "shoebox_sidecar_backlog_archives") == 0
        assert value(samples, "shoebox_sidecar_backlog_bytes") == 0
        assert get(base + "/healthz")[0] == 200
        assert get(base + "/other")[0] == 404
        assert sidecar.signal(signal.SIGTERM) == 0
    finally:
        sidecar.close()
    assert archives_in(watch) == []


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_health_counts_waiting_from_closing_or_from_start_whichever_is_later(
        tmp_path: Any) -> None:
    clock = FakeClock(10_000.0)
    metrics = SidecarMetrics(unhealthy_after=100.0, clock=clock)
    sidecar = Sidecar(str(tmp_path), Shipper(DirectoryDestination(tmp_path / "dest")),
                      observer=metrics)
    metrics.watch(sidecar)
    assert metrics.health()[0]  # nothing waiting
    old = write_archives(tmp_path, 1, prefix="old")
    os.utime(tmp_path / next(iter(old)), (5_000.0, 5_000.0))  # closed before the start
    clock.now = 10_100.0
    healthy, body = metrics.health()
    assert healthy and body["oldest_waiting_seconds"] == 100.0
    clock.now = 10_100.5
    healthy, body = metrics.health()
    assert not healthy and body == {
        "status": "unhealthy", "backlog_archives": 1,
        "backlog_bytes": os.path.getsize(tmp_path / next(iter(old))),
        "oldest_waiting_seconds": 100.5, "unhealthy_after": 100.0}
    os.unlink(tmp_path / next(iter(old)))
    new = write_archives(tmp_path, 1, prefix="new")
    os.utime(tmp_path / next(iter(new)), (10_050.0, 10_050.0))  # closed after the start
    assert metrics.health()[0]
    clock.now = 10_150.5
    assert not metrics.health()[0]
    os.rename(tmp_path, tmp_path.with_name("gone"))
    healthy, body = metrics.health()
    assert not healthy and "cannot read the directory" in body["error"]


def test_counters_count_confirmed_copies_failures_and_quarantined_archives(
        tmp_path: Any) -> None:
    watch, dest = tmp_path / "watch", tmp_path / "dest"
    written = write_archives(watch, 3)
    dest.mkdir()
    (dest / "app-001.events.gz").write_bytes(b"someone else's")  # refused: permanent
    damage(watch / "app-002.events")
    metrics = SidecarMetrics(clock=FakeClock(1234.0))
    sidecar = Sidecar(str(watch), Shipper(DirectoryDestination(dest), verify=True,
                                          key_template="{name}{suffix}"), observer=metrics)
    metrics.watch(sidecar)
    assert sidecar.run_once() == 1
    sample = metrics.registry.get_sample_value
    assert sample("shoebox_sidecar_archives_shipped_total") == 1
    assert sample("shoebox_sidecar_records_shipped_total") == len(written["app-000.events"])
    assert sample("shoebox_sidecar_bytes_shipped_total") == os.path.getsize(
        dest / "app-000.events.gz")
    assert sample("shoebox_sidecar_upload_failures_total", {"transient": "false"}) == 1
    assert sample("shoebox_sidecar_upload_failures_total", {"transient": "true"}) == 0
    assert sample("shoebox_sidecar_quarantined_total") == 1
    assert sample("shoebox_sidecar_last_success_timestamp_seconds") == 1234.0
    # The refused archive still waits; the quarantined one is out of the directory.
    assert sample("shoebox_sidecar_backlog_archives") == 1
    with MetricsServer(metrics, port=0) as server:
        text = get(f"http://127.0.0.1:{server.port}/metrics")[1].decode()
    assert "shoebox_sidecar_quarantined_total 1.0" in text


def test_throttled_attempts_are_counted_and_local_errors_are_not_transient(
        tmp_path: Any, s3_server: Any, bucket: str) -> None:
    """Through the fault proxy: two attempts throttled (each a request and
    botocore's quick retry of it), then a staging directory that cannot be
    made (a file where it should be: ENOTDIR, not retried), scraped over
    HTTP."""
    from s3_faults import FaultProxy, Rule

    from shoebox.destinations import S3Destination
    from shoebox_sidecar.backoff import Backoff

    watch = tmp_path / "watch"
    write_archives(watch, 1)
    with FaultProxy(s3_server.endpoint_url, [Rule("PutObject", "slowdown", times=4)]) as proxy:
        metrics = SidecarMetrics()
        destination = S3Destination(bucket, "m", options={"endpoint_url": proxy.endpoint_url})
        sidecar = Sidecar(str(watch), Shipper(destination, tmp_dir=tmp_path / "staging"),
                          backoff=Backoff(0.05, 0.1), observer=metrics)
        metrics.watch(sidecar)
        assert sidecar.run_once() == 0
    (tmp_path / "blocked").write_bytes(b"")
    write_archives(watch, 1, prefix="later")
    stuck = Sidecar(str(watch), Shipper(destination, tmp_dir=tmp_path / "blocked" / "t"),
                    observer=metrics)
    assert stuck.run_once() == 1
    with MetricsServer(metrics, port=0) as server:
        samples = scrape(f"http://127.0.0.1:{server.port}")
    assert value(samples, "shoebox_sidecar_throttled_total") == 2
    assert value(samples, "shoebox_sidecar_upload_failures_total", transient="true") == 2
    assert value(samples, "shoebox_sidecar_upload_failures_total", transient="false") == 1
    assert value(samples, "shoebox_sidecar_archives_shipped_total") == 1


def test_metrics_need_the_metrics_extra(tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "shoebox_sidecar.metrics")
    assert main([str(tmp_path), "--dest", str(tmp_path / "dest"), "--once",
                 "--metrics-port", "0"]) == EXIT_USAGE
    line = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert line["event"] == "config_error"
    # The checkout install: the distribution is not on PyPI yet (issue 18).
    assert "pip install '.[metrics]' in a shoebox checkout" in line["message"]


def test_a_metrics_port_that_cannot_be_bound_is_a_usage_error(
        tmp_path: Any, capsys: Any) -> None:
    with MetricsServer(SidecarMetrics(), port=0) as taken:
        code = main([str(tmp_path), "--dest", str(tmp_path / "dest"), "--once",
                     "--metrics-port", str(taken.port)])
    assert code == EXIT_USAGE
    line = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert line["event"] == "config_error" and f"port {taken.port}" in line["message"]
