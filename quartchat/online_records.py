"""A worker's cache of the online records its connections send as and to."""

from __future__ import annotations

import trio

from .backends.base import PresenceBoard
from .broker import Event, LocalBroker
from .models import User

#: Seconds a user's online record is used without asking the presence
#: board again: a bound on how long a nick change whose bus event was lost
#: (an outage of the bus) leaves this worker sending with the old nick.
RECORD_TTL = 10.0
#: Below this many known senders nothing is swept.
MIN_RECORD_SWEEP = 1024


class OnlineRecords:
    """The online records of the users this worker's connections send as and
    send to, so a send or a typing frame does not ask the presence board (a
    Redis round trip) each time.

    A record is dropped as soon as a presence frame about its user (join,
    leave, nick: from this worker or, through the event bus, any other)
    reaches this worker's broker, so the next send reads the new nick; as a
    user sees their own rename only through that frame, a message they send
    after seeing it carries the new nick on every worker. Records also expire
    after :data:`RECORD_TTL`, in case the bus lost the frame.
    """

    def __init__(self, presence: PresenceBoard, broker: LocalBroker) -> None:
        self._presence = presence
        self._known: dict[str, tuple[User, float]] = {}
        #: Counts the records dropped: a read that overlapped a drop is not kept.
        self._drops = 0
        self._sweep_at = MIN_RECORD_SWEEP
        broker.subscribe(self._watch)

    async def get(self, user_id: str) -> User | None:
        """The user as online now, or None when they are offline."""
        now = trio.current_time()
        known = self._known.get(user_id)
        if known is not None and now < known[1]:
            return known[0]
        drops = self._drops
        user = await self._presence.get(user_id)
        if user is not None and drops == self._drops:
            self._sweep(now)
            self._known[user_id] = (user, now + RECORD_TTL)
        return user

    def _watch(self, event: Event) -> None:
        for user_id in event.about:
            self._drops += 1
            self._known.pop(user_id, None)

    def _sweep(self, now: float) -> None:
        if len(self._known) < self._sweep_at:
            return
        for user_id, (_, expires) in list(self._known.items()):
            if expires <= now:
                del self._known[user_id]
        self._sweep_at = max(MIN_RECORD_SWEEP, 2 * len(self._known))
