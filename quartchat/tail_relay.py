"""The log's tail, relayed to this worker's connections.

One task per worker reads every committed message, from every worker, in id
order, and publishes it on this worker's broker; each connection's cursor
skips what it already had in its replay. The relay also tells how far it has
got, so an ack is sent only after the messages below it are queued.
"""

from __future__ import annotations

import trio

from .backends.base import MessageLog
from .broker import Event, LocalBroker
from .protocol import MessageFrame


class TailRelay:
    def __init__(self, log: MessageLog, broker: LocalBroker) -> None:
        self._log = log
        self._broker = broker
        #: The newest id the tail has handed to this worker's broker, and
        #: an event set each time it moves (then replaced).
        self._relayed = 0
        self._moved = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every committed message, from every worker, to this worker's
        connections, in id order (their cursors skip what they replayed)."""
        self._relayed = start = await self._log.last_id()
        task_status.started()
        publish = self._broker.publish
        async for batch in self._log.tail(start):
            for committed in batch:
                message = committed.message
                only = None
                if message.recipient is not None:
                    only = frozenset((message.sender.id, message.recipient.id))
                publish(
                    Event.of(
                        MessageFrame(message),
                        message_id=message.id,
                        only_users=only,
                        skip_conn=committed.origin or None,
                    )
                )
            self._relayed = batch[-1].message.id
            self._moved.set()
            self._moved = trio.Event()

    async def relayed_past(self, message_id: int) -> None:
        """Return once the tail has relayed ``message_id``: every message
        below it is then queued for this worker's connections, so an ack sent
        now reaches its connection after them. Clients move their cursor on
        acks (the page does); a lower message arriving after the ack would be
        skipped by a resume from that cursor."""
        while self._relayed < message_id:
            await self._moved.wait()
