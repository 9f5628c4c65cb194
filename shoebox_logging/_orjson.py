"""The default formatter's fast path: orjson (``pip install 'shoebox-archive[fast]'``)
writing exactly the text the ``json`` module would.

orjson is handed only what it writes byte for byte as the formatter's
``json`` encoder does (compact separators, UTF-8 rather than ``\\u``
escapes): strings, whole numbers of 64 bits, booleans, ``None``, lists,
tuples, dicts with string keys, enums, UUIDs, and floats written in fixed
notation by both (``0`` and 1e-4 ≤ \\|x\\| < 1e16: both print the shortest
digits that read back the same, but orjson writes ``1e-7`` where Python
writes ``1e-07``, and ``null`` for NaN). Anything else goes through the same
``default`` function as the ``json`` path (datetimes, bytes, dataclasses…),
whose result is held to the same rule. Whatever orjson would write
differently, or refuses (a big integer, a key that is not a string, a
string holding a lone surrogate, a cycle, a ``namedtuple`` that ``json``
writes as a list), makes :func:`make_encoder`'s encoder return ``None``:
the formatter then takes the ``json`` path, with its treatment of values
JSON cannot encode.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from typing import Any, cast

import orjson

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# What json writes natively but orjson, given a subclass, hands to default.
_NATIVE_TO_JSON = (str, int, float, list, tuple, dict)
# Types written alike by both, whatever their value: checked for a whole
# container in one C-level pass before any value is looked at one by one.
_ALIKE = frozenset([str, int, bool, type(None)])


class _NotTheSame(Exception):
    """orjson would not write this value as the json module does."""


def _same_text(value: object) -> bool:
    """Whether orjson writes ``value`` (and all it holds) byte for byte as the
    formatter's ``json`` encoder does; values orjson hands to ``default``
    are checked there."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        number = cast(float, value)
        # NaN and infinities fail both comparisons.
        return number == 0.0 or 1e-4 <= abs(number) < 1e16
    if kind is dict:
        return _all_same_text(value.values())  # type: ignore[attr-defined]
    if kind is list or kind is tuple:
        return _all_same_text(value)  # type: ignore[arg-type]
    if isinstance(value, enum.Enum):  # orjson writes an enum's value itself
        return _same_text(value.value)
    return True  # handed to default, or written as json writes it (UUID, subclasses)


def _all_same_text(values: Collection[object]) -> bool:
    return _ALIKE.issuperset(map(type, values)) or all(map(_same_text, values))


def make_encoder(default: Callable[[Any], Any]) -> Callable[[dict[str, Any]], str | None]:
    """An encoder of a record's fields: orjson's text, or ``None`` where it
    would differ from the ``json`` encoder using ``default``."""

    def checked_default(value: Any) -> Any:
        if isinstance(value, _NATIVE_TO_JSON):  # a subclass orjson refuses
            raise _NotTheSame
        result = default(value)
        if not _same_text(result):
            raise _NotTheSame
        return result

    def encode(log_data: dict[str, Any]) -> str | None:
        try:
            if not _all_same_text(log_data.values()):
                return None
            return orjson.dumps(log_data, default=checked_default, option=_OPTIONS).decode()
        except (TypeError, RecursionError):
            # orjson.JSONEncodeError (a TypeError; _NotTheSame among its
            # causes), or a structure too deep or circular to look through.
            return None

    return encode
