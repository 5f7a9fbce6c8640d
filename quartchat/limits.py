"""Token buckets: how fast a user may send, and how much abuse a socket gets."""

from __future__ import annotations


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

    def is_full(self, now: float) -> bool:
        """True when waiting longer would add nothing: the bucket is idle."""
        return self._level + (now - self._stamp) * self.rate >= self.burst


class BucketPerKey:
    """One :class:`TokenBucket` per key (a client address, say).

    A key whose bucket has refilled is forgotten, as it would start full
    anyway, so memory holds only the keys active within the last
    ``burst / rate`` seconds. Sweeps run when the table doubles, so a flood
    of new keys costs linear time, not quadratic.
    """

    __slots__ = ("_buckets", "_sweep_at", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = 64

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> bool:
        """Spend one of ``key``'s tokens if it has one; say whether it did."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self.forget_full(now)
                self._sweep_at = max(64, 2 * len(self._buckets))
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def forget_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.is_full(now):
                del self._buckets[key]
