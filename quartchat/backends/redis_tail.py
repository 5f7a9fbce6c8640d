"""The Redis log's tail: every committed message and every membership
change, in log order, for one worker's relay (see :mod:`.redis_log` for the
keys).

Changes live in their own Stream, ``changes``, each at ``<newest message
id>-<n>`` (taken in one script with the newest id), so it sorts after the
message it followed and before the next. One read takes ``log`` and
``changes`` together, one moment's view of both, and the tail merges them;
when one Stream filled the batch, the other's entries past it wait for the
next read, so the merge never puts a change before a message it followed.

Texts are not in ``log`` (see :mod:`.redis_amend`): a tail reads each
entry's text from the Lists ``text:<n>`` (none: deleted). Ids are dense
(every id is one entry), so an ``LRANGE`` of the texts of the ids that
should come next goes in the same write as the blocking ``XREAD``, which
holds it back until it answers: one round trip per batch, as before. As many ids are asked for as
the last batch had (at least :data:`AHEAD_MIN`); an entry beyond them (a
larger batch, or a gap in the ids), or one written before texts moved out
(whose state says whether it was deleted), costs one call more.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, cast

import coredis
import trio

from ..errors import Unavailable
from ..models import Room, RoomKind, User
from .base import Committed, LogEntry, MemberChange
from .redis_amend import TEXT_BUCKET
from .redis_client import CallGuard, LuaScript
from .redis_lean import LeanConnection

#: Milliseconds a tail's XREAD blocks before asking again.
TAIL_BLOCK_MS = 5_000
#: Most messages (and most changes) one tail read hands out at once.
TAIL_BATCH = 1_000
#: Membership changes the ``changes`` Stream keeps (approximately): far more
#: than a tail can fall behind by while it runs.
CHANGES_KEPT = 10_000
#: Fewest ids whose texts a tail's read asks for in advance (see the module doc).
AHEAD_MIN = 8
#: Seconds between a tail's attempts while Redis is away: doubling up to the max.
RETRY_FIRST = 0.05
RETRY_MAX = 2.0

# Notes a membership change after the newest message. KEYS: last_id, changes.
# ARGV: the change as JSON, the cap. Answers the change's stream id.
_NOTE_CHANGE = """
local at = redis.call('GET', KEYS[1]) or '0'
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], at .. '-*', 'j', ARGV[1])
"""

#: Decodes a ``log`` entry (stream id, flat fields, text, state) into a
#: committed message (see :func:`.redis_amend.committed_entry`).
DecodeMessage = Callable[[str, Sequence[str], str | None, str | None], Committed]


class RedisTail:
    def __init__(
        self,
        redis: coredis.Redis[str],
        following: LeanConnection,
        guard: CallGuard,
        key: Callable[[str], str],
        decode: DecodeMessage,
    ) -> None:
        self._following = following
        self._guard = guard
        self._decode = decode
        self._last_id, self._log, self._changes = key("last_id"), key("log"), key("changes")
        self._texts, self._amend = key("text:"), key("amend")
        self._note_script = LuaScript(redis, _NOTE_CHANGE)
        #: The reads tails are waiting in; :meth:`stop` cancels them.
        self._waiting: set[trio.CancelScope] = set()

    def stop(self) -> None:
        """End the tails (the log is closing: their waiting reads are cancelled)."""
        for waiting in self._waiting:
            waiting.cancel()

    async def note_change(self, change: MemberChange) -> MemberChange:
        with self._guard.call("note a membership change"):
            stream_id = await self._note_script(
                keys=[self._last_id, self._changes], args=[_change_json(change), CHANGES_KEPT]
            )
        return dataclasses.replace(change, after_id=_place(str(stream_id))[0])

    async def tail(self, after_id: int) -> AsyncIterator[list[LogEntry]]:
        """Ends when the log closes."""
        position = after_id
        # The changes after message ``after_id`` (those before it are in the
        # directory that connections starting after read).
        changed_at = f"{after_id}-0"
        delay = RETRY_FIRST
        ahead = AHEAD_MIN
        while not self._guard.closing:
            found: tuple[list[list[Any]], list[Any]] = ([], [])
            with trio.CancelScope() as waiting:
                self._waiting.add(waiting)
                try:
                    found = await self._read(position, changed_at, ahead)
                except Unavailable:
                    await trio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                finally:
                    self._waiting.discard(waiting)
            delay = RETRY_FIRST
            messages = [self._decode(*entry) for entry in found[0]]
            noted = [(_place(sid), _change(flat)) for sid, flat in found[1]]
            ahead = min(max(len(messages), AHEAD_MIN), TAIL_BATCH)
            if not messages and not noted:
                continue
            if len(messages) == TAIL_BATCH:  # more messages wait: changes past them too
                last = messages[-1].message.id
                noted = [(place, change) for place, change in noted if place[0] < last]
            elif len(noted) == TAIL_BATCH:  # more changes wait: messages past them too
                last = noted[-1][0][0]
                messages = [m for m in messages if m.message.id <= last]
            if messages:
                position = messages[-1].message.id
            if noted:
                changed_at = "{}-{}".format(*noted[-1][0])
            yield merged(messages, noted)

    async def _read(
        self, position: int, changed_at: str, ahead: int
    ) -> tuple[list[list[Any]], list[Any]]:
        """The entries of ``log`` after ``position``, each with its text and
        its state (read only for an entry written before texts moved out),
        and of ``changes`` after ``changed_at``, waiting up to
        :data:`TAIL_BLOCK_MS` for one (see the module doc)."""
        guessed = range(position + 1, position + ahead + 1)
        wait: list[str | int] = ["XREAD", "COUNT", TAIL_BATCH, "BLOCK", TAIL_BLOCK_MS, "STREAMS"]
        slots = _slots(guessed)
        replies = await self._following.pipeline(
            [
                [*wait, self._log, self._changes, f"{position}-0", changed_at],
                *self._text_reads(slots),
            ],
            blocks_for=TAIL_BLOCK_MS / 1000,
        )
        found = _streams(replies[0])
        texts = _texts(guessed, slots, replies[1:])
        read: list[list[Any]] = []  # [stream id, flat fields, text, state]
        unread: list[int] = []  # past the ids guessed, or in a gap: no text read yet
        old: list[int] = []  # written before texts moved (a field 't'; or a value "t")
        for sid, flat in found.get(self._log, []):
            msg_id = int(sid.partition("-")[0])
            if msg_id not in guessed:
                unread.append(msg_id)
            if "t" in flat:
                old.append(msg_id)
            read.append([sid, flat, msg_id])
        states: dict[int, str | None] = {}
        if unread or old:  # (id 0, never an entry's: an HMGET needs a field)
            more_slots = _slots(unread)
            more = await self._following.pipeline(
                [*self._text_reads(more_slots), ["HMGET", self._amend, *old, 0]]
            )
            texts.update(_texts(unread, more_slots, more[:-1]))
            states = dict(zip(old, cast(list[str | None], more[-1]), strict=False))
        for entry in read:
            msg_id = entry.pop()
            entry += [texts[msg_id], states.get(msg_id)]
        return read, found.get(self._changes, [])

    def _text_reads(self, slots: list[list[int]]) -> list[list[str | int]]:
        """An ``LRANGE`` per bucket of ``slots`` (see :func:`_slots`)."""
        return [["LRANGE", f"{self._texts}{bucket}", lo, hi] for bucket, lo, hi in slots]


def _slots(ids: Iterable[int]) -> list[list[int]]:
    """Where the texts of ``ids`` (ascending) are: per ``text:<n>`` List, its
    number and the first and last element to read (see :mod:`.redis_amend`)."""
    slots: list[list[int]] = []
    for msg_id in ids:
        bucket, at = divmod(msg_id, TEXT_BUCKET)
        if slots and slots[-1][0] == bucket:
            slots[-1][2] = at
        else:
            slots.append([bucket, at, at])
    return slots


def _texts(
    ids: Iterable[int], slots: list[list[int]], replies: Sequence[object]
) -> dict[int, str | None]:
    """The text of each of ``ids`` from the ``LRANGE`` answers for ``slots``
    (None: none, an element that is "" or not there yet)."""
    texts: dict[int, str | None] = dict.fromkeys(ids)
    for (bucket, lo, _), reply in zip(slots, replies, strict=True):
        first = bucket * TEXT_BUCKET + lo
        for i, text in enumerate(cast(list[str], reply)):
            if text:
                texts[first + i] = text
    return texts


def _streams(reply: object) -> dict[str, list[Any]]:
    """An ``XREAD`` answer by stream (None, a block that ran out: none)."""
    if reply is None:
        return {}
    return {key: entries for key, entries in cast(list[tuple[str, list[Any]]], reply)}


def merged(
    messages: list[Committed], noted: list[tuple[tuple[int, int], MemberChange]]
) -> list[LogEntry]:
    """Messages and changes in log order: a change at ``(n, k)`` right after message ``n``."""
    out: list[LogEntry] = []
    changes = iter(noted)
    pending = next(changes, None)
    for committed in messages:
        while pending is not None and pending[0][0] < committed.message.id:
            out.append(dataclasses.replace(pending[1], after_id=pending[0][0]))
            pending = next(changes, None)
        out.append(committed)
    while pending is not None:
        out.append(dataclasses.replace(pending[1], after_id=pending[0][0]))
        pending = next(changes, None)
    return out


def _change_json(change: MemberChange) -> str:
    room = change.room
    record = {
        "e": change.event,
        "room": [room.id, room.name, room.kind.value, room.topic],
        "user": [change.user.id, change.user.nick],
        "by": [change.by.id, change.by.nick],
        "o": change.origin,
        "ref": change.ref,
    }
    return json.dumps(record, ensure_ascii=False)


def _change(flat: Sequence[str]) -> MemberChange:
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    record = json.loads(fields["j"])
    room_id, name, kind, topic = record["room"]
    return MemberChange(
        record["e"],
        Room(room_id, name, RoomKind(kind), topic),
        User(*record["user"]),
        User(*record["by"]),
        origin=record["o"],
        ref=record["ref"],
    )


def _place(stream_id: str) -> tuple[int, int]:
    """A stream id ``<ms>-<seq>`` as a pair of integers (its order)."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq)
