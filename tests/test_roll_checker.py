"""Roll checkers: parsing their options once, and when they say roll."""

from __future__ import annotations

import pytest

from shoebox import (
    AnyOfRollChecker,
    NeverRollChecker,
    SizeRollChecker,
    TimeRollChecker,
    size_or_time,
)


class FakeArchive:
    def __init__(self, size: int = 0) -> None:
        self.size = size


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("spelling", [2, 2.0, "2", " 2.0 "])
def test_size_checker_accepts_each_spelling_of_a_size(spelling):
    checker = SizeRollChecker(roll_size_mb=spelling)
    assert not checker.check(FakeArchive(2 * 1024 * 1024 - 1))
    assert checker.check(FakeArchive(2 * 1024 * 1024))


def test_size_checker_accepts_fractions():
    checker = SizeRollChecker(roll_size_mb=0.5)
    assert checker.check(FakeArchive(512 * 1024))
    assert not checker.check(FakeArchive(512 * 1024 - 1))


@pytest.mark.parametrize(("value", "error"), [
    (0, ValueError), (-1, ValueError), ("-0.5", ValueError), ("ten", ValueError),
    (float("nan"), ValueError), (float("inf"), ValueError), (None, TypeError),
    (True, TypeError), ([1], TypeError),
])
def test_nonsense_sizes_and_times_are_refused_at_construction(value, error):
    with pytest.raises(error, match="roll_size_mb"):
        SizeRollChecker(roll_size_mb=value)
    with pytest.raises(error, match="roll_minutes"):
        TimeRollChecker(roll_minutes=value)


def test_checkers_take_keyword_arguments_only():
    with pytest.raises(TypeError):
        SizeRollChecker(10)  # type: ignore[misc]


@pytest.mark.parametrize("spelling", [1.5, "1.5"])
def test_time_checker_rolls_after_its_minutes_from_start(spelling):
    clock = FakeClock()
    checker = TimeRollChecker(roll_minutes=spelling, clock=clock)
    archive = FakeArchive()
    checker.start(archive)
    clock.now += 89.9
    assert not checker.check(archive)
    assert checker.remaining(archive) == pytest.approx(0.1)
    clock.now += 0.1
    assert checker.check(archive)
    assert checker.remaining(archive) == 0
    checker.start(archive)
    assert not checker.check(archive)
    assert checker.remaining(archive) == pytest.approx(90)


def test_never_checker_never_rolls():
    checker = NeverRollChecker()
    assert not checker.check(FakeArchive(10**12))
    assert checker.remaining(FakeArchive()) is None


def test_any_of_rolls_when_either_size_or_time_says_so():
    clock = FakeClock()
    checker = AnyOfRollChecker(checkers=[SizeRollChecker(roll_size_mb=1),
                                         TimeRollChecker(roll_minutes=1, clock=clock)])
    archive = FakeArchive()
    checker.start(archive)
    assert not checker.check(archive)
    assert checker.remaining(archive) == 60
    archive.size = 1024 * 1024
    assert checker.check(archive)
    archive.size = 0
    clock.now += 60
    assert checker.check(archive)


def test_any_of_accepts_dotted_names_and_refuses_non_checkers():
    checker = AnyOfRollChecker(checkers=["shoebox.roll_checker:NeverRollChecker"])
    assert isinstance(checker.checkers[0], NeverRollChecker)
    with pytest.raises(TypeError, match="not a RollChecker"):
        AnyOfRollChecker(checkers=[object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one"):
        AnyOfRollChecker(checkers=[])


def test_size_or_time_builds_the_simplest_checker_for_its_options():
    assert isinstance(size_or_time(), NeverRollChecker)
    assert isinstance(size_or_time(roll_size_mb="5"), SizeRollChecker)
    assert isinstance(size_or_time(roll_minutes=5), TimeRollChecker)
    assert isinstance(size_or_time(roll_size_mb=5, roll_minutes=5), AnyOfRollChecker)
