"""The log of record in Redis, shared by every worker of one chat.

Keys (each under the configured prefix):

``log``
    A Stream of every entry (messages, and edits and deletes of them, see
    :mod:`.redis_amend`); an entry's stream id is ``<id>-0``, so stream
    order is id order and tails read it with ``XREAD``. No text is in it
    (entries written before texts moved out have theirs in field ``t``).
``text:<n>``
    Lists of texts: entry ``id``'s is element ``id % 256`` of ``text:<id //
    256>`` (a message's as sent, and each edit's): a delete empties them, so
    no key holds a deleted text (see :mod:`.redis_amend`).
``amend``
    A hash from message id to its state: deleted, or edited (when, by
    which entries, and whom its newest text mentions): see :mod:`.redis_amend`.
``log:moving``, ``moving``
    Only while texts of entries written before they left ``log`` are moved
    out (once, see :mod:`.redis_old_texts`): the copy of ``log`` without
    them, and how far it has come.
``amends:<room>``, ``dmamends:<user>``
    Sorted sets of the ids of edit and delete entries (score = id): of a
    room's messages (general's too), and of a user's private messages.
``last_id``
    The newest id given out (``INCR``): ids increase in commit order across
    all workers because one Lua script both takes the id and appends.
``pub``, ``pub:<room>``
    Per room, a Stream of its messages' ids and senders (field ``s``): ``pub``
    is ``general``'s (the key every public message went to before rooms, so
    a Redis written then needs no migration: its entries, with a field ``m``
    in place of ``s``, are general's), ``pub:<room id>`` any other room's.
``mention:<user>:<room>``
    A sorted set of the ids (score = id) of the messages in that room that
    mention the user, written by others: mention counts are one ``ZCOUNT``.
``dm:<user>``, ``dm:<a>:<b>``
    Sorted sets of message ids (score = id): the private messages a user
    sent or received, and one private conversation. Sorted sets, not
    streams: a small one costs ~100 bytes, where a stream reserves 4 KiB.

A page for a viewer merges the newest ids of the room Streams of the rooms
asked for and ``dm:<viewer>`` (a replay: their ``amends`` and ``dmamends``
too; or reads one room's Stream, or one ``dm:<a>:<b>``) and fetches just
those entries with their texts, so its cost does not grow with the log, nor
with other rooms' traffic. A message in the log Stream
carries its room (``rm``: empty for a private one; absent, in entries
written before rooms: ``general``) and its mentions (``mt``: a JSON list,
empty for none).
``dedup:<user>``
    A hash from a sender's ``client_offset`` to the message (or edit) id it
    got (retention removes a trimmed entry's, with its text and state).
``floor``
    The newest id trimmed away by retention (absent: nothing trimmed).
``changes``
    A Stream of membership changes (field ``j``: the change as JSON), each at
    ``<newest message id>-<n>``: a tail reads it with ``log`` in one
    ``XREAD`` and hands both out in that order (a change after the message
    it followed). Capped at about :data:`CHANGES_KEPT` entries.
``user:<id>``, ``token:<sha256>``, ``epoch``
    Identities (tokens kept only as hashes) and the log's epoch.
``sub:<subject>``
    The user id of a deployment's account (a JWT's ``sub``), set once by the
    script that makes the user: such a user has no token and is never silent.
``silent``
    A sorted set of the users who never sent nor received a message, by
    creation time: the ones pruning may delete. An append takes its sender
    and recipient out of it in the same script.

Appending a batch is one ``EVALSHA`` round trip; its answer arrives only
after Redis has applied (and, with AOF, logged) every write of the script.
The same script spends each draft's send token (``limit:<key>``, the buckets
of :mod:`.redis_limits`), so a send costs one round trip, not two.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any, cast

import coredis
import trio

from ..errors import StoreError
from ..models import GENERAL, Draft, Kind, Message, Posted, User
from ..store import hash_token, now_ms
from .base import (
    GENERAL_ONLY,
    UNREAD_CAP,
    Bucket,
    EditRefused,
    LogEntry,
    MemberChange,
    RateLimited,
    Replay,
    RoomUnread,
    Unread,
)
from .redis_amend import (
    AMEND_LIB,
    TEXT_LIB,
    RedisAmends,
    committed_entry,
    entry_message,
    flat_fields,
)
from .redis_client import CallGuard, LuaScript, redis_client, redis_errors
from .redis_lean import LeanConnection
from .redis_limits import KEY_PREFIX, TAKE_LIB
from .redis_old_texts import move_old_texts
from .redis_tail import RedisTail

# Shared by the scripts that write messages (after TEXT_LIB): XADD one
# message (its client offset too, field 'c', so trimming can drop its dedup
# entry; its text not: that goes to ``text:<n>``, see redis_amend) to the log, its
# id to its indexes, and its dedup entry. KEYS[k..k+3] are the message's
# dedup:<sender>, then dm:<sender>, dm:<recipient>, dm:<a>:<b> for a private
# one, or its room's Stream (three times) for one in a room. ``m`` is the
# draft's values (see _APPEND); the mention sets' keys are made from
# ``prefix`` (undeclared keys: fine on one Redis, not on a Redis Cluster).
_PUT = """
local function put(k, sid, m, ts, prefix)
  local id = string.match(sid, '^(%d+)')
  redis.call('XADD', KEYS[2], sid, 's', m[1], 'n', m[2], 'r', m[3], 'rn', m[4],
             'ts', ts, 'o', m[7], 'c', m[6], 'rm', m[8], 'mt', m[9])
  set_text(prefix, id, m[5])
  if m[3] == '' then
    redis.call('XADD', KEYS[k + 1], sid, 's', m[1])
    if m[9] ~= '' then
      for _, user in ipairs(cjson.decode(m[9])) do
        if user ~= m[1] then
          redis.call('ZADD', prefix .. 'mention:' .. user .. ':' .. m[8], id, id)
        end
      end
    end
  else
    for j = 1, 3 do redis.call('ZADD', KEYS[k + j], id, id) end
  end
  redis.call('HSET', KEYS[k], m[6], id)
end
"""

# A room's id Stream: ``pub`` for general (and for a message stored before
# rooms, which has no room field), ``pub:<room>`` for any other.
_ROOM_KEY = """
local function room_key(prefix, room)
  if not room or room == '' or room == 'general' then return prefix .. 'pub' end
  return prefix .. 'pub:' .. room
end
"""

# Retention: once the log holds 100 or more messages past ``keep``, drop the
# oldest (at most 1000 a call, so a newly set bound converges without one
# long stall) with their index, mention and dedup entries, and raise the
# floor. The dropped messages' own keys are built from ``prefix``: undeclared
# keys, fine on one Redis (not on a Redis Cluster). Every room Stream that
# held one of them is cut at the same id (the others hold no older entry).
_TRIM = """
local function ordered(a, b)  -- byte order, as Python's sorted() on the ids
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      if x < y then return a, b end
      return b, a
    end
  end
  if #a <= #b then return a, b end
  return b, a
end
local function trim(keep, prefix)
  local excess = redis.call('XLEN', KEYS[2]) - keep
  if keep == 0 or excess < 100 then return end
  local gone, first_gone
  local rooms = {[KEYS[3]] = true}
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', math.min(excess, 1000))) do
    local f = {}
    for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end
    gone = string.match(e[1], '^(%d+)')
    first_gone = first_gone or tonumber(gone)
    if f.c and f.c ~= '' then redis.call('HDEL', prefix .. 'dedup:' .. f.s, f.c) end
    clear_text(prefix, gone)
    if f.k and f.k ~= '' then  -- an edit or a delete (see redis_amend)
      if f.r ~= '' then
        redis.call('ZREM', prefix .. 'dmamends:' .. f.s, gone)
        redis.call('ZREM', prefix .. 'dmamends:' .. f.r, gone)
      else
        redis.call('ZREM', prefix .. 'amends:' .. (f.rm ~= '' and f.rm or 'general'), gone)
      end
    elseif f.r ~= '' then
      redis.call('HDEL', prefix .. 'amend', gone)
      local a, b = ordered(f.s, f.r)
      redis.call('ZREM', prefix .. 'dm:' .. f.s, gone)
      redis.call('ZREM', prefix .. 'dm:' .. f.r, gone)
      redis.call('ZREM', prefix .. 'dm:' .. a .. ':' .. b, gone)
    else
      local state = redis.call('HGET', prefix .. 'amend', gone)
      local mentioned = f.mt
      if state then mentioned = string.match(state, ';(.*)$') end  -- edited, or '' if deleted
      redis.call('HDEL', prefix .. 'amend', gone)
      rooms[room_key(prefix, f.rm)] = true
      if mentioned and mentioned ~= '' then
        for _, user in ipairs(cjson.decode(mentioned)) do
          redis.call('ZREM', prefix .. 'mention:' .. user .. ':' .. (f.rm or 'general'), gone)
        end
      end
    end
  end
  local first = (tonumber(gone) + 1) .. '-0'
  for bucket = math.floor(first_gone / 256), math.floor((tonumber(gone) + 1) / 256) - 1 do
    redis.call('DEL', prefix .. 'text:' .. bucket)  -- every id of it trimmed
  end
  redis.call('XTRIM', KEYS[2], 'MINID', first)
  for key in pairs(rooms) do redis.call('XTRIM', key, 'MINID', first) end
  redis.call('SET', KEYS[4], gone)
end
"""

# Stores each draft of a batch: spends its send token (if it has a bucket),
# dedup, next id, put (an edit: checks its target, put_change, and makes the
# target read as edited, see redis_amend); then trims to the retention bound.
# KEYS: last_id, log, pub, floor, then 4 per draft (see put), then one bucket
# per draft (any key for a draft without one). ARGV: max messages (0: all),
# key prefix, number of drafts n, then per draft: sender, nick, recipient (""
# if public), recipient nick, text, client offset, origin, room ("" if
# private), mentions (a JSON list, "" for none), target ("" unless an edit);
# then per draft the bucket's rate and burst ("" and "" for none). Each
# answer is {id, duplicate, fields, text, state}: {0, 2, {}} when the bucket
# had no token, {0, 3, {}} for a refused edit (nothing stored); a new edit's
# fields are its ts and its target's recipient and room.
_APPEND = (
    TEXT_LIB
    + _PUT
    + _ROOM_KEY
    + _TRIM
    + TAKE_LIB
    + AMEND_LIB
    + """
local ts = now_ms()
local n, prefix = tonumber(ARGV[3]), ARGV[2]
local out = {}
for i = 0, n - 1 do
  local k = 5 + i * 4
  local m = {unpack(ARGV, 4 + i * 10, 13 + i * 10)}
  local rate = ARGV[4 + n * 10 + i * 2]
  local limited = false
  if rate ~= '' then
    local burst = tonumber(ARGV[5 + n * 10 + i * 2])
    limited = take(KEYS[5 + n * 4 + i], tonumber(rate), burst) == 0
  end
  local old = false
  if not limited then old = redis.call('HGET', KEYS[k], m[6]) end
  if limited then
    out[#out + 1] = {0, 2, {}}
  elseif old then
    local found = redis.call('XRANGE', KEYS[2], old .. '-0', old .. '-0')
    local fields = {}
    if #found > 0 then fields = found[1][2] end
    local state = redis.call('HGET', prefix .. 'amend', old)
    out[#out + 1] = {old, 1, fields, text_now(prefix, old, state), state}
  elseif m[10] ~= '' then
    local f = live_message(prefix, m[10])
    if not f or f.s ~= m[1] then
      out[#out + 1] = {0, 3, {}}
    else
      local id = redis.call('INCR', KEYS[1])
      put_change(prefix, id, {s = m[1], n = m[2], r = f.r, rn = f.rn, ts = ts, o = m[7], c = m[6],
                              rm = f.rm or '', mt = m[9], k = 'e', g = m[10], b = '', bn = '',
                              text = m[5]})
      set_mentions(prefix, m[10], f, mentions_now(f), m[9])
      redis.call('HSET', prefix .. 'amend', m[10], edit_state(f.state, ts, id, m[9]))
      out[#out + 1] = {id, 0, {'ts', ts, 'r', f.r, 'rn', f.rn, 'rm', f.rm or ''}}
    end
  else
    local id = redis.call('INCR', KEYS[1])
    put(k, id .. '-0', m, ts, prefix)
    redis.call('ZREM', prefix .. 'silent', m[1], m[3])
    out[#out + 1] = {id, 0, {'ts', ts}}
  end
end
trim(tonumber(ARGV[1]), prefix)
return out
"""
)

# Copies committed entries with their own ids and times (a migration), in
# id order, skipping those at or below last_id: re-running adds nothing.
# KEYS as for _APPEND; ARGV: the key prefix, then per entry the draft's 10
# values, id, ts, kind ('', 'e', 'd'), edited ts ('' for none), deleted
# ('1' or ''), deleter's id and nick. A deleted message, or an edit of one,
# keeps no text. Returns how many were added.
_IMPORT = (
    TEXT_LIB
    + _PUT
    + AMEND_LIB
    + """
local prefix = ARGV[1]
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local added = 0
for i = 0, (#ARGV - 1) / 17 - 1 do
  local m = {unpack(ARGV, 2 + i * 17, 18 + i * 17)}
  local id, ts, kind = tonumber(m[11]), m[12], m[13]
  if id > last then
    if kind == '' then
      put(5 + i * 4, m[11] .. '-0', m, ts, prefix)
      if m[15] == '1' then
        local state = m[14] ~= '' and edit_state(false, m[14], '', '') or false
        wipe(prefix, m[11], {s = m[1], r = m[3], rm = m[8], mt = m[9], state = state})
      elseif m[14] ~= '' then
        redis.call('HSET', prefix .. 'amend', m[11], edit_state(false, m[14], '', m[9]))
      end
    else
      local state = redis.call('HGET', prefix .. 'amend', m[10])
      local text = false
      if kind == 'e' and not (state and string.sub(state, 1, 1) == 'd') then
        text = m[5]
        if state then  -- its message's edited ts and mentions now are SQLite's
          local at, mt = string.match(state, '^e (%d+)'), string.match(state, ';(.*)$')
          redis.call('HSET', prefix .. 'amend', m[10], edit_state(state, at, m[11], mt))
        end
      end
      put_change(prefix, m[11], {s = m[1], n = m[2], r = m[3], rn = m[4], ts = ts, o = m[7],
                                 c = m[6], rm = m[8], mt = m[9], k = kind, g = m[10],
                                 b = m[16], bn = m[17], text = text})
    end
    last = id
    added = added + 1
  end
end
redis.call('SET', KEYS[1], last)
return added
"""
)

# The newest ``limit`` (+1, to tell whether more exist) entry ids above
# ARGV[1] and at or below ARGV[2] ('+' for no bound) in the indexes, merged,
# and those entries as they read now. KEYS: log, floor, last_id, amend, then
# ARGV[4] room Streams, then sorted sets (dm:<viewer>, amends:<room>,
# dmamends:<viewer>, or one dm:<a>:<b>); ARGV[5]: the prefix (for the
# texts). Each index gives at most limit + 1 ids, so a page never reads
# other rooms' traffic. Returns {last_id, floor, more, id1, fields1, text1,
# state1, id2, ...}, newest first (a text or state absent: nil).
_PAGE = (
    TEXT_LIB
    + """
local log = KEYS[1]
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
local lo = math.max(tonumber(ARGV[1]), floor) + 1
if lo > last then return {last, floor, 0} end  -- a cursor at or past the end
local hi = ARGV[2]
local limit = tonumber(ARGV[3])
local ids = {}
if hi == '+' or tonumber(hi) >= lo then
  local top = hi
  if hi ~= '+' then top = hi .. '-0' end
  local streams = tonumber(ARGV[4])
  for s = 5, 4 + streams do
    for _, entry in ipairs(redis.call('XREVRANGE', KEYS[s], top, lo .. '-0', 'COUNT', limit + 1)) do
      ids[#ids + 1] = tonumber(string.match(entry[1], '^(%d+)'))
    end
  end
  local zhi = hi == '+' and '+inf' or hi
  for s = 5 + streams, #KEYS do
    for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[s], zhi, lo, 'LIMIT', 0, limit + 1)) do
      ids[#ids + 1] = tonumber(id)
    end
  end
end
table.sort(ids, function(x, y) return x > y end)
local more = 0
if #ids > limit then more = 1 end
local out = {last, floor, more}
local page = {}  -- {stream id, fields} of each entry of the page, newest first
local function emit(sid, fields)
  page[#page + 1] = {sid, fields}
end
local n = math.min(#ids, limit)
if n > 0 and ids[1] - ids[n] < 2 * n then
  -- mostly adjacent (the usual page): one range read, keeping the chosen
  local chosen = {}
  for i = 1, n do chosen[ids[i]] = true end
  for _, entry in ipairs(redis.call('XREVRANGE', log, ids[1] .. '-0', ids[n] .. '-0')) do
    if chosen[tonumber(string.match(entry[1], '^(%d+)'))] then emit(entry[1], entry[2]) end
  end
else
  -- scattered (a quiet conversation in a busy log): one lookup each
  for i = 1, n do
    local sid = ids[i] .. '-0'
    local found = redis.call('XRANGE', log, sid, sid)
    if #found > 0 then emit(sid, found[1][2]) end
  end
end
if #page == 0 then return out end
-- Their states in one HMGET and their texts in one LRANGE per text List
-- (an LINDEX each where the List's range would be mostly others' texts).
local page_ids = {}
for i, entry in ipairs(page) do page_ids[i] = string.match(entry[1], '^(%d+)') end
local states = redis.call('HMGET', KEYS[4], unpack(page_ids))
local lists = {}
for _, id in ipairs(page_ids) do
  local key, at = text_slot(ARGV[5], id)
  local range = lists[key]
  if range then
    range.lo, range.hi, range.n = math.min(range.lo, at), math.max(range.hi, at), range.n + 1
  else
    lists[key] = {lo = at, hi = at, n = 1}
  end
end
local texts = {}
for key, range in pairs(lists) do
  local base = tonumber(string.match(key, '(%d+)$')) * 256
  if range.hi - range.lo + 1 <= 4 * range.n then
    for k, text in ipairs(redis.call('LRANGE', key, range.lo, range.hi)) do
      texts[base + range.lo + k - 1] = text
    end
  end
end
for i, entry in ipairs(page) do
  local id, state = page_ids[i], states[i]
  local text = texts[tonumber(id)]
  if state or text == nil then
    text = text_now(ARGV[5], id, state)  -- edited (its newest edit's), or not read above
  elseif text == '' then
    text = false
  end
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2]
  out[#out + 1] = text
  out[#out + 1] = state
end
return out
"""
)

# Unread counts for one viewer. KEYS: log, amend, then per room its Stream
# and the viewer's mention set there, then per private conversation its
# dm:<a>:<b>. ARGV: viewer, cap, number of rooms, then per room its marker,
# then per conversation the other's id and the marker. Each unread count
# looks at most 4 * cap entries after the marker (the viewer's own, and
# deleted messages, are skipped), and every count stops at cap. Returns per
# room {unread, mentions}, then per conversation its unread count. (Edits
# and deletes are in none of these indexes; a delete takes its message's
# mentions out of the mention sets.)
_UNREAD = """
local viewer, cap, rooms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local scan = 4 * cap
local out = {}
local function sender(sid)  -- of a message stored before its index named senders
  local found = redis.call('XRANGE', KEYS[1], sid, sid)
  if #found == 0 then return nil end
  local f = found[1][2]
  for j = 1, #f, 2 do if f[j] == 's' then return f[j + 1] end end
  return nil
end
local function states_of(ids)  -- their entries in amend (one HMGET), in order
  if #ids == 0 then return {} end
  return redis.call('HMGET', KEYS[2], unpack(ids))
end
local function deleted(state)
  return state and string.sub(state, 1, 1) == 'd'
end
for r = 0, rooms - 1 do
  local after = tonumber(ARGV[4 + r])
  local unread = 0
  local index = KEYS[3 + 2 * r]
  local entries = redis.call('XRANGE', index, (after + 1) .. '-0', '+', 'COUNT', scan)
  local ids = {}
  for i, e in ipairs(entries) do ids[i] = string.match(e[1], '^(%d+)') end
  local states = states_of(ids)
  for i, e in ipairs(entries) do
    local from = nil
    if e[2][1] == 's' then from = e[2][2] else from = sender(e[1]) end
    if from ~= viewer and not deleted(states[i]) then unread = unread + 1 end
    if unread >= cap then break end
  end
  local mentions = redis.call('ZCOUNT', KEYS[4 + 2 * r], '(' .. after, '+inf')
  out[#out + 1] = {unread, math.min(mentions, cap)}
end
local first = 4 + rooms
for d = 0, (#ARGV - first + 1) / 2 - 1 do
  local other, after = ARGV[first + 2 * d], ARGV[first + 1 + 2 * d]
  local unread = 0
  if other ~= viewer then
    local ids = redis.call('ZRANGEBYSCORE', KEYS[3 + 2 * rooms + d], '(' .. after, '+inf',
                           'LIMIT', 0, scan)
    local states = states_of(ids)
    for i, id in ipairs(ids) do
      if sender(id .. '-0') == other and not deleted(states[i]) then unread = unread + 1 end
      if unread >= cap then break end
    end
  end
  out[#out + 1] = unread
end
return out
"""

# KEYS: user:<id>, token:<hash>; ARGV: id, nick, token hash, created.
_IMPORT_USER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'nick', ARGV[2], 'token_hash', ARGV[3], 'created', ARGV[4])
redis.call('SET', KEYS[2], ARGV[1])
if ARGV[5] ~= '' then redis.call('SET', KEYS[3], ARGV[1], 'NX') end
return 1
"""

# Deletes one identity if it is still silent (an append may have just taken
# it out of the set). KEYS: silent, user:<id>. ARGV: id, the token key prefix.
_PRUNE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local token_hash = redis.call('HGET', KEYS[2], 'token_hash')
if token_hash then redis.call('DEL', ARGV[2] .. token_hash) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# The user of a deployment's account, made the first time it is met: one
# script, so two workers meeting a new subject at once make one user.
# KEYS: sub:<subject>, user:<new id>. ARGV: new id, nick, created, the key
# prefix of users. A subject whose user hash is gone gets it again, same id.
_USER_FOR_SUBJECT = """
local id = redis.call('GET', KEYS[1])
if not id then
    redis.call('SET', KEYS[1], ARGV[1])
    redis.call('HSET', KEYS[2], 'nick', ARGV[2], 'created', ARGV[3])
    return {ARGV[1], ARGV[2]}
end
local nick = redis.call('HGET', ARGV[4] .. id, 'nick')
if not nick then
    nick = ARGV[2]
    redis.call('HSET', ARGV[4] .. id, 'nick', nick, 'created', ARGV[3])
end
return {id, nick}
"""

_SET_NICK = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'nick', ARGV[1]) end
"""


class RedisLog:
    """:class:`~quartchat.backends.base.MessageLog` and
    :class:`~quartchat.backends.base.Identities` on Redis (see the module doc).

    This is the write side (appends, the tail, the lifecycle). Its parts,
    one job each, share its client, its key names (:class:`LogKeys`) and its
    :class:`CallGuard`: the read side (:class:`RedisPages`) and the
    identities (:class:`RedisUsers`). Its own methods are theirs, so
    callers need know only it."""

    def __init__(self, url: str, *, prefix: str = "quartchat:", max_messages: int = 0) -> None:
        self.epoch = ""  # read from Redis when ``run`` starts
        self._redis = redis_client(url)
        #: The two calls made per message get lean connections of their own
        #: (see :mod:`.redis_lean`): the committer's appends, and the tail.
        self._appending = LeanConnection(url, "store messages")
        self._following = LeanConnection(url, "follow the log")
        self._prefix = prefix
        self._keys = keys = LogKeys(prefix)
        self._key = keys.key
        self._limit_prefix = prefix + KEY_PREFIX
        self._max_messages = max_messages
        self._import_script = LuaScript(self._redis, _IMPORT)
        self._guard = CallGuard(self._redis, "the log")
        self._call = self._guard.call
        self.pages = RedisPages(self._redis, keys, self._guard)
        self.users = RedisUsers(self._redis, keys, self._guard)
        self.amends = RedisAmends(self._redis, prefix, self._guard)
        self._stop = trio.Event()
        self._stopped = trio.Event()
        #: The tail of messages and membership changes (one read for both).
        self.follower = RedisTail(
            self._redis, self._following, self._guard, keys.key, committed_entry
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the connection pool open (it lives in this task) until closed;
        take or create the epoch first, so it is known once started. Moves
        the texts of entries written before they left the log Stream, once
        (see :mod:`.redis_old_texts`)."""
        try:
            async with self._redis:
                with redis_errors("read the epoch"):
                    await self._redis.set(
                        self._key("epoch"), secrets.token_hex(8), condition=coredis.PureToken.NX
                    )
                    self.epoch = str(await self._redis.get(self._key("epoch")))
                task_status.started()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(move_old_texts, self._redis, self._prefix)
                    await self._stop.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self._stopped.set()

    async def aclose(self) -> None:
        """Refuse new calls, end the tails, wait for calls in flight, then
        close the pool."""
        self._guard.closing = True
        self.follower.stop()
        await self._guard.drained()
        await self._appending.aclose()
        await self._following.aclose()
        self._stop.set()
        await self._stopped.wait()

    # ----- messages ----------------------------------------------------

    async def append(
        self, drafts: Sequence[Draft], buckets: Sequence[Bucket | None] = ()
    ) -> list[Posted | StoreError | RateLimited | EditRefused]:
        """One round trip for the batch: the send limits are spent, and
        edits checked, in the same script that stores (see ``_APPEND``)."""
        out: list[Posted | StoreError | RateLimited | EditRefused] = [_REFUSED] * len(drafts)
        storable = [i for i, d in enumerate(drafts) if _encodable(d)]
        if not storable:
            return out
        keys, args = _writing(self._keys, [drafts[i] for i in storable])
        bucket_keys: list[str] = []
        bucket_args: list[str | float | int] = []
        for i in storable:
            bucket = buckets[i] if buckets else None
            if bucket is None:
                bucket_keys.append(keys[0])  # unused
                bucket_args += ["", ""]
            else:
                bucket_keys.append(self._limit_prefix + bucket.key)
                bucket_args += [bucket.rate, bucket.burst]
        with self._call("store messages"):
            results = cast(
                list[Any],
                await self._appending.run_script(
                    _APPEND,
                    keys + bucket_keys,
                    [self._max_messages, self._prefix, len(storable), *args, *bucket_args],
                ),
            )
        for i, result in zip(storable, results, strict=True):
            out[i] = _posted(drafts[i], result)
        return out

    async def import_messages(self, messages: Sequence[tuple[Message, str]]) -> int:
        """Copy committed entries (each with its ``client_offset``) as they
        are now, ids and times kept, in id order: messages (edited or
        deleted), edits and deletes; those at or below the last id are
        skipped, so copying again adds nothing. Returns how many were added."""
        drafts = [
            Draft(m.sender, offset, m.text, m.recipient, room=m.room, mentions=m.mentions)
            for m, offset in messages
        ]
        keys, args = _writing(self._keys, drafts)
        per_message = len(args) // max(len(drafts), 1)
        with_ids: list[str] = [self._prefix]
        for i, (message, _) in enumerate(messages):
            values = args[i * per_message : (i + 1) * per_message]
            values[-1] = str(message.target or "")
            if message.kind is Kind.DELETE:
                values[5] = ""  # no client offset: no retry to recognise
            by = message.by
            with_ids += [*values, str(message.id), str(message.ts), _KIND_CODES[message.kind]]
            with_ids.append("" if message.edited_ts is None else str(message.edited_ts))
            with_ids += ["1" if message.deleted else "", by.id if by else "", by.nick if by else ""]
        with self._call("import messages"):
            added: Any = await self._import_script(keys=keys, args=with_ids)
        return int(added)

    async def get(self, message_id: int) -> Message | None:
        return await self.amends.get(message_id)

    async def delete(self, target: int, by: User, origin: str = "") -> Message | None:
        return await self.amends.delete(target, by, origin)

    # ----- reads (see RedisPages) ----------------------------------------

    async def read_after(
        self,
        viewer: str,
        after_id: int | None,
        limit: int,
        rooms: Collection[str] = GENERAL_ONLY,
    ) -> Replay:
        return await self.pages.read_after(viewer, after_id, limit, rooms)

    async def history(
        self,
        viewer: str,
        before_id: int | None,
        limit: int,
        with_user: str | None,
        room: str | None = None,
    ) -> tuple[list[Message], bool]:
        return await self.pages.history(viewer, before_id, limit, with_user, room)

    async def unread(
        self, viewer: str, rooms: Mapping[str, int], direct: Mapping[str, int]
    ) -> Unread:
        return await self.pages.unread(viewer, rooms, direct)

    async def last_id(self) -> int:
        with self._call("read the last id"):
            value = await self._redis.get(self._key("last_id"))
        return int(value or 0)

    async def note_change(self, change: MemberChange) -> MemberChange:
        return await self.follower.note_change(change)

    def tail(self, after_id: int) -> AsyncIterator[list[LogEntry]]:
        return self.follower.tail(after_id)

    async def adopt_epoch(self, epoch: str) -> None:
        """Take another log's epoch, so its clients' cursors stay valid here;
        refused once this log holds messages under a different epoch."""
        if epoch == self.epoch:
            return
        if await self.last_id():
            raise StoreError(f"Redis already holds a different chat (epoch {self.epoch})")
        with self._call("set the epoch"):
            await self._redis.set(self._key("epoch"), epoch)
        self.epoch = epoch

    # ----- users (see RedisUsers) ----------------------------------------

    async def create_user(self, nick: str) -> tuple[User, str]:
        return await self.users.create_user(nick)

    async def user_by_token(self, token: str) -> User | None:
        return await self.users.user_by_token(token)

    async def get_user(self, user_id: str) -> User | None:
        return await self.users.get_user(user_id)

    async def import_user(
        self, user: User, token_hash: str, created: int, subject: str | None = None
    ) -> bool:
        return await self.users.import_user(user, token_hash, created, subject)

    async def set_nick(self, user_id: str, nick: str) -> None:
        await self.users.set_nick(user_id, nick)

    async def user_for_subject(self, subject: str, nick: str) -> User:
        return await self.users.user_for_subject(subject, nick)

    async def prune_silent_users(self, created_before: int, keep: Collection[str]) -> int:
        return await self.users.prune_silent_users(created_before, keep)


class LogKeys:
    """The names of one chat's keys (see the module doc), for every part of
    :class:`RedisLog`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def room(self, room: str | None) -> str:
        """A room's id Stream (see the module doc: ``pub`` is general's)."""
        return self.key("pub") if room in (None, GENERAL) else self.key("pub", str(room))

    def amends(self, room: str | None) -> str:
        """A room's edit and delete entries (see :mod:`.redis_amend`)."""
        return self.key("amends", room or GENERAL)


class RedisPages:
    """The read side of :class:`RedisLog`: pages (a replay, a history page),
    each merged in one script from the room id Streams and the private set
    it asks for, and the unread counts (see ``_PAGE`` and ``_UNREAD``)."""

    def __init__(self, redis: coredis.Redis[str], keys: LogKeys, guard: CallGuard) -> None:
        self._key = keys.key
        self._prefix = keys.prefix
        self._room_key = keys.room
        self._amends_key = keys.amends
        self._call = guard.call
        self._page_script = LuaScript(redis, _PAGE)
        self._unread_script = LuaScript(redis, _UNREAD)

    async def _page(
        self, indexes: tuple[list[str], list[str]], above: int, at_most: int | None, limit: int
    ) -> tuple[list[Message], int, int, bool]:
        """Newest ``limit`` entries in ``indexes`` (room Streams, and sorted
        sets) with ids in (above, at_most], oldest first, as they read now;
        the last id, the trim floor, and whether more matched."""
        streams, sets = indexes
        keys = [self._key(name) for name in ("log", "floor", "last_id", "amend")]
        keys += [*streams, *sets]
        top = "+" if at_most is None else str(at_most)
        with self._call("read messages"):
            reply: list[Any] = await self._page_script(
                keys=keys, args=[above, top, limit, len(streams), self._prefix]
            )
        last, floor, more = int(reply[0]), int(reply[1]), bool(int(reply[2]))
        found = zip(reply[3::4], reply[4::4], reply[5::4], reply[6::4], strict=True)
        messages = [
            entry_message(sid, flat_fields(flat), text, state) for sid, flat, text, state in found
        ]
        messages.reverse()
        return messages, last, floor, more

    def _visible(
        self, viewer: str, rooms: Collection[str], amends: bool = False
    ) -> tuple[list[str], list[str]]:
        """The indexes of what ``viewer`` sees: ``rooms``' Streams, and the
        viewer's private messages; with ``amends``, the edits and deletes of
        both too."""
        streams = sorted({self._room_key(room) for room in rooms})
        sets = [self._key("dm", viewer)]
        if amends:
            sets += sorted({self._amends_key(room) for room in rooms})
            sets.append(self._key("dmamends", viewer))
        return streams, sets

    def _conversation(self, viewer: str, other: str) -> tuple[list[str], list[str]]:
        a, b = sorted((viewer, other))
        return [], [self._key("dm", a, b)]

    async def read_after(
        self,
        viewer: str,
        after_id: int | None,
        limit: int,
        rooms: Collection[str] = GENERAL_ONLY,
    ) -> Replay:
        messages, last, floor, more = await self._page(
            self._visible(viewer, rooms, amends=True), after_id or 0, None, limit
        )
        complete = after_id is not None and not more and after_id >= floor
        return Replay(messages, last, complete)

    async def history(
        self,
        viewer: str,
        before_id: int | None,
        limit: int,
        with_user: str | None,
        room: str | None = None,
    ) -> tuple[list[Message], bool]:
        if with_user is not None and room is not None:
            raise ValueError("a page is of one room or one private conversation")
        if with_user is not None:
            indexes = self._conversation(viewer, with_user)
        elif room is not None:
            indexes = [self._room_key(room)], []
        else:
            indexes = self._visible(viewer, GENERAL_ONLY)
        below = None if before_id is None else before_id - 1
        if below is not None and below < 1:
            return [], False
        messages, _, _, more = await self._page(indexes, 0, below, limit)
        return messages, more

    async def unread(
        self, viewer: str, rooms: Mapping[str, int], direct: Mapping[str, int]
    ) -> Unread:
        """One script call for every count (see ``_UNREAD``)."""
        room_ids, others = list(rooms), list(direct)
        keys = [self._key("log"), self._key("amend")]
        for room in room_ids:
            keys += [self._room_key(room), self._key("mention", viewer, room)]
        keys += [self._conversation(viewer, other)[1][0] for other in others]
        args: list[str | int] = [viewer, UNREAD_CAP, len(room_ids)]
        args += [rooms[room] for room in room_ids]
        for other in others:
            args += [other, direct[other]]
        with self._call("count unread messages"):
            reply: list[Any] = await self._unread_script(keys=keys, args=args)
        counts = iter(reply)
        in_rooms = {room: RoomUnread(*map(int, next(counts))) for room in room_ids}
        return Unread(in_rooms, {other: int(next(counts)) for other in others})


class RedisUsers:
    """The identities of :class:`RedisLog` (the
    :class:`~quartchat.backends.base.Identities` seam's): users, their
    nicks, their tokens' hashes, and the silent set pruning reads."""

    def __init__(self, redis: coredis.Redis[str], keys: LogKeys, guard: CallGuard) -> None:
        self._redis = redis
        self._key = keys.key
        self._call = guard.call
        self._import_user_script = LuaScript(redis, _IMPORT_USER)
        self._set_nick_script = LuaScript(redis, _SET_NICK)
        self._prune_script = LuaScript(redis, _PRUNE)
        self._for_subject_script = LuaScript(redis, _USER_FOR_SUBJECT)

    async def create_user(self, nick: str) -> tuple[User, str]:
        token = secrets.token_urlsafe(32)
        user = User(id="u" + secrets.token_hex(8), nick=nick)
        token_hash = hash_token(token)
        with self._call("create a user"):
            await self._redis.hset(
                self._key("user", user.id),
                {"nick": nick, "token_hash": token_hash, "created": now_ms()},
            )
            await self._redis.set(self._key("token", token_hash), user.id)
            await self._redis.zadd(self._key("silent"), {user.id: now_ms()})
        return user, token

    async def user_by_token(self, token: str) -> User | None:
        with self._call("find a user"):
            user_id = await self._redis.get(self._key("token", hash_token(token)))
        return None if user_id is None else await self.get_user(user_id)

    async def get_user(self, user_id: str) -> User | None:
        with self._call("find a user"):
            nick = await self._redis.hget(self._key("user", user_id), "nick")
        return None if nick is None else User(user_id, nick)

    async def import_user(
        self, user: User, token_hash: str, created: int, subject: str | None = None
    ) -> bool:
        """Copy an identity kept elsewhere (its token only as its hash, and
        the deployment account it is, if any); False, and nothing changed,
        when Redis already knows the user."""
        keys = [self._key("user", user.id), self._key("token", token_hash)]
        keys.append(self._key("sub", subject or ""))
        args: list[str | int] = [user.id, user.nick, token_hash, created, subject or ""]
        with self._call("import a user"):
            fresh: Any = await self._import_user_script(keys=keys, args=args)
        return bool(fresh)

    async def set_nick(self, user_id: str, nick: str) -> None:
        with self._call("change a nick"):
            await self._set_nick_script(keys=[self._key("user", user_id)], args=[nick])

    async def user_for_subject(self, subject: str, nick: str) -> User:
        """Got or made in one script; never added to ``silent``, so never pruned."""
        new_id = "u" + secrets.token_hex(8)
        keys = [self._key("sub", subject), self._key("user", new_id)]
        with self._call("find a user"):
            found: list[str] = await self._for_subject_script(
                keys=keys, args=[new_id, nick, now_ms(), self._key("user", "")]
            )
        return User(str(found[0]), str(found[1]))

    async def prune_silent_users(self, created_before: int, keep: Collection[str]) -> int:
        kept = set(keep)
        pruned = 0
        with self._call("prune silent users"):
            silent = await self._redis.zrange(
                self._key("silent"), "-inf", created_before, sortby=coredis.PureToken.BYSCORE
            )
            for user_id in (str(u) for u in silent if str(u) not in kept):
                keys = [self._key("silent"), self._key("user", user_id)]
                gone: object = await self._prune_script(
                    keys=keys, args=[user_id, self._key("token", "")]
                )
                pruned += gone == 1
        return pruned


def _writing(names: LogKeys, drafts: Sequence[Draft]) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for the scripts that write these drafts (see ``put``)."""
    key, room_key = names.key, names.room
    keys = [key("last_id"), key("log"), key("pub"), key("floor")]
    args: list[str] = []
    for d in drafts:
        to = d.recipient
        keys.append(key("dedup", d.sender.id))
        if to is None:
            keys += [room_key(d.room)] * 3  # the first is the room's index
        else:
            a, b = sorted((d.sender.id, to.id))
            keys += [key("dm", d.sender.id), key("dm", to.id)]
            keys.append(key("dm", a, b))
        args += [
            d.sender.id,
            d.sender.nick,
            "" if to is None else to.id,
            "" if to is None else to.nick,
            d.text,
            d.client_offset,
            d.origin,
            d.room or "",
            json.dumps(list(d.mentions)) if d.mentions else "",
            str(d.target) if d.target > 0 else "",
        ]
    return keys, args


#: How ``import_messages`` names an entry's kind to ``_IMPORT`` (field ``k``).
_KIND_CODES = {Kind.MESSAGE: "", Kind.EDIT: "e", Kind.DELETE: "d"}


#: What a draft Redis cannot hold gets in its place (its strings are not
#: valid Unicode); the protocol refuses such text before it gets here.
_REFUSED = StoreError("the message could not be stored")


def _encodable(draft: Draft) -> bool:
    strings = [draft.sender.id, draft.sender.nick, draft.text, draft.client_offset, draft.origin]
    strings += [draft.room or "", *draft.mentions]
    if draft.recipient is not None:
        strings += [draft.recipient.id, draft.recipient.nick]
    try:
        for string in strings:
            string.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _posted(draft: Draft, result: Sequence[Any]) -> Posted | RateLimited | EditRefused:
    code = int(result[1])
    if code == 2:
        return RateLimited()
    if code == 3:
        return EditRefused()
    msg_id, duplicate, fields = int(result[0]), bool(code), flat_fields(result[2])
    if duplicate and "s" in fields:
        return Posted(entry_message(str(msg_id), fields, result[3], result[4]), duplicate=True)
    # New, or a retry of a message retention has since trimmed: the draft
    # is what was stored (a new edit: with its target's recipient and room).
    ts = int(fields.get("ts", now_ms()))
    to, room = draft.recipient, draft.room
    if "r" in fields:
        to, room = (User(fields["r"], fields["rn"]) if fields["r"] else None), fields["rm"] or None
    kind = Kind.EDIT if draft.target > 0 else Kind.MESSAGE
    message = Message(
        msg_id, draft.sender, to, draft.text, ts, room, draft.mentions, kind, draft.target
    )
    return Posted(message, duplicate)
