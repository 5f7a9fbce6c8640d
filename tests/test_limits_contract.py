"""The send limits' contract, held in-process and by Redis: a user's burst is
one allowance however many workers they send through.

Each test sees two workers, ``a`` and ``b``: in-process they are one
:class:`LocalLimits` (one process is one worker); with Redis, two clients with
their own connection pools on one ``redis-server``.
"""

from __future__ import annotations

import math
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


# ----- spending several tokens at once (a history page costs its size) ----------

#: A page of the largest size, and a budget of exactly five of them.
PAGE = 200
FIVE_PAGES = 5 * PAGE


async def test_pages_spent_through_two_workers_at_once_draw_from_one_budget(
    workers: Workers,
) -> None:
    waits: list[float] = []

    async def spend(limits: RateLimits) -> None:
        waits.append(await limits.spend("history:mallory", NO_REFILL, FIVE_PAGES, PAGE))

    async with trio.open_nursery() as nursery:
        for number in range(12):
            nursery.start_soon(spend, (workers.a, workers.b)[number % 2])
    assert waits.count(0.0) == 5  # not 5 per worker
    assert all(wait > 0 for wait in waits if wait != 0.0)
    assert await workers.b.spend("history:mallory", NO_REFILL, FIVE_PAGES, 1) > 0
    assert await workers.a.spend("history:bob", NO_REFILL, FIVE_PAGES, PAGE) == 0.0


async def test_a_refused_spend_costs_nothing_and_says_how_long_to_wait(
    workers: Workers,
) -> None:
    rate, burst = 1.0, 300  # one token a second: the test's own time hardly counts
    assert await workers.a.spend("history:alice", rate, burst, 200) == 0.0
    wait = await workers.b.spend("history:alice", rate, burst, 200)
    # 100 tokens left, 200 wanted, one a second: about 100 s (less what elapsed).
    assert 90 < wait <= 100.001
    assert await workers.b.spend("history:alice", rate, burst, 100) == 0.0  # all still there
    assert await workers.a.spend("history:alice", rate, burst, 2) > 0


async def test_a_spend_and_a_take_on_one_key_share_the_bucket(workers: Workers) -> None:
    assert await workers.a.spend("send:alice", NO_REFILL, 3, 2) == 0.0
    assert await workers.b.take("send:alice", NO_REFILL, 3)
    assert not await workers.a.take("send:alice", NO_REFILL, 3)


async def test_a_cost_above_the_burst_is_never_granted(workers: Workers) -> None:
    assert await workers.a.spend("history:alice", 1.0, 10, 11) == math.inf
    assert await workers.b.spend("history:alice", 1.0, 10, 10) == 0.0  # nothing was spent
