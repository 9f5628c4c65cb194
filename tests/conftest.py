"""Shared fixtures: a thread-leak guard for every test, and a real S3 server
(moto's server mode on 127.0.0.1) for the tests that talk to S3."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Tests never talk to real AWS: fixed fake credentials, no user config.
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
})
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)

# Threads that outlive a test on purpose: the session's S3 server and the
# threads it serves requests on; distributed's process-wide offload executor
# (started by the first Client, never stopped) and fsspec's event loop
# thread (started by the first s3fs file system, never stopped).
_LONG_LIVED = ("_server_entry", "process_request_thread", "serve_forever", "Dask-Offload_",
               "fsspecIO")


def _long_lived(thread: threading.Thread) -> bool:
    if any(name in thread.name for name in _LONG_LIVED):
        return True
    # The idle threads of the default executor of fsspec's event loop (s3fs
    # runs blocking calls there) live as long as that loop does.
    asyn = sys.modules.get("fsspec.asyn")
    executor = getattr(asyn.loop[0], "_default_executor", None) if asyn else None
    return thread in getattr(executor, "_threads", ())


_UNPRIVILEGED_CHILD = "SHOEBOX_TEST_UNPRIVILEGED_CHILD"


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run tests marked ``unprivileged`` without root's power to ignore file
    permissions: as root, the test runs again in a child pytest that
    ``setpriv`` has stripped of CAP_DAC_OVERRIDE and friends, and passes
    when the child passes. CI runs as root, so without this such tests
    would never run there."""
    if (pyfuncitem.get_closest_marker("unprivileged") is None or os.geteuid() != 0
            or os.environ.get(_UNPRIVILEGED_CHILD)):
        return None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and no setpriv to drop CAP_DAC_OVERRIDE")
    result = subprocess.run(
        [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner",
         sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid],
        cwd=pyfuncitem.config.rootpath, env={**os.environ, _UNPRIVILEGED_CHILD: "1"},
        capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"failed without CAP_DAC_OVERRIDE:\n{result.stdout}\n{result.stderr}")
    return True


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Fail a test that leaves threads of its own running (watchdog's conftest)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    leaked = []
    for thread in threading.enumerate():
        if thread in before or _long_lived(thread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread.name)
    assert not leaked, f"test leaked threads: {leaked}"


@dataclass
class S3Server:
    """A running moto server: ``endpoint_url`` for boto3, ``client()`` for a client."""

    server: Any
    endpoint_url: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Server(server, f"http://{host}:{port}")
    server.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the session's S3 server."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def restartable_server() -> Iterator[Any]:
    """A moto S3 server of the test's own, which it may stop and start again
    (``_sidecar_support.RestartableServer``); stopped at the end."""
    from _sidecar_support import RestartableServer

    restartable = RestartableServer()
    yield restartable
    restartable.stop()


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    """Sidecar processes (``_sidecar_support.SidecarProcess``) started by a
    test, killed and collected after it."""
    started: list[Any] = []
    yield started
    for process in started:
        process.close()


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A client of a distributed LocalCluster of two single-threaded worker
    processes, for the whole session (starting one takes seconds). Its HTTP
    server takes any free port: the default one may be another cluster's."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="session")
def fleet(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A simulated fleet (``_lake_support``) shipped by the real sidecar with
    ``--key-template hive`` into the bucket ``fleet`` of the session's S3
    server, built once."""
    from _lake_support import build_fleet

    return build_fleet(s3_server, tmp_path_factory.mktemp("fleet"))
