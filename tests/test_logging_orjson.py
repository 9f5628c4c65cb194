"""The default formatter's orjson path (shoebox-archive[fast]) writes, for every
record, the bytes its json path writes: values JSON cannot hold included."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import logging
import math
import pathlib
import sys
import uuid
from typing import Any

import pytest

from shoebox.errors import MissingExtra
from shoebox_logging import ShoeboxJsonFormatter

pytest.importorskip("orjson")


class Color(enum.Enum):
    RED = 1
    TINY = 1e-7
    PAIR = (1, 2)


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: float
    label: str


Pair = collections.namedtuple("Pair", "a b")


class Text(str):
    pass


class Number(int):
    pass


class Real(float):
    pass


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


HARD: dict[str, Any] = {
    "nan": math.nan, "inf": math.inf, "minus_inf": -math.inf,
    "small_floats": [1e-7, 1e-5, 9.99e-5, 2.5e-5, 5e-324, 1e-300],
    "plain_floats": [0.0, -0.0, 1e-4, 0.1, 1 / 3, 42.5, 1e15, 9999999999999998.0],
    "big_floats": [1e16, 1.5e300, -2e22],
    "ints": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1],
    "big_ints": [2**64, -(2**64), 10**30],
    "constants": [True, False, None],
    "text": ["", "é", "日本", "\U0001f600", "\x00\x1f\x7f", "\u2028\u2029", '"\\/', "\ufeff"],
    "lone_surrogate": "caf\udce9",
    "datetimes": [datetime.datetime(2026, 11, 27, 8, 15, 2, 123456),
                  datetime.datetime(2026, 11, 27, tzinfo=datetime.timezone.utc),
                  datetime.date(2026, 11, 27), datetime.time(8, 15)],
    "timedelta": datetime.timedelta(seconds=90),
    "bytes": b"\xff\x00", "bytearray": bytearray(b"ab"), "memoryview": memoryview(b"ab"),
    "uuid": uuid.UUID(int=5),
    "enums": [Color.RED, Level.HIGH, Color.PAIR],
    "enum_small_float": Color.TINY,
    "enum_class": Color,
    "dataclass": Point(1.5, "p"), "dataclass_small_float": Point(1e-7, "tiny"),
    "namedtuple": Pair(1, 2), "tuple": (1, "two", [3.5]),
    "sets": [{1}, frozenset()],
    "int_keys": {1: "a", 2: "b"}, "tuple_keys": {(1, 2): 3}, "odd_keys": {None: 1, True: 2},
    "float_keys": {1.5: "x"},
    "ordered": collections.OrderedDict(b=1, a=2), "default": collections.defaultdict(int, x=1),
    "str_subclass": Text("sub"), "int_subclass": Number(7), "float_subclass": Real(2.5),
    "cycle": _cycle(), "deep": _deep(300), "nested": {"a": [{"b": (1, {"c": math.nan})}]},
    "exception": ValueError("bad"), "type": int, "object": object(),
    "unprintable": Unprintable(), "decimal": decimal.Decimal("1.10"), "complex": 1 + 2j,
    "path": pathlib.PurePosixPath("/tmp/x"),
}


def _record(message: object = "user %s did %s", args: tuple[object, ...] = ("ann", "login"),
            **extra: Any) -> logging.LogRecord:
    return logging.getLogger("test.orjson").makeRecord(
        "test.orjson", logging.INFO, __file__, 42, message, args, None, extra=extra)


def _both(record: logging.LogRecord, **options: Any) -> tuple[str, str]:
    return (ShoeboxJsonFormatter(encoder="orjson", **options).format(record),
            ShoeboxJsonFormatter(encoder="json", **options).format(record))


@pytest.mark.parametrize("name", list(HARD))
def test_orjson_writes_the_bytes_json_writes_for_a_hard_extra(name: str) -> None:
    fast, json_text = _both(_record(**{name: HARD[name], "plain": 1}))
    assert fast == json_text
    assert json.loads(fast)["plain"] == 1


@pytest.mark.parametrize("name", ["nan", "small_floats", "datetimes", "namedtuple", "cycle",
                                  "dataclass_small_float", "lone_surrogate", "text"])
def test_orjson_writes_the_bytes_json_writes_in_a_dict_message_and_static_fields(
        name: str) -> None:
    assert len(set(_both(_record({"event": "e", name: HARD[name]}, ())))) == 1
    assert len(set(_both(_record(), static_fields={"service": "s", name: HARD[name]}))) == 1


def test_all_hard_values_in_one_record_give_the_same_bytes() -> None:
    fast, json_text = _both(_record(**HARD))
    assert fast == json_text


def test_a_record_with_a_traceback_and_a_stack_gives_the_same_bytes() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        record = logging.getLogger("test.orjson").makeRecord(
            "test.orjson", logging.ERROR, __file__, 7, "failed", (), sys.exc_info(),
            sinfo="Stack (most recent call last):\n  here")
    fast, json_text = _both(record)
    assert fast == json_text
    assert "KeyError: 'missing'" in json.loads(fast)["exc_info"]


def test_the_fast_path_takes_plain_fields_and_declines_what_it_would_write_otherwise(
        ) -> None:
    from shoebox_logging import _orjson
    from shoebox_logging.formatter import _DEFAULT

    encode = _orjson.make_encoder(_DEFAULT)
    plain = {"message": "é", "line": 3, "ok": True, "none": None, "ratio": 0.25,
             "tags": ["a", ("b", 1.5)], "when": datetime.date(2026, 1, 2), "id": uuid.UUID(int=1)}
    assert encode(plain) == json.dumps(plain, default=_DEFAULT, separators=(",", ":"),
                                       ensure_ascii=False)
    for declined in (math.nan, 1e-7, 2**64, Pair(1, 2), {1: 2}, Point(1e-7, "x"), "\udce9"):
        assert encode({"value": declined}) is None, declined


def test_the_encoder_option_is_checked_and_orjson_required_when_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="encoder"):
        ShoeboxJsonFormatter(encoder="ujson")  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "shoebox_logging._orjson", raising=False)
    monkeypatch.delattr("shoebox_logging._orjson", raising=False)
    monkeypatch.setitem(sys.modules, "orjson", None)  # as if not installed
    # The checkout install: the distribution is not on PyPI yet (issue 18).
    with pytest.raises(MissingExtra, match=r"pip install '\.\[fast\]' in a shoebox checkout"):
        ShoeboxJsonFormatter(encoder="orjson")
    # "auto" falls back to json, writing the same text.
    record = _record(n=1)
    assert (ShoeboxJsonFormatter().format(record)
            == ShoeboxJsonFormatter(encoder="json").format(record))
