"""The moderation board in Redis, shared by every worker of one chat.

Keys (after the prefix):

- ``sanction:<kind>:<user>:<room>`` (room ``''`` for none): the sanction,
  as the JSON member below; a timed one has a ``PEXPIREAT`` at its end, so it
  vanishes by itself. :meth:`RedisModeration.ban_of` reads this one key.
- ``sanctions``: sorted set of every sanction held, scored by its end
  (``+inf`` for good), each member ``[kind, user, room|null, until|null,
  by]`` in JSON. :meth:`RedisModeration.in_force` is one script: drop the
  members whose end has passed, return the rest. One round trip whatever
  the number of users, as every worker calls it twice a second.
- ``admins``: set of the users made admins with ``quartchat admin grant``.
- ``audit``: a Stream, each record at id ``<audit id>-0``; ids come from
  ``audit:last_id`` (``INCR``), so they increase in the order recorded. It
  keeps about the newest :data:`AUDIT_MAX` records (``MAXLEN ~``): an audit
  is read by people, and memory is Redis's whole store.
- ``audit:copied``: the highest id of another board's audit copied in with
  :meth:`RedisModeration.import_audit` (``quartchat migrate``), so copying
  again adds nothing and an interrupted copy resumes.

Imposing is one script too, so two workers replacing the same mute at once
leave one member in the set, the one its key holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import coredis
import trio

from ..store import now_ms
from .moderation import AuditAction, AuditEntry, AuditRecord, Sanction, SanctionKind
from .redis_client import CallGuard, LuaScript
from .sqlite_moderation import check_sanction

#: Audit records kept, about (trimmed with ``MAXLEN ~``, so a few more
#: may stay): some 20 MB of Redis's memory at most.
AUDIT_MAX = 100_000

#: KEYS sanction sanctions; ARGV member until ("": for good) now. Replaces
#: the sanction of the same key; one already ended only removes it.
_IMPOSE = """
local old = redis.call('GET', KEYS[1])
if old then redis.call('ZREM', KEYS[2], old) end
if ARGV[2] ~= '' and tonumber(ARGV[2]) <= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return 0
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
return 1
"""

#: KEYS sanctions; ARGV now. Drop what ended at ``now``, return the rest.
_IN_FORCE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

#: KEYS audit last_id; ARGV max actor action user room detail ts (user and
#: room "" for none). The new record's id.
_RECORD = """
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id .. '-0',
  'a', ARGV[2], 'x', ARGV[3], 'u', ARGV[4], 'r', ARGV[5], 'd', ARGV[6], 't', ARGV[7])
return id
"""

#: KEYS audit last_id copied; ARGV max, then per record (in its source's id
#: order) source_id actor action user room detail ts. Each record above
#: ``copied`` goes under the next id, or its source id when that is higher
#: (an audit copied into an empty one keeps its ids); how many were added.
_IMPORT_AUDIT = """
local copied = tonumber(redis.call('GET', KEYS[3]) or '0')
local last_source = nil
local added = 0
for i = 2, #ARGV, 7 do
  local source = ARGV[i]
  if tonumber(source) > copied then
    local id = redis.call('INCR', KEYS[2])
    if tonumber(source) > id then
      redis.call('SET', KEYS[2], source)
      id = source
    end
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id .. '-0', 'a', ARGV[i + 1],
      'x', ARGV[i + 2], 'u', ARGV[i + 3], 'r', ARGV[i + 4], 'd', ARGV[i + 5], 't', ARGV[i + 6])
    copied = tonumber(source)
    last_source = source
    added = added + 1
  end
end
if last_source then redis.call('SET', KEYS[3], last_source) end
return added
"""


class RedisModeration:
    """:class:`~quartchat.backends.moderation.ModerationBoard` on Redis (see the module doc)."""

    def __init__(self, redis: coredis.Redis[str], prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._impose = LuaScript(redis, _IMPOSE)
        self._in_force = LuaScript(redis, _IN_FORCE)
        self._record = LuaScript(redis, _RECORD)
        self._import_audit = LuaScript(redis, _IMPORT_AUDIT)
        self._guard = CallGuard(redis, "the moderation board")

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def _sanction_key(self, kind: str, user_id: str, room: str | None) -> str:
        return self._key("sanction", kind, user_id, room or "")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing in the background: Redis ends timed sanctions itself."""
        task_status.started()
        await trio.sleep_forever()

    async def aclose(self) -> None:
        self._guard.closing = True
        await self._guard.drained()

    async def impose(self, sanction: Sanction) -> None:
        check_sanction(sanction)
        keys = [self._sanction_key(sanction.kind, sanction.user, sanction.room)]
        keys.append(self._key("sanctions"))
        until = "" if sanction.until is None else str(sanction.until)
        with self._guard.call("record a sanction"):
            await self._impose(keys=keys, args=[_member(sanction), until, str(now_ms())])

    async def in_force(self, now_ms: int) -> list[Sanction]:
        with self._guard.call("read the sanctions"):
            members: Any = await self._in_force(keys=[self._key("sanctions")], args=[now_ms])
        held = [_sanction(member) for member in members]
        found = [s for s in held if s.in_force(now_ms)]
        return sorted(found, key=lambda s: (s.kind, s.user, s.room or ""))

    async def ban_of(self, user_id: str, now_ms: int) -> Sanction | None:
        with self._guard.call("read a ban"):
            member = await self._redis.get(self._sanction_key("ban", user_id, None))
        if member is None:
            return None
        ban = _sanction(member)
        return ban if ban.in_force(now_ms) else None

    async def set_admin(self, user_id: str, admin: bool) -> bool:
        key = self._key("admins")
        with self._guard.call("change the admins"):
            if admin:
                changed = await self._redis.sadd(key, [user_id])
            else:
                changed = await self._redis.srem(key, [user_id])
        return changed == 1

    async def admins(self) -> list[str]:
        with self._guard.call("read the admins"):
            found = await self._redis.smembers(self._key("admins"))
        return sorted(found)

    async def record(self, entry: AuditEntry) -> AuditRecord:
        keys = [self._key("audit"), self._key("audit", "last_id")]
        args = [str(AUDIT_MAX), entry.actor, entry.action, entry.user or "", entry.room or ""]
        args += [entry.detail, str(entry.ts)]
        with self._guard.call("record a moderation action"):
            record_id: Any = await self._record(keys=keys, args=args)
        return AuditRecord(int(record_id), entry)

    async def audit(self, before_id: int | None, limit: int) -> list[AuditRecord]:
        if limit <= 0 or (before_id is not None and before_id <= 1):
            return []  # ids start at 1
        top = "+" if before_id is None or before_id > _MAX_ID else f"({before_id}-0"
        with self._guard.call("read the audit"):
            entries = await self._redis.xrevrange(self._key("audit"), top, "-", count=limit)
        return [
            _audit_record(str(entry.identifier), {str(k): str(v) for k, v in fields.items()})
            for entry in entries
            if (fields := entry.field_values) is not None
        ]

    async def audit_copied(self) -> int:
        """The highest id of another board's audit copied in with
        :meth:`import_audit` (0: none yet): where a copy resumes."""
        with self._guard.call("read how far the audit was copied"):
            value = await self._redis.get(self._key("audit", "copied"))
        return int(value or 0)

    async def import_audit(self, records: Sequence[AuditRecord]) -> int:
        """Append another board's records (``quartchat migrate``), given in
        its id order, after this audit's: each takes the next id, or its own
        when that is higher, so their order is kept (and, copied into an
        empty audit, their ids). Those at or below :meth:`audit_copied` are
        skipped, in the same script call that adds the rest, so copying
        again adds nothing. How many were added."""
        if not records:
            return 0
        keys = [self._key("audit"), self._key("audit", "last_id"), self._key("audit", "copied")]
        args = [str(AUDIT_MAX)]
        for record in records:
            entry = record.entry
            args += [str(record.id), entry.actor, entry.action, entry.user or "", entry.room or ""]
            args += [entry.detail, str(entry.ts)]
        with self._guard.call("copy audit records"):
            added: Any = await self._import_audit(keys=keys, args=args)
        return int(added)


#: The largest id part a Stream entry may have (an unsigned 64-bit integer).
_MAX_ID = 2**64 - 1


def _member(sanction: Sanction) -> str:
    """The sanction's member of ``sanctions`` (and its key's value)."""
    fields = [sanction.kind, sanction.user, sanction.room, sanction.until, sanction.by]
    return json.dumps(fields, separators=(",", ":"))


def _sanction(member: str) -> Sanction:
    kind, user_id, room, until, by = json.loads(member)
    return Sanction(cast(SanctionKind, kind), user_id, room, until, by)


def _audit_record(identifier: str, fields: Mapping[str, str]) -> AuditRecord:
    """A record from its Stream entry (its id, then its fields)."""
    record = AuditEntry(
        actor=fields["a"],
        action=cast(AuditAction, fields["x"]),
        user=fields["u"] or None,
        room=fields["r"] or None,
        detail=fields["d"],
        ts=int(fields["t"]),
    )
    return AuditRecord(int(identifier.split("-")[0]), record)
