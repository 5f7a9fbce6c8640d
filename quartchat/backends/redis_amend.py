"""Edits and deletes in the Redis log: entries of their own, and texts kept
where a delete can wipe them (see :mod:`.redis_log` for every key).

A message's text does not live in its ``log`` entry: a stream keeps an
entry's bytes after ``XDEL`` (the entry is only flagged inside its listpack
node, and ``DUMP`` of the key still shows it) until the whole node goes, so
a text in the stream could not be wiped. Texts live in Lists ``text:<n>``
instead (see :data:`TEXT_LIB`): a message's as it was sent, and each
edit's under the edit's id. A message's state lives in the hash ``amend``: ``d``
when deleted (``d <edited ts>`` if it was edited first), or ``e <edited ts>
<edit id>...;<mentions>`` when edited (its edits, oldest first, and the
JSON list of the mentions of its newest text, "" for none). A message
reads as it is now with its newest edit's text; a delete empties its
text's element and every edit's, found in its state.

Edit and delete entries sit in ``log`` with the fields of a message (the
target's sender, recipient and room) plus ``k`` (``e`` or ``d``), ``g``
(the target's id) and, for a delete, ``b``/``bn`` (who deleted). Replays
find them in ``amends:<room>`` (general's too) or ``dmamends:<user>`` (both
ends of a private message), sorted sets of ids: the room Streams and the
``dm`` sets keep messages only, so history pages and unread counts read
what they read before. An edit moves its message's ``mention`` set entries
to the users its new text mentions; a delete takes them out.

Entries written before this (a message with its text in field ``t``) read
as before; deleting one wipes nothing of its ``t`` (the stream cannot): its
bytes stay until the log's one-time move of old texts has run (see
:mod:`.redis_old_texts`), or retention trimmed its node.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import coredis

from ..models import Kind, Message, User
from .base import Committed
from .redis_client import CallGuard, LuaScript

#: Lua shared by the scripts that write or check edits and deletes (after
#: :data:`TEXT_LIB`). Keys are made from ``prefix`` (undeclared keys: fine on
#: one Redis, not on a Redis Cluster, as the mention sets already are).
AMEND_LIB = """
local function entry_fields(prefix, id)  -- the log entry of ``id`` as a table, or nil
  local found = redis.call('XRANGE', prefix .. 'log', id .. '-0', id .. '-0')
  if #found == 0 then return nil end
  local f, flat = {}, found[1][2]
  for j = 1, #flat, 2 do f[flat[j]] = flat[j + 1] end
  return f
end
local function live_message(prefix, id)  -- its fields and .state, or nil if none or deleted
  local f = entry_fields(prefix, id)
  if not f or (f.k and f.k ~= '') then return nil end
  local state = redis.call('HGET', prefix .. 'amend', id)
  if state and string.sub(state, 1, 1) == 'd' then return nil end
  f.state = state
  return f
end
local function room_of_entry(f)  -- a public entry's room ('' or absent: general)
  if not f.rm or f.rm == '' then return 'general' end
  return f.rm
end
local function mentions_now(f)  -- the JSON list of a live message's mentions now ('' for none)
  if f.state then return string.match(f.state, ';(.*)$') end
  return f.mt or ''
end
local function set_mentions(prefix, id, f, old, new)  -- a public message's mention sets
  if f.r ~= '' then return end
  local room = room_of_entry(f)
  if old ~= '' then
    for _, user in ipairs(cjson.decode(old)) do
      redis.call('ZREM', prefix .. 'mention:' .. user .. ':' .. room, id)
    end
  end
  if new ~= '' then
    for _, user in ipairs(cjson.decode(new)) do
      if user ~= f.s then
        redis.call('ZADD', prefix .. 'mention:' .. user .. ':' .. room, id, id)
      end
    end
  end
end
local function put_change(prefix, id, e)  -- an edit or delete entry, its text and indexes
  redis.call('XADD', prefix .. 'log', id .. '-0', 's', e.s, 'n', e.n, 'r', e.r, 'rn', e.rn,
             'ts', e.ts, 'o', e.o, 'c', e.c, 'rm', e.rm, 'mt', e.mt, 'k', e.k, 'g', e.g,
             'b', e.b, 'bn', e.bn)
  if e.text then set_text(prefix, id, e.text) end
  if e.r == '' then
    redis.call('ZADD', prefix .. 'amends:' .. room_of_entry(e), id, id)
  else
    redis.call('ZADD', prefix .. 'dmamends:' .. e.s, id, id)
    redis.call('ZADD', prefix .. 'dmamends:' .. e.r, id, id)
  end
  if e.c ~= '' then redis.call('HSET', prefix .. 'dedup:' .. e.s, e.c, id) end
end
local function edit_state(state, ts, id, mt)  -- a message's state once edit ``id`` is in
  local ids = ''
  if state then ids = string.match(state, '^e %d+([%d ]*);') or '' end
  if id ~= '' then ids = ids .. ' ' .. id end
  return 'e ' .. ts .. ids .. ';' .. mt
end
local function wipe(prefix, id, f)  -- the message's text and its edits' gone, marked deleted
  clear_text(prefix, id)
  if f.state then
    for edit in string.gmatch(string.match(f.state, '^e %d+([%d ]*);') or '', '%d+') do
      clear_text(prefix, edit)
    end
  end
  set_mentions(prefix, id, f, mentions_now(f), '')
  local mark = 'd'
  if f.state then mark = 'd ' .. string.match(f.state, '^e (%d+)') end
  redis.call('HSET', prefix .. 'amend', id, mark)
end
local function now_ms()
  local now = redis.call('TIME')
  return now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
end
"""

#: Entry ids per ``text:<n>`` List (see :data:`TEXT_LIB`).
TEXT_BUCKET = 256

#: Lua for the texts: the text of entry ``id`` is element ``id % 256`` of the
#: List ``text:<id // 256>`` ("" for none: deleted, never stored, or kept in
#: its stream entry's ``t``). A List of small elements is a listpack (a few
#: bytes per element, where a hash's field costs ~50), and ``LSET`` to ""
#: takes the text out of it (the listpack is rewritten without its bytes).
#: ``text_now`` reads a message as it is now: its newest edit's text.
TEXT_LIB = """
local function text_slot(prefix, id)
  local n = tonumber(id)
  return prefix .. 'text:' .. math.floor(n / 256), n % 256
end
local function set_text(prefix, id, text)
  local key, at = text_slot(prefix, id)
  local len = redis.call('LLEN', key)
  if len > at then
    redis.call('LSET', key, at, text)
    return
  end
  local pushed = {}
  for _ = len + 1, at do pushed[#pushed + 1] = '' end  -- a gap in the ids
  pushed[#pushed + 1] = text
  redis.call('RPUSH', key, unpack(pushed))
end
local function clear_text(prefix, id)
  local key, at = text_slot(prefix, id)
  if redis.call('LLEN', key) > at then redis.call('LSET', key, at, '') end
end
local function get_text(prefix, id)  -- false when none
  local key, at = text_slot(prefix, id)
  local text = redis.call('LINDEX', key, at)
  if not text or text == '' then return false end
  return text
end
local function text_now(prefix, id, state)
  if state then
    local ids = string.match(state, '^e %d+([%d ]*);')
    local newest = ids and string.match(ids, '(%d+)%s*$')
    if newest then return get_text(prefix, newest) end
  end
  return get_text(prefix, id)
end
"""

# Deletes a live message. KEYS: last_id. ARGV: prefix, target, deleter's id
# and nick, origin. Returns false (no live message), or {id, ts, target's
# flat fields} of the delete entry.
_DELETE = (
    TEXT_LIB
    + AMEND_LIB
    + """
local prefix, target = ARGV[1], ARGV[2]
local f = live_message(prefix, target)
if not f then return false end
wipe(prefix, target, f)
local id = redis.call('INCR', KEYS[1])
local ts = now_ms()
put_change(prefix, id, {s = f.s, n = f.n, r = f.r, rn = f.rn, ts = ts, o = ARGV[5], c = '',
                        rm = f.rm or '', mt = '', k = 'd', g = target, b = ARGV[3], bn = ARGV[4]})
return {id, ts, {'s', f.s, 'n', f.n, 'r', f.r, 'rn', f.rn, 'rm', f.rm or ''}}
"""
)

# One entry as pages read it. KEYS: log, amend; ARGV: the id, the prefix.
# Returns false, or {stream id, flat fields, text now or false, state or false}.
_GET = (
    TEXT_LIB
    + """
local id, sid = ARGV[1], ARGV[1] .. '-0'
local found = redis.call('XRANGE', KEYS[1], sid, sid)
if #found == 0 then return false end
local state = redis.call('HGET', KEYS[2], id)
return {sid, found[1][2], text_now(ARGV[2], id, state), state}
"""
)

_KINDS = {"": Kind.MESSAGE, "e": Kind.EDIT, "d": Kind.DELETE}


def entry_message(
    stream_id: str,
    fields: Mapping[str, str],
    text: str | None,
    state: str | None,
    *,
    as_now: bool = True,
) -> Message:
    """A ``log`` entry: ``text`` is its entry in ``text`` (a message's as it
    is now when ``as_now``, else as sent; None when absent: deleted) and
    ``state`` its entry in ``amend`` (None when absent; needed only for a
    message's edits, and to tell a deleted one written before texts moved
    out of the stream). Without ``as_now``, an edited message reads as it
    was sent (a deleted one reads deleted either way: its text is gone)."""
    msg_id = int(stream_id.split("-")[0])
    kind = _KINDS[fields.get("k", "")]
    recipient = User(fields["r"], fields["rn"]) if fields["r"] else None
    room = fields.get("rm") or None  # absent before rooms: general's (see room_of)
    mentions = _mentions(fields.get("mt"))
    sender = User(fields["s"], fields["n"])
    ts, target = int(fields["ts"]), int(fields.get("g") or 0)
    if kind is Kind.DELETE:
        by = User(fields["b"], fields["bn"])
        return Message(msg_id, sender, recipient, "", ts, room, (), kind, target, by=by)
    if kind is Kind.EDIT:
        if text is None:  # its message was deleted since: text and mentions gone
            return Message(msg_id, sender, recipient, "", ts, room, (), kind, target)
        return Message(msg_id, sender, recipient, text, ts, room, mentions, kind, target)
    if state and state.startswith("d"):
        edited_ts = int(state[2:]) if len(state) > 1 else None
        return Message(
            msg_id, sender, recipient, "", ts, room, (), edited_ts=edited_ts, deleted=True
        )
    if text is None and "t" not in fields:  # 't': written before texts moved
        return Message(msg_id, sender, recipient, "", ts, room, (), deleted=True)
    body = fields["t"] if text is None else text
    if not (as_now and state):
        return Message(msg_id, sender, recipient, body, ts, room, mentions)
    head, _, mentioned = state.partition(";")
    edited_ts = int(head.split()[1])
    return Message(
        msg_id, sender, recipient, body, ts, room, _mentions(mentioned), edited_ts=edited_ts
    )


def _mentions(listed: str | None) -> tuple[str, ...]:
    return tuple(json.loads(listed)) if listed else ()


def committed_entry(
    stream_id: str, flat: Sequence[str], text: str | None, state: str | None
) -> Committed:
    """A ``log`` entry as the tail hands it out (as it was stored), with its origin."""
    fields = flat_fields(flat)
    return Committed(entry_message(stream_id, fields, text, state, as_now=False), fields["o"])


def flat_fields(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisAmends:
    """:meth:`~quartchat.backends.base.MessageLog.get` and
    :meth:`~quartchat.backends.base.MessageLog.delete` for :class:`RedisLog`
    (edits are appends: see its ``_APPEND``)."""

    def __init__(self, redis: coredis.Redis[str], prefix: str, guard: CallGuard) -> None:
        self._prefix = prefix
        self._call = guard.call
        self._get_script = LuaScript(redis, _GET)
        self._delete_script = LuaScript(redis, _DELETE)

    async def get(self, message_id: int) -> Message | None:
        if message_id < 1:
            return None
        keys = [self._prefix + "log", self._prefix + "amend"]
        with self._call("read a message"):
            found: Any = await self._get_script(keys=keys, args=[message_id, self._prefix])
        if not found:
            return None
        sid, flat, text, state = found
        message = entry_message(sid, flat_fields(flat), text, state)
        return message if message.kind is Kind.MESSAGE else None

    async def delete(self, target: int, by: User, origin: str = "") -> Message | None:
        """One script: the check, the wipe and the delete entry, atomically."""
        if target < 1:
            return None
        args: list[str | int] = [self._prefix, target, by.id, by.nick, origin]
        with self._call("delete a message"):
            done: Any = await self._delete_script(keys=[self._prefix + "last_id"], args=args)
        if not done:
            return None
        msg_id, ts, flat = int(done[0]), int(done[1]), flat_fields(done[2])
        recipient = User(flat["r"], flat["rn"]) if flat["r"] else None
        sender = User(flat["s"], flat["n"])
        room = flat["rm"] or None
        return Message(msg_id, sender, recipient, "", ts, room, (), Kind.DELETE, target, by=by)
