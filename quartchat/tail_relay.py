"""The log's tail, relayed to this worker's connections.

One task per worker reads every committed message and every membership
change, from every worker, in log order, and publishes them on this
worker's broker; each connection's cursor skips what it already had in its
replay. A membership change is applied to the broker's room index at its
place: a member who joins gets the room's messages from there on, one who
leaves or is kicked none after it. The relay also tells how far it has got,
so an ack is sent only after the messages below it are queued.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import trio

from .backends.base import Committed, MemberChange, MessageLog
from .broker import Event, LocalBroker, MemberEvent
from .protocol import MessageFrame, encode
from .protocol_rooms import MemberNotice


def _nothing(room: str) -> None:
    pass


#: Membership changes that add the user to the room (then the room's backlog follows).
ENTERING = frozenset({"join", "invite"})


class TailRelay:
    def __init__(
        self, log: MessageLog, broker: LocalBroker, changed: Callable[[str], None] = _nothing
    ) -> None:
        self._log = log
        self._broker = broker
        #: Told the id of each room whose members changed (caches of members).
        self._changed = changed
        #: The newest id the tail has handed to this worker's broker, and
        #: an event set each time it moves (then replaced).
        self._relayed = 0
        self._moved = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every committed message and membership change, from every worker,
        to this worker's connections, in log order (their cursors skip what
        they replayed)."""
        self._relayed = start = await self._log.last_id()
        task_status.started()
        publish = self._broker.publish
        async for batch in self._log.tail(start):
            newest = self._relayed
            for entry in batch:
                if isinstance(entry, Committed):
                    publish(message_event(entry))
                    newest = entry.message.id
                else:
                    self._change(entry)
            if newest > self._relayed:
                self._relayed = newest
                self._moved.set()
                self._moved = trio.Event()

    def _change(self, change: MemberChange) -> None:
        """Apply a membership change to this worker's connections and tell
        the room (the user concerned included, whatever the change)."""
        room, user = change.room.id, change.user.id
        self._changed(room)
        notice = MemberNotice(change.event, change.room, change.user, change.by)
        entering = change.event in ENTERING
        if entering:
            self._broker.enter(user, room)
        answer = encode(notice)
        if change.origin and change.ref is not None:
            answer = encode(dataclasses.replace(notice, ref=change.ref))
        self._broker.publish(
            MemberEvent(
                line=encode(notice),
                room=room,
                skip_conn=change.origin or None,
                answer=answer,
                backlog=(user, room, change.after_id) if entering else None,
            )
        )
        if not entering:
            self._broker.exit(user, room)

    async def relayed_past(self, message_id: int) -> None:
        """Return once the tail has relayed ``message_id``: every message
        below it is then queued for this worker's connections, so an ack sent
        now reaches its connection after them. Clients move their cursor on
        acks (the page does); a lower message arriving after the ack would be
        skipped by a resume from that cursor."""
        while self._relayed < message_id:
            await self._moved.wait()


def message_event(committed: Committed) -> Event:
    """A committed message as its event: to its room, or to its two users."""
    message = committed.message
    only = None
    if message.recipient is not None:
        only = frozenset((message.sender.id, message.recipient.id))
    return Event.of(
        MessageFrame(message, name_general=True),
        message_id=message.id,
        only_users=only,
        skip_conn=committed.origin or None,
        room=message.room,
    )
