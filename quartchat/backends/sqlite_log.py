"""The embedded log: the SQLite store of record, tailed inside this process.

One process owns the file, so its appends are the only writes: after each
commit the new messages (with the connection each came from) go into an
in-memory ring, and every tail reads the ring from its own position. A tail
that falls further behind than the ring holds re-reads the store by id, so
it loses nothing; it just pays for a query.

Membership changes (:class:`~quartchat.backends.base.MemberChange`) go into
the same ring, after the newest message, and are not stored: the room
directory holds the memberships in force. A tail so far behind that the ring
no longer holds a change it missed would miss that change; the one tail is
this process's relay, which never falls 4096 entries behind while the event
loop runs.

Edits and deletes are entries of the log like messages (ids, the ring, the
tails). A delete wipes the texts in the file (``secure_delete``); the WAL
still holds the pages as they were until it is folded into the file and cut
to nothing, which :meth:`SqliteLog.run` does soon after each delete (see
:data:`FOLD_AFTER_DELETE`).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections import deque
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import trio

from ..errors import StoreError
from ..models import Draft, Message, Posted, User
from ..store import AsyncStore
from .base import (
    GENERAL_ONLY,
    Bucket,
    Committed,
    EditRefused,
    LogEntry,
    MemberChange,
    RateLimited,
    RateLimits,
    Replay,
    RoomUnread,
    Unread,
)
from .local_limits import LocalLimits

#: Committed messages kept in memory for the tails: the newest 4096. At the
#: 2000-character text limit that is at most ~32 MiB, typically ~2 MiB. A tail
#: more than this many messages behind re-reads them from SQLite (in pages of
#: this size), where their origin is no longer known: the sender's own
#: connection may then get its message echoed once (the client drops it by id).
RING_SIZE = 4096
#: Seconds from a delete to the TRUNCATE checkpoint that takes its text out
#: of the WAL: the deletes within them share one checkpoint (a moderator
#: clearing spam costs one, not one each). Well inside the 5 s promised.
FOLD_AFTER_DELETE = 0.5
#: Seconds between two tries of that checkpoint while a reader on an older
#: snapshot keeps it from finishing (a reader's query takes milliseconds).
FOLD_RETRY = 0.1
#: Seconds before trying again after the checkpoint failed (a full disk).
FOLD_RETRY_AFTER_FAILURE = 1.0


@runtime_checkable
class WritesChecked(Protocol):
    """A log that can tell whether its writes fail (``/healthz`` asks): a
    log whose reads work can still have a full disk."""

    async def check_writes(self) -> None:
        """Raise :class:`~quartchat.errors.StoreError` while writes fail."""


class SqliteLog:
    """:class:`~quartchat.backends.base.MessageLog` and
    :class:`~quartchat.backends.base.Identities` on one SQLite file."""

    def __init__(self, store: AsyncStore, last_id: int, limits: RateLimits | None = None) -> None:
        self.store = store
        #: Where the drafts' send buckets are spent (the worker's own limits).
        self._limits = limits if limits is not None else LocalLimits()
        self.epoch = store.epoch
        #: Each entry with its place: a message at ``(id, 0)``; a change
        #: after the message it followed, at ``(after_id, n)`` with n > 0.
        self._ring: deque[tuple[tuple[int, int], LogEntry]] = deque()
        #: The newest committed id, and the count that orders changes.
        self._last_id = last_id
        self._changes = itertools.count(1)
        #: Every message with an id at or below this is in the store only
        #: (committed before this log opened, or pushed out of the ring).
        self._store_only_up_to = last_id
        self._grew = trio.Event()
        # Appends commit and publish one at a time, so the ring is in id order.
        self._appending = trio.Lock()
        self._closing = False
        #: Set by a delete; :meth:`run` then folds the WAL in.
        self._deleted = trio.Event()

    @classmethod
    async def open(cls, path: Path | str, limits: RateLimits | None = None) -> SqliteLog:
        store = await AsyncStore.open(path)
        return cls(store, await store.last_id(), limits)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fold the WAL into the file after deletes, so the texts they wiped
        leave the disk within :data:`FOLD_AFTER_DELETE` (plus the tries a
        busy reader costs); everything else the store answers on demand."""
        task_status.started()
        while True:
            await self._deleted.wait()
            await trio.sleep(FOLD_AFTER_DELETE)
            self._deleted = trio.Event()  # a delete from now on asks for another fold
            await self._fold()

    async def _fold(self) -> None:
        """One TRUNCATE checkpoint that finishes, tried until it does (or the
        log closes: closing the store checkpoints with TRUNCATE too)."""
        while not self._closing:
            try:
                if await self.store.fold_wal():
                    return
                pause = FOLD_RETRY
            except StoreError:  # logged by the store
                pause = FOLD_RETRY_AFTER_FAILURE
            await trio.sleep(pause)

    async def aclose(self) -> None:
        """End the tails, then close the store (after its running calls)."""
        self._closing = True
        self._grew.set()
        await self.store.aclose()

    @property
    def close_failure(self) -> StoreError | None:
        """Why the close could not checkpoint the store (a full disk), or None."""
        return self.store.close_failure

    async def check_writes(self) -> None:
        """Raise :class:`StoreError` while the store's writes fail (see
        :meth:`AsyncStore.check_writes`, which may try a write to find out)."""
        await self.store.check_writes()

    async def append(
        self, drafts: Sequence[Draft], buckets: Sequence[Bucket | None] = ()
    ) -> list[Posted | StoreError | RateLimited | EditRefused]:
        async with self._appending:
            # One process: spending in-process, just before the insert, is
            # as atomic as Redis's script (no other writer in between).
            limited = [
                bucket is not None
                and not await self._limits.take(bucket.key, bucket.rate, bucket.burst)
                for bucket in buckets
            ] or [False] * len(drafts)
            kept = [draft for draft, refused in zip(drafts, limited, strict=True) if not refused]
            posted = await self.store.insert(kept) if kept else []
            self._publish(
                [
                    Committed(result.message, draft.origin)
                    for draft, result in zip(kept, posted, strict=True)
                    if isinstance(result, Posted) and not result.duplicate
                ]
            )
        results = iter(posted)
        return [RateLimited() if refused else _refused_edit(next(results)) for refused in limited]

    async def get(self, message_id: int) -> Message | None:
        return await self.store.get(message_id)

    async def delete(self, target: int, by: User, origin: str = "") -> Message | None:
        """The delete entry, published as a message would be; :meth:`run`
        then folds the WAL in."""
        async with self._appending:
            entry = await self.store.delete(target, by)
            if entry is not None:
                self._publish([Committed(entry, origin)])
        if entry is not None:
            self._deleted.set()
        return entry

    async def note_change(self, change: MemberChange) -> MemberChange:
        async with self._appending:  # after every message committed so far
            noted = dataclasses.replace(change, after_id=self._last_id)
            self._publish([noted])
        return noted

    def _publish(self, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        for item in entries:
            if len(self._ring) == RING_SIZE:
                (gone, _), _ = self._ring.popleft()
                self._store_only_up_to = max(self._store_only_up_to, gone)
            if isinstance(item, Committed):
                self._last_id = item.message.id
                place = (item.message.id, 0)
            else:
                place = (item.after_id, next(self._changes))
            self._ring.append((place, item))
        self._grew.set()
        self._grew = trio.Event()

    async def tail(self, after_id: int) -> AsyncIterator[list[LogEntry]]:
        """Ends when the log closes."""
        position = (after_id, 0)
        while not self._closing:
            if position[0] < self._store_only_up_to:
                missed = await self.store.committed_after(position[0], RING_SIZE)
                if missed:
                    position = (missed[-1].id, 0)
                    yield [Committed(message, "") for message in missed]
                    continue
                position = (self._store_only_up_to, 0)
            start = bisect.bisect_right(self._ring, position, key=_place)
            if start < len(self._ring):
                fresh = list(itertools.islice(self._ring, start, None))
                position = fresh[-1][0]
                yield [entry for _, entry in fresh]
                continue
            await self._grew.wait()

    async def read_after(
        self,
        viewer: str,
        after_id: int | None,
        limit: int,
        rooms: Collection[str] = GENERAL_ONLY,
    ) -> Replay:
        messages, last_id, complete = await self.store.replay(viewer, after_id, limit, rooms)
        return Replay(messages, last_id, complete)

    async def history(
        self,
        viewer: str,
        before_id: int | None,
        limit: int,
        with_user: str | None,
        room: str | None = None,
    ) -> tuple[list[Message], bool]:
        return await self.store.history(viewer, before_id, limit, with_user, room)

    async def unread(
        self, viewer: str, rooms: Mapping[str, int], direct: Mapping[str, int]
    ) -> Unread:
        in_rooms, private = await self.store.unread(viewer, rooms, direct)
        return Unread({room: RoomUnread(*counts) for room, counts in in_rooms.items()}, private)

    async def last_id(self) -> int:
        return await self.store.last_id()

    async def create_user(self, nick: str) -> tuple[User, str]:
        return await self.store.create_user(nick)

    async def user_by_token(self, token: str) -> User | None:
        return await self.store.user_by_token(token)

    async def get_user(self, user_id: str) -> User | None:
        return await self.store.get_user(user_id)

    async def set_nick(self, user_id: str, nick: str) -> None:
        await self.store.set_nick(user_id, nick)

    async def user_for_subject(self, subject: str, nick: str) -> User:
        return await self.store.user_for_subject(subject, nick)

    async def prune_silent_users(self, created_before: int, keep: Collection[str]) -> int:
        return await self.store.prune_silent_users(created_before, keep)


def _refused_edit(result: Posted | StoreError | None) -> Posted | StoreError | EditRefused:
    """The store's answer to a draft, with an edit it refused (None) as the seam says it."""
    return EditRefused() if result is None else result


def _place(item: tuple[tuple[int, int], LogEntry]) -> tuple[int, int]:
    return item[0]
