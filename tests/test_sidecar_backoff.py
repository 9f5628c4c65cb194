"""shoebox_sidecar.backoff: retry waits grow exponentially, with jitter, capped."""

from __future__ import annotations

import pytest

from shoebox_sidecar import Backoff


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_waits_double_within_half_to_all_of_the_ceiling_up_to_the_cap(rand: float) -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, rand=lambda: rand)
    for attempt, ceiling in enumerate([0.5, 1, 2, 4, 8, 16, 30, 30, 30]):
        delay = backoff.delay(attempt)
        assert ceiling / 2 <= delay <= ceiling
        assert delay == pytest.approx(ceiling / 2 + rand * ceiling / 2)


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert Backoff(1.0, 30.0, rand=lambda: 0.999).delay(10_000) <= 30.0


@pytest.mark.parametrize("initial, maximum", [(0, 30), (-1, 30), (5, 1)])
def test_bad_bounds_are_refused(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="0 < initial <= maximum"):
        Backoff(initial, maximum)
