"""Rate limits shared by every worker (sends, history, new identities): one
token bucket per key in Redis."""

from __future__ import annotations

import math

import coredis

from .redis_client import LuaScript, redis_errors

#: Where the buckets live, after the chat's prefix (``<prefix>limit:<key>``);
#: the log's append script spends from the same keys (see :mod:`.redis_log`).
KEY_PREFIX = "limit:"

#: One bucket, refilled and spent in one atomic step on Redis's clock (so
#: workers on hosts with different clocks agree). A bucket's hash expires
#: once it would be full again: an idle user costs Redis nothing. ``spend``
#: takes ``cost`` tokens or none, and answers the milliseconds to wait for
#: them (0: spent; Lua numbers come back to Redis clients as integers, so
#: whole milliseconds, rounded up). ``take`` is ``spend`` of one token,
#: answering 1 or 0; it is shared with the log's append script, which spends
#: a send's token in the same script that stores it.
TAKE_LIB = """
local function spend(key, rate, burst, cost)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
  local saved = redis.call('HMGET', key, 'level', 'stamp')
  local level = tonumber(saved[1]) or burst
  local stamp = tonumber(saved[2]) or now
  level = math.min(burst, level + math.max(0, now - stamp) * rate)
  local wait = 0
  if level >= cost then
    level = level - cost
  else
    wait = math.ceil((cost - level) / rate * 1000)
  end
  redis.call('HSET', key, 'level', string.format('%.6f', level),
    'stamp', string.format('%.6f', now))
  redis.call('PEXPIRE', key, math.ceil((burst - level) / rate * 1000) + 1000)
  return wait
end

local function take(key, rate, burst)
  if spend(key, rate, burst, 1) == 0 then
    return 1
  end
  return 0
end
"""

TAKE = (
    TAKE_LIB
    + """
return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
"""
)

SPEND = (
    TAKE_LIB
    + """
return spend(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
"""
)


class RedisLimits:
    """:class:`~quartchat.backends.base.RateLimits` for any number of workers:
    a user spending on two workers draws from one bucket, so ``burst`` is the
    total across workers, not per worker."""

    def __init__(self, redis: coredis.Redis[str], prefix: str) -> None:
        self._take = LuaScript(redis, TAKE)
        self._spend = LuaScript(redis, SPEND)
        self._prefix = prefix + KEY_PREFIX

    async def take(self, key: str, rate: float, burst: int) -> bool:
        with redis_errors("spend a token"):
            granted: object = await self._take(keys=[self._prefix + key], args=[rate, burst])
        return granted == 1

    async def spend(self, key: str, rate: float, burst: int, cost: int) -> float:
        if cost > burst:
            return math.inf  # never: as the in-process bucket answers
        with redis_errors("spend tokens"):
            wait_ms: object = await self._spend(keys=[self._prefix + key], args=[rate, burst, cost])
        assert isinstance(wait_ms, int), wait_ms
        return wait_ms / 1000
