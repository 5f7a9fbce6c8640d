"""Token buckets: how fast a user may send or read history, and how much abuse a socket gets."""

from __future__ import annotations

import math


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up.

    The caller passes the time (``trio.current_time()``), so tests drive it
    with a fake clock and the bucket itself stays free of I/O.
    """

    __slots__ = ("_level", "_stamp", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = float(burst)
        self._stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are that many; say whether it did."""
        self._level = min(self.burst, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._level >= cost:
            self._level -= cost
            return True
        return False

    def spend(self, now: float, cost: float) -> float:
        """Spend ``cost`` tokens if there are that many and return 0.0;
        otherwise spend nothing and return the seconds until there will be
        (for ``cost`` above ``burst`` that time never comes: infinity)."""
        if self.take(now, cost):
            return 0.0
        if cost > self.burst:
            return math.inf
        return (cost - self._level) / self.rate

    def is_full(self, now: float) -> bool:
        """True when waiting longer would add nothing: the bucket is idle."""
        return self._level + (now - self._stamp) * self.rate >= self.burst
