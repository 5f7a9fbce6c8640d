"""Presence notices (join, leave, nick) go out in batches, not one event each.

Every notice goes to every connection. One event per notice makes a storm of
N users connecting cost N² broker deliveries and queue items (every join
walks every subscriber), whatever the writer then coalesces. So notices wait
here and go out together as one event per batch: after a quiet spell a
notice is published on the next pass of the scheduler; then for one window
the next ones gather and leave together. A batch's event carries several
lines, one JSON object each, in the order they were announced; a client sees
the same ``presence`` objects as before, several to a frame.

The window grows with the chat (:func:`batch_window`): each batch costs
every connection a queue item and, soon, a frame, so batches may take only
a share of the flush budget (:mod:`quartchat.pacing`): 0.1 s up to 225
connections at the default budget, 2.2 s at 5,000. Only notices that follow
one another that closely wait that long.

A batch skips the connections of every user it announces (nobody hears of
their own join or leave). A starting session subscribes before it reads its
welcome's online list (so that no message is missed), and tells the
announcer both (:meth:`Announcer.opening`, :meth:`Announcer.listing`): a
batch published in between is in the list, so it skips that connection; the
batch gathering at the read gives it only the lines announced after the
read (:meth:`PresenceBatch.part_for`), whomever they are about. So a
welcome never waits for a batch, and what a client sees is exact: its list,
then every notice announced after it, each once. A user who speaks or
types while their join waits makes the batch go out first
(:meth:`Announcer.before_frames_of`): nobody hears from someone before
hearing that they joined. A ``nick`` notice goes to everyone, the renamed
user included, so it is published at once, after whatever is waiting.

Only the embedded bus batches: an event on the Redis bus carries one user to
skip, so there each notice is published at once, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import trio

from .backends.base import EventBus
from .broker import Event
from .protocol import PresenceNotice, encode

#: The shortest window: seconds the notices after a batch gather before the
#: next batch goes out.
WINDOW = 0.1
#: The share of the flush budget that presence batches may take.
BUDGET_SHARE = 0.25
#: Most UTF-8 bytes of notices in one event (about 550 joins): below the
#: 64 KiB frame bound, so a batch always fits in a frame.
MAX_BATCH_BYTES = 48 * 1024


def batch_window(connections: int, budget: float) -> float:
    """Seconds a batch gathers in a chat of ``connections`` whose writers may
    send ``budget`` frames per second in all: one frame per connection per
    batch takes at most :data:`BUDGET_SHARE` of it."""
    return max(WINDOW, connections / (budget * BUDGET_SHARE))


@dataclass(frozen=True, slots=True)
class PresenceBatch(Event):
    """Several presence lines for everyone but the users they announce."""

    skip_users: frozenset[str] = frozenset()
    #: Connections that will read their online list later: it holds this batch.
    skip_conns: frozenset[str] = frozenset()
    #: Connections that read their online list while the batch gathered
    #: (its first lines are in that list): where in ``line`` the rest starts.
    resume: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def is_for(self, conn_id: str, user_id: str) -> bool:
        return (
            user_id not in self.skip_users
            and conn_id not in self.resume
            and conn_id not in self.skip_conns
        )

    def part_for(self, conn_id: str) -> str | None:
        start = self.resume.get(conn_id)
        return self.line[start:] if start is not None and start < len(self.line) else None


class Announcer:
    def __init__(
        self, bus: EventBus, *, batch: bool, window: float | Callable[[], float] = WINDOW
    ) -> None:
        self._bus = bus
        self._batch = batch
        self._window = window if callable(window) else lambda: window
        #: Lines waiting, their size in bytes and characters (joined), whom
        #: they announce, and where each skipped connection resumes.
        self._lines: list[str] = []
        self._size = 0
        self._chars = 0
        self._skip: set[str] = set()
        self._resume: dict[str, int] = {}
        #: Connections subscribed that have not read their online list yet.
        self._opening: set[str] = set()
        self._wake = trio.Event()
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
                await trio.sleep(self._window())
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
            self.flush()
        self._lines.append(line)
        self._size += size + 1
        self._chars += len(line) + 1
        self._skip.add(skip_user)
        self._wake.set()

    def before_frames_of(self, user_id: str) -> None:
        """``user_id`` is about to be heard from (a message, a typing state):
        if the waiting batch announces them, publish it now, so that nobody
        hears from a user before hearing that they joined."""
        if user_id in self._skip:
            self.flush()

    def opening(self, conn_id: str) -> None:
        """``conn_id`` is subscribed and will read its online list later:
        batches published until then are in that list, so it skips them."""
        self._opening.add(conn_id)

    def listing(self, conn_id: str) -> None:
        """``conn_id`` reads its welcome's online list now, with no checkpoint
        before the read: it gets only what the waiting batch announces from
        now on (the list holds the rest), even if the batch skips its user."""
        self._opening.discard(conn_id)
        if self._lines:
            self._resume[conn_id] = self._chars

    def abandon(self, conn_id: str) -> None:
        """``conn_id`` will not read a list after all (its start failed)."""
        self._opening.discard(conn_id)

    def flush(self) -> None:
        """Publish what is waiting now."""
        if not self._lines:
            return
        announced = frozenset(self._skip)  # a batch skips exactly whom it announces
        event = PresenceBatch(
            line="\n".join(self._lines),
            about=tuple(announced),
            skip_users=announced,
            skip_conns=frozenset(self._opening),
            resume=MappingProxyType(self._resume),
        )
        self._lines, self._size, self._chars, self._skip, self._resume = [], 0, 0, set(), {}
        self._bus.publish(event)
