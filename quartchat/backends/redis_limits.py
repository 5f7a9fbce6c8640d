"""Send limits shared by every worker: one token bucket per key in Redis."""

from __future__ import annotations

import coredis

from .redis_client import redis_errors

#: Where the buckets live, after the chat's prefix (``<prefix>limit:<key>``);
#: the log's append script spends from the same keys (see :mod:`.redis_log`).
KEY_PREFIX = "limit:"

#: One bucket, refilled and spent in one atomic step on Redis's clock (so
#: workers on hosts with different clocks agree). A bucket's hash expires
#: once it would be full again: an idle user costs Redis nothing. Shared
#: with the log's append script, which spends a send's token in the same
#: script that stores it.
TAKE_LIB = """
local function take(key, rate, burst)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
  local saved = redis.call('HMGET', key, 'level', 'stamp')
  local level = tonumber(saved[1]) or burst
  local stamp = tonumber(saved[2]) or now
  level = math.min(burst, level + math.max(0, now - stamp) * rate)
  local granted = 0
  if level >= 1 then
    level = level - 1
    granted = 1
  end
  redis.call('HSET', key, 'level', string.format('%.6f', level),
    'stamp', string.format('%.6f', now))
  redis.call('PEXPIRE', key, math.ceil((burst - level) / rate * 1000) + 1000)
  return granted
end
"""

TAKE = (
    TAKE_LIB
    + """
return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
"""
)


class RedisLimits:
    """:class:`~quartchat.backends.base.RateLimits` for any number of workers:
    a user spending on two workers draws from one bucket, so ``burst`` is the
    total across workers, not per worker."""

    def __init__(self, redis: coredis.Redis[str], prefix: str) -> None:
        self._take = redis.register_script(TAKE)
        self._prefix = prefix + KEY_PREFIX

    async def take(self, key: str, rate: float, burst: int) -> bool:
        with redis_errors("spend a token"):
            granted: object = await self._take(keys=[self._prefix + key], args=[rate, burst])
        return granted == 1
