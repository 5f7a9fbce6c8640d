"""The send limits' contract, held in-process and by Redis: a user's burst is
one allowance however many workers they send through.

Each test sees two workers, ``a`` and ``b``: in-process they are one
:class:`LocalLimits` (one process is one worker); with Redis, two clients with
their own connection pools on one ``redis-server``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from quartchat.backends.base import RateLimits
from quartchat.backends.local_limits import MIN_SWEEP, LocalLimits
from quartchat.backends.redis_client import redis_client
from quartchat.backends.redis_limits import RedisLimits
from quartchat.errors import Unavailable
from redis_server import RedisServer

PREFIX = "test:"
#: A refill so slow that no token comes back during a test.
NO_REFILL = 0.001
#: No test waits this long unless something is broken.
PATIENCE = 15


@dataclass
class Workers:
    a: RateLimits
    b: RateLimits


@pytest.fixture(params=["local", "redis"])
async def workers(request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    if request.param == "local":
        limits = LocalLimits()
        yield Workers(limits, limits)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    async with redis_client(server.url) as redis_a, redis_client(server.url) as redis_b:
        yield Workers(RedisLimits(redis_a, PREFIX), RedisLimits(redis_b, PREFIX))


async def test_a_burst_spent_through_two_workers_at_once_is_one_burst(workers: Workers) -> None:
    burst = 10
    granted: list[bool] = []

    async def take(limits: RateLimits) -> None:
        granted.append(await limits.take("send:alice", NO_REFILL, burst))

    async with trio.open_nursery() as nursery:
        for number in range(3 * burst):
            nursery.start_soon(take, (workers.a, workers.b)[number % 2])
    assert granted.count(True) == burst  # not 2 * burst
    assert not await workers.a.take("send:alice", NO_REFILL, burst)
    assert not await workers.b.take("send:alice", NO_REFILL, burst)


async def test_each_key_has_its_own_bucket(workers: Workers) -> None:
    assert await workers.a.take("send:alice", NO_REFILL, 1)
    assert not await workers.b.take("send:alice", NO_REFILL, 1)
    assert await workers.b.take("send:bob", NO_REFILL, 1)


async def test_a_spent_bucket_refills_at_its_rate(workers: Workers) -> None:
    while await workers.a.take("send:alice", 20.0, 2):
        pass  # spend the burst
    with trio.fail_after(PATIENCE):
        while True:  # polled: Redis refills on its own clock, not the test's
            await trio.sleep(0.01)
            if await workers.b.take("send:alice", 20.0, 2):
                break


async def test_idle_full_buckets_are_dropped_so_memory_stays_bounded(
    mock_clock: trio.testing.MockClock,
) -> None:
    limits = LocalLimits()
    while await limits.take("spender", NO_REFILL, 5):
        pass
    for number in range(5 * MIN_SWEEP):
        await limits.take(f"visitor-{number}", 1.0, 5)  # full again 1 s later
        mock_clock.jump(0.01)
    assert len(limits) <= MIN_SWEEP
    assert not await limits.take("spender", NO_REFILL, 5)  # a spent bucket is kept


async def test_redis_away_is_unavailable_and_limits_recover(redis_server: RedisServer) -> None:
    async with redis_client(redis_server.url) as redis:
        limits = RedisLimits(redis, PREFIX)
        assert await limits.take("send:alice", NO_REFILL, 2)
        redis_server.stop()
        with pytest.raises(Unavailable):
            await limits.take("send:alice", NO_REFILL, 2)
        redis_server.start()
        assert await limits.take("send:alice", NO_REFILL, 2)  # the bucket survived
        assert not await limits.take("send:alice", NO_REFILL, 2)
