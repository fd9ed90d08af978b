"""Reconnection delays: ``attempt -> seconds``, the shape of Twisted's ``backoffPolicy``.

Pure, so the Twisted service and the Tornado client share it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["RetryPolicy", "backoff_policy"]

RetryPolicy = Callable[[int], float]


def backoff_policy(
    initial_delay: float = 0.1,
    max_delay: float = 30.0,
    factor: float = 2.0,
    jitter: Callable[[], float] = lambda: random.uniform(0.0, 0.25),
) -> RetryPolicy:
    """Exponential backoff with jitter: the first retry comes within a second, later ones
    back off to ``max_delay``; the jitter keeps a fleet of clients from reconnecting in step.

    :param initial_delay: the delay before the first retry, before jitter.
    :param max_delay: the longest delay, before jitter.
    :param factor: how much each failed attempt multiplies the delay.
    :param jitter: a callable giving extra seconds, added to every delay.
    """

    def policy(attempt: int) -> float:
        try:
            delay = initial_delay * factor ** max(attempt - 1, 0)
        except OverflowError:
            delay = max_delay
        return min(delay, max_delay) + jitter()

    return policy
