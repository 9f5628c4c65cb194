"""Hiding credentials in URLs before text leaves the process (issue 17).

An endpoint URL may carry credentials: ``http://user:password@host:9000``
(some S3-compatible gateways and proxies are set up so), and botocore
repeats the URL whole in its messages (``Could not connect to the endpoint
URL: "http://user:password@…"``). Every place where shoebox's text leaves
the process (the sidecar's log lines, the ``shoebox`` command's messages,
``--print-config``) passes it through :func:`redact` first, and the
exceptions shoebox builds from botocore's errors are made of redacted text.

What is hidden:

- the userinfo of any ``scheme://userinfo@host`` URL, replaced whole by
  :data:`MASK` (``http://***@host:9000/path``): scheme, host, port and path
  stay, so the message still says where the request went. In free text
  the userinfo ends at the last ``@`` of the authority, which ends at the
  first ``/``, ``?``, ``#``, white space, quote or angle bracket (RFC 3986,
  and ``urllib.parse``, read a URL so);
- the userinfo of every URL given to :func:`remember_url` (the S3 client
  does so with its endpoint), wherever ``://userinfo@`` appears, whatever
  characters it holds: botocore takes a password with a space or a quote
  in it unencoded, and repeats it so, where no pattern can tell where it
  ends;
- the values of query parameters that carry credentials in presigned and
  token URLs (:data:`SECRET_PARAMETERS`: ``X-Amz-Signature``,
  ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``Signature``,
  ``AWSAccessKeyId``, …).
"""

from __future__ import annotations

import json
import logging
import re
import threading

#: What replaces a URL's userinfo and a secret query parameter's value.
MASK = "***"

#: Query parameters (compared without case) whose values are credentials:
#: AWS signature version 4 and 2 presigned URLs, and common token spellings.
SECRET_PARAMETERS = frozenset({
    "x-amz-credential", "x-amz-signature", "x-amz-security-token",
    "awsaccesskeyid", "signature", "password", "access_token", "token",
})

# scheme "://" userinfo "@": the userinfo runs to the authority's last "@"
# (the segments between "@"s cannot overlap, so matching stays linear),
# never past the authority's end. Quotes end it too: botocore's messages
# quote the URL, and the sidecar's JSON lines escape the quote.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s\"'<>@]*"
                       r"(?:@[^/?#\s\"'<>@]*)*@")
# name "=" value inside a URL's query (after "?" or "&"), value up to the
# next "&", "#", white space or quote.
_PARAMETER = re.compile(r"(?P<lead>[?&](?P<name>[A-Za-z0-9_.~%-]+)=)[^&#\s\"'<>]*")

# "://userinfo@" of the remembered URLs, as they appear in text: as given,
# JSON-escaped (the sidecar's log lines) and repr-escaped ({url!r}); the
# longest first, so that no shorter one cuts into it. Replaced whole (a
# tuple), never changed in place, so redact() reads it without the lock.
_known: tuple[str, ...] = ()
_known_lock = threading.Lock()


def remember_url(url: str | None) -> None:
    """Hide the userinfo of ``url`` from every text :func:`redact` sees from
    now on, however unusual its characters (a space, a quote, an unencoded
    ``/``). The userinfo is taken to run from ``://`` to the URL's last
    ``@``: for a URL that has an ``@`` in its path too, more is hidden than
    needed, never less. A URL without ``@`` (or ``None``) changes nothing."""
    if not url or "://" not in url:
        return
    userinfo, at, _host = url.partition("://")[2].rpartition("@")
    if not at:
        return
    # repr() quotes with "'" unless the text holds one and no '"'; inside
    # a longer text, either quote may be escaped.
    forms = {userinfo, json.dumps(userinfo)[1:-1],
             json.dumps(userinfo, ensure_ascii=False)[1:-1], repr(userinfo)[1:-1],
             userinfo.replace("\\", "\\\\").replace("'", "\\'")}
    global _known
    with _known_lock:
        _known = tuple(sorted(set(_known) | {f"://{form}@" for form in forms},
                              key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by
    :data:`MASK` (see the module's documentation): ``http://user:pw@host``
    becomes ``http://***@host``, a presigned URL's ``X-Amz-Signature=…``
    becomes ``X-Amz-Signature=***``. Text without them comes back
    unchanged. Never raises for a ``str``."""
    if "@" in text:
        for known in _known:
            if known in text:
                text = text.replace(known, f"://{MASK}@")
        text = _USERINFO.sub(lambda match: f"{match['scheme']}{MASK}@", text)
    if "=" in text:
        text = _PARAMETER.sub(_mask_parameter, text)
    return text


def _mask_parameter(match: re.Match[str]) -> str:
    if match["name"].lower() in SECRET_PARAMETERS:
        return f"{match['lead']}{MASK}"
    return match[0]


class RedactingFormatter(logging.Formatter):
    """A formatter that formats with ``inner``, then hides (:func:`redact`)
    the credentials in the whole line: the message, every extra field and
    the traceback, however the inner formatter lays them out (a JSON line
    too: JSON escapes none of the characters a valid URL's userinfo holds,
    and :func:`remember_url` knows the escaped forms of the others)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))
