"""A session's writer: the one task that writes to its socket.

It takes what the session queued (:class:`~quartchat.outbox.Outbox`), joins
it into as few frames as the byte limit allows and sends them, at most one
frame per flush window on a busy worker (:mod:`quartchat.pacing`). Apart so
the session keeps the connection's life, and this the fan-out's last step.

Ordering: the welcome and the replay go first; queued messages at or below
the replay's snapshot are skipped (they came in it). A :class:`Backlog` (after
a ``member`` notice that the user joined or was invited into a room) is read
and sent there, as a ``history`` frame up to the join: the room's later
messages come live, so the ids of ``message`` frames still only increase.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import trio

from .broker import Event
from .chat import Chat
from .errors import FrameError, StoreError
from .inbound import error_frame
from .log_limits import limit
from .outbox import Outbox
from .protocol import encode

log = logging.getLogger(__name__)
# A store that is away fails every backlog of every socket: one line per kind a second.
limit(log)

#: Largest server frame the writer builds by joining objects, in UTF-8 bytes:
#: the 64 KiB a client may send, so a client that caps incoming frames as the
#: server caps its own never closes for size (a replay of 2000-character
#: messages included). One object larger than this (a welcome listing
#: thousands of users) is sent alone, in a frame of its own.
MAX_FRAME_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Backlog:
    """In the queue: send the newest messages of ``room`` up to ``up_to`` here."""

    room: str
    up_to: int


class Sending(Protocol):
    """The writing half of a session's :class:`~quartchat.session.Transport`."""

    async def send(self, data: str) -> None: ...


class Writer:
    """Drains one connection's outbox to its socket, in order."""

    __slots__ = ("_chat", "_outbox", "_transport", "_user_id", "task")

    def __init__(
        self, chat: Chat, transport: Sending, outbox: Outbox[str | Event | Backlog]
    ) -> None:
        self._chat = chat
        self._transport = transport
        self._outbox = outbox
        self._user_id = ""
        #: The writer's task once the opening is sent: a reply wakes it early
        #: from its flush window.
        self.task: trio.lowlevel.Task | None = None

    async def run(self, opening: list[str], cursor: int, user_id: str) -> None:
        """Welcome and replay first, then what is queued, one frame per
        flush window at most; until cancelled."""
        self._user_id = user_id
        await self._send_lines(opening, 0)
        opening.clear()  # sent: free it for the life of the connection
        pacer = self._chat.pacer
        self.task = trio.lowlevel.current_task()
        with pacer.pacing():
            while True:
                lines = []
                messages = 0
                for item in await self._outbox.take_all():
                    if isinstance(item, str):
                        lines.append(item)
                        continue
                    if isinstance(item, Backlog):
                        await self._send_lines(lines, messages)
                        lines, messages = [await self._backlog(item)], 0
                        continue
                    if item.message_id is not None:
                        if item.message_id <= cursor:
                            continue  # already sent in the replay
                        cursor = item.message_id
                        messages += 1
                    lines.append(item.line)
                await self._send_lines(lines, messages)
                await pacer.wait_turn()

    async def _backlog(self, backlog: Backlog) -> str:
        """The room's backlog as a ``history`` frame; if the store cannot
        say, an error naming the room (the page asks for its history)."""
        try:
            page = await self._chat.backlog(self._user_id, backlog.room, backlog.up_to)
        except StoreError as exc:
            log.debug("could not read the backlog of %s: %s", backlog.room, exc)
            error = FrameError("unavailable", f"could not read the backlog of {backlog.room}")
            return encode(error_frame(self._chat, error))
        return encode(page)

    async def _send_lines(self, lines: list[str], messages: int) -> None:
        """Send ``lines`` (``messages`` of them chat messages) in as few frames
        as :data:`MAX_FRAME_BYTES` allows."""
        if len(lines) == 1 and 4 * len(lines[0]) <= MAX_FRAME_BYTES:
            # The common frame on a quiet connection: one line, surely small
            # enough (a code point is at most 4 bytes), sent as it is.
            await self._transport.send(lines[0])
            self._chat.frame_sent(1, messages)
            return
        for frame in coalesce(lines):
            await self._transport.send("\n".join(frame))
            self._chat.frame_sent(len(frame), messages)
            messages = 0  # counted with the first frame: the totals are what matter


def coalesce(lines: list[str], limit: int = MAX_FRAME_BYTES) -> Iterator[list[str]]:
    """Consecutive groups of ``lines`` whose join with newlines is at most
    ``limit`` UTF-8 bytes (a line longer than that makes a group alone).
    An ASCII line's length is its size; only others are encoded to measure."""
    group: list[str] = []
    size = -1  # the first line has no newline before it
    for line in lines:
        length = 1 + (len(line) if line.isascii() else len(line.encode()))
        if group and size + length > limit:
            yield group
            group, size = [], -1
        group.append(line)
        size += length
    if group:
        yield group
