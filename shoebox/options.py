"""Checking option values where they are taken: each function parses one
value (from Python or from a config file, where numbers may be strings)
or raises :class:`~shoebox.errors.InvalidOption` (a ``ValueError``) or
``TypeError`` naming the option and the value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from .errors import InvalidOption

_Choice = TypeVar("_Choice", bound=str)


def positive_number(name: str, value: object) -> float:
    """``value`` (a number or a numeric string) as a positive, finite float."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not bool")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidOption(name, f"must be a number, not {value!r}") from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise TypeError(f"{name} must be a number or a numeric string, "
                        f"not {type(value).__name__}")
    if not number > 0 or number == float("inf"):
        raise InvalidOption(name, f"must be a positive finite number, not {value!r}")
    return number


def whole_number(name: str, value: object, *, minimum: int = 0) -> int:
    """``value`` (an int or a string of digits) as an int of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{name} must be a whole number, not {type(value).__name__}")
    try:
        number = int(value)
    except ValueError:
        raise InvalidOption(name, f"must be a whole number, not {value!r}") from None
    if number < minimum:
        raise InvalidOption(name, f"must be at least {minimum}, not {value!r}")
    return number


def one_of(name: str, value: object, choices: Sequence[_Choice]) -> _Choice:
    """``value`` if it is one of ``choices``."""
    for choice in choices:
        if value == choice:
            return choice
    raise InvalidOption(name, f"must be one of {', '.join(choices)}, not {value!r}")


def flag(name: str, value: object) -> bool:
    """``value`` (a bool, or ``"true"``/``"false"`` from a config file) as a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise TypeError(f"{name} must be true or false, not {value!r}")
