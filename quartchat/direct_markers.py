"""Read markers for private conversations nobody has read yet.

``welcome`` lists the private conversations with unread messages by their
read markers (:meth:`~quartchat.backends.base.RoomDirectory.direct_reads`),
so a conversation must have a marker from its first message on, or a user
who never opened it would never be told of it. When a private message is
committed, the recipient gets a marker for the sender just below it if they
have none; a worker remembers the pairs it has seen (:data:`PAIRS_KEPT`), so
this costs a read only on the first message of a pair per worker.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from .backends.base import RoomDirectory
from .errors import StoreError
from .models import Message

log = logging.getLogger(__name__)

#: Conversations (recipient, sender) a worker remembers already having a marker.
PAIRS_KEPT = 65_536


class DirectMarkers:
    def __init__(self, directory: RoomDirectory) -> None:
        self._directory = directory
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def opened(self, message: Message) -> None:
        """Give the recipient of ``message`` (a private one) a marker for its
        sender if they have none: just below it, so it counts as unread."""
        if message.recipient is None or message.recipient.id == message.sender.id:
            return
        pair = (message.recipient.id, message.sender.id)
        if pair in self._known:
            self._known.move_to_end(pair)
            return
        try:
            if message.sender.id not in await self._directory.direct_reads(pair[0]):
                await self._directory.mark_direct_read(pair[0], pair[1], max(message.id - 1, 0))
        except StoreError as exc:  # the message is stored: its ack must not wait on this
            log.debug("no marker for a new private conversation: %s", exc)
            return
        self._known[pair] = None
        if len(self._known) > PAIRS_KEPT:
            self._known.popitem(last=False)
