"""Rate limits of the embedded default (sends, history, new identities):
token buckets in a dict, kept bounded."""

from __future__ import annotations

import trio

from ..limits import TokenBucket

#: Below this many buckets nothing is pruned: a sweep would cost more than it frees.
MIN_SWEEP = 1024


class LocalLimits:
    """:class:`~quartchat.backends.base.RateLimits` for one process.

    A bucket that has refilled is the same as no bucket, so such idle, full
    buckets are dropped: the dict holds only keys that spent tokens within
    their last ``burst / rate`` seconds. A sweep runs when the dict has grown
    to twice its size after the previous one, so its cost stays O(1) per
    ``take`` on average.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = MIN_SWEEP

    async def take(self, key: str, rate: float, burst: int) -> bool:
        now = trio.current_time()
        return self._bucket(key, rate, burst, now).take(now)

    async def spend(self, key: str, rate: float, burst: int, cost: int) -> float:
        now = trio.current_time()
        return self._bucket(key, rate, burst, now).spend(now, cost)

    def _bucket(self, key: str, rate: float, burst: int, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            self._prune(now)
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        if len(self._buckets) < self._sweep_at:
            return
        for key, bucket in list(self._buckets.items()):
            if bucket.is_full(now):
                del self._buckets[key]
        self._sweep_at = max(MIN_SWEEP, 2 * len(self._buckets))
