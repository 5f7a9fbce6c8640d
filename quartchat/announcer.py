"""Presence notices (join, leave, nick) go out in batches, not one event each.

Every notice goes to every connection. One event per notice makes a storm of
N users connecting cost N² broker deliveries and queue items (every join
walks every subscriber), whatever the writer then coalesces. So notices wait
here and go out together as one event per batch: after a quiet spell a
notice is published on the next pass of the scheduler; then for ``window``
seconds the next ones gather and leave together. A batch's event carries
several lines, one JSON object each, in the order they were announced; a
client sees the same ``presence`` objects as before, several to a frame.

A batch skips the connections of every user it announces (nobody hears of
their own join or leave); a ``nick`` notice goes to everyone, the renamed
user included, so it is published at once, after whatever is waiting. A
session therefore reads its welcome's online list only after its own join
has been published (:meth:`Announcer.published`): the list then holds
everything the skipped batch said, and every later batch reaches it.

Only the embedded bus batches: an event on the Redis bus carries one user to
skip, so there each notice is published at once, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from .backends.base import EventBus
from .broker import Event
from .protocol import PresenceNotice, encode

#: Seconds the notices after a batch gather before the next batch goes out.
WINDOW = 0.1
#: Most UTF-8 bytes of notices in one event (about 170 joins), so a batch
#: joined into a frame with others never makes it exceed the frame bound.
MAX_BATCH_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class PresenceBatch(Event):
    """Several presence lines for everyone but the users they announce."""

    skip_users: frozenset[str] = frozenset()

    def is_for(self, conn_id: str, user_id: str) -> bool:
        return user_id not in self.skip_users


class Announcer:
    def __init__(self, bus: EventBus, *, batch: bool, window: float = WINDOW) -> None:
        self._bus = bus
        self._batch = batch
        self._window = window
        #: Lines waiting, their size in bytes, and whom they announce.
        self._lines: list[str] = []
        self._size = 0
        self._skip: set[str] = set()
        self._wake = trio.Event()
        #: Set when what is waiting now has been published (then replaced).
        self._flushed = trio.Event()
        self._running = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish batches until cancelled (what is waiting then goes out)."""
        self._running = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                self.flush()
                await trio.sleep(self._window)
        finally:
            self._running = False
            self.flush()

    def announce(self, notice: PresenceNotice, *, skip_user: str | None) -> None:
        """Publish ``notice`` to everyone but ``skip_user``, soon, in order."""
        line = encode(notice)
        if skip_user is None or not self._batch or not self._running:
            self.flush()
            self._bus.publish(Event(line=line, skip_user=skip_user, about=(notice.user.id,)))
            return
        size = len(line.encode())
        if self._lines and self._size + size > MAX_BATCH_BYTES:
            self._publish_waiting()
        self._lines.append(line)
        self._size += size + 1
        self._skip.add(skip_user)
        self._wake.set()

    async def published(self) -> None:
        """Return once every notice announced so far has been published."""
        if self._lines:
            await self._flushed.wait()

    def flush(self) -> None:
        """Publish what is waiting now."""
        self._publish_waiting()
        self._flushed.set()
        self._flushed = trio.Event()

    def _publish_waiting(self) -> None:
        if not self._lines:
            return
        announced = frozenset(self._skip)  # a batch skips exactly whom it announces
        event = PresenceBatch(
            line="\n".join(self._lines), about=tuple(announced), skip_users=announced
        )
        self._lines, self._size, self._skip = [], 0, set()
        self._bus.publish(event)
