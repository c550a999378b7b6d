"""The wait before a retry: full jitter under an exponential, capped bound; never shorter than
VTEX's Retry-After."""

import pytest

from vtex_relay.deliver.backoff import retry_delay

DRAWS = 2000
BASE, CAP = 1.0, 300.0  # the settings' defaults (RETRY_BACKOFF_BASE, RETRY_BACKOFF_MAX)


def bound(tries: int, base: float = BASE, cap: float = CAP) -> float:
    return min(cap, base * 2.0 ** (tries - 1))


@pytest.mark.parametrize("tries", range(1, 13))
def test_draws_lie_under_the_exponential_bound(tries: int) -> None:
    draws = [retry_delay(tries, BASE, CAP) for _ in range(DRAWS)]
    assert all(0 <= d <= bound(tries) for d in draws)
    # Full jitter: the draws cover the whole range, not a point or one end of it.
    assert len(set(draws)) > DRAWS * 0.99
    assert min(draws) < bound(tries) * 0.05
    assert max(draws) > bound(tries) * 0.95
    assert bound(tries) * 0.4 < sum(draws) / DRAWS < bound(tries) * 0.6


def test_the_bound_doubles_then_stops_at_the_cap() -> None:
    assert [bound(t) for t in range(1, 13)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert max(retry_delay(40, BASE, CAP) for _ in range(DRAWS)) <= CAP


def test_other_base_and_cap() -> None:
    draws = [retry_delay(3, 0.05, 0.1) for _ in range(DRAWS)]
    assert all(0 <= d <= 0.1 for d in draws)
    assert max(draws) > 0.09


@pytest.mark.parametrize("tries", [1, 5, 12])
@pytest.mark.parametrize("retry_after", [0.0, 0.5, 7.0, 120.0])
def test_never_below_retry_after(tries: int, retry_after: float) -> None:
    draws = [retry_delay(tries, BASE, CAP, retry_after) for _ in range(DRAWS)]
    assert min(draws) >= retry_after
    assert max(draws) <= max(bound(tries), retry_after)


def test_retry_after_above_the_cap_is_honoured() -> None:
    # The cap bounds our own backoff, not VTEX's request: a 429's Retry-After may exceed it.
    assert {retry_delay(t, BASE, CAP, 900.0) for t in (1, 12, 40)} == {900.0}


def test_no_retry_after_is_no_floor() -> None:
    assert min(retry_delay(1, BASE, CAP, None) for _ in range(DRAWS)) < 0.05
