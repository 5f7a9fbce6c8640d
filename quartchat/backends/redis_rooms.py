"""The room directory in Redis, shared by every worker of one chat.

Keys (after the prefix), on one Redis server (the scripts build some keys
from the prefix, as the log's do: not for Redis Cluster):

- ``room:<id>``        hash: ``name``, ``kind``, ``topic``, ``seq`` (creation order)
- ``rooms:names``      hash name key -> room id: who holds a name (see
  :func:`~quartchat.backends.base.room_name_keys`)
- ``rooms:seq``        the last ``seq`` given (``INCR``; ``general`` has 0)
- ``rooms:public``     sorted set of the public rooms' ids, by ``seq``
- ``members:<id>``     hash user id -> role (for ``general``: only roles above member)
- ``rooms:of:<user>``  hash room id -> role: the same memberships by user
  (never ``general``), written in the same script as ``members:<id>``
- ``reads:<user>``     hash ``r:<room id>`` or ``d:<user id>`` -> read marker
- ``rooms:users``      the number of users (``general``'s member count),
  counted from the log's ``user:<id>`` keys and kept :data:`USER_COUNT_TTL`

Every change is one Lua script, so two workers creating "design" at once
get one room and one ``room_taken``, and a marker never moves down.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import coredis
import trio

from ..errors import FORBIDDEN, NOT_MEMBER, ROOM_TAKEN, UNKNOWN_ROOM, RoomRefused
from ..models import GENERAL, ListedRoom, Membership, Role, Room, RoomKind, RoomMember
from .base import check_read_id, clean_room_name, clean_topic, room_name_keys
from .redis_client import CallGuard, LuaScript

#: Seconds a count of the users (``general``'s members) is reused before it
#: is counted again: counting SCANs every ``user:`` key, so at most one
#: count per this many seconds per chat, and a ``rooms`` answer's count for
#: ``general`` may be this old.
USER_COUNT_TTL = 30
#: Keys one SCAN step asks for while counting users.
SCAN_STEP = 1000
_ORDER = {Role.OWNER: 0, Role.MODERATOR: 1, Role.MEMBER: 2}

#: KEYS room names public members of-owner seq; ARGV id name kind topic
#: owner ("": none) seq ("": the next) then the name keys. 1 made, 2 there
#: already (left as it is), 0 a key is another room's.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
for i = 7, #ARGV do
  local holder = redis.call('HGET', KEYS[2], ARGV[i])
  if holder and holder ~= ARGV[1] then return 0 end
end
local seq = tonumber(ARGV[6]) or redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'kind', ARGV[3], 'topic', ARGV[4], 'seq', seq)
for i = 7, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end
if ARGV[3] == 'public' then redis.call('ZADD', KEYS[3], seq, ARGV[1]) end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[5], 'owner')
  redis.call('HSET', KEYS[5], ARGV[1], 'owner')
end
return 1
"""

#: KEYS room members of reads; ARGV user room role ("": remove) only-if-new
#: ("1": add, keeping a role held). -1 no such room; else 1 changed, 0 not.
#: Removing takes the read marker too. Never called for ``general``.
_MEMBER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[4], 'r:' .. ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return redis.call('HDEL', KEYS[2], ARGV[1])
end
if ARGV[4] == '1' and redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return 1
"""

#: KEYS room members of; ARGV user room role general ("1"). The old role;
#: "?" no such room, "" not a member.
_SET_ROLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return '?' end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[4] == '1' then
  old = old or 'member'
  if ARGV[3] == 'member' then redis.call('HDEL', KEYS[2], ARGV[1])
  else redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
  return old
end
if not old then return '' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return old
"""

#: KEYS room members reads; ARGV user field id check ("1": a member of the
#: room only). The marker now in force; -1 no such room, -2 not a member.
_MARK = """
if ARGV[4] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
  if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return -2 end
end
local old = redis.call('HGET', KEYS[3], ARGV[2])
local held = tonumber(old or '0')
if tonumber(ARGV[3]) > held or not old then  -- a first marker is kept, even at 0
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  return tonumber(ARGV[3])
end
return held
"""

#: KEYS public of reads; ARGV prefix, with-roles ("1": the user's rooms with
#: role and marker; "0": public ones too, with member counts). Flat rows of
#: id name kind topic seq and (role, marker) or (count).
_ROOMS = """
local ids, seen = {}, {}
local function add(id) if not seen[id] then seen[id] = true; ids[#ids + 1] = id end end
add('general')
if ARGV[2] == '0' then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do add(id) end
end
for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do add(id) end
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[1] .. 'room:' .. id, 'name', 'kind', 'topic', 'seq')
  if f[1] then
    local row = {id, f[1], f[2], f[3], f[4]}
    if ARGV[2] == '1' then
      local role = redis.call('HGET', KEYS[2], id)
      if id == 'general' then role = redis.call('HGET', ARGV[1] .. 'members:general', ARGV[3]) end
      row[6] = role or 'member'
      row[7] = redis.call('HGET', KEYS[3], 'r:' .. id) or '0'
    else
      row[6] = tostring(redis.call('HLEN', ARGV[1] .. 'members:' .. id))
    end
    for _, v in ipairs(row) do out[#out + 1] = v end
  end
end
return out
"""


class RedisRooms:
    """:class:`~quartchat.backends.base.RoomDirectory` on Redis (see the module doc)."""

    def __init__(self, redis: coredis.Redis[str], prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._create = LuaScript(redis, _CREATE)
        self._member = LuaScript(redis, _MEMBER)
        self._set_role = LuaScript(redis, _SET_ROLE)
        self._mark = LuaScript(redis, _MARK)
        self._rooms = LuaScript(redis, _ROOMS)
        self._guard = CallGuard(redis, "the room directory")

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Make ``general`` if this chat has none yet, then wait."""
        await self.put_room(Room(GENERAL, GENERAL, RoomKind.PUBLIC, ""), None, seq=0)
        task_status.started()
        await trio.sleep_forever()

    async def aclose(self) -> None:
        self._guard.closing = True
        await self._guard.drained()

    async def create(self, creator: str, name: str, kind: RoomKind, topic: str = "") -> Room:
        room = Room("r" + secrets.token_hex(8), clean_room_name(name), kind, clean_topic(topic))
        await self.put_room(room, creator)
        await self._not_silent(creator)
        return room

    async def _not_silent(self, user_id: str) -> None:
        """A member of a room is no silent identity: pruning (the log's
        ``silent`` set, see :mod:`.redis_log`) must spare them."""
        with self._guard.call("mark a member as not silent"):
            await self._redis.zrem(self._key("silent"), [user_id])

    async def put_room(self, room: Room, owner: str | None, seq: int | None = None) -> bool:
        """Store ``room`` (as :meth:`create` does, or as an import copies
        it, ``seq`` kept); False when it was there already (left as it is)."""
        keys = [self._key("room", room.id), self._key("rooms", "names")]
        keys += [self._key("rooms", "public"), self._key("members", room.id)]
        keys += [self._key("rooms", "of", owner or ""), self._key("rooms", "seq")]
        args = [room.id, room.name, room.kind.value, room.topic, owner or ""]
        args += ["" if seq is None else str(seq), *room_name_keys(room.name)]
        with self._guard.call("create a room"):
            made: Any = await self._create(keys=keys, args=args)
        if made == 0:
            raise RoomRefused(ROOM_TAKEN, f"a room named like {room.name!r} exists")
        return bool(made == 1)

    async def get(self, room_id: str) -> Room | None:
        with self._guard.call("read a room"):
            name, kind, topic = await self._redis.hmget(
                self._key("room", room_id), ["name", "kind", "topic"]
            )
        if name is None or kind is None:
            return None
        return Room(room_id, name, RoomKind(kind), topic or "")

    async def role_of(self, room_id: str, user_id: str) -> Role | None:
        with self._guard.call("read a role"):
            role = await self._redis.hget(self._key("members", room_id), user_id)
        if role is None:
            return Role.MEMBER if room_id == GENERAL else None
        return Role(role)

    async def add_member(self, room_id: str, user_id: str) -> bool:
        if room_id == GENERAL:
            return False
        added = await self._change(room_id, user_id, Role.MEMBER.value, "1") == 1
        if added:
            await self._not_silent(user_id)
        return added

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        if room_id == GENERAL:
            raise RoomRefused(FORBIDDEN, "nobody can leave general")
        return await self._change(room_id, user_id, "", "") == 1

    async def put_member(self, room_id: str, user_id: str, role: Role) -> None:
        """Record ``role`` for the user in a room other than ``general`` (an import)."""
        await self._change(room_id, user_id, role.value, "")

    async def _change(self, room_id: str, user_id: str, role: str, only_new: str) -> int:
        keys = [self._key("room", room_id), self._key("members", room_id)]
        keys += [self._key("rooms", "of", user_id), self._key("reads", user_id)]
        with self._guard.call("change a membership"):
            changed: Any = await self._member(keys=keys, args=[user_id, room_id, role, only_new])
        if changed == -1:
            raise RoomRefused(UNKNOWN_ROOM, "no such room")
        return int(changed)

    async def set_role(self, room_id: str, user_id: str, role: Role) -> Role:
        keys = [self._key("room", room_id), self._key("members", room_id)]
        keys.append(self._key("rooms", "of", user_id))
        general = "1" if room_id == GENERAL else "0"
        with self._guard.call("change a role"):
            old: Any = await self._set_role(keys=keys, args=[user_id, room_id, role.value, general])
        if old == "?":
            raise RoomRefused(UNKNOWN_ROOM, "no such room")
        if old == "":
            raise RoomRefused(NOT_MEMBER, "not a member of that room")
        return Role(old)

    async def members(self, room_id: str) -> list[RoomMember]:
        with self._guard.call("list members"):
            held = await self._redis.hgetall(self._key("members", room_id))
            if not held and not await self._redis.exists([self._key("room", room_id)]):
                raise RoomRefused(UNKNOWN_ROOM, "no such room")
        found = [RoomMember(user_id, Role(role)) for user_id, role in held.items()]
        return sorted(found, key=lambda m: (_ORDER[m.role], m.user_id))

    async def rooms_of(self, user_id: str) -> list[Membership]:
        rows = await self._room_rows(user_id, with_roles=True)
        return [Membership(room, Role(extra[0]), int(extra[1])) for room, extra in rows]

    async def listing(self, viewer: str) -> list[ListedRoom]:
        rows = await self._room_rows(viewer, with_roles=False)
        users = await self.count_users()
        return [
            ListedRoom(room, users if room.id == GENERAL else int(extra[0])) for room, extra in rows
        ]

    async def _room_rows(self, user_id: str, with_roles: bool) -> list[tuple[Room, list[str]]]:
        keys = [self._key("rooms", "public"), self._key("rooms", "of", user_id)]
        keys.append(self._key("reads", user_id))
        args = [self._prefix, "1" if with_roles else "0", user_id]
        with self._guard.call("list rooms"):
            flat: Any = await self._rooms(keys=keys, args=args)
        width = 7 if with_roles else 6
        rows = [flat[i : i + width] for i in range(0, len(flat), width)]
        rows.sort(key=lambda row: int(row[4]))
        return [(Room(r[0], r[1], RoomKind(r[2]), r[3]), r[5:]) for r in rows]

    async def count_users(self) -> int:
        """How many users the log knows (its ``user:<id>`` hashes), counted
        at most once per :data:`USER_COUNT_TTL` seconds for the whole chat."""
        cached = self._key("rooms", "users")
        with self._guard.call("count users"):
            known = await self._redis.get(cached)
            if known is not None:
                return int(known)
            pattern = _glob_escape(self._prefix) + "user:*"
            count = 0
            async for _ in self._redis.scan_iter(match=pattern, count=SCAN_STEP):
                count += 1
            await self._redis.set(cached, str(count), ex=USER_COUNT_TTL)
        return count

    async def mark_read(self, user_id: str, room_id: str, message_id: int) -> int:
        check = "0" if room_id == GENERAL else "1"
        return await self._mark_at(user_id, room_id, f"r:{room_id}", message_id, check)

    async def mark_direct_read(self, user_id: str, other_id: str, message_id: int) -> int:
        return await self._mark_at(user_id, GENERAL, f"d:{other_id}", message_id, "0")

    async def _mark_at(self, user_id: str, room_id: str, field: str, at: int, check: str) -> int:
        check_read_id(at)
        keys = [self._key("room", room_id), self._key("members", room_id)]
        keys.append(self._key("reads", user_id))
        with self._guard.call("move a read marker"):
            held: Any = await self._mark(keys=keys, args=[user_id, field, str(at), check])
        if held == -1:
            raise RoomRefused(UNKNOWN_ROOM, "no such room")
        if held == -2:
            raise RoomRefused(NOT_MEMBER, "not a member of that room")
        return int(held)

    async def put_read(self, user_id: str, room_id: str, message_id: int) -> int:
        """Move a marker up as :meth:`mark_read` does, member or not (an import)."""
        return await self._mark_at(user_id, room_id, f"r:{room_id}", message_id, "0")

    async def direct_reads(self, user_id: str) -> dict[str, int]:
        with self._guard.call("read markers"):
            held = await self._redis.hgetall(self._key("reads", user_id))
        return {field[2:]: int(value) for field, value in held.items() if field.startswith("d:")}


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
