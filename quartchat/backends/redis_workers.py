"""This worker's heartbeat in presence, and the expiry of workers that stopped
beating (see :mod:`quartchat.backends.redis_presence` for the keys).

A worker that stops heartbeating (killed) is dead once its deadline passes:
a surviving worker removes its connections, takes users left with none
offline, and reports them as departed. :class:`WorkerLiveness` does both
sides for one worker, apart from the connect/disconnect/rename bookkeeping
of :class:`~quartchat.backends.redis_presence.RedisPresence`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import coredis
import trio

from ..errors import StoreError
from ..models import User
from .redis_client import LuaScript, redis_errors

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Heartbeats per TTL: a dead worker is noticed at most TTL + TTL/4 after it died.
BEATS_PER_TTL = 4
#: Dead workers cleaned up per script run, so one run stays short.
REAP_BATCH = 16

#: Shared by the scripts: the clock, taking a user offline, a heartbeat.
LUA_LIB = """
local function now()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) + tonumber(clock[2]) / 1000000
end
local function all_free(nicks, keys, uid)
  for key in string.gmatch(keys, '%S+') do
    local holder = redis.call('HGET', nicks, key)
    if holder and holder ~= uid then return false end
  end
  return true
end
local function claim(nicks, keys, uid)
  for key in string.gmatch(keys, '%S+') do redis.call('HSET', nicks, key, uid) end
end
local function release(nicks, keys, uid)
  for key in string.gmatch(keys, '%S+') do
    if redis.call('HGET', nicks, key) == uid then redis.call('HDEL', nicks, key) end
  end
end
local function take_offline(users, nicks, counts, uid)
  redis.call('HDEL', counts, uid)
  local entry = redis.call('HGET', users, uid)
  if not entry then return false end
  redis.call('HDEL', users, uid)
  release(nicks, cjson.decode(entry)[2], uid)
  return entry
end
local function beat(workers, worker, ttl)
  return redis.call('ZADD', workers, now() + tonumber(ttl), worker)
end
"""

#: KEYS workers; ARGV worker ttl conns-key prefix. Moves this worker's
#: deadline on; returns the connections the other live workers count, and 1
#: if this worker was not listed as alive (new, or taken for dead).
_HEARTBEAT = (
    LUA_LIB
    + """
local workers, me = KEYS[1], ARGV[1]
local unlisted = beat(workers, me, ARGV[2])
local elsewhere = 0
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', workers, now(), '+inf')) do
  if worker ~= me then elsewhere = elsewhere + redis.call('HLEN', ARGV[3] .. worker) end
end
return {elsewhere, unlisted}
"""
)

#: KEYS users nicks counts workers; ARGV conns-key prefix, idle-key prefix,
#: batch, the reaping worker. Cleans up workers whose deadline passed (never
#: the caller: it is running, so alive, even if its heartbeat was late);
#: returns the users this took offline as a flat list of (uid, entry).
_REAP = (
    LUA_LIB
    + """
local users, nicks, counts, workers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dead = redis.call('ZRANGEBYSCORE', workers, '-inf', now(), 'LIMIT', 0, tonumber(ARGV[3]))
local gone = {}
for _, worker in ipairs(dead) do
  if worker ~= ARGV[4] then
    local conns, idle = ARGV[1] .. worker, ARGV[2] .. worker
    local candidates = redis.call('SMEMBERS', idle)
    local held = redis.call('HGETALL', conns)
    for i = 2, #held, 2 do
      if redis.call('HINCRBY', counts, held[i], -1) <= 0 then
        candidates[#candidates + 1] = held[i]
      end
    end
    for _, uid in ipairs(candidates) do
      if tonumber(redis.call('HGET', counts, uid) or '0') <= 0 then
        local entry = take_offline(users, nicks, counts, uid)
        if entry then
          gone[#gone + 1] = uid
          gone[#gone + 1] = entry
        end
      end
    end
    redis.call('DEL', conns, idle)
    redis.call('ZREM', workers, worker)
  end
end
return gone
"""
)


class WorkerLiveness:
    """One worker's heartbeat (a deadline ``heartbeat_ttl`` ahead, moved on
    every TTL/4) and the clean-up after workers whose deadline passed; the
    users that clean-up takes offline go to ``departed``."""

    __slots__ = (
        "_conns_prefix",
        "_counts",
        "_departed",
        "_elsewhere",
        "_healthy_since",
        "_heartbeat",
        "_idle_prefix",
        "_listed",
        "_nicks",
        "_reap",
        "_taken_for_dead",
        "_users",
        "_workers",
        "heartbeat_ttl",
        "worker_id",
    )

    def __init__(
        self,
        redis: coredis.Redis[str],
        base: str,
        worker_id: str,
        heartbeat_ttl: float,
        departed: trio.MemorySendChannel[list[User]],
    ) -> None:
        self.worker_id = worker_id
        self.heartbeat_ttl = heartbeat_ttl
        self._users, self._nicks, self._counts = base + "users", base + "nicks", base + "counts"
        self._workers = base + "workers"
        self._conns_prefix, self._idle_prefix = base + "conns:", base + "idle:"
        self._heartbeat = LuaScript(redis, _HEARTBEAT)
        self._reap = LuaScript(redis, _REAP)
        self._departed = departed
        #: When the heartbeat last started succeeding (None: failing now).
        self._healthy_since: float | None = None
        #: Connections on the other live workers, as of the last heartbeat.
        self._elsewhere = 0
        #: Set when Redis no longer lists this worker as alive.
        self._taken_for_dead = trio.Event()
        self._listed = False

    async def start(self) -> None:
        """The first heartbeat: this worker is alive from now on."""
        await self.beat()
        self._healthy_since = trio.current_time()

    async def keep_beating(self) -> None:
        while True:
            await trio.sleep(self.heartbeat_ttl / BEATS_PER_TTL)
            try:
                await self.beat()
            except StoreError as exc:
                log.warning("presence heartbeat failed: %s", exc)
                self._healthy_since = None
            else:
                if self._healthy_since is None:
                    self._healthy_since = trio.current_time()

    async def keep_tidying(self, finish_interrupted: Callable[[], Awaitable[None]]) -> None:
        """Run ``finish_interrupted`` every TTL/4 while Redis answers, and reap
        only after one whole TTL of heartbeats since this worker started or
        Redis came back: until then the others may not have had a chance to
        heartbeat, and would be taken for dead."""
        while True:
            await trio.sleep(self.heartbeat_ttl / BEATS_PER_TTL)
            since = self._healthy_since
            if since is None:
                continue
            try:
                await finish_interrupted()
                if trio.current_time() - since >= self.heartbeat_ttl:
                    await self.reap_dead_workers()
            except StoreError as exc:
                log.warning("presence clean-up failed: %s", exc)

    async def beat(self) -> None:
        with redis_errors("heartbeat"):
            reply: object = await self._heartbeat(
                keys=[self._workers], args=[self.worker_id, self.heartbeat_ttl, self._conns_prefix]
            )
        elsewhere, unlisted = reply_strings(reply)
        self._elsewhere = int(elsewhere)
        self.heard(unlisted == "1")

    def heard(self, unlisted: bool) -> None:
        """A script listed this worker as alive; ``unlisted``: it had not been."""
        if unlisted and self._listed:
            self._taken_for_dead.set()
        self._listed = True

    async def taken_for_dead(self) -> None:
        """Wait until the others have taken this worker for dead (once each time)."""
        await self._taken_for_dead.wait()
        self._taken_for_dead = trio.Event()

    def count_again(self) -> None:
        """Have :meth:`taken_for_dead` return again: counting back failed."""
        self._taken_for_dead.set()

    def connections_elsewhere(self) -> int:
        """Connections the other workers counted at this worker's last
        heartbeat (at most TTL/4 old)."""
        return self._elsewhere

    async def reap_dead_workers(self) -> None:
        while True:
            with redis_errors("expire dead workers"):
                flat: object = await self._reap(
                    keys=[self._users, self._nicks, self._counts, self._workers],
                    args=[self._conns_prefix, self._idle_prefix, REAP_BATCH, self.worker_id],
                )
            gone = [decode_user(uid, entry) for uid, entry in _pairs(reply_strings(flat))]
            if not gone:
                return
            await self._departed.send(gone)


def decode_user(user_id: str, entry: str) -> User:
    """The user in a ``presence:users`` entry (JSON ``[nick, keys]``)."""
    nick, _key = json.loads(entry)
    return User(user_id, nick)


def reply_strings(reply: object) -> list[str]:
    """A script's list reply, each item as text."""
    assert isinstance(reply, list)
    return [str(item) for item in reply]


def _pairs(items: list[T]) -> list[tuple[T, T]]:
    return list(zip(items[::2], items[1::2], strict=True))
