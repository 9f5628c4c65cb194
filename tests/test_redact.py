"""shoebox._redact: credentials in URLs are hidden before text leaves the
process (issue 17), and nothing else changes."""

from __future__ import annotations

import io
import json
import logging

import pytest

from shoebox._redact import MASK, RedactingFormatter, redact, remember_url
from shoebox_sidecar import logs


@pytest.mark.parametrize(("text", "expected"), [
    # user and password
    ("http://user:s3cr3t-P4ss@host:9000", "http://***@host:9000"),
    # a user alone
    ("https://user@host/path", "https://***@host/path"),
    # an empty password, an empty user
    ("http://user:@host", "http://***@host"),
    ("http://:pw@host", "http://***@host"),
    # percent-encoded characters (an "@", a "/", a ":" in the password)
    ("http://us%40er:p%2Fa%3Ass%40@gateway.example.com:8443/s3",
     "http://***@gateway.example.com:8443/s3"),
    # an IPv6 host keeps its brackets and port
    ("http://user:pw@[::1]:9000/bucket", "http://***@[::1]:9000/bucket"),
    ("http://user:pw@[2001:db8::7]/", "http://***@[2001:db8::7]/"),
    # an "@" left unencoded in the password: the authority's last "@" ends it
    ("http://user:p@ss@host:1/x", "http://***@host:1/x"),
    # scheme, host, port, path, query and fragment stay
    ("HTTPS://u:p@Host.Example:443/a/b?list-type=2&prefix=p#f",
     "HTTPS://***@Host.Example:443/a/b?list-type=2&prefix=p#f"),
])
def test_a_urls_userinfo_becomes_the_mask_and_the_rest_stays(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:9000/bucket",
    "http://[::1]:9000/",
    "s3://bucket/prefix/user@example.com/a.events.gz",  # "@" in a key, not userinfo
    "mailto:someone@example.com",  # no "//": no authority
    "archive web-1@2026.events: skipped damaged bytes at offset 12",
    "",
    "no URL here at all",
])
def test_text_without_credentials_comes_back_unchanged(text: str) -> None:
    assert redact(text) == text


def test_every_url_in_a_text_is_redacted_and_the_text_between_kept() -> None:
    text = ('Could not connect to the endpoint URL: "http://alice:s3cr3t-P4ss@127.0.0.1:1/b'
            '?list-type=2"; proxy http://bob@proxy:3128 and s3://b/user@x.events; '
            "then https://carol:pw2@[fe80::1]:443/.")
    assert redact(text) == (
        'Could not connect to the endpoint URL: "http://***@127.0.0.1:1/b?list-type=2"; '
        "proxy http://***@proxy:3128 and s3://b/user@x.events; then https://***@[fe80::1]:443/.")


def test_presigned_url_signatures_and_tokens_are_hidden_other_parameters_kept() -> None:
    text = ("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=60&X-Amz-Security-Token=FQoG"
            "&X-Amz-Signature=abcdef0123#frag")
    assert redact(text) == (
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=***&X-Amz-Date=20260101T000000Z&X-Amz-Expires=60"
        "&X-Amz-Security-Token=***&X-Amz-Signature=***#frag")
    assert redact("http://h/o?AWSAccessKeyId=AKIA&Signature=xyz&Expires=1") == (
        "http://h/o?AWSAccessKeyId=***&Signature=***&Expires=1")


def test_the_formatter_redacts_message_fields_and_traceback_of_a_json_line() -> None:
    secret = "s3cr3t-P4ss"
    url = f"http://user:{secret}@127.0.0.1:9/b"
    stream = io.StringIO()
    logger = logging.getLogger("shoebox_sidecar")
    with logs.json_lines("DEBUG", stream):
        try:
            raise ConnectionError(f'Could not connect to the endpoint URL: "{url}"')
        except ConnectionError as exc:
            logger.debug("upload failed: %s", exc, exc_info=True,
                         extra={"event": "retrying", "error": str(exc), "endpoint": url})
    text = stream.getvalue()
    assert secret not in text
    line = json.loads(text)
    assert line["message"] == ('upload failed: Could not connect to the endpoint URL: '
                               '"http://***@127.0.0.1:9/b"')
    assert line["error"].endswith('"http://***@127.0.0.1:9/b"')
    assert line["endpoint"] == "http://***@127.0.0.1:9/b"
    assert "ConnectionError" in line["exc_info"] and f"{MASK}@127.0.0.1" in line["exc_info"]


def test_the_formatter_leaves_a_line_without_credentials_as_the_inner_one_made_it() -> None:
    inner = logging.Formatter("%(levelname)s %(message)s")
    record = logging.LogRecord("shoebox", logging.WARNING, __file__, 1,
                               "kept %s", ("s3://b/p@x",), None)
    assert RedactingFormatter(inner).format(record) == inner.format(record) == (
        "WARNING kept s3://b/p@x")


@pytest.mark.parametrize("password", ['odd pass"word', "it's <here>", "p/a?s#s", "pässwörd\\"])
def test_a_remembered_urls_userinfo_is_hidden_whatever_it_holds_in_every_spelling(
        password: str) -> None:
    # botocore takes such a password unencoded and repeats it so.
    url = f"http://remembered-{password}@127.0.0.1:9"
    remember_url(url)
    message = f'Could not connect to the endpoint URL: "{url}/b?list-type=2"'
    hidden = 'Could not connect to the endpoint URL: "http://***@127.0.0.1:9/b?list-type=2"'
    assert redact(message) == hidden
    assert redact(json.dumps(message)) == json.dumps(hidden)
    assert redact(json.dumps(message, ensure_ascii=False)) == json.dumps(hidden)
    assert redact(repr(message)) == repr(hidden)


def test_remembering_a_url_without_userinfo_changes_nothing() -> None:
    for url in (None, "", "http://127.0.0.1:9000", "not a URL@all"):
        remember_url(url)
    assert redact("http://127.0.0.1:9000/b and not a URL@all") == (
        "http://127.0.0.1:9000/b and not a URL@all")


def test_the_s3_libraries_warnings_become_redacted_json_lines_not_their_debug() -> None:
    before = logging.getLogger("botocore").level
    stream = io.StringIO()
    with logs.json_lines("DEBUG", stream):
        logging.getLogger("botocore.endpoint").debug("request to http://u:dbg@h:1/b")
        logging.getLogger("urllib3.connectionpool").warning(
            "Retrying after connection broken: http://u:s3cr3t-P4ss@h:1/b")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["level"], line["message"]) for line in lines] == [
        ("urllib3.connectionpool", "WARNING",
         "Retrying after connection broken: http://***@h:1/b")]
    assert logging.getLogger("botocore").level == before  # restored
