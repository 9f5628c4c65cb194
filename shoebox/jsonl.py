"""Records as JSON Lines text: one JSON object per record,
``{"metadata": {...}, "payload": ...}``, with a payload that is valid JSON
embedded as written and any other payload as a JSON string. What ``shoebox
cat`` prints, and what ``shoebox export --format jsonl`` writes."""

from __future__ import annotations

import json
from typing import Any

from .codec import Metadata

# The C string encoder of json.dumps(..., ensure_ascii=False); calling it
# directly skips the encoder's per-call setup, which costs more than the
# encoding of a few short strings.
_encode_string = json.encoder.encode_basestring


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's decoder otherwise accepts NaN and Infinity, which are not JSON.
_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_JSON_WHITESPACE = " \t\n\r"


def _is_json(text: str) -> bool:
    """Whether ``text`` is one valid JSON value, with optional whitespace around it."""
    try:
        if text[:1] in _JSON_WHITESPACE:  # raw_decode refuses leading whitespace (and "")
            _decoder.decode(text)
            return True
        _value, end = _decoder.raw_decode(text)
    except (ValueError, RecursionError):
        return False
    return end == len(text) or not text[end:].strip(_JSON_WHITESPACE)


def payload_json(payload: str) -> str:
    """The payload as one line of JSON text: the payload itself when it is
    valid JSON, else the payload as a JSON string.

    Valid JSON is embedded as written, not re-serialized: that is faster
    and keeps numbers that a round trip through floats would change. Valid
    JSON holds raw line breaks only between tokens (inside strings they
    must be escaped), so turning them into spaces keeps the value and puts
    it on one line.
    """
    if not _is_json(payload):
        return _one_line(_encode_string(payload))
    if "\n" in payload or "\r" in payload:
        payload = payload.replace("\n", " ").replace("\r", " ")
    return _one_line(payload)


def _one_line(text: str) -> str:
    """Escape the characters besides ``\\n`` and ``\\r`` that ``str.splitlines``
    breaks lines at. In JSON text that is valid (and has no raw control
    characters) they can only stand inside strings, where the escape means
    the same."""
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return text
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        return (text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028")
                .replace("\u2029", "\\u2029"))
    return text


def metadata_json(metadata: Metadata) -> str:
    """Metadata as a JSON object; the same text as ``json.dumps(metadata,
    ensure_ascii=False)``, made faster for a dict of strings."""
    pairs = ", ".join([f"{_encode_string(key)}: {_encode_string(value)}"
                       for key, value in metadata.items()])
    return _one_line("{" + pairs + "}")


def render_record(metadata: Metadata, payload: str) -> str:
    """One record as a line of JSON Lines, newline included."""
    return f'{{"metadata": {metadata_json(metadata)}, "payload": {payload_json(payload)}}}\n'


def render_metadata(metadata: Metadata, payload: str) -> str:
    """The metadata alone as a line of JSON."""
    return metadata_json(metadata) + "\n"


def render_payload(metadata: Metadata, payload: str) -> str:
    """The payload alone as a line of JSON (see :func:`payload_json`)."""
    return payload_json(payload) + "\n"


__all__ = ["metadata_json", "payload_json", "render_metadata", "render_payload", "render_record"]
