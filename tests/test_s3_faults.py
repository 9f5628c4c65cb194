"""The fault-injecting S3 proxy (tests/s3_faults.py) itself: it forwards
untouched what no rule matches, names operations right, and each fault does
what the contract says, as a real boto3 client sees it (issue 12)."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from conftest import S3Server
from s3_faults import ANY, FaultProxy, Rule

MiB = 1024 * 1024
# What a client sees when the connection goes away under it (not
# ReadTimeoutError, though it too is an HTTPClientError: a reset is no timeout).
CONNECTION_ERRORS = (botocore.exceptions.ConnectionClosedError,
                     botocore.exceptions.ConnectionError)


def make_client(endpoint_url: str, read_timeout: float = 2) -> Any:
    """A boto3 S3 client that tries each request once, so that faults surface."""
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=2,
                    read_timeout=read_timeout)
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """A started proxy in front of the session's moto server, with no rules."""
    with FaultProxy(s3_server.endpoint_url) as started:
        yield started


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[Any]:
    """A boto3 client talking to S3 through ``proxy``."""
    through_proxy = make_client(proxy.endpoint_url)
    yield through_proxy
    through_proxy.close()


@pytest.fixture
def direct(s3_server: S3Server) -> Iterator[Any]:
    """A boto3 client talking to the moto server directly, to see what was stored."""
    straight = make_client(s3_server.endpoint_url)
    yield straight
    straight.close()


def stored(direct: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, as the server has them; ``None`` if there is none."""
    try:
        return bytes(direct.get_object(Bucket=bucket, Key=key)["Body"].read())
    except direct.exceptions.NoSuchKey:
        return None


def wait_for(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Poll ``condition`` (the proxy has no hook to wait on) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    idle = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        idle.wait(0.01)


def test_rule_rejects_unknown_operation_fault_and_bad_numbers() -> None:
    with pytest.raises(ValueError, match="PutObjects"):
        Rule("PutObjects", "error")
    with pytest.raises(ValueError, match="explode"):
        Rule("PutObject", "explode")
    with pytest.raises(ValueError, match="probability"):
        Rule("*", "error", probability=1.5)
    with pytest.raises(ValueError, match="times"):
        Rule("*", "error", times=-1)


def test_forwards_put_get_head_list_untouched(client: Any, bucket: str,
                                             proxy: FaultProxy) -> None:
    payload = os.urandom(100_000)
    client.put_object(Bucket=bucket, Key="dir/a b+c.bin", Body=payload)
    client.put_object(Bucket=bucket, Key="dir/empty", Body=b"")

    assert client.get_object(Bucket=bucket, Key="dir/a b+c.bin")["Body"].read() == payload
    assert client.get_object(Bucket=bucket, Key="dir/empty")["Body"].read() == b""
    assert client.head_object(Bucket=bucket, Key="dir/a b+c.bin")["ContentLength"] == 100_000
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        client.head_object(Bucket=bucket, Key="nope")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    listed = client.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [item["Key"] for item in listed["Contents"]] == ["dir/a b+c.bin", "dir/empty"]

    seen = proxy.seen
    assert [s.operation for s in seen] == ["PutObject", "PutObject", "GetObject", "GetObject",
                                           "HeadObject", "HeadObject", "ListObjectsV2"]
    assert [s.status for s in seen] == [200, 200, 200, 200, 200, 404, 200]
    assert seen[0].key == "dir/a b+c.bin"  # URL-unquoted
    assert all(s.fault is None for s in seen)
    assert proxy.count(fault=None) == proxy.count() == 7


def test_forwards_a_multipart_upload_untouched(client: Any, bucket: str, proxy: FaultProxy,
                                               tmp_path: Any) -> None:
    payload = os.urandom(11 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    parts = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB,
                           max_concurrency=2)

    client.upload_file(str(source), bucket, "big.bin", Config=parts)

    assert client.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == payload
    assert proxy.count("CreateMultipartUpload") == 1
    assert proxy.count("UploadPart") == 3
    assert proxy.count("CompleteMultipartUpload") == 1
    assert all(s.fault is None and s.status == 200 for s in proxy.seen), proxy.seen


def test_names_the_operation_of_each_request(client: Any, bucket: str,
                                             proxy: FaultProxy) -> None:
    other_bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=other_bucket)
    client.head_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    client.head_object(Bucket=bucket, Key="k")
    client.get_object(Bucket=bucket, Key="k")["Body"].read()
    client.list_objects_v2(Bucket=bucket)
    client.delete_object(Bucket=bucket, Key="k")
    upload = client.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = client.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1,
                              Body=b"part")["ETag"]
    client.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                     MultipartUpload={"Parts": [{"ETag": etag,
                                                                 "PartNumber": 1}]})
    abandoned = client.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    client.list_multipart_uploads(Bucket=bucket)
    client.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=abandoned)
    client.list_buckets()

    assert [(s.operation, s.method, s.key) for s in proxy.seen] == [
        ("CreateBucket", "PUT", ""),
        ("HeadBucket", "HEAD", ""),
        ("PutObject", "PUT", "k"),
        ("HeadObject", "HEAD", "k"),
        ("GetObject", "GET", "k"),
        ("ListObjectsV2", "GET", ""),
        ("DeleteObject", "DELETE", "k"),
        ("CreateMultipartUpload", "POST", "mp"),
        ("UploadPart", "PUT", "mp"),
        ("CompleteMultipartUpload", "POST", "mp"),
        ("CreateMultipartUpload", "POST", "gone"),
        ("ListMultipartUploads", "GET", ""),
        ("AbortMultipartUpload", "DELETE", "gone"),
        ("Other", "GET", ""),
    ]


@pytest.mark.parametrize(("retry_after", "header"), [(None, None), (3, "3"), (0.5, "0.5")])
def test_slowdown_answers_503_and_stores_nothing(client: Any, direct: Any, bucket: str,
                                                 proxy: FaultProxy, retry_after: float | None,
                                                 header: str | None) -> None:
    proxy.add_rule(Rule("PutObject", "slowdown", retry_after=retry_after))

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.put_object(Bucket=bucket, Key="k", Body=b"data" * 1000)

    response = raised.value.response
    assert response["Error"]["Code"] == "SlowDown"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert response["ResponseMetadata"]["HTTPHeaders"].get("retry-after") == header
    assert stored(direct, bucket, "k") is None
    [seen] = proxy.seen
    assert (seen.fault, seen.status) == ("slowdown", 503)


def test_error_answers_500_internal_error_and_head_gets_no_body(
        client: Any, direct: Any, bucket: str, proxy: FaultProxy) -> None:
    direct.put_object(Bucket=bucket, Key="there", Body=b"x")
    proxy.add_rule(Rule("*", "error"))

    with pytest.raises(botocore.exceptions.ClientError) as put:
        client.put_object(Bucket=bucket, Key="k", Body=b"data")
    with pytest.raises(botocore.exceptions.ClientError) as head:
        client.head_object(Bucket=bucket, Key="there")

    assert put.value.response["Error"]["Code"] == "InternalError"
    assert put.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert stored(direct, bucket, "k") is None
    # The same client goes on using its kept-alive connection: HEAD's answer
    # had no body to desynchronise it.
    proxy.clear_rules()
    assert client.head_object(Bucket=bucket, Key="there")["ContentLength"] == 1


def test_times_fires_on_exactly_that_many_requests(client: Any, bucket: str,
                                                   proxy: FaultProxy) -> None:
    proxy.add_rule(Rule("PutObject", "error", times=2))

    outcomes = []
    for number in range(4):
        try:
            client.put_object(Bucket=bucket, Key=f"k{number}", Body=b"x")
            outcomes.append("ok")
        except botocore.exceptions.ClientError:
            outcomes.append("error")

    assert outcomes == ["error", "error", "ok", "ok"]
    assert proxy.count("PutObject", "error") == 2
    assert proxy.count("PutObject", None) == 2


def test_rules_apply_in_order_and_a_used_up_rule_lets_the_next_one_match(
        client: Any, bucket: str, proxy: FaultProxy) -> None:
    proxy.add_rule(Rule("PutObject", "slowdown", times=1))
    proxy.add_rule(Rule("*", "error", times=1))

    codes = []
    for number in range(3):
        try:
            client.put_object(Bucket=bucket, Key=f"k{number}", Body=b"x")
            codes.append("ok")
        except botocore.exceptions.ClientError as error:
            codes.append(error.response["Error"]["Code"])

    assert codes == ["SlowDown", "InternalError", "ok"]


def _head_faults(s3_server: S3Server, bucket: str, seed: int) -> list[bool]:
    """Which of 200 HEADs a fresh proxy with a 30% slowdown rule and ``seed`` throttled."""
    rule = Rule("HeadObject", "slowdown", probability=0.3)
    with FaultProxy(s3_server.endpoint_url, [rule], seed=seed) as proxy:
        through_proxy = make_client(proxy.endpoint_url)
        try:
            for _ in range(200):
                try:
                    through_proxy.head_object(Bucket=bucket, Key="k")
                except botocore.exceptions.ClientError:
                    pass
        finally:
            through_proxy.close()
        faults = [seen.fault == "slowdown" for seen in proxy.seen]
        assert [seen.status for seen in proxy.seen] == [503 if f else 200 for f in faults]
        return faults


def test_probability_fires_on_some_requests_reproducibly_for_a_seed(
        s3_server: S3Server, direct: Any, bucket: str) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"x")

    first = _head_faults(s3_server, bucket, seed=7)
    again = _head_faults(s3_server, bucket, seed=7)
    other = _head_faults(s3_server, bucket, seed=8)

    assert 20 < sum(first) < 100  # 30% of 200, give or take
    assert again == first
    assert other != first


def test_key_contains_limits_the_rule_to_matching_keys(client: Any, direct: Any, bucket: str,
                                                       proxy: FaultProxy) -> None:
    proxy.add_rule(Rule("PutObject", "error", key_contains="poison"))

    client.put_object(Bucket=bucket, Key="fine/1", Body=b"1")
    with pytest.raises(botocore.exceptions.ClientError):
        client.put_object(Bucket=bucket, Key="x/poison/2", Body=b"2")

    assert stored(direct, bucket, "fine/1") == b"1"
    assert stored(direct, bucket, "x/poison/2") is None
    assert [(s.key, s.fault) for s in proxy.seen] == [("fine/1", None),
                                                      ("x/poison/2", "error")]


def test_reset_request_breaks_the_connection_and_stores_nothing(
        client: Any, direct: Any, bucket: str, proxy: FaultProxy) -> None:
    proxy.add_rule(Rule("PutObject", "reset_request", times=1))

    started = time.monotonic()
    with pytest.raises(CONNECTION_ERRORS):
        client.put_object(Bucket=bucket, Key="k", Body=os.urandom(256 * 1024))
    assert time.monotonic() - started < 1  # reset at once, not timed out

    assert stored(direct, bucket, "k") is None
    [seen] = proxy.seen
    assert (seen.fault, seen.status) == ("reset_request", None)
    # The client recovers on a new connection.
    client.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert stored(direct, bucket, "k") == b"second"


def test_reset_response_breaks_the_connection_after_the_server_acted(
        client: Any, direct: Any, bucket: str, proxy: FaultProxy) -> None:
    proxy.add_rule(Rule("PutObject", "reset_response", times=1))
    payload = os.urandom(64 * 1024)

    started = time.monotonic()
    with pytest.raises(CONNECTION_ERRORS):
        client.put_object(Bucket=bucket, Key="k", Body=payload)
    assert time.monotonic() - started < 1  # reset at once, not timed out

    assert stored(direct, bucket, "k") == payload
    [seen] = proxy.seen
    assert (seen.fault, seen.status) == ("reset_response", None)


def test_reset_response_cuts_a_get_in_the_middle_of_its_body(
        client: Any, direct: Any, bucket: str, proxy: FaultProxy) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=os.urandom(256 * 1024))
    proxy.add_rule(Rule("GetObject", "reset_response", times=1))

    response = client.get_object(Bucket=bucket, Key="k")  # the headers came whole
    with pytest.raises(botocore.exceptions.ResponseStreamingError):
        response["Body"].read()


def test_delay_answers_late_but_right(client: Any, direct: Any, bucket: str,
                                      proxy: FaultProxy) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"abc")
    proxy.add_rule(Rule("HeadObject", "delay", seconds=0.5))

    started = time.monotonic()
    assert client.head_object(Bucket=bucket, Key="k")["ContentLength"] == 3
    assert time.monotonic() - started >= 0.5
    [seen] = proxy.seen
    assert (seen.fault, seen.status) == ("delay", 200)


def test_stall_times_the_client_out_and_stop_returns_quickly(
        s3_server: S3Server, direct: Any, bucket: str) -> None:
    proxy = FaultProxy(s3_server.endpoint_url, [Rule("PutObject", "stall")]).start()
    impatient = make_client(proxy.endpoint_url, read_timeout=1)
    try:
        started = time.monotonic()
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            impatient.put_object(Bucket=bucket, Key="k", Body=b"data")
        assert time.monotonic() - started < 3
        assert stored(direct, bucket, "k") is None
    finally:
        impatient.close()
        stopping = time.monotonic()
        proxy.stop()  # the stalled request (seconds=0) is still held
        assert time.monotonic() - stopping < 2
    [seen] = proxy.seen
    assert (seen.fault, seen.status) == ("stall", None)


def test_stop_wakes_a_request_stalled_while_its_client_still_waits(
        s3_server: S3Server, bucket: str) -> None:
    proxy = FaultProxy(s3_server.endpoint_url, [Rule("HeadObject", "stall")]).start()
    patient = make_client(proxy.endpoint_url, read_timeout=30)
    errors: list[BaseException] = []

    def head() -> None:
        try:
            patient.head_object(Bucket=bucket, Key="k")
        except Exception as error:
            errors.append(error)

    waiting = threading.Thread(target=head)
    waiting.start()
    try:
        wait_for(lambda: proxy.count("HeadObject", "stall") == 1)
        stopping = time.monotonic()
        proxy.stop()
        assert time.monotonic() - stopping < 2
        waiting.join(5)
        assert not waiting.is_alive()
        # Closed unanswered: a connection error, not a timeout 30 s later.
        assert len(errors) == 1 and isinstance(errors[0], CONNECTION_ERRORS)
    finally:
        proxy.stop()
        waiting.join()
        patient.close()


def test_stall_with_seconds_closes_the_connection_after_that_long(
        client: Any, bucket: str, proxy: FaultProxy) -> None:
    proxy.add_rule(Rule("HeadObject", "stall", seconds=0.5, times=1))

    started = time.monotonic()
    with pytest.raises(CONNECTION_ERRORS):
        client.head_object(Bucket=bucket, Key="k")
    assert 0.5 <= time.monotonic() - started < 1.9  # closed, not timed out (2 s)


def test_forwards_a_chunked_body_faithfully(direct: Any, bucket: str,
                                            proxy: FaultProxy) -> None:
    host, port = proxy.endpoint_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("PUT", f"/{bucket}/chunked", body=iter([b"hello ", b"chunked ",
                                                                   b"world"]),
                           encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    finally:
        connection.close()

    assert stored(direct, bucket, "chunked") == b"hello chunked world"
    assert proxy.count("PutObject", None) == 1


def test_answers_expect_100_continue_before_the_body(direct: Any, bucket: str,
                                                     proxy: FaultProxy) -> None:
    host, port = proxy.endpoint_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(f"PUT /{bucket}/expected HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n".encode())
        interim = raw.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100")
        raw.sendall(b"body")
        final = raw.recv(65536)
        assert final.startswith(b"HTTP/1.1 200")

    assert stored(direct, bucket, "expected") == b"body"


def test_count_filters_by_operation_and_fault(client: Any, bucket: str,
                                              proxy: FaultProxy) -> None:
    proxy.add_rule(Rule("HeadObject", "error", times=1))
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError):
            client.head_object(Bucket=bucket, Key="missing")

    assert proxy.count() == 2
    assert proxy.count("HeadObject") == 2
    assert proxy.count("HeadObject", "error") == 1
    assert proxy.count("HeadObject", None) == 1
    assert proxy.count(fault=ANY) == 2
    assert proxy.count("PutObject") == 0
