"""Moving the texts of entries written before texts left the log Stream.

A log written before edits and deletes keeps each message's text in its
``log`` entry (field ``t``). Deleting such a message wipes nothing there: a
Stream keeps an entry's bytes inside its listpack node (``XDEL`` only
flags it), so the text stays until retention trims the whole node. This
moves those texts out once, while the chat runs: the entries are copied in
id order, without ``t``, to ``log:moving`` (a live message's text going to
its ``text:<n>`` List, a deleted one's nowhere), a few hundred per script
call, paced; the call that reaches the end cuts the copy where retention
cut ``log`` meanwhile and renames it over ``log``, which frees the old
Stream and every byte of it. Appends meanwhile land in ``log`` and are
copied in turn; tails read ``log`` by id, the same ids before and after.

Every worker runs :func:`move_old_texts` when its log starts: one script
call finds nothing to do on a log with no such entry (its first entry has
no ``t``); workers starting together share the work (each call goes on
from the position kept in ``moving``) and exactly one call renames.
While it runs, the log takes up to twice the Stream's memory (no texts).
"""

from __future__ import annotations

import logging
from typing import Any

import coredis
import trio

from ..errors import StoreError
from .redis_amend import TEXT_LIB
from .redis_client import LuaScript, redis_errors

log = logging.getLogger(__name__)

#: Entries copied per script call: Redis does nothing else meanwhile (about
#: 2-4 ms for 200), and the pause between calls lets other clients in.
MOVE_BATCH = 200
#: Seconds between two calls of one worker.
MOVE_PAUSE = 0.02
#: Seconds before trying again after Redis failed a call.
MOVE_RETRY = 5.0

# One step of the move. KEYS: log, log:moving, moving (the copy's position),
# amend. ARGV: prefix, batch size. Returns {copied, state}: state 0 (more
# to copy), 1 (this call finished the move), 2 (nothing to move).
_MOVE = (
    TEXT_LIB
    + """
local log, copy, moving, amend = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local after = redis.call('GET', moving)
if not after then
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  local old = false
  if #first > 0 then
    for j = 1, #first[1][2], 2 do if first[1][2][j] == 't' then old = true end end
  end
  if not old then return {0, 2} end
  redis.call('DEL', copy)
  after = '0-0'
end
local copied = 0
for _, e in ipairs(redis.call('XRANGE', log, '(' .. after, '+', 'COUNT', ARGV[2])) do
  local id = string.match(e[1], '^(%d+)')
  local kept = {}
  for j = 1, #e[2], 2 do
    local field, value = e[2][j], e[2][j + 1]
    if field == 't' then
      local state = redis.call('HGET', amend, id)
      if not (state and string.sub(state, 1, 1) == 'd') and not get_text(ARGV[1], id) then
        set_text(ARGV[1], id, value)
      end
    else
      kept[#kept + 1] = field
      kept[#kept + 1] = value
    end
  end
  redis.call('XADD', copy, e[1], unpack(kept))
  after = e[1]
  copied = copied + 1
end
if copied == tonumber(ARGV[2]) then
  redis.call('SET', moving, after)
  return {copied, 0}
end
local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
if #first > 0 then redis.call('XTRIM', copy, 'MINID', first[1][1]) end
if redis.call('EXISTS', copy) == 1 then redis.call('RENAME', copy, log) end
redis.call('DEL', moving)
return {copied, 1}
"""
)


async def move_old_texts(redis: coredis.Redis[str], prefix: str) -> int:
    """Move the texts of old entries out of the log Stream (see the module
    doc), if any; how many entries this worker copied. Redis failing a call
    is retried after :data:`MOVE_RETRY` s; cancelling stops between calls
    (another worker, or this one's next start, goes on from there)."""
    script = LuaScript(redis, _MOVE)
    keys = [prefix + name for name in ("log", "log:moving", "moving", "amend")]
    copied = 0
    while True:
        try:
            with redis_errors("move old texts out of the log"):
                done: Any = await script(keys=keys, args=[prefix, MOVE_BATCH])
        except StoreError as exc:  # Unavailable too
            log.warning("moving old texts out of the log paused: %s", exc)
            await trio.sleep(MOVE_RETRY)
            continue
        count, state = int(done[0]), int(done[1])
        if copied == 0 and state != 2:
            log.info("moving the texts of old entries out of the log Stream (once)")
        copied += count
        if state == 1:
            log.info("old texts moved: %d entries copied by this worker", copied)
        if state != 0:
            return copied
        await trio.sleep(MOVE_PAUSE)
