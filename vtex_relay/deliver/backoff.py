"""How long a job waits before its next try."""

import random


def retry_delay(tries: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, capped; never shorter than VTEX's Retry-After.

    Full jitter (a uniform draw between 0 and the exponential bound) spreads the retries of
    many jobs that failed together, so they do not return to VTEX in one burst.
    """
    bound = min(cap, base * 2 ** (tries - 1))
    return max(random.uniform(0, bound), retry_after or 0.0)
