"""Presence across workers, in Redis: who is online (users, not tabs), the
nicks they hold, and which worker holds each connection.

Every change is one Lua script, so two workers never both see a nick as free
or both take the same user offline. Keys (after the prefix), on one Redis
server (not Redis Cluster: the reaper touches keys named in its script):

- ``presence:users``   hash user id -> JSON ``[nick, keys]``: who is online
  (``keys``: the nick's :func:`~quartchat.text.nick_keys`, space-separated)
- ``presence:nicks``   hash nick key -> user id: who holds a nick (a nick is
  free when none of its keys is held by someone else)
- ``presence:counts``  hash user id -> connections open on all workers
- ``presence:workers`` sorted set worker id -> heartbeat deadline (Redis time)
- ``presence:conns:<worker>`` hash connection -> user id, per worker
- ``presence:idle:<worker>``  set of users whose last connection closed on that
  worker and whom it has yet to take offline (its grace period)

A worker that stops heartbeating (killed) is dead once its deadline passes:
a surviving worker's ``run`` removes its connections, takes users left with
none offline, and reports them through :meth:`RedisPresence.departed`
(the heartbeat and that clean-up are
:class:`~quartchat.backends.redis_workers.WorkerLiveness`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from itertools import islice

import coredis
import trio

from ..errors import StoreError, Unavailable
from ..models import User
from ..presence import nick_variants
from ..protocol import EncodedUsers
from ..text import nick_keys
from .base import ConnId
from .redis_client import LuaScript, redis_errors
from .redis_workers import BEATS_PER_TTL, LUA_LIB, WorkerLiveness, decode_user, reply_strings

log = logging.getLogger(__name__)

#: Nick variants (``nick``, ``nick-2``...) offered to Redis per attempt.
VARIANTS_PER_TRY = 8
#: Batches of departed users waiting for the hub; when it falls behind, the
#: reaper waits (the users stay offline in Redis meanwhile, unannounced).
DEPARTED_BUFFER = 64

#: KEYS users nicks counts workers conns; ARGV worker ttl conn uid then
#: (nick, keys) pairs. The user as online now, 1 if this made them online,
#: and 1 if this worker was not listed as alive (new, or taken for dead);
#: or nil when every offered nick is held by someone else.
_CONNECT = (
    LUA_LIB
    + """
local users, nicks, counts, workers, conns = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local uid = ARGV[4]
local unlisted = beat(workers, ARGV[1], ARGV[2])
local entry = redis.call('HGET', users, uid)
local first = 0
if not entry then
  for i = 5, #ARGV, 2 do
    if all_free(nicks, ARGV[i + 1], uid) then
      entry = cjson.encode({ARGV[i], ARGV[i + 1]})
      claim(nicks, ARGV[i + 1], uid)
      break
    end
  end
  if not entry then return nil end
  redis.call('HSET', users, uid, entry)
  first = 1
end
if redis.call('HSETNX', conns, ARGV[3], uid) == 1 then
  redis.call('HINCRBY', counts, uid, 1)
end
return {entry, first, unlisted}
"""
)

#: KEYS counts conns idle; ARGV conn uid. 1 when the user has no connection left.
_DISCONNECT = """
local counts, conns, idle = KEYS[1], KEYS[2], KEYS[3]
local uid = ARGV[2]
if redis.call('HDEL', conns, ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', counts, uid, -1) > 0 then return 0 end
redis.call('HDEL', counts, uid)
redis.call('SADD', idle, uid)
return 1
"""

#: KEYS users nicks counts idle; ARGV uid. The user's entry if this took them offline.
_DEPART_IF_IDLE = (
    LUA_LIB
    + """
redis.call('SREM', KEYS[4], ARGV[1])
if tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') > 0 then return nil end
return take_offline(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
"""
)

#: KEYS users nicks; ARGV uid nick keys. The old entry, nil when the nick
#: is held by another user, 0 when the user is not online.
_RENAME = (
    LUA_LIB
    + """
local users, nicks, uid, keys = KEYS[1], KEYS[2], ARGV[1], ARGV[3]
local entry = redis.call('HGET', users, uid)
if not entry then return 0 end
if not all_free(nicks, keys, uid) then return nil end
release(nicks, cjson.decode(entry)[2], uid)
claim(nicks, keys, uid)
redis.call('HSET', users, uid, cjson.encode({ARGV[2], keys}))
return entry
"""
)


class RedisPresence:
    """:class:`~quartchat.backends.base.PresenceBoard` shared by every worker
    on one Redis: a user with tabs on two hosts is online once, and a nick is
    held by one online user across all of them.

    ``worker_id`` names this worker (connections it counts are its own);
    ``heartbeat_ttl`` is how long it counts as alive without a heartbeat.
    """

    def __init__(
        self,
        redis: coredis.Redis[str],
        prefix: str,
        *,
        heartbeat_ttl: float,
        worker_id: str | None = None,
    ) -> None:
        self.worker_id = worker_id or secrets.token_hex(6)
        self.heartbeat_ttl = heartbeat_ttl
        base = f"{prefix}presence:"
        self._users, self._nicks, self._counts = base + "users", base + "nicks", base + "counts"
        self._workers = base + "workers"
        self._conns, self._idle = f"{base}conns:{self.worker_id}", f"{base}idle:{self.worker_id}"
        self._connect = LuaScript(redis, _CONNECT)
        self._disconnect = LuaScript(redis, _DISCONNECT)
        self._depart_if_idle = LuaScript(redis, _DEPART_IF_IDLE)
        self._rename = LuaScript(redis, _RENAME)
        self._redis = redis
        self._departed_send, self._departed_receive = trio.open_memory_channel[list[User]](
            DEPARTED_BUFFER
        )
        #: Disconnects and departures that Redis did not confirm, finished by
        #: ``run`` once it is back (else the connection would count, and the
        #: user stay online, for ever).
        self._unfinished: dict[ConnId, str] = {}
        self._undeparted: set[str] = set()
        #: This worker's open connections and their users, so that if the
        #: others ever take it for dead (its heartbeats late for a whole TTL)
        #: it can count them all again once it is heard from.
        self._mine: dict[ConnId, User] = {}
        #: The heartbeat, and the expiry of workers that stopped beating.
        self._liveness = WorkerLiveness(
            redis, base, self.worker_id, heartbeat_ttl, self._departed_send
        )
        self._returned_send, self._returned_receive = trio.open_memory_channel[list[User]](
            DEPARTED_BUFFER
        )

    # ----- lifecycle -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat every TTL/4; clean up after dead workers and finish
        disconnects an outage interrupted.

        The two are separate tasks, so a hub slow to take departures never
        delays a heartbeat. Cancelling ``run`` stops both and nothing else is
        undone (a worker killed outright cannot clean up either; its
        connections expire).
        """
        await self._liveness.start()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._liveness.keep_beating)
            nursery.start_soon(self._liveness.keep_tidying, self._finish_interrupted)
            nursery.start_soon(self._keep_counted)
            task_status.started()

    async def _keep_counted(self) -> None:
        """Count this worker's connections again after the others took it
        for dead (and took its users offline, with a leave): its users are
        still here, so they are online again, and reported as returned."""
        while True:
            await self._liveness.taken_for_dead()
            log.warning("this worker was taken for dead; counting its connections again")
            back: list[User] = []
            try:
                for conn, user in list(self._mine.items()):
                    if conn not in self._mine:
                        continue  # closed meanwhile
                    online, first = await self._count(conn, user)
                    if conn not in self._mine:  # closed while it was being counted
                        await self.disconnect(conn, user.id)
                    elif first:
                        back.append(online)
            except StoreError as exc:
                log.warning("could not count the connections again: %s", exc)
                self._liveness.count_again()  # try again, after a heartbeat's pause
                await trio.sleep(self.heartbeat_ttl / BEATS_PER_TTL)
            if back:
                await self._returned_send.send(back)

    def connections_elsewhere(self) -> int:
        """Connections the other workers counted at this worker's last
        heartbeat (at most TTL/4 old)."""
        return self._liveness.connections_elsewhere()

    async def _finish_interrupted(self) -> None:
        for conn, user_id in list(self._unfinished.items()):
            if await self.disconnect(conn, user_id):
                self._undeparted.add(user_id)
        for user_id in list(self._undeparted):
            user = await self.depart_if_idle(user_id)
            if user is not None:
                await self._departed_send.send([user])

    def returned(self) -> AsyncIterator[list[User]]:
        """Users this worker's connections made online again after the
        others had taken this worker for dead and announced their leave."""
        return self._returned_receive

    def departed(self) -> AsyncIterator[list[User]]:
        """Users this worker took offline on its own: those of dead workers,
        and those whose last disconnect or departure failed during an outage
        and was finished once Redis was back."""
        return self._departed_receive

    # ----- the board -------------------------------------------------------------

    async def connect(self, conn: ConnId, user: User) -> tuple[User, bool]:
        online, first = await self._count(conn, user)
        self._mine[conn] = online
        return online, first

    async def _count(self, conn: ConnId, user: User) -> tuple[User, bool]:
        variants = nick_variants(user.nick)
        while True:
            offered = [
                arg for nick in islice(variants, VARIANTS_PER_TRY) for arg in (nick, _keys(nick))
            ]
            try:
                with redis_errors("count a connection"):
                    reply: object = await self._connect(
                        keys=[self._users, self._nicks, self._counts, self._workers, self._conns],
                        args=[self.worker_id, self.heartbeat_ttl, conn, user.id, *offered],
                    )
            except Unavailable:
                # The script may have run with only its answer lost: undo it later.
                self._unfinished[conn] = user.id
                raise
            self._unfinished.pop(conn, None)
            if reply is not None:
                entry, first, unlisted = reply_strings(reply)
                self._liveness.heard(unlisted == "1")
                return decode_user(user.id, entry), first == "1"

    async def disconnect(self, conn: ConnId, user_id: str) -> bool:
        self._mine.pop(conn, None)
        try:
            with redis_errors("forget a connection"):
                left: object = await self._disconnect(
                    keys=[self._counts, self._conns, self._idle], args=[conn, user_id]
                )
        except Unavailable:
            self._unfinished[conn] = user_id
            raise
        self._unfinished.pop(conn, None)
        return left == 1

    async def depart_if_idle(self, user_id: str) -> User | None:
        try:
            with redis_errors("take a user offline"):
                entry: object = await self._depart_if_idle(
                    keys=[self._users, self._nicks, self._counts, self._idle], args=[user_id]
                )
        except Unavailable:
            self._undeparted.add(user_id)
            raise
        self._undeparted.discard(user_id)
        return None if entry is None else decode_user(user_id, str(entry))

    async def rename(self, user_id: str, nick: str) -> User | None:
        with redis_errors("change a nick"):
            old: object = await self._rename(
                keys=[self._users, self._nicks], args=[user_id, nick, _keys(nick)]
            )
        if old == 0:
            raise KeyError(f"user {user_id} is not online")
        if old is None:
            return None
        for conn, user in list(self._mine.items()):
            if user.id == user_id:
                self._mine[conn] = User(user_id, nick)
        return decode_user(user_id, str(old))

    async def get(self, user_id: str) -> User | None:
        with redis_errors("read presence"):
            entry = await self._redis.hget(self._users, user_id)
        return None if entry is None else decode_user(user_id, entry)

    async def online(self) -> list[User]:
        with redis_errors("read presence"):
            entries = await self._redis.hgetall(self._users)
        return [decode_user(uid, entry) for uid, entry in entries.items()]

    async def listed(self) -> EncodedUsers:
        return EncodedUsers.of(await self.online())

    async def is_free(self, nick: str, user_id: str | None) -> bool:
        with redis_errors("read presence"):
            holders = await self._redis.hmget(self._nicks, sorted(nick_keys(nick)))
        return all(holder is None or holder == user_id for holder in holders)


def _keys(nick: str) -> str:
    """A nick's keys as one script argument (keys hold no whitespace)."""
    return " ".join(sorted(nick_keys(nick)))
